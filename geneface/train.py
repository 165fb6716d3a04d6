"""Training entry point: `python -m geneface.train stage=<stage> speaker=<speaker> [overrides]`.

Instantiates the stage's data module and LightningModule, the callbacks, loggers and trainer from
the composed config, fits, and returns the optimised metric (for sweepers).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from omegaconf import DictConfig, OmegaConf, open_dict

from geneface.callbacks.atomic_checkpoint_io import AtomicCheckpointIO
from geneface.callbacks.config_in_checkpoint import ConfigInCheckpoint
from geneface.callbacks.progress_file import ProgressFile
from geneface.utils.cli import check_choices
from geneface.utils.checkpoints import DamagedCheckpointError, IncompatibleCheckpointError, check_readable
from geneface.utils.progress import PROGRESS_ENV
from geneface.utils.threads import set_threads


# The stage directory holds last/best.ckpt *and* runs/ by design, which Lightning would warn about.
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


def _resume_path(cfg: DictConfig) -> str | None:
    """ckpt_path if given, else the stage's last.ckpt under resume=true; a damaged last.ckpt (a kill
    while something copied it, a full disk) falls back to best.ckpt beside it, with a warning."""
    if cfg.get("ckpt_path"):
        check_readable(cfg.ckpt_path)                  # damaged: say so, naming the file
        return str(cfg.ckpt_path)
    last = Path(cfg.paths.ckpt_dir) / "last.ckpt"
    if not (cfg.get("resume") and last.is_file()):
        return None
    try:
        check_readable(last)                           # Lightning loads it; here only its zip directory
    except DamagedCheckpointError as err:
        best = last.with_name("best.ckpt")
        try:
            check_readable(best)
        except DamagedCheckpointError:
            raise DamagedCheckpointError(f"{err}\nThere is no readable {best.name} beside it to resume from: "
                                         f"start over with resume=false (or delete {last})") from None
        rank_zero_warn(f"{err}\nResuming from {best} instead, the last good checkpoint (its step, not the "
                       f"last one's).")
        return str(best)
    rank_zero_info(f"Resuming from {last} (pass resume=false to start over)")
    return str(last)


def _close_loggers(loggers: list) -> None:
    """Finish W&B runs so that the next job of a sweep (same process) gets a run of its own."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            wandb.finish()


def train(cfg: DictConfig) -> dict[str, float]:
    # Subnormal floats (an opaque head's transmittance gradients underflow into them) make CPU matrix
    # products ~2x slower; flushing them to zero changes nothing a float32 model can tell. Only while
    # training: the flag is global to the thread, and MediaPipe's XNNPack fails under it.
    torch.set_flush_denormal(True)
    try:
        return _train(cfg)
    finally:
        torch.set_flush_denormal(False)


def _train(cfg: DictConfig) -> dict[str, float]:
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        # Sweep jobs must not share the stage's stable checkpoints: each keeps its own.
        with open_dict(cfg):
            cfg.paths.ckpt_dir = str(Path(cfg.paths.run_dir) / "checkpoints")
    L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = instantiate(cfg.stage.data)
    model: L.LightningModule = instantiate(cfg.stage.model)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    callbacks.append(ConfigInCheckpoint(cfg))
    if os.environ.get(PROGRESS_ENV):                   # run by geneface.pipeline: report the step
        callbacks.append(ProgressFile(cfg.stage.name))
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                     plugins=[AtomicCheckpointIO()])
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    resume_from = _resume_path(cfg)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from)
    except RuntimeError as err:
        if resume_from and "Error(s) in loading state_dict" in str(err):
            raise IncompatibleCheckpointError(
                f"cannot resume from {resume_from}: it holds a different network than this config "
                f"builds (an earlier run with other sizes?). Start over with resume=false, or move "
                f"{Path(resume_from).parent} aside to keep it.\n{str(err)[:600]}") from None
        raise
    finally:
        _close_loggers(loggers)
    if not trainer.fast_dev_run and trainer.checkpoint_callback is not None:
        # the last step is not always a validation step: make sure last.ckpt is the final state
        trainer.save_checkpoint(Path(cfg.paths.ckpt_dir) / "last.ckpt")
        rank_zero_info(f"Checkpoints in {cfg.paths.ckpt_dir}")
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    set_threads(cfg.runtime.threads)
    metrics = train(cfg)
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name else None


if __name__ == "__main__":
    check_choices(sys.argv[1:])
    main()
