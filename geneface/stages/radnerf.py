"""Stage `radnerf`: the landmark-conditioned RAD-NeRF head of one speaker (reference §6).

Each step renders random rays of one training frame over that frame's own torso-and-plate
background, so the field learns only the head. Validation renders whole val frames and reports PSNR
and SSIM on the head's bounding box (and PSNR on the full frame). `render_frames` is the inference API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import cv2
import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from geneface.nerf.condition import condition_windows
from geneface.nerf.occupancy import OccupancyGrid
from geneface.nerf.radnerf import FieldOutput, RadNerfField
from geneface.nerf.rays import SceneBox, image_pixels, pixel_rays
from geneface.nerf.renderer import RenderOutput, render_rays


def opacity_entropy(opacity: torch.Tensor) -> torch.Tensor:
    """Mean binary entropy (bits) of the accumulated opacity: pushes each ray to all-head or none."""
    o = opacity.clamp(1e-5, 1 - 1e-5)
    return -(o * torch.log2(o) + (1 - o) * torch.log2(1 - o)).mean()


def head_box(mask: torch.Tensor, margin: int = 4) -> tuple[slice, slice] | None:
    """Bounding box (rows, cols) of a [H, W] bool mask with a margin, or None if it is empty."""
    rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
    if len(rows) == 0:
        return None
    h, w = mask.shape
    return (slice(max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, h)),
            slice(max(int(cols[0]) - margin, 0), min(int(cols[-1]) + margin + 1, w)))


def frame_background(background: np.ndarray, i: int, device) -> torch.Tensor:
    """Frame i's background as float [H, W, 3] in [0, 1] from one uint8 image or one per frame."""
    image = background[i] if np.ndim(background) == 4 else background
    return torch.as_tensor(np.asarray(image), device=device).float() / 255.0


def check_render_inputs(renderer, c2w: torch.Tensor, landmarks: torch.Tensor, background: np.ndarray) -> None:
    """Fail before rendering, naming what does not fit, instead of deep inside the ray marcher."""
    t = len(c2w)
    if c2w.shape[1:] != (4, 4) or landmarks.shape != (t, 204):
        raise ValueError(f"render_frames needs c2w [T, 4, 4] and landmarks [T, 68, 3] for the same T; got "
                         f"{tuple(c2w.shape)} and {tuple(landmarks.shape)}")
    size = (renderer.height, renderer.width, 3)
    shape = tuple(np.shape(background))
    if shape != size and shape != (t, *size):
        raise ValueError(f"background must be uint8 {size} (or one per frame, ({t}, ...)) — the size the "
                         f"renderer was trained at; got {shape}")


def exponential_decay(decay_steps: int) -> Callable[[int], float]:
    """The reference's lr factor 0.1^(step/decay_steps), no warmup."""
    return lambda step: 0.1 ** min(step / decay_steps, 1.0)


def save_render(module: L.LightningModule, rgb: torch.Tensor, target: torch.Tensor, frame: int) -> None:
    """render | ground truth, as a PNG in the run directory and as an image in W&B/TensorBoard
    (shared by every renderer stage)."""
    side = (torch.cat([rgb, target], 1).clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()   # [H, 2W, 3]
    out_dir = Path(module.trainer.default_root_dir) / "val_renders"
    out_dir.mkdir(parents=True, exist_ok=True)
    step = module.global_step
    cv2.imwrite(str(out_dir / f"step{step:07d}_frame{frame:06d}.png"), cv2.cvtColor(side, cv2.COLOR_RGB2BGR))
    for logger in module.loggers:
        if type(logger).__name__ == "WandbLogger":
            logger.log_image(key="val/render", images=[side], caption=[f"frame {frame}: render | truth"], step=step)
        elif type(logger).__name__ == "TensorBoardLogger":
            logger.experiment.add_image(f"val/render_{frame}", side, step, dataformats="HWC")


class RadNerfStage(L.LightningModule):
    def __init__(self, field: RadNerfField, occupancy: OccupancyGrid, aabb: list[float], optimizer: Callable,
                 lr: float = 5e-4, grid_lr_scale: float = 10.0, smoother_lr_scale: float = 5.0,
                 lr_decay_steps: int = 250_000, num_samples: int = 64, lambda_entropy: float = 1e-4,
                 lambda_ambient: float = 0.1, ambient_ramp_steps: int = 250_000,
                 occupancy_update_interval: int = 16, occupancy_update_cells: int | None = None,
                 render_chunk: int = 65536, val_images: int = 4):
        super().__init__()
        self.field, self.occupancy = field, occupancy
        self.register_buffer("aabb", torch.tensor(aabb, dtype=torch.float32))   # head units
        self.optimizer_factory = optimizer
        self.lr, self.grid_lr_scale, self.smoother_lr_scale = lr, grid_lr_scale, smoother_lr_scale
        self.lr_decay_steps, self.num_samples = lr_decay_steps, num_samples
        self.lambda_entropy, self.lambda_ambient, self.ambient_ramp_steps = lambda_entropy, lambda_ambient, ambient_ramp_steps
        self.occupancy_update_interval, self.occupancy_update_cells = occupancy_update_interval, occupancy_update_cells
        self.render_chunk, self.val_images = render_chunk, val_images
        # the camera travels with the weights, so a checkpoint alone can render
        self.register_buffer("intrinsics", torch.zeros(3))               # focal, cx, cy (pixels)
        self.register_buffer("image_size", torch.zeros(2, dtype=torch.long))   # height, width
        self.val_psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.val_psnr_full = PeakSignalNoiseRatio(data_range=1.0)
        self.val_ssim = StructuralSimilarityIndexMeasure(data_range=1.0)

    # ---------------------------------------------------------------- set-up
    @property
    def height(self) -> int:
        return int(self.image_size[0])

    @property
    def width(self) -> int:
        return int(self.image_size[1])

    def on_fit_start(self) -> None:
        if self.height == 0:                   # a fresh run (a resumed one has its camera and grid)
            cams = self.trainer.datamodule.train_cameras()
            self.intrinsics.copy_(torch.tensor([cams["focal"], cams["cx"], cams["cy"]]))
            self.image_size.copy_(torch.tensor([cams["height"], cams["width"]]))
            self.occupancy.mark_unseen(self.box, cams["c2w"].to(self.device), cams["focal"],
                                       cams["cx"], cams["cy"], cams["height"], cams["width"])

    @property
    def box(self) -> SceneBox:
        return SceneBox(self.aabb)

    # ---------------------------------------------------------------- rendering
    def condition(self, windows: torch.Tensor) -> torch.Tensor:
        return self.field.condition(windows)                               # [B, 5, 204] → [B, C]

    def render_rays(self, c2w: torch.Tensor, pixels: torch.Tensor, background: torch.Tensor,
                    cond: torch.Tensor, latent: torch.Tensor, perturb: bool = False,
                    chunk: int | None = None) -> RenderOutput:
        # c2w [4, 4]; pixels [N, 2] (row, col); background [N, 3]; cond [1, C]; latent [1, L]
        focal, cx, cy = (float(v) for v in self.intrinsics)
        origins, directions = pixel_rays(c2w, focal, cx, cy, pixels)

        def field_fn(x, d, ray_index):
            return self.field(x, d, cond.expand(len(x), -1), latent.expand(len(x), -1))

        return render_rays(field_fn, self.box, origins, directions, background, self.occupancy,
                           num_samples=self.num_samples, perturb=perturb, chunk=chunk)

    @torch.no_grad()
    def render_image(self, c2w: torch.Tensor, window: torch.Tensor, background: torch.Tensor,
                     latent_index: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """One full frame: c2w [4, 4], window [5, 204], background [H, W, 3] → rgb [H, W, 3], opacity [H, W]."""
        h, w = self.height, self.width
        cond = self.condition(window[None].to(self.device))
        latent = self.field.latents[latent_index][None]
        out = self.render_rays(c2w.to(self.device), image_pixels(h, w, self.device),
                               background.reshape(-1, 3).to(self.device), cond, latent, chunk=self.render_chunk)
        return out.rgb.reshape(h, w, 3), out.opacity.reshape(h, w)

    @torch.no_grad()
    def render_frames(self, c2w: np.ndarray, landmarks: np.ndarray, background: np.ndarray,
                      batch_frames: int = 1) -> Iterator[np.ndarray]:
        """Inference: c2w [T, 4, 4], normalised landmarks [T, 68, 3], background uint8 [H, W, 3] (or one
        per frame, [T, H, W, 3]) → uint8 [H, W, 3] frames; end windows edge-padded, latent code 0."""
        self.eval()
        sequence = torch.as_tensor(np.asarray(landmarks, np.float32).reshape(len(landmarks), -1), device=self.device)
        cams = torch.as_tensor(np.asarray(c2w, np.float32), device=self.device)
        check_render_inputs(self, cams, sequence, background)
        for i in range(len(sequence)):
            window = condition_windows(sequence, torch.tensor([i], device=self.device), padding="edge")[0]
            rgb, _ = self.render_image(cams[i], window, frame_background(background, i, self.device))
            yield (rgb.clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()

    # ---------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        step = self.global_step
        cond = self.condition(batch["window"][None])                          # [1, C]
        latent = self.field.latents[batch["frame"]][None]                      # [1, L]
        if step % self.occupancy_update_interval == 0:
            # the current frame is a random training frame: its condition shapes the cached density
            self.occupancy.update(lambda x: self.field.density(x, cond.detach()),
                                  max_cells=self.occupancy_update_cells)
        out = self.render_rays(batch["c2w"], batch["pixels"], batch["background"], cond, latent, perturb=True)
        mse = F.mse_loss(out.rgb, batch["rgb"])
        entropy = opacity_entropy(out.opacity)
        outside = ~batch["in_face"]
        ambient = out.extras[FieldOutput.AMBIENT.value][outside].mean() if outside.any() else mse.new_zeros(())
        ambient_weight = self.lambda_ambient * min(step / self.ambient_ramp_steps, 1.0)
        loss = mse + self.lambda_entropy * entropy + ambient_weight * ambient
        n = len(batch["rgb"])
        self.log_dict({"train/loss": loss, "train/mse": mse, "train/psnr": -10 * torch.log10(mse.detach()),
                       "train/ambient": ambient, "train/samples_per_ray": float(out.samples_per_ray)},
                      prog_bar=False, batch_size=n)
        self.log("train/psnr_bar", -10 * torch.log10(mse.detach()), prog_bar=True, logger=False, batch_size=n)
        if step % self.occupancy_update_interval == 0:
            self.log_dict({f"occupancy/{k}": float(v) for k, v in self.occupancy.stats().items()}, batch_size=n)
        return loss

    # ---------------------------------------------------------------- validation
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        rgb, _ = self.render_image(batch["c2w"], batch["window"], batch["background"], latent_index=0)
        target = batch["rgb"]
        self.log("val/loss", F.mse_loss(rgb, target), batch_size=1)
        to_image = lambda x: x.permute(2, 0, 1)[None].clamp(0, 1)             # noqa: E731  [1, 3, h, w]
        self.val_psnr_full.update(to_image(rgb), to_image(target))
        box = head_box(batch["head_mask"])
        if box is not None:
            self.val_psnr.update(to_image(rgb[box]), to_image(target[box]))
            self.val_ssim.update(to_image(rgb[box]), to_image(target[box]))
        if batch_idx < self.val_images:
            save_render(self, rgb, target, int(batch["frame"]))

    def on_validation_epoch_end(self) -> None:
        for name, metric in (("val/psnr", self.val_psnr), ("val/ssim", self.val_ssim),
                             ("val/psnr_full", self.val_psnr_full)):
            if metric.update_count:
                self.log(name, metric.compute(), prog_bar=name == "val/psnr")
            metric.reset()

    def configure_optimizers(self):
        groups = self.field.param_groups(self.lr, self.grid_lr_scale, self.smoother_lr_scale)
        optimizer = self.optimizer_factory(params=groups)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, exponential_decay(self.lr_decay_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
