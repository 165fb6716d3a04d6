"""Stage `radnerf_torso`: the speaker's torso, rendered under a frozen RAD-NeRF head (reference §7).

Each step renders the frozen head (eval mode, no grad) on the step's rays over BLACK, so its colour
comes premultiplied with its opacity, and the 2D torso field on the same pixels. The torso learns
C_tb = α·c + (1−α)·plate against the frame's neck and torso over the plate (exactly the head stage's
background), plus 1e-4 · binary entropy of α; the frame is C = head_rgb + (1 − head_opacity)·C_tb.

The head (`head_ckpt`, the radnerf stage's best.ckpt) is loaded in `setup`; a missing one stops with
the command that trains it. It is held outside the module tree (FrozenNets): not optimised, never in
train mode. Its config and weights are written into this stage's checkpoints (under "torso_head"),
so `load_stage(torso best.ckpt)` renders whole frames with nothing else on disk.
"""

from __future__ import annotations

from typing import Callable, Iterator

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from geneface.nerf.condition import condition_windows
from geneface.nerf.rays import image_pixels
from geneface.nerf.torso import AlphaGrid, TorsoField, composite, normalized_pixels, pose_features, torso_alpha_rgb
from geneface.stages.frozen import CarriedHead
from geneface.stages.radnerf import RadNerfStage, exponential_decay, opacity_entropy, save_render



class RadNerfTorsoStage(CarriedHead, L.LightningModule):
    head_stage = "radnerf"

    def __init__(self, field: TorsoField, alpha_grid: AlphaGrid, optimizer: Callable, head_ckpt: str | None = None,
                 lr: float = 5e-4, grid_lr_scale: float = 10.0, lr_decay_steps: int = 250_000,
                 lambda_entropy: float = 1e-4, alpha_update_interval: int = 16, render_chunk: int = 65536,
                 val_images: int = 4):
        super().__init__()
        self.field, self.alpha_grid = field, alpha_grid
        self.optimizer_factory, self.head_ckpt = optimizer, head_ckpt
        self.lr, self.grid_lr_scale, self.lr_decay_steps = lr, grid_lr_scale, lr_decay_steps
        self.lambda_entropy, self.alpha_update_interval = lambda_entropy, alpha_update_interval
        self.render_chunk, self.val_images = render_chunk, val_images
        self.register_buffer("image_size", torch.zeros(2, dtype=torch.long))   # height, width (the head's)
        self._head_config: dict | None = None      # the head run's geneface_config, saved with its weights
        self._plate: torch.Tensor | None = None    # [H, W, 3] float, the training rays' background plate
        self.val_psnr = PeakSignalNoiseRatio(data_range=1.0)           # full frame, composite
        self.val_ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
        self.val_psnr_torso = PeakSignalNoiseRatio(data_range=1.0)     # full frame, C_tb vs torso over plate
        self.val_psnr_head_only = PeakSignalNoiseRatio(data_range=1.0)  # full frame, head over the bare plate

    # ---------------------------------------------------------------- the frozen head
    @property
    def height(self) -> int:
        return int(self.image_size[0])

    @property
    def width(self) -> int:
        return int(self.image_size[1])

    def attach_head(self, head: RadNerfStage, config: dict) -> None:
        super().attach_head(head, config)
        self.image_size.copy_(head.image_size)

    def on_fit_start(self) -> None:
        images = getattr(self.trainer.datamodule, "images", None)
        if images is None or not hasattr(images, "plate"):
            raise RuntimeError("radnerf_torso trains on geneface.data.nerf_datamodule.SpeakerRaysDataModule "
                               "(it reads the speaker's background plate from datamodule.images)")
        if (images.height, images.width) != (self.height, self.width):
            raise ValueError(f"the head was trained on {self.height}×{self.width} frames but this speaker's are "
                             f"{images.height}×{images.width}: point stage.model.head_ckpt at this speaker's head")
        self._plate = torch.from_numpy(np.ascontiguousarray(images.plate)).float().div(255.0).to(self.device)




    # ---------------------------------------------------------------- rendering
    def render_torso(self, pixels: torch.Tensor, c2w: torch.Tensor, latent_index: int | torch.Tensor = 0,
                     chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels [N, 2] (row, col), c2w [4, 4] → α [N], rgb [N, 3]."""
        coords = normalized_pixels(pixels, self.height, self.width)
        pose = pose_features(c2w.reshape(1, 4, 4))                             # [1, 6]
        latent = self.field.latents[latent_index].reshape(1, -1)                # [1, L]
        return torso_alpha_rgb(self.field, self.alpha_grid, coords, pose, latent, chunk)

    @torch.no_grad()
    def render_image(self, c2w: torch.Tensor, window: torch.Tensor, plate: torch.Tensor,
                     latent_index: int = 0) -> dict[str, torch.Tensor]:
        """One frame: c2w [4, 4], window [5, 204], plate [H, W, 3] → {"rgb" (the composite),
        "torso_over_plate", "head_rgb" (premultiplied), "head_opacity"}, each [H, W, (3)]."""
        h, w = self.height, self.width
        c2w, plate = c2w.to(self.device), plate.to(self.device)
        head_rgb, head_opacity = self._head().render_image(c2w, window, torch.zeros_like(plate), latent_index)
        alpha, rgb = self.render_torso(image_pixels(h, w, self.device), c2w, latent_index, self.render_chunk)
        frame, torso_over_plate = composite(head_rgb, head_opacity, alpha.reshape(h, w), rgb.reshape(h, w, 3), plate)
        return {"rgb": frame, "torso_over_plate": torso_over_plate, "head_rgb": head_rgb, "head_opacity": head_opacity}

    @torch.no_grad()
    def render_frames(self, c2w: np.ndarray, landmarks: np.ndarray, background: np.ndarray,
                      batch_frames: int = 1) -> Iterator[np.ndarray]:
        """Inference (FrameRenderer): c2w [T, 4, 4], normalised landmarks [T, 68, 3], the plate uint8
        [H, W, 3] → uint8 [H, W, 3] frames; head and torso codes 0, windows edge-padded."""
        self.eval()
        sequence = torch.as_tensor(np.asarray(landmarks, np.float32).reshape(len(landmarks), -1), device=self.device)
        plate = torch.as_tensor(np.asarray(background), device=self.device).float() / 255.0
        cams = torch.as_tensor(np.asarray(c2w, np.float32), device=self.device)
        for i in range(len(sequence)):
            window = condition_windows(sequence, torch.tensor([i], device=self.device), padding="edge")[0]
            frame = self.render_image(cams[i], window, plate)["rgb"]
            yield (frame.clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()

    # ---------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        step, frame, pixels, c2w = self.global_step, batch["frame"], batch["pixels"], batch["c2w"]
        if step % self.alpha_update_interval == 0:
            # this step's frame is a random training frame: its pose and code shape the cached α
            pose, latent = pose_features(c2w[None]), self.field.latents[frame][None].detach()
            self.alpha_grid.update(lambda x: self.field(x, pose, latent)["alpha"])
        head = self._head()
        with torch.no_grad():                   # the frame's own head code, as when the head trained
            out = head.render_rays(c2w, pixels, torch.zeros_like(batch["rgb"]),
                                   head.condition(batch["window"][None]), head.field.latents[frame][None])
        alpha, rgb = self.render_torso(pixels, c2w, frame)
        plate = self._plate[pixels[:, 0], pixels[:, 1]]                        # [N, 3]
        frame_rgb, torso_over_plate = composite(out.rgb.float(), out.opacity.float(), alpha, rgb, plate)
        mse = F.mse_loss(torso_over_plate, batch["background"])
        entropy = opacity_entropy(alpha)
        loss = mse + self.lambda_entropy * entropy
        n = len(pixels)
        psnr = -10 * torch.log10(F.mse_loss(frame_rgb.detach(), batch["rgb"]))
        self.log_dict({"train/loss": loss, "train/mse": mse, "train/psnr_torso": -10 * torch.log10(mse.detach()),
                       "train/psnr": psnr, "train/entropy": entropy}, batch_size=n)
        self.log("train/psnr_bar", psnr, prog_bar=True, logger=False, batch_size=n)
        if step % self.alpha_update_interval == 0:
            self.log_dict({f"alpha_grid/{k}": v for k, v in self.alpha_grid.stats().items()}, batch_size=n)
        return loss

    # ---------------------------------------------------------------- validation
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self.render_image(batch["c2w"], batch["window"], batch["plate"], latent_index=0)
        target, plate = batch["rgb"], batch["plate"]
        head_only = out["head_rgb"] + (1 - out["head_opacity"][..., None]) * plate
        self.log("val/loss", F.mse_loss(out["rgb"], target), batch_size=1)
        to_image = lambda x: x.permute(2, 0, 1)[None].clamp(0, 1)             # noqa: E731  [1, 3, H, W]
        self.val_psnr.update(to_image(out["rgb"]), to_image(target))
        self.val_ssim.update(to_image(out["rgb"]), to_image(target))
        self.val_psnr_torso.update(to_image(out["torso_over_plate"]), to_image(batch["background"]))
        self.val_psnr_head_only.update(to_image(head_only), to_image(target))
        if batch_idx < self.val_images:
            save_render(self, out["rgb"], target, int(batch["frame"]))

    def on_validation_epoch_end(self) -> None:
        for name, metric in (("val/psnr", self.val_psnr), ("val/ssim", self.val_ssim),
                             ("val/psnr_torso", self.val_psnr_torso), ("val/psnr_head_only", self.val_psnr_head_only)):
            if metric.update_count:
                self.log(name, metric.compute(), prog_bar=name == "val/psnr")
            metric.reset()

    # render | truth PNGs (and W&B/TensorBoard images) exactly as the head stage writes them; it only
    # uses trainer/global_step/loggers, which every LightningModule has

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.field.param_groups(self.lr, self.grid_lr_scale))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, exponential_decay(self.lr_decay_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
