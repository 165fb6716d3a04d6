"""Stage `nerf`: GeneFace's legacy landmark-conditioned MLP NeRF head (`lm3d_nerf`, reference §8).

Kept for completeness and comparison: the same condition as the radnerf stage, but AD-NeRF's coarse +
fine MLPs with hierarchical sampling instead of a grid with occupancy skipping — slower to train and
to render, no per-frame latent codes, no ambient field. Each step renders rays of one training frame
(most inside the face rect, `stage.data.face_fraction`) over that frame's torso-and-plate background;
loss = MSE(fine) + MSE(coarse). Validation reports the radnerf stage's metrics.

Near/far: the reference samples t ∈ [0.3, 0.9] in its rescaled NGP world. Our cameras live in head
units (eye span 1, the camera ~10 units away), so each ray's interval is where it crosses the stage's
scene box (SceneBox.intersect): the same role, a box the user already sets for radnerf, and rays that
miss the head's box cost nothing.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from geneface.nerf.mlp_nerf import MlpNerfHead
from geneface.nerf.rays import SceneBox, image_pixels, pixel_rays
from geneface.nerf.renderer import RenderOutput
from geneface.nerf.sampling import render_hierarchical
from geneface.stages.renderer import RendererStage


class NerfStage(RendererStage):
    val_metric_names = ("val/psnr", "val/ssim", "val/psnr_full")    # as radnerf: head box ×2, full frame
    def __init__(self, head: MlpNerfHead, aabb: list[float], optimizer: Callable, lr: float = 5e-4,
                 smoother_lr_scale: float = 5.0, lr_decay_steps: int = 250_000, coarse_samples: int = 64,
                 fine_samples: int = 128, infer_coarse_samples: int = 32, infer_fine_samples: int = 128,
                 render_chunk: int = 4096, val_images: int = 4):
        super().__init__(optimizer, lr, lr_decay_steps, render_chunk, val_images)
        self.head = head
        self.register_buffer("aabb", torch.tensor(aabb, dtype=torch.float32))   # head units
        self.smoother_lr_scale = smoother_lr_scale
        self.coarse_samples, self.fine_samples = coarse_samples, fine_samples
        self.infer_coarse_samples, self.infer_fine_samples = infer_coarse_samples, infer_fine_samples
        # the step count travels with the weights: a checkpoint renders with the smoother on exactly
        # when training had switched it on
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))

    @property
    def window(self) -> int:
        return self.head.condition.window

    @property
    def box(self) -> SceneBox:
        return SceneBox(self.aabb)

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.height == 0:                   # a fresh run (a resumed one has its camera)
            cams = self.trainer.datamodule.train_cameras()
            self.set_camera(cams["focal"], cams["cx"], cams["cy"], cams["height"], cams["width"])

    # ---------------------------------------------------------------- rendering
    def condition(self, windows: torch.Tensor) -> torch.Tensor:
        return self.head.condition_at(windows, int(self.trained_steps))       # [B, 5, 204] → [B, C]

    def render_rays(self, c2w: torch.Tensor, pixels: torch.Tensor, background: torch.Tensor, cond: torch.Tensor,
                    perturb: bool = False, samples: tuple[int, int] | None = None,
                    chunk: int | None = None) -> tuple[RenderOutput, RenderOutput]:
        """c2w [4, 4], pixels [N, 2] (row, col), background [N, 3], cond [1, C] → (coarse, fine);
        samples (coarse, fine) default to the training counts."""
        focal, cx, cy = (float(v) for v in self.intrinsics)
        origins, directions = pixel_rays(c2w, focal, cx, cy, pixels)
        num_coarse, num_fine = samples or (self.coarse_samples, self.fine_samples)

        def field(mlp):
            return lambda x, d, ray: mlp(x, d, cond)        # one condition for every sample

        return render_hierarchical(field(self.head.coarse), field(self.head.fine), self.box, origins, directions,
                                   background, num_coarse, num_fine, perturb=perturb, chunk=chunk)

    @torch.no_grad()
    def render_image(self, c2w: torch.Tensor, window: torch.Tensor, background: torch.Tensor,
                     latent_index: int = 0, samples: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One full frame: c2w [4, 4], window [window, 204], background [H, W, 3] → rgb [H, W, 3],
        opacity [H, W] (fine pass). latent_index: the head stages' common signature (the torso
        stages render their head through it); this head has no per-frame codes."""
        h, w = self.height, self.width
        cond = self.condition(window[None].to(self.device))
        _, fine = self.render_rays(c2w.to(self.device), image_pixels(h, w, self.device),
                                   background.reshape(-1, 3).to(self.device), cond, samples=samples,
                                   chunk=self.render_chunk)
        return fine.rgb.reshape(h, w, 3), fine.opacity.reshape(h, w)

    def render_frame(self, c2w: torch.Tensor, window: torch.Tensor, background: torch.Tensor,
                     audio: torch.Tensor | None = None) -> torch.Tensor:
        """At the inference sample counts (infer_coarse_samples, infer_fine_samples)."""
        return self.render_image(c2w, window, background, samples=(self.infer_coarse_samples,
                                                                  self.infer_fine_samples))[0]

    # ---------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        cond = self.condition(batch["window"][None])                                 # [1, C]
        coarse, fine = self.render_rays(batch["c2w"], batch["pixels"], batch["background"], cond, perturb=True)
        mse_fine, mse_coarse = F.mse_loss(fine.rgb, batch["rgb"]), F.mse_loss(coarse.rgb, batch["rgb"])
        loss = mse_fine + mse_coarse
        n = len(batch["rgb"])
        psnr = -10 * torch.log10(mse_fine.detach())
        self.log_dict({"train/loss": loss, "train/mse": mse_fine, "train/mse_coarse": mse_coarse,
                       "train/psnr": psnr, "train/smoothing": float(self.head.smoothing(int(self.trained_steps)))},
                      batch_size=n)
        self.log("train/psnr_bar", psnr, prog_bar=True, logger=False, batch_size=n)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.trained_steps.fill_(self.global_step)

    # ---------------------------------------------------------------- validation (training sample counts)
    def validation_images(self, batch: dict) -> tuple[torch.Tensor, dict[str, tuple]]:
        rgb, _ = self.render_image(batch["c2w"], batch["window"], batch["background"])
        return rgb, self.head_scores(rgb, batch)

    def param_groups(self) -> list[dict]:
        return self.head.param_groups(self.lr, self.smoother_lr_scale)
