"""Stage `audio2motion`: the conditional VAE that maps audio to landmark motion (GeneFace §4,
`lm3d_vae_sync`), trained on the corpus with mse, continuity and KL losses, plus the frozen SyncNet's
lip-sync loss once validation shows the predictions are close enough to be judged.

The SyncNet comes from `syncnet_ckpt` (the `syncnet` stage's best.ckpt) and is loaded in `setup`,
not at construction, so building the stage is cheap and a missing checkpoint stops the run with
the command that trains it. `syncnet_ckpt=null` trains without the sync loss. The SyncNet is held
outside the module's children: it is not in the optimiser, not in this stage's checkpoints, and
Lightning's `train()` calls never reach it (it stays in eval mode, BatchNorm statistics frozen).
"""

from __future__ import annotations

from typing import Callable

import lightning as L
import torch
from torch import nn

from geneface.data.landmarks import NUM_IBUG, mouth_points
from geneface.metrics.sync import sync_loss
from geneface.models.audio2motion import Audio2MotionVAE
from geneface.models.motion_losses import continuity_loss, masked_mse
from geneface.stages.frozen import FrozenNets
from geneface.utils.checkpoints import load_stage, upstream_checkpoint


class WarmupExpDecay:
    """LambdaLR factor: linear warmup over `warmup_steps`, then gamma^(step / decay_steps)
    (GeneFace: warmup 1000, then 0.1^(step/250k))."""

    def __init__(self, warmup_steps: int = 1000, decay_steps: int = 250_000, gamma: float = 0.1):
        self.warmup_steps, self.decay_steps, self.gamma = warmup_steps, decay_steps, gamma

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        return self.gamma ** (step / self.decay_steps)


SYNCNET_HINT = "\n(or set stage.model.syncnet_ckpt=null to train without the sync loss)"


class Audio2MotionStage(FrozenNets, L.LightningModule):
    def __init__(self, net: Audio2MotionVAE, optimizer: Callable, scheduler: Callable | None = None,
                 syncnet_ckpt: str | None = None, lambda_mse: float = 1.0, lambda_cont: float = 3.0,
                 lambda_kl: float = 0.4, lambda_sync: float = 0.01, sync_threshold: float = 0.75,
                 sync_windows: int = 1024, val_temperature: float = 0.0, sync_threshold_factor: float | None = None,
                 kl_free_bits: float = 0.0, kl_warmup_steps: int = 0, init_ckpt: str | None = None,
                 lambda_mouth: float = 0.0):
        super().__init__()
        # built objects are not hyperparameters: ConfigInCheckpoint stores the resolved config
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.syncnet_ckpt = syncnet_ckpt
        self.lambda_mse, self.lambda_cont, self.lambda_kl, self.lambda_sync = lambda_mse, lambda_cont, lambda_kl, lambda_sync
        self.sync_threshold, self.sync_windows, self.val_temperature = sync_threshold, sync_windows, val_temperature
        # a threshold relative to the SyncNet's own loss on the real val pairs (a rule a small SyncNet
        # can meet: its real pairs may score worse than a fixed 0.75); None: the fixed sync_threshold
        self.sync_threshold_factor = sync_threshold_factor
        # KL that does not collapse: no gradient below kl_free_bits (nats per latent value, Kingma et al.
        # 2016, "free bits"), and its weight ramped from 0 over kl_warmup_steps (Bowman et al. 2016)
        self.kl_free_bits, self.kl_warmup_steps = kl_free_bits, kl_warmup_steps
        # sticky: once val/sync ≤ threshold the sync loss stays on; a buffer so that resuming keeps it
        self.register_buffer("sync_enabled", torch.tensor(False))
        # fine-tuning: the first fit starts from another audio2motion checkpoint's VAE (a corpus VAE
        # refined on one speaker's own video); a resume restores its own weights and never reads it
        self.init_ckpt = init_ckpt
        self._restored = False
        # the mse of the 20 lip points once more, × lambda_mouth: what audio can predict is the mouth,
        # a tenth of the 204 values the plain mse averages over (the rest is brows, lids, contour)
        self.lambda_mouth = lambda_mouth
        self._val_sync: list[torch.Tensor] = []
        self._val_sync_real: list[torch.Tensor] = []

    # --- the frozen SyncNet -------------------------------------------------------------------
    @property
    def syncnet(self) -> nn.Module | None:
        return self.frozen.get("syncnet")

    def setup(self, stage: str) -> None:
        if self.syncnet is None and self.syncnet_ckpt is not None:
            self.attach_frozen(syncnet=load_stage(upstream_checkpoint(self.syncnet_ckpt, SYNCNET_HINT), stages=("syncnet",),
                                                    role="stage.model.syncnet_ckpt").net)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._restored = True                 # a resume: its weights are this run's own, not init_ckpt's

    def on_fit_start(self) -> None:
        if self.init_ckpt is not None and not self._restored:
            self.start_from(self.init_ckpt)

    def start_from(self, path: str) -> None:
        """Copy the VAE of the audio2motion checkpoint at `path` into this one. Its net must be built
        as this run's (sizes and audio_norm): a fine-tune continues the same network."""
        source = load_stage(upstream_checkpoint(path), stages=("audio2motion",), role="stage.model.init_ckpt").net
        ours = {k: tuple(v.shape) for k, v in self.net.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in source.state_dict().items()}
        differing = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        if differing or source.audio_norm != self.net.audio_norm:
            detail = (f"audio_norm {source.audio_norm!r} there, {self.net.audio_norm!r} here" if not differing
                      else f"{len(differing)} tensors differ, e.g. {differing[0]}: {theirs.get(differing[0])} there, "
                           f"{ours.get(differing[0])} here")
            raise ValueError(f"stage.model.init_ckpt={path} holds another VAE than this run builds ({detail}): "
                             f"train with the same preset and stage.model.net overrides as that checkpoint's run")
        self.net.load_state_dict(source.state_dict())

    def _sync(self, pred: torch.Tensor, batch: dict) -> torch.Tensor:
        syncnet = self.frozen_on("syncnet", pred.device)
        return sync_loss(syncnet, pred, batch["audio"], batch["mask"], self.sync_windows)

    # --- steps --------------------------------------------------------------------------------
    def model_step(self, batch: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        pred, kl = self.net(batch["motion"], batch["audio"], batch["mask"])     # [B, T, 204], scalar
        losses = {"mse": masked_mse(pred, batch["motion"], batch["mask"]),
                  "continuity": continuity_loss(pred, batch["motion"], batch["mask"]),
                  "kl": kl}
        if self.lambda_mouth:
            # [B, T, 20, 3] each
            lips = [mouth_points(m.reshape(*m.shape[:2], NUM_IBUG, 3)) for m in (pred, batch["motion"])]
            losses["mouth_mse"] = masked_mse(*lips, batch["mask"])
        return losses, pred

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses, pred = self.model_step(batch)
        kl_weight = self.lambda_kl * min(1.0, (self.global_step + 1) / self.kl_warmup_steps) if self.kl_warmup_steps \
            else self.lambda_kl
        kl_term = losses["kl"].clamp(min=self.kl_free_bits) if self.kl_free_bits > 0 else losses["kl"]
        loss = self.lambda_mse * losses["mse"] + self.lambda_cont * losses["continuity"] + kl_weight * kl_term
        if self.lambda_mouth:
            loss = loss + self.lambda_mouth * losses["mouth_mse"]
        if self.syncnet is not None and bool(self.sync_enabled):
            losses["sync"] = self._sync(pred, batch)
            loss = loss + self.lambda_sync * losses["sync"]
        n = int(batch["mask"].sum())            # frames
        for k, v in losses.items():
            self.log(f"train/{k}", v, batch_size=n)
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/sync_on", self.sync_enabled.float(), batch_size=n)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        losses, pred = self.model_step(batch)
        n = int(batch["mask"].sum())
        if self.syncnet is not None:
            losses["sync"] = self._sync(pred, batch)
            self._val_sync.append(losses["sync"].detach())
            if self.sync_threshold_factor is not None:
                losses["sync_real"] = self._sync(batch["motion"], batch)        # the SyncNet on real pairs
                self._val_sync_real.append(losses["sync_real"].detach())
        # audio alone → motion: a prior sample at `val_temperature` (0 = the flow's mode-ish path)
        sampled = self.net.sample(batch["audio"], batch["mask"], self.val_temperature)
        losses["mse_sample"] = masked_mse(sampled, batch["motion"], batch["mask"])
        for k, v in losses.items():
            self.log(f"val/{k}", v, batch_size=n, sync_dist=True, prog_bar=k == "mse")

    def on_validation_epoch_end(self) -> None:
        if self._val_sync and not self.trainer.sanity_checking:
            real = float(torch.stack(self._val_sync_real).mean()) if self._val_sync_real else None
            self.update_sync_flag(float(torch.stack(self._val_sync).mean()), real)
        self._val_sync.clear()
        self._val_sync_real.clear()

    def update_sync_flag(self, val_sync: float, val_sync_real: float | None = None) -> bool:
        """Switch the sync loss on (for good) once val sync ≤ the threshold: sync_threshold_factor × the
        SyncNet's loss on the real val pairs when both are given, else sync_threshold; returns the flag."""
        threshold = self.sync_threshold
        if self.sync_threshold_factor is not None and val_sync_real is not None:
            threshold = self.sync_threshold_factor * val_sync_real
        if val_sync <= threshold:
            self.sync_enabled.fill_(True)
        return bool(self.sync_enabled)

    @torch.no_grad()
    def sample(self, audio: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Inference: audio [B, 2T, F] (T a multiple of 4), mask [B, T] → idexp_lm3d [B, T, 204]."""
        return self.net.sample(audio, mask, temperature)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.net.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
