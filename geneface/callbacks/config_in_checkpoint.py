"""Stores the run's resolved config in every checkpoint, so a later stage can rebuild the network
from the checkpoint alone (geneface.utils.checkpoints.load_stage)."""

from __future__ import annotations

import lightning as L
from omegaconf import DictConfig, OmegaConf


class ConfigInCheckpoint(L.Callback):
    def __init__(self, cfg: DictConfig):
        self.config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["geneface_config"] = self.config
