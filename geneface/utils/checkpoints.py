"""Stable stage checkpoints: `outputs/<speaker>/<stage>/{last,best,selected}.ckpt`, and how a stage
finds and rebuilds its upstream."""

from __future__ import annotations

from pathlib import Path

import torch


class MissingCheckpointError(FileNotFoundError):
    """An upstream stage has not been trained yet; the message names the command to run first."""


def stage_checkpoint(output_dir: str | Path, speaker: str, stage: str, name: str = "best.ckpt") -> Path:
    """Path of a trained stage's checkpoint, or MissingCheckpointError with the command to run."""
    path = Path(output_dir) / speaker / stage / name
    if not path.is_file():
        raise MissingCheckpointError(
            f"{path} does not exist: stage '{stage}' has not been trained for '{speaker}'. "
            f"Run first:\n    python -m geneface.train stage={stage} speaker={speaker}\n"
            f"(or point this stage at another checkpoint).")
    return path


def load_stage(path: str | Path, map_location: str | torch.device = "cpu"):
    """Rebuild a stage's LightningModule from a checkpoint written by geneface.train and load its
    weights (a module may define `on_load_stage(checkpoint)`, called first, to restore extra
    state). Returns the module in eval mode."""
    from hydra.utils import instantiate

    checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    config = checkpoint.get("geneface_config")
    if config is None:
        raise ValueError(f"{path} was not written by geneface.train (no geneface_config inside); "
                         f"cannot tell which network it holds")
    module = instantiate(config["stage"]["model"])
    hook = getattr(module, "on_load_stage", None)
    if callable(hook):              # e.g. the postnet rebuilds the frozen VAE stored beside its weights
        hook(checkpoint)
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()
