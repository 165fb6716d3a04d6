"""Stage `postnet` (GeneFace §5, `lm3d_postnet_sync`): semi-supervised adversarial domain adaptation
of the frozen corpus VAE's landmarks to one target speaker, without losing lip sync.

Per step: one corpus batch and the speaker's whole train sequence. The frozen VAE samples landmarks
(temperature 1, no grad) from both audios; the postnet refines them. Generator (optimizer 0):
mse on the speaker (×0.05), SyncNet sync loss on the refined corpus predictions (×0.1) and the
LSGAN adversarial loss mean (1 − D(refined corpus))² (×0.85). Discriminator (optimizer 1): mean
D(refined corpus, detached)² + mean (D(speaker GT) − 1)². Both RMSprop. The 0.05 mse weight is the
original's, whose idexp landmarks were in another unit than ours (head unit = outer-eye-corner
span), so our mse values — and the loss balance — differ; tune `lambda_mse` per speaker if needed.

**[quirk fixed]** The original built the generator's schedule from the VAE's inherited `lr` (5e-4)
and warmup, so its configured `postnet_lr` (1e-4) was never used: the lr warmed up to 5e-4 over
1000 steps. Here the generator uses the lr it is configured with (1e-4, no schedule by default).

The frozen VAE (`vae_ckpt`, the corpus audio2motion stage's best.ckpt) and SyncNet (`syncnet_ckpt`)
are loaded in `setup`, not at construction; a missing one stops with the command that trains it.
They are held outside the module's children: not optimised and kept in eval mode for the whole run
(the original's trainer put them back in train mode after every validation, §0). The VAE, however,
*is* carried in this stage's checkpoints (the audio2motion checkpoint's config + weights, see
stages/frozen.py), so `load_stage(selected.ckpt).predict(audio, mask)` needs nothing else on disk.

Manual optimisation, and `trainer.global_step` counts generator steps only: the discriminator's
optimizer is stepped unwrapped (Lightning would count it too, halving `max_steps`). Hence fp32/bf16
precision only (no GradScaler for the discriminator), and gradient clipping is done here
(`gradient_clip_val`), so the stage config leaves the trainer's at null.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import lightning as L
import torch
from torch import nn

from geneface.metrics.sync import sync_loss
from geneface.models.motion_losses import masked_mse
from geneface.models.postnet import CNNPostNet, MLPDiscriminator
from geneface.stages.audio2motion import SYNCNET_HINT
from geneface.stages.frozen import FrozenNets
from geneface.utils.checkpoints import load_stage, stage_checkpoint, upstream_checkpoint


class PostnetStage(FrozenNets, L.LightningModule):
    def __init__(self, postnet: CNNPostNet, discriminator: MLPDiscriminator, optimizer: Callable,
                 disc_optimizer: Callable, scheduler: Callable | None = None, disc_scheduler: Callable | None = None,
                 vae_ckpt: str | None = None, syncnet_ckpt: str | None = None, lambda_mse: float = 0.05,
                 lambda_sync: float = 0.1, lambda_adv: float = 0.85, sync_windows: int = 1024,
                 temperature: float = 1.0, disc_start_steps: int = 0, disc_interval: int = 1,
                 gradient_clip_val: float | None = 1.0):
        super().__init__()
        self.automatic_optimization = False
        self.postnet, self.discriminator = postnet, discriminator
        self.optimizer_factory, self.disc_optimizer_factory = optimizer, disc_optimizer
        self.scheduler_factory, self.disc_scheduler_factory = scheduler, disc_scheduler
        self.vae_ckpt, self.syncnet_ckpt = vae_ckpt, syncnet_ckpt
        self.lambda_mse, self.lambda_sync, self.lambda_adv = lambda_mse, lambda_sync, lambda_adv
        self.sync_windows, self.temperature = sync_windows, temperature
        self.disc_start_steps, self.disc_interval, self.gradient_clip_val = disc_start_steps, disc_interval, gradient_clip_val

    # --- the frozen upstream nets ---------------------------------------------------------------
    @property
    def vae(self) -> nn.Module | None:
        return self.frozen.get("vae")

    @property
    def syncnet(self) -> nn.Module | None:
        return self.frozen.get("syncnet")

    def setup(self, stage: str) -> None:
        if self.vae is None:
            if self.vae_ckpt is None:
                raise ValueError("the postnet stage needs the audio2motion VAE: set stage.model.vae_ckpt")
            self.carry_upstream("vae", self.vae_ckpt, stages=("audio2motion",), role="stage.model.vae_ckpt")       # the audio2motion stage; .sample is the VAE's
        if self.syncnet is None and self.syncnet_ckpt is not None and stage == "fit":
            self.attach_frozen(syncnet=load_stage(upstream_checkpoint(self.syncnet_ckpt, SYNCNET_HINT), stages=("syncnet",),
                                                    role="stage.model.syncnet_ckpt").net)

    # --- inference ------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, audio: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """audio [B, 2T, F], mask [B, T] (T a multiple of 4) → speaker-domain idexp_lm3d [B, T, 204]."""
        if self.vae is None:
            raise RuntimeError("no VAE attached: load the module with geneface.utils.checkpoints.load_stage")
        was_training = self.postnet.training
        self.postnet.eval()
        vae = self.frozen_on("vae", audio.device)
        out = self.postnet(vae.sample(audio, mask, temperature), mask)
        self.postnet.train(was_training)
        return out

    # --- steps ----------------------------------------------------------------------------------
    def _refine(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen VAE sample (no grad) → postnet: (refined [B, T, 204], the VAE's [B, T, 204])."""
        vae = self.frozen_on("vae", batch["audio"].device)
        with torch.no_grad():
            coarse = vae.sample(batch["audio"], batch["mask"], self.temperature)
        return self.postnet(coarse, batch["mask"]), coarse

    def _sync(self, pred: torch.Tensor, batch: dict) -> torch.Tensor:
        syncnet = self.frozen_on("syncnet", pred.device)
        return sync_loss(syncnet, pred, batch["audio"], batch["mask"], self.sync_windows)

    def _clip(self, optimizer) -> None:
        if self.gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_val, gradient_clip_algorithm="norm")

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        corpus, speaker = batch["corpus"], batch["speaker"]
        n_corpus, n_speaker = int(corpus["mask"].sum()), int(speaker["mask"].sum())
        step = self.global_step
        disc_on = step >= self.disc_start_steps

        # generator
        refined_corpus, _ = self._refine(corpus)
        refined_speaker, _ = self._refine(speaker)
        logs = {"mse": masked_mse(refined_speaker, speaker["motion"], speaker["mask"])}
        loss = self.lambda_mse * logs["mse"]
        if self.syncnet is not None:
            logs["sync"] = self._sync(refined_corpus, corpus)
            loss = loss + self.lambda_sync * logs["sync"]
        if disc_on:
            logs["adv"] = ((1 - self.discriminator(refined_corpus, corpus["mask"])) ** 2).mean()
            loss = loss + self.lambda_adv * logs["adv"]
        opt_g.zero_grad()
        self.manual_backward(loss)
        self._clip(opt_g)
        opt_g.step()
        logs["loss"] = loss.detach()

        # discriminator: the speaker's GT frames vs the refined corpus frames
        if disc_on and (step - self.disc_start_steps) % self.disc_interval == 0:
            real = self.discriminator(speaker["motion"], speaker["mask"])                  # [N_speaker]
            fake = self.discriminator(refined_corpus.detach(), corpus["mask"])             # [N_corpus]
            fake_loss, true_loss = (fake ** 2).mean(), ((real - 1) ** 2).mean()
            opt_d.zero_grad()
            self.manual_backward(fake_loss + true_loss)
            self._clip(opt_d)
            opt_d.optimizer.step()          # unwrapped: global_step counts generator steps only
            conf = {"disc_pos_conf": real.mean().detach(), "disc_neg_conf": fake.mean().detach(),
                    "disc_fake_loss": fake_loss.detach(), "disc_true_loss": true_loss.detach()}
            for k, v in conf.items():
                self.log(k, v, batch_size=n_corpus)                 # the names GeneFace users know
                self.log(f"train/{k}", v, batch_size=n_corpus)
        for k, v in logs.items():
            self.log(f"train/{k}", v, batch_size=n_speaker if k == "mse" else n_corpus, prog_bar=k == "mse")
        self.log("train/lr", opt_g.optimizer.param_groups[0]["lr"], batch_size=n_corpus)
        self.log("train/disc_lr", opt_d.optimizer.param_groups[0]["lr"], batch_size=n_corpus)
        for scheduler in self._schedulers():
            scheduler.step()

    def _schedulers(self) -> list:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return []
        return schedulers if isinstance(schedulers, list) else [schedulers]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        corpus, speaker = batch["corpus"], batch["speaker"]
        n_corpus = int(corpus["mask"].sum())
        refined_corpus, _ = self._refine(corpus)
        fake = self.discriminator(refined_corpus, corpus["mask"])
        self.log("val/disc_neg_conf", fake.mean(), batch_size=n_corpus, sync_dist=True)
        if self.syncnet is not None:
            self.log("val/sync", self._sync(refined_corpus, corpus), batch_size=n_corpus, sync_dist=True)
        if batch_idx == 0:                      # the speaker's val sequence rides with every batch: once
            n_speaker = int(speaker["mask"].sum())
            refined_speaker, coarse = self._refine(speaker)
            real = self.discriminator(speaker["motion"], speaker["mask"])
            self.log("val/mse", masked_mse(refined_speaker, speaker["motion"], speaker["mask"]),
                     batch_size=n_speaker, sync_dist=True, prog_bar=True)
            self.log("val/mse_vae", masked_mse(coarse, speaker["motion"], speaker["mask"]),
                     batch_size=n_speaker, sync_dist=True)
            self.log("val/disc_pos_conf", real.mean(), batch_size=n_speaker, sync_dist=True)

    def configure_optimizers(self):
        opt_g = self.optimizer_factory(params=self.postnet.parameters())
        opt_d = self.disc_optimizer_factory(params=self.discriminator.parameters())
        schedulers = []
        for factory, opt in ((self.scheduler_factory, opt_g), (self.disc_scheduler_factory, opt_d)):
            if factory is not None:
                schedulers.append({"scheduler": factory(optimizer=opt), "interval": "step"})
        return [opt_g, opt_d], schedulers


def load_postnet(speaker: str, output_dir: str | Path = "outputs", name: str = "selected.ckpt") -> PostnetStage:
    """Inference: the speaker's postnet (with its VAE) from `<output_dir>/<speaker>/postnet/<name>`;
    by default the picker's selected.ckpt. Use `.predict(audio, mask, temperature)`."""
    return load_stage(stage_checkpoint(output_dir, speaker, "postnet", name), stages=("postnet",))
