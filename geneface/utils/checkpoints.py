"""Stable stage checkpoints: `outputs/<speaker>/<stage>/{last,best,selected}.ckpt`, and how a stage
finds and rebuilds its upstream."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from geneface.utils.cli import CONFIG_DIR

# the stage directories a standard checkpoint name lives in: only there does a missing file mean
# "that stage has not been trained" (elsewhere it is a mistyped path)
STANDARD_NAMES = ("best.ckpt", "last.ckpt", "selected.ckpt")
RENDERER_STAGES = ("radnerf", "radnerf_torso", "nerf", "nerf_torso")


class MissingCheckpointError(FileNotFoundError):
    """An upstream stage has not been trained yet; the message names the command to run first."""


class IncompatibleCheckpointError(RuntimeError):
    """A run would resume from a checkpoint of a different network (e.g. an earlier width)."""


class DamagedCheckpointError(ValueError):
    """A checkpoint file cannot be read (cut short, empty, or not a checkpoint); names the file."""


class WrongStageCheckpointError(ValueError):
    """A checkpoint of one stage was given where another stage's is needed; names both."""


class OutdatedCheckpointError(ValueError):
    """A checkpoint written by another version of geneface: its saved config names a class or an argument
    this code does not have. Names the config key and the way out."""


def _known_stage(name: str) -> bool:
    return (CONFIG_DIR / "stage" / f"{name}.yaml").is_file()


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
    if len(path.parts) >= 3 and path.name in STANDARD_NAMES and _known_stage(path.parent.name):
        try:
            return stage_checkpoint(path.parents[2], path.parent.parent.name, path.parent.name, path.name)
        except MissingCheckpointError as err:
            raise MissingCheckpointError(f"{err}{hint}") from None
    raise MissingCheckpointError(f"checkpoint {path} does not exist: check the path{hint}")


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    stages: tuple[str, ...] | None = None, role: str = "this checkpoint") -> dict:
    """torch.load a checkpoint written by geneface.train, with errors that name the file: damaged
    (DamagedCheckpointError), not ours, or of another stage than `stages` (WrongStageCheckpointError;
    `role` says what it was given as, e.g. 'postnet_ckpt')."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise _damaged(path, err) from None
    config = checkpoint.get("geneface_config") if isinstance(checkpoint, dict) else None
    if config is None:
        raise WrongStageCheckpointError(f"{path} was not written by geneface.train (no geneface_config "
                                        f"inside); cannot tell which network it holds")
    stage = checkpoint_stage(checkpoint)
    if stages is not None and stage not in stages:
        raise WrongStageCheckpointError(
            f"{path} holds a '{stage}' checkpoint, but {role} needs a checkpoint of "
            f"{' or '.join(repr(s) for s in stages)}; point {role} at one (e.g. "
            f"outputs/<speaker>/{stages[0]}/{'selected' if stages[0] == 'postnet' else 'best'}.ckpt)")
    return checkpoint


def check_readable(path: str | Path) -> None:
    """DamagedCheckpointError, as read_checkpoint's, unless `path` is a whole zip archive (torch.save's
    format): a cut-short file has lost the central directory at its end. Reads only that directory,
    so a resume can vet last.ckpt without loading it a second time."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path):
            pass
    except (zipfile.BadZipFile, OSError) as err:
        raise _damaged(path, err) from None


def _damaged(path: Path, err: Exception) -> DamagedCheckpointError:
    size = path.stat().st_size if path.is_file() else 0
    detail = str(err).splitlines()[0][:160] if str(err) else "no detail"
    return DamagedCheckpointError(
        f"{path} is damaged and cannot be read ({size:,} bytes; {type(err).__name__}: {detail}): it was cut "
        f"short (a kill or a full disk while copying it?) or is not a checkpoint. Train its stage again, or "
        f"point at another checkpoint.")


def checkpoint_stage(checkpoint: dict) -> str:
    """The stage name a geneface checkpoint was trained as (its config's stage.name)."""
    return str(checkpoint["geneface_config"]["stage"]["name"])


def load_stage(path: str | Path | dict, map_location: str | torch.device = "cpu",
               stages: tuple[str, ...] | None = None, role: str = "this checkpoint"):
    """Rebuild a stage's LightningModule from a checkpoint written by geneface.train (a path, or the
    checkpoint already read with torch.load) and load its weights; a path is read by read_checkpoint
    (`stages`, `role`: see there). A module may define `on_load_stage(checkpoint)`, called first, to
    restore extra state. Returns it in eval mode."""
    if isinstance(path, dict):
        checkpoint = path
        if checkpoint.get("geneface_config") is None:
            raise WrongStageCheckpointError("the checkpoint was not written by geneface.train (no "
                                            "geneface_config inside); cannot tell which network it holds")
    else:
        checkpoint = read_checkpoint(path, map_location, stages, role)
    config = checkpoint["geneface_config"]
    module = _instantiate_saved(config, path if not isinstance(path, dict) else role)
    hook = getattr(module, "on_load_stage", None)
    if callable(hook):              # e.g. the postnet rebuilds the frozen VAE stored beside its weights
        hook(checkpoint)
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()


def _instantiate_saved(config: dict, source) -> torch.nn.Module:
    """Build the stage module from a checkpoint's saved config. Why a wrapper: a checkpoint from another
    version of the code can name a class that has since moved or gone, or an argument the class no longer
    takes, and Hydra's own error ("Error locating target ...") says neither which file nor what to do."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(config["stage"]["model"])
    except InstantiationException as err:
        message = str(err)
        missing = re.search(r"Error locating target '([^']+)'", message)
        unexpected = re.search(r"Error in call to target '([^']+)'.*unexpected keyword argument '([^']+)'",
                               message, re.DOTALL)
        if not (missing or unexpected):
            raise
        # Hydra names the failing node relative to the config it was given, and nothing for its root
        node = re.search(r"full_key: (\S+)", message)
        where = "stage.model" + (f".{node.group(1)}" if node else "")
        what = (f"asks for {missing.group(1)} (at {where}), which this code does not have" if missing else
                f"passes '{unexpected.group(2)}' to {unexpected.group(1)} (at {where}), which this code's "
                f"{unexpected.group(1)} does not take")
        stage = config["stage"].get("name", "<stage>")
        raise OutdatedCheckpointError(
            f"{source} was written by another version of geneface: its config {what}. Load it with the version "
            f"of geneface that wrote it, or train the stage again with this one (python -m geneface.train "
            f"stage={stage} speaker=<speaker> resume=false).") from None
