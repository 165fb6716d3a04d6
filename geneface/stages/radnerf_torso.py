"""Stage `radnerf_torso`: the speaker's torso, rendered under a frozen RAD-NeRF head (reference §7).

Each step renders the frozen head (eval mode, no grad) on the step's rays over BLACK, so its colour
comes premultiplied with its opacity, and the 2D torso field on the same pixels; the frame is
C = head_rgb + (1 − head_opacity)·C_tb with C_tb = α·c + (1−α)·plate. The loss (+ 1e-4 · binary
entropy of α) is C against the real frame (`composite_loss`, the stage config's default), so where the
head's edge is translucent (the chin, the jaw line) the torso learns the neck the frame shows there.
The reference's loss, C_tb against the frame's neck and torso over the plate (the head stage's
background), leaves those pixels to the plate (its processing paints a neck in; ours labels them
head), which showed as a seam of background under the chin. Elsewhere the two agree (no head there).

The head (`head_ckpt`, the radnerf stage's best.ckpt) is loaded in `setup`; a missing one stops with
the command that trains it. It is held outside the module tree (FrozenNets): not optimised, never in
train mode. It is carried in this stage's checkpoints (stages/frozen.py), so `load_stage(torso
best.ckpt)` renders whole frames with nothing else on disk.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from geneface.nerf.fields import FieldOutput
from geneface.nerf.losses import opacity_entropy
from geneface.nerf.rays import image_pixels
from geneface.nerf.torso import AlphaGrid, TorsoField, composite, normalized_pixels, pose_features, torso_alpha_rgb
from geneface.stages.renderer import TorsoStage


class RadNerfTorsoStage(TorsoStage):
    head_stage = "radnerf"
    # full frame: the composite, its SSIM, C_tb vs the torso over the plate, the head over the bare plate
    val_metric_names = ("val/psnr", "val/ssim", "val/psnr_torso", "val/psnr_head_only")

    def __init__(self, field: TorsoField, alpha_grid: AlphaGrid, optimizer: Callable, head_ckpt: str | None = None,
                 lr: float = 5e-4, grid_lr_scale: float = 10.0, lr_decay_steps: int = 250_000,
                 lambda_entropy: float = 1e-4, alpha_update_interval: int = 16, render_chunk: int = 65536,
                 val_images: int = 4, composite_loss: bool = True, head_dropout: float = 0.5):
        super().__init__(optimizer, lr, lr_decay_steps, render_chunk, val_images)
        self.field, self.alpha_grid, self.head_ckpt = field, alpha_grid, head_ckpt
        self.grid_lr_scale = grid_lr_scale
        self.lambda_entropy, self.alpha_update_interval = lambda_entropy, alpha_update_interval
        self.composite_loss = composite_loss
        if not 0.0 <= head_dropout < 1.0:
            raise ValueError(f"head_dropout must be in [0, 1), got {head_dropout}")
        # a head-aware field (TorsoField) trains this share of its steps without the head's reading, as
        # the alpha cache's probe renders it (GeneFace++ drops it half the time)
        self.head_dropout = head_dropout

    # ---------------------------------------------------------------- rendering
    def render_torso(self, pixels: torch.Tensor, c2w: torch.Tensor, latent_index: int | torch.Tensor = 0,
                     chunk: int | None = None, head_rgb: torch.Tensor | None = None,
                     head_opacity: torch.Tensor | None = None,
                     jaw: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels [N, 2] (row, col), c2w [4, 4] → α [N], rgb [N, 3]. head_rgb [N, 3] (premultiplied) and
        head_opacity [N]: the head rendered at those pixels, which a head-aware field reads; jaw [1, 51]:
        TorsoField.jaw of the frame's landmark window, which a jaw-conditioned field reads."""
        coords = normalized_pixels(pixels, self.height, self.width)
        pose = pose_features(c2w.reshape(1, 4, 4))                             # [1, 6]
        latent = self.field.latents[latent_index].reshape(1, -1)                # [1, L]
        head = None
        if self.field.head_aware and head_rgb is not None:
            head = torch.cat([head_rgb.reshape(-1, 3), head_opacity.reshape(-1, 1)], -1).float()   # [N, 4]
        return torso_alpha_rgb(self.field, self.alpha_grid, coords, pose, latent, chunk, head, jaw)

    @torch.no_grad()
    def render_image(self, c2w: torch.Tensor, window: torch.Tensor, plate: torch.Tensor,
                     latent_index: int = 0) -> dict[str, torch.Tensor]:
        """One frame: c2w [4, 4], window [window, 204], plate [H, W, 3] → {"rgb" (the composite),
        "torso_over_plate", "head_rgb" (premultiplied), "head_opacity"}, each [H, W, (3)]."""
        h, w = self.height, self.width
        c2w, plate = c2w.to(self.device), plate.to(self.device)
        head_rgb, head_opacity = self._head().render_image(c2w, window, torch.zeros_like(plate), latent_index)
        alpha, rgb = self.render_torso(image_pixels(h, w, self.device), c2w, latent_index, self.render_chunk,
                                       head_rgb, head_opacity, self.field.jaw(window.to(self.device)))
        frame, torso_over_plate = composite(head_rgb, head_opacity, alpha.reshape(h, w), rgb.reshape(h, w, 3), plate)
        return {"rgb": frame, "torso_over_plate": torso_over_plate, "head_rgb": head_rgb, "head_opacity": head_opacity}

    def render_frame(self, c2w: torch.Tensor, window: torch.Tensor, background: torch.Tensor,
                     audio: torch.Tensor | None = None) -> torch.Tensor:
        return self.render_image(c2w, window, background)["rgb"]               # head and torso codes 0

    # ---------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        step, frame, pixels, c2w = self.global_step, batch["frame"], batch["pixels"], batch["c2w"]
        jaw = self.field.jaw(batch["window"])                                  # [1, 51] or None
        if step % self.alpha_update_interval == 0:
            # this step's frame is a random training frame: its pose and code shape the cached α
            pose, latent = pose_features(c2w[None]), self.field.latents[frame][None].detach()
            self.alpha_grid.update(lambda x: self.field(x, pose, latent, jaw=jaw)[FieldOutput.ALPHA])
        head = self._head()
        with torch.no_grad():                   # the frame's own head code, as when the head trained
            out = head.render_rays(c2w, pixels, torch.zeros_like(batch["rgb"]),
                                   head.condition(batch["window"][None]), head.field.latents[frame][None])
        sees_head = self.field.head_aware and float(torch.rand(())) >= self.head_dropout
        alpha, rgb = self.render_torso(pixels, c2w, frame, head_rgb=out.rgb if sees_head else None,
                                       head_opacity=out.opacity if sees_head else None, jaw=jaw)
        plate = self.plate[pixels[:, 0], pixels[:, 1]]                        # [N, 3]
        frame_rgb, torso_over_plate = composite(out.rgb.float(), out.opacity.float(), alpha, rgb, plate)
        if self.composite_loss:                 # the whole frame against the real one (module docstring)
            mse = F.mse_loss(frame_rgb, batch["rgb"])
        else:
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
    def validation_images(self, batch: dict) -> tuple[torch.Tensor, dict[str, tuple]]:
        out = self.render_image(batch["c2w"], batch["window"], batch["plate"], latent_index=0)
        target, plate = batch["rgb"], batch["plate"]
        head_only = out["head_rgb"] + (1 - out["head_opacity"][..., None]) * plate
        return out["rgb"], {"val/psnr": (out["rgb"], target), "val/ssim": (out["rgb"], target),
                            "val/psnr_torso": (out["torso_over_plate"], batch["background"]),
                            "val/psnr_head_only": (head_only, target)}

    def param_groups(self) -> list[dict]:
        return self.field.param_groups(self.lr, self.grid_lr_scale)
