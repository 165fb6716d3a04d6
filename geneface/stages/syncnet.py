"""Stage `syncnet`: trains the landmark–audio lip-sync expert on the corpus (GeneFace §3)."""

from __future__ import annotations

from typing import Callable

import lightning as L
import torch
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

from geneface.models.syncnet import SyncNet, sync_bce


class SyncNetStage(L.LightningModule):
    def __init__(self, net: SyncNet, optimizer: Callable, scheduler: Callable | None = None):
        super().__init__()
        # the built net and optimizer factories are not hyperparameters: the resolved config that
        # made them is stored in every checkpoint by geneface.callbacks.ConfigInCheckpoint
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.val_acc = BinaryAccuracy(threshold=0.5)
        self.val_auroc = BinaryAUROC()

    def model_step(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        score = self.net(batch["mouth"], batch["audio"])  # [N]
        return sync_bce(score, batch["label"]), score

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, _ = self.model_step(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["label"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, score = self.model_step(batch)
        label = batch["label"].long()
        self.val_acc.update(score, label)
        self.val_auroc.update(score, label)
        n = len(label)
        self.log("val/loss", loss, batch_size=n, sync_dist=True)
        # mean −log(score) on aligned pairs: the critic loss later stages see (GeneFace's "sync")
        positive = label == 1
        if positive.any():
            self.log("val/sync", sync_bce(score[positive], label[positive]), batch_size=int(positive.sum()),
                     sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self.log("val/acc", self.val_acc.compute(), prog_bar=True, sync_dist=True)
        self.log("val/auroc", self.val_auroc.compute(), prog_bar=True, sync_dist=True)
        self.val_acc.reset()
        self.val_auroc.reset()

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
