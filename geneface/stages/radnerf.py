"""Stage `radnerf`: the landmark-conditioned RAD-NeRF head of one speaker (reference §6).

Each step renders random rays of one training frame over that frame's own torso-and-plate
background, so the field learns only the head. From `lip_patch_start` on (the lip phase, RAD-NeRF's
--finetune_lips), each step also renders the data's lip patch as one small image and adds
lambda_patch_ssim·(1 − SSIM) of it to the loss: per-pixel mse is content with a mouth blurred
towards its mean, a structure loss is not. The occupancy cache is frozen in the phase, as there (on
the synthetic speaker, updating it through the phase instead: mouth box 32.45 dB against 33.42).
Validation renders whole val frames and reports PSNR
and SSIM on the head's bounding box (and PSNR on the full frame). `render_frames` is the inference API.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from geneface.data.contract import IDEXP_SCALE
from geneface.data.frames import arrays
from geneface.data.landmarks import STD_FLOOR, absolute_landmarks, inner_lip_aperture, normalize_idexp
from geneface.nerf.fields import FieldOutput
from geneface.nerf.losses import opacity_entropy
from geneface.nerf.occupancy import OccupancyGrid
from geneface.nerf.pose_refinement import PoseRefinement, rigid_transform
from geneface.nerf.radnerf import RadNerfField
from geneface.nerf.rays import SceneBox, image_pixels, pixel_rays
from geneface.nerf.renderer import RenderOutput, render_rays
from geneface.stages.renderer import RendererStage


def patch_structure(rgb: torch.Tensor, target: torch.Tensor, side: int) -> torch.Tensor:
    """SSIM (torchmetrics, data range 1, 7-pixel Gaussian window: the patch is small) of a rendered
    patch against its truth, both [side², 3] row-major; differentiable in rgb."""
    def image(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(side, side, 3).permute(2, 0, 1)[None].float()          # [1, 3, side, side]

    return structural_similarity_index_measure(image(rgb), image(target), data_range=1.0, kernel_size=7,
                                               sigma=1.0)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of values [N] where mask [N], 0 where none is: without `mask.any()`, which would make a GPU
    wait for it on every training step."""
    return torch.where(mask, values, 0.0).sum() / mask.sum().clamp(min=1)


class RadNerfStage(RendererStage):
    val_metric_names = ("val/psnr", "val/ssim", "val/psnr_full")    # head box, head box, full frame

    def __init__(self, field: RadNerfField, occupancy: OccupancyGrid, aabb: list[float], optimizer: Callable,
                 lr: float = 5e-4, grid_lr_scale: float = 10.0, smoother_lr_scale: float = 5.0,
                 lr_decay_steps: int = 250_000, num_samples: int = 64, lambda_entropy: float = 1e-4,
                 lambda_ambient: float = 0.1, ambient_ramp_steps: int = 250_000,
                 occupancy_update_interval: int = 16, occupancy_update_cells: int | None = None,
                 render_chunk: int = 65536, val_images: int = 4, min_transmittance: float = 1e-4,
                 lambda_distortion: float = 0.0, render_min_transmittance: float | None = None,
                 lip_patch_start: int | None = None, lambda_patch_ssim: float = 0.0,
                 lambda_body_opacity: float = 0.0, lambda_label_opacity: float = 0.0,
                 warp_canonical_quantile: float | None = None,
                 pose_refinement: PoseRefinement | None = None, pose_lr: float | None = None,
                 pose_refine_start: int = 0):
        super().__init__(optimizer, lr, lr_decay_steps, render_chunk, val_images)
        self.field, self.occupancy = field, occupancy
        self.register_buffer("aabb", torch.tensor(aabb, dtype=torch.float32))   # head units
        self.grid_lr_scale, self.smoother_lr_scale, self.num_samples = grid_lr_scale, smoother_lr_scale, num_samples
        self.lambda_entropy, self.lambda_ambient, self.ambient_ramp_steps = lambda_entropy, lambda_ambient, ambient_ramp_steps
        self.lambda_distortion = lambda_distortion   # 0 (checkpoints from before it existed): not computed into the loss
        self.occupancy_update_interval, self.occupancy_update_cells = occupancy_update_interval, occupancy_update_cells
        self.lip_patch_start, self.lambda_patch_ssim = lip_patch_start, lambda_patch_ssim
        self.lambda_body_opacity, self.lambda_label_opacity = lambda_body_opacity, lambda_label_opacity
        if warp_canonical_quantile is not None and field.warp_radius is None:
            raise ValueError(f"stage.model.warp_canonical_quantile={warp_canonical_quantile} sets the landmark warp's "
                             "canonical expression, but the warp is off: set stage.model.field.warp_radius too (0.1 "
                             "in preset=cpu), or leave the quantile null")
        self.warp_canonical_quantile = warp_canonical_quantile
        # per-frame pose corrections (geneface/nerf/pose_refinement.py), learnt when pose_lr is set, from
        # step pose_refine_start on (a head that is still a blur gives a pose no direction)
        self.pose_refinement = pose_refinement if pose_lr else None
        self.pose_lr, self.pose_refine_start = pose_lr, pose_refine_start
        # early ray termination, training and frames; render_min_transmittance is its name in checkpoints
        # written before training marched too (it then applied to frames only), read as the same value
        self.min_transmittance = min_transmittance if render_min_transmittance is None else render_min_transmittance

    # ---------------------------------------------------------------- set-up
    @property
    def window(self) -> int:
        return self.field.condition.window

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.height == 0:                   # a fresh run (a resumed one has its camera and grid)
            cams = self.trainer.datamodule.train_cameras()
            self.set_camera(cams["focal"], cams["cx"], cams["cy"], cams["height"], cams["width"])
            self.occupancy.mark_unseen(self.box, cams["c2w"].to(self.device), cams["focal"],
                                       cams["cx"], cams["cy"], cams["height"], cams["width"])
            data = arrays(self.trainer.datamodule.images.root)
            mean_points = torch.from_numpy(absolute_landmarks(np.array(data["idexp_lm3d_mean"], np.float32),
                                                              np.array(data["mean_shape"], np.float32))
                                           ).to(self.device)               # the mean expression, head units [68, 3]
            idexp_std = torch.tensor(np.array(data["idexp_lm3d_std"], np.float32), device=self.device)   # [68, 3]
            offset_scale = idexp_std.clamp(min=STD_FLOOR) / IDEXP_SCALE                           # per normalised unit
            box = self.box.to(self.device)
            canonical = self.canonical_expression(data, self.trainer.datamodule.images.num_train)
            self.field.set_moving_points(box.normalize(mean_points), box.half_size, offset_scale / box.half_size,
                                         canonical)
            if self.pose_refinement is not None:
                self.pose_refinement.set_training_frames(self.trainer.datamodule.images.num_train)

    def canonical_expression(self, data: dict, num_train: int) -> torch.Tensor | None:
        """The warp's canonical expression as normalised landmarks [68, 3]: the mean of the training frames
        whose inner-lip aperture is at or above `warp_canonical_quantile` of theirs; None (the mean
        expression) without it. Why open: a backward warp can only move what its canonical head has, and a
        closed canonical mouth has no inside (teeth, dark gap) to carry into an open frame, whereas an open
        one can be closed by carrying the lips over it."""
        if self.warp_canonical_quantile is None:
            return None
        idexp = np.array(data["idexp_lm3d"][:num_train], np.float32)                          # [T, 68, 3]
        aperture = inner_lip_aperture(absolute_landmarks(idexp, data["mean_shape"]))            # [T]
        chosen = aperture >= np.quantile(aperture, self.warp_canonical_quantile)
        canonical = normalize_idexp(idexp[chosen].mean(0), data["idexp_lm3d_mean"], data["idexp_lm3d_std"])
        return torch.from_numpy(canonical).to(self.device)                                   # [68, 3]

    @property
    def box(self) -> SceneBox:
        return SceneBox(self.aabb)

    # ---------------------------------------------------------------- rendering
    def condition(self, windows: torch.Tensor) -> torch.Tensor:
        return self.field.encode(windows)                                  # [B, 5, 204] → [B, C]

    def render_rays(self, c2w: torch.Tensor, pixels: torch.Tensor, background: torch.Tensor,
                    cond: torch.Tensor, latent: torch.Tensor, perturb: bool = False,
                    chunk: int | None = None) -> RenderOutput:
        # c2w [4, 4]; pixels [N, 2] (row, col); background [N, 3]; cond [1, C]; latent [1, L]
        focal, cx, cy = (float(v) for v in self.intrinsics)
        origins, directions = pixel_rays(c2w, focal, cx, cy, pixels)

        def field_fn(x, d, ray_index):
            return self.field(x, d, cond, latent)                     # one frame: [1, C], [1, L]

        return render_rays(field_fn, self.box, origins, directions, background, self.occupancy,
                           num_samples=self.num_samples, perturb=perturb, chunk=chunk,
                           min_transmittance=self.min_transmittance)

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

    def render_frame(self, c2w: torch.Tensor, window: torch.Tensor, background: torch.Tensor,
                     audio: torch.Tensor | None = None) -> torch.Tensor:
        return self.render_image(c2w, window, background)[0]                    # latent code 0

    @torch.no_grad()
    def source_cameras(self, c2w: np.ndarray) -> np.ndarray:
        if self.pose_refinement is None:
            return c2w
        cameras = torch.as_tensor(np.asarray(c2w, np.float32), device=self.device)         # [T, 4, 4]
        return self.pose_refinement(cameras).cpu().numpy()

    # ---------------------------------------------------------------- training
    def in_lip_phase(self, step: int) -> bool:
        return self.lip_patch_start is not None and step >= self.lip_patch_start

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        step = self.global_step
        lip_phase = self.in_lip_phase(step)
        cond = self.condition(batch["window"][None])                          # [1, C]
        latent = self.field.latents[batch["frame"]][None]                      # [1, L]
        update_occupancy = step % self.occupancy_update_interval == 0 and not lip_phase
        if update_occupancy:
            # the current frame is a random training frame: its condition shapes the cached density
            self.occupancy.update(lambda x: self.field.density(x, cond.detach()),
                                  max_cells=self.occupancy_update_cells)
        pixels, background, target = batch["pixels"], batch["background"], batch["rgb"]
        n = len(target)
        if lip_phase:
            if "patch_pixels" not in batch:
                raise ValueError(f"stage.model.lip_patch_start={self.lip_patch_start} needs lip patches in the "
                                 "training data: set stage.data.lip_patch (the patch side, e.g. 32)")
            pixels = torch.cat([pixels, batch["patch_pixels"]])
            background = torch.cat([background, batch["patch_background"]])
            target = torch.cat([target, batch["patch_rgb"]])
        c2w, logged = batch["c2w"], {}                                         # [4, 4]
        if self.pose_refinement is not None and step >= self.pose_refine_start:
            offset = self.pose_refinement.offset(batch["frame"])                # [6]
            c2w = rigid_transform(offset).to(c2w) @ c2w
            logged.update({"train/pose_rotation_deg": torch.rad2deg(offset[:3].detach().norm()),
                           "train/pose_shift": offset[3:].detach().norm()})           # head units
        out = self.render_rays(c2w, pixels, background, cond, latent, perturb=True)
        mse = F.mse_loss(out.rgb, target)
        entropy = opacity_entropy(out.opacity)
        ambient = out.extras.get(FieldOutput.AMBIENT)                   # [N'], absent when nothing was evaluated
        ambient = masked_mean(ambient[:n], ~batch["in_face"]) if ambient is not None else mse.new_zeros(())
        ambient_weight = self.lambda_ambient * min(step / self.ambient_ramp_steps, 1.0)
        distortion = out.distortion.mean()
        loss = mse + self.lambda_entropy * entropy + ambient_weight * ambient + self.lambda_distortion * distortion
        # the head's opacity on rays labelled neck or torso: the target there is the frame's own pixel over
        # its own body, so translucent density that matches it costs nothing in mse, yet shows as floaters
        # where the body has moved (pasted back, or under the torso stage)
        body_opacity = masked_mean(out.opacity[:n], batch["on_body"])
        loss = loss + self.lambda_body_opacity * body_opacity
        # the head's opacity against the labels, 1 on the head and 0 off it: without it a short run leaves
        # a translucent head (opacity ~0.5 on the synthetic one at 600 steps) through which the neck and
        # backdrop show, and the entropy loss alone turns that haze into an opaque wall around the head
        if self.lambda_label_opacity > 0:
            label_opacity = F.mse_loss(out.opacity[:n], batch["on_head"].to(out.opacity.dtype))
            loss = loss + self.lambda_label_opacity * label_opacity
            logged["train/label_opacity"] = label_opacity.detach()
        logged |= {"train/loss": loss, "train/mse": mse, "train/psnr": -10 * torch.log10(mse.detach()),
                   "train/ambient": ambient, "train/distortion": distortion, "train/body_opacity": body_opacity,
                   "train/samples_per_ray": float(out.samples_per_ray)}
        if lip_phase and self.lambda_patch_ssim > 0:
            side = int(round(len(batch["patch_pixels"]) ** 0.5))
            patch_ssim = patch_structure(out.rgb[n:], batch["patch_rgb"], side)
            loss = loss + self.lambda_patch_ssim * (1.0 - patch_ssim)
            logged.update({"train/loss": loss, "train/patch_ssim": patch_ssim.detach()})
        self.log_dict(logged, prog_bar=False, batch_size=n)
        self.log("train/psnr_bar", -10 * torch.log10(mse.detach()), prog_bar=True, logger=False, batch_size=n)
        if update_occupancy:        # checked here, not every step, to spare a GPU the synchronisation
            self.log_dict({f"occupancy/{k}": float(v) for k, v in self.occupancy.stats().items()}, batch_size=n)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"radnerf training diverged at step {step}: the loss is {loss.item()} (train/psnr and "
                    "occupancy/mean_density in the run's logs show where it began). Go on from a checkpoint "
                    "saved before that, ckpt_path=<the stage directory>/best.ckpt, with a lower "
                    "stage.model.lr, or start over with resume=false")
        return loss

    # ---------------------------------------------------------------- validation
    def validation_images(self, batch: dict) -> tuple[torch.Tensor, dict[str, tuple]]:
        rgb, _ = self.render_image(batch["c2w"], batch["window"], batch["background"], latent_index=0)
        return rgb, self.head_scores(rgb, batch)

    def param_groups(self) -> list[dict]:
        groups = self.field.param_groups(self.lr, self.grid_lr_scale, self.smoother_lr_scale)
        if self.pose_refinement is not None:
            groups.append({"params": [self.pose_refinement.offsets], "lr": self.pose_lr, "name": "pose"})
        return groups
