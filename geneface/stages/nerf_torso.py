"""Stage `nerf_torso`: the legacy AD-NeRF torso NeRF under a frozen `nerf` head (reference §8).

The torso is a coarse + fine MLP NeRF seen from the canonical camera (the first training frame's),
so it does not move with the head; what moves it is its condition: the frame's audio (mel windows,
8-frame attention; DeepSpeech in the reference), the frequency-encoded head pose, and the colour of
the head pixel behind each ray. Each step renders the frozen head (no grad, its inference sample
counts) over the background plate with the frame's camera, then the torso on the same pixels with
that head image as its background: C = Σ w·c_torso + T_last·head_rgb, trained against the full
frame (MSE fine + MSE coarse).

The head (`head_ckpt`, the nerf stage's best.ckpt) is loaded in `setup`; a missing one stops with the
command that trains it. It is held outside the module tree (FrozenNets) and carried in this stage's
checkpoints (stages/frozen.py), so `load_stage(torso best.ckpt)` renders whole frames.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from geneface.nerf.mlp_nerf import TorsoNerf, mel_windows
from geneface.nerf.rays import SceneBox, image_pixels, pixel_rays
from geneface.nerf.renderer import RenderOutput
from geneface.nerf.sampling import render_hierarchical
from geneface.nerf.torso import pose_features
from geneface.stages.renderer import TorsoStage


class NerfTorsoStage(TorsoStage):
    head_stage = "nerf"
    needs_audio = True
    val_metric_names = ("val/psnr", "val/ssim")     # full frame

    def __init__(self, torso: TorsoNerf, aabb: list[float], optimizer: Callable, head_ckpt: str | None = None,
                 lr: float = 5e-4, lr_decay_steps: int = 250_000, coarse_samples: int = 64, fine_samples: int = 128,
                 infer_coarse_samples: int = 32, infer_fine_samples: int = 128, render_chunk: int = 4096,
                 val_images: int = 4):
        super().__init__(optimizer, lr, lr_decay_steps, render_chunk, val_images)
        self.torso, self.head_ckpt = torso, head_ckpt
        self.register_buffer("aabb", torch.tensor(aabb, dtype=torch.float32))   # torso box, head units
        self.register_buffer("canonical_c2w", torch.zeros(4, 4))                # set from the first train frame
        self.coarse_samples, self.fine_samples = coarse_samples, fine_samples
        self.infer_coarse_samples, self.infer_fine_samples = infer_coarse_samples, infer_fine_samples

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if not self.canonical_c2w.any():       # a fresh run: the canonical camera is the first train frame's
            self.canonical_c2w.copy_(self.trainer.datamodule.train_cameras()["c2w"][0])

    # ---------------------------------------------------------------- rendering
    @torch.no_grad()
    def head_rgb(self, c2w: torch.Tensor, pixels: torch.Tensor, plate: torch.Tensor, window: torch.Tensor,
                 chunk: int | None = None) -> torch.Tensor:
        """The frozen head over the plate at its inference sample counts: [N, 3]."""
        head = self._head()
        cond = head.condition(window[None])
        _, fine = head.render_rays(c2w, pixels, plate, cond, chunk=chunk,
                                   samples=(head.infer_coarse_samples, head.infer_fine_samples))
        return fine.rgb

    def render_torso(self, pixels: torch.Tensor, c2w: torch.Tensor, audio: torch.Tensor, head_rgb: torch.Tensor,
                     perturb: bool = False, samples: tuple[int, int] | None = None,
                     chunk: int | None = None) -> tuple[RenderOutput, RenderOutput]:
        """pixels [N, 2], the frame's c2w [4, 4] (pose condition), audio [8, 16, 80], head_rgb [N, 3]
        (background and colour condition) → (coarse, fine) over the head image, canonical camera."""
        focal, cx, cy = (float(v) for v in self.intrinsics)
        origins, directions = pixel_rays(self.canonical_c2w, focal, cx, cy, pixels)
        cond = self.torso.ray_condition(audio[None], pose_features(c2w[None]), head_rgb)     # [N, C]
        num_coarse, num_fine = samples or (self.coarse_samples, self.fine_samples)

        def field(mlp):
            return lambda x, d, ray: mlp(x, d, cond[ray])

        return render_hierarchical(field(self.torso.coarse), field(self.torso.fine), SceneBox(self.aabb), origins,
                                   directions, head_rgb, num_coarse, num_fine, perturb=perturb, chunk=chunk)

    @torch.no_grad()
    def render_image(self, c2w: torch.Tensor, window: torch.Tensor, audio: torch.Tensor, plate: torch.Tensor,
                     samples: tuple[int, int] | None = None) -> torch.Tensor:
        """One frame: c2w [4, 4], window [window, 204], audio [8, 16, 80], plate [H, W, 3] → rgb [H, W, 3]."""
        h, w = self.height, self.width
        c2w, plate, pixels = c2w.to(self.device), plate.to(self.device), image_pixels(h, w, self.device)
        head = self.head_rgb(c2w, pixels, plate.reshape(-1, 3), window.to(self.device), self.render_chunk)
        _, fine = self.render_torso(pixels, c2w, audio.to(self.device), head, samples=samples, chunk=self.render_chunk)
        return fine.rgb.reshape(h, w, 3)

    def audio_window(self, mel: torch.Tensor, frame: int) -> torch.Tensor:
        return mel_windows(mel, torch.tensor([frame], device=mel.device))[0]     # [8, 16, 80]

    def render_frame(self, c2w: torch.Tensor, window: torch.Tensor, background: torch.Tensor,
                     audio: torch.Tensor | None = None) -> torch.Tensor:
        """At the inference sample counts; `background` is the plate."""
        return self.render_image(c2w, window, audio, background, (self.infer_coarse_samples, self.infer_fine_samples))

    # ---------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        pixels, c2w = batch["pixels"], batch["c2w"]
        head = self.head_rgb(c2w, pixels, self.plate[pixels[:, 0], pixels[:, 1]], batch["window"])
        coarse, fine = self.render_torso(pixels, c2w, batch["audio"], head, perturb=True)
        mse_fine, mse_coarse = F.mse_loss(fine.rgb, batch["rgb"]), F.mse_loss(coarse.rgb, batch["rgb"])
        loss = mse_fine + mse_coarse
        n, psnr = len(pixels), -10 * torch.log10(mse_fine.detach())
        self.log_dict({"train/loss": loss, "train/mse": mse_fine, "train/mse_coarse": mse_coarse, "train/psnr": psnr},
                      batch_size=n)
        self.log("train/psnr_bar", psnr, prog_bar=True, logger=False, batch_size=n)
        return loss

    # ---------------------------------------------------------------- validation
    def validation_images(self, batch: dict) -> tuple[torch.Tensor, dict[str, tuple]]:
        rgb, target = self.render_image(batch["c2w"], batch["window"], batch["audio"], batch["plate"]), batch["rgb"]
        return rgb, {"val/psnr": (rgb, target), "val/ssim": (rgb, target)}

    def param_groups(self) -> list[dict]:
        return [{"params": list(self.torso.parameters()), "lr": self.lr}]
