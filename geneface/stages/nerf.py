"""Stage `nerf`: GeneFace's legacy landmark-conditioned MLP NeRF head (`lm3d_nerf`, reference §8).

Kept for completeness and comparison: the same condition as the radnerf stage, but AD-NeRF's coarse +
fine MLPs with hierarchical sampling instead of a grid with occupancy skipping — slower to train and
to render, no per-frame latent codes, no ambient field. Each step renders rays of one training frame
(most inside the face rect, `stage.data.face_fraction`) over that frame's torso-and-plate background;
loss = MSE(fine) + MSE(coarse). Validation, metrics and PNGs are exactly the radnerf stage's.

Near/far: the reference samples t ∈ [0.3, 0.9] in its rescaled NGP world. Our cameras live in head
units (eye span 1, the camera ~10 units away), so each ray's interval is where it crosses the stage's
scene box (SceneBox.intersect): the same role, a box the user already sets for radnerf, and rays that
miss the head's box cost nothing.
"""

from __future__ import annotations

from typing import Callable, Iterator

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from geneface.nerf.condition import condition_windows
from geneface.nerf.mlp_nerf import MlpNerfHead
from geneface.nerf.rays import SceneBox, image_pixels, pixel_rays
from geneface.nerf.renderer import RenderOutput
from geneface.nerf.sampling import render_hierarchical
from geneface.stages.radnerf import RadNerfStage, exponential_decay


class NerfStage(L.LightningModule):
    def __init__(self, head: MlpNerfHead, aabb: list[float], optimizer: Callable, lr: float = 5e-4,
                 smoother_lr_scale: float = 5.0, lr_decay_steps: int = 250_000, coarse_samples: int = 64,
                 fine_samples: int = 128, infer_coarse_samples: int = 32, infer_fine_samples: int = 128,
                 render_chunk: int = 4096, val_images: int = 4):
        super().__init__()
        self.head = head
        self.register_buffer("aabb", torch.tensor(aabb, dtype=torch.float32))   # head units
        self.optimizer_factory = optimizer
        self.lr, self.smoother_lr_scale, self.lr_decay_steps = lr, smoother_lr_scale, lr_decay_steps
        self.coarse_samples, self.fine_samples = coarse_samples, fine_samples
        self.infer_coarse_samples, self.infer_fine_samples = infer_coarse_samples, infer_fine_samples
        self.render_chunk, self.val_images = render_chunk, val_images
        # the camera and the step count travel with the weights: a checkpoint alone renders, with the
        # smoother on exactly when training had switched it on
        self.register_buffer("intrinsics", torch.zeros(3))               # focal, cx, cy (pixels)
        self.register_buffer("image_size", torch.zeros(2, dtype=torch.long))   # height, width
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))
        self.val_psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.val_psnr_full = PeakSignalNoiseRatio(data_range=1.0)
        self.val_ssim = StructuralSimilarityIndexMeasure(data_range=1.0)

    @property
    def height(self) -> int:
        return int(self.image_size[0])

    @property
    def width(self) -> int:
        return int(self.image_size[1])

    @property
    def box(self) -> SceneBox:
        return SceneBox(self.aabb)

    def on_fit_start(self) -> None:
        if self.height == 0:                   # a fresh run (a resumed one has its camera)
            cams = self.trainer.datamodule.train_cameras()
            self.intrinsics.copy_(torch.tensor([cams["focal"], cams["cx"], cams["cy"]]))
            self.image_size.copy_(torch.tensor([cams["height"], cams["width"]]))

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
        """One full frame: c2w [4, 4], window [5, 204], background [H, W, 3] → rgb [H, W, 3], opacity
        [H, W] (fine pass). latent_index is accepted for the validation step shared with radnerf; this
        head has no per-frame codes."""
        h, w = self.height, self.width
        cond = self.condition(window[None].to(self.device))
        _, fine = self.render_rays(c2w.to(self.device), image_pixels(h, w, self.device),
                                   background.reshape(-1, 3).to(self.device), cond, samples=samples,
                                   chunk=self.render_chunk)
        return fine.rgb.reshape(h, w, 3), fine.opacity.reshape(h, w)

    @torch.no_grad()
    def render_frames(self, c2w: np.ndarray, landmarks: np.ndarray, background: np.ndarray, batch_frames: int = 1,
                      audio_features: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """Inference (FrameRenderer): c2w [T, 4, 4], normalised landmarks [T, 68, 3], background uint8
        [H, W, 3] → uint8 [H, W, 3] frames at (infer_coarse_samples, infer_fine_samples), windows
        edge-padded. audio_features is ignored (the head is driven by landmarks only)."""
        self.eval()
        sequence = torch.as_tensor(np.asarray(landmarks, np.float32).reshape(len(landmarks), -1), device=self.device)
        bg = torch.as_tensor(np.asarray(background), device=self.device).float() / 255.0
        cams = torch.as_tensor(np.asarray(c2w, np.float32), device=self.device)
        samples = (self.infer_coarse_samples, self.infer_fine_samples)
        for i in range(len(sequence)):
            window = condition_windows(sequence, torch.tensor([i], device=self.device), padding="edge")[0]
            rgb, _ = self.render_image(cams[i], window, bg, samples=samples)
            yield (rgb.clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()

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

    # ---------------------------------------------------------------- validation: the radnerf stage's
    # (they only call render_image and use the metrics, trainer and loggers every such stage has)
    validation_step = RadNerfStage.validation_step
    on_validation_epoch_end = RadNerfStage.on_validation_epoch_end

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.head.param_groups(self.lr, self.smoother_lr_scale))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, exponential_decay(self.lr_decay_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
