"""Stable stage checkpoints: `outputs/<speaker>/<stage>/{last,best,selected}.ckpt`, and how a stage
finds and rebuilds its upstream."""

from __future__ import annotations

from pathlib import Path

import torch


class MissingCheckpointError(FileNotFoundError):
    """An upstream stage has not been trained yet; the message names the command to run first."""


class IncompatibleCheckpointError(RuntimeError):
    """A run would resume from a checkpoint of a different network (e.g. an earlier width)."""


def stage_checkpoint(output_dir: str | Path, speaker: str, stage: str, name: str = "best.ckpt") -> Path:
    """Path of a trained stage's checkpoint, or MissingCheckpointError with the command to run."""
    path = Path(output_dir) / speaker / stage / name
    if not path.is_file():
        raise MissingCheckpointError(
            f"{path} does not exist: stage '{stage}' has not been trained for '{speaker}'. "
            f"Run first:\n    python -m geneface.train stage={stage} speaker={speaker}\n"
            f"(or point this stage at another checkpoint).")
    return path


def upstream_checkpoint(path: str | Path, hint: str = "") -> Path:
    """An upstream stage's checkpoint `<output_dir>/<speaker>/<stage>/<name>`, or
    MissingCheckpointError naming the command that trains it (plus `hint`, e.g. how to do without)."""
    path = Path(path)
    if path.is_file():
        return path
    if len(path.parts) >= 3:
        try:
            return stage_checkpoint(path.parents[2], path.parent.parent.name, path.parent.name, path.name)
        except MissingCheckpointError as err:
            raise MissingCheckpointError(f"{err}{hint}") from None
    raise MissingCheckpointError(f"upstream checkpoint {path} does not exist{hint}")


def load_stage(path: str | Path | dict, map_location: str | torch.device = "cpu"):
    """Rebuild a stage's LightningModule from a checkpoint written by geneface.train (a path, or the
    checkpoint already read with torch.load) and load its weights. A module may define
    `on_load_stage(checkpoint)`, called first, to restore extra state. Returns it in eval mode."""
    from hydra.utils import instantiate

    checkpoint = path if isinstance(path, dict) else torch.load(path, map_location=map_location,
                                                                 weights_only=False)
    config = checkpoint.get("geneface_config")
    if config is None:
        raise ValueError(f"{'the checkpoint' if isinstance(path, dict) else path} was not written by "
                         f"geneface.train (no geneface_config inside); cannot tell which network it holds")
    module = instantiate(config["stage"]["model"])
    hook = getattr(module, "on_load_stage", None)
    if callable(hook):              # e.g. the postnet rebuilds the frozen VAE stored beside its weights
        hook(checkpoint)
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()
