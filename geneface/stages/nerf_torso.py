"""Stage `nerf_torso`: the legacy AD-NeRF torso NeRF under a frozen `nerf` head (reference §8).

The torso is a coarse + fine MLP NeRF seen from the canonical camera (the first training frame's),
so it does not move with the head; what moves it is its condition: the frame's audio (mel windows,
8-frame attention; DeepSpeech in the reference), the frequency-encoded head pose, and the colour of
the head pixel behind each ray. Each step renders the frozen head (no grad, its inference sample
counts) over the background plate with the frame's camera, then the torso on the same pixels with
that head image as its background: C = Σ w·c_torso + T_last·head_rgb, trained against the full
frame (MSE fine + MSE coarse).

The head (`head_ckpt`, the nerf stage's best.ckpt) is loaded in `setup`; a missing one stops with the
command that trains it. It is held outside the module tree (FrozenNets) and its config + weights
are written into this stage's checkpoints, so `load_stage(torso best.ckpt)` renders whole frames.
"""

from __future__ import annotations

from typing import Callable, Iterator

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from geneface.nerf.condition import condition_windows
from geneface.nerf.mlp_nerf import TorsoNerf, mel_windows
from geneface.nerf.rays import SceneBox, image_pixels, pixel_rays
from geneface.nerf.renderer import RenderOutput
from geneface.nerf.sampling import render_hierarchical
from geneface.nerf.torso import pose_features
from geneface.stages.frozen import CarriedHead
from geneface.stages.radnerf import exponential_decay, save_render



class NerfTorsoStage(CarriedHead, L.LightningModule):
    head_stage = "nerf"

    def __init__(self, torso: TorsoNerf, aabb: list[float], optimizer: Callable, head_ckpt: str | None = None,
                 lr: float = 5e-4, lr_decay_steps: int = 250_000, coarse_samples: int = 64, fine_samples: int = 128,
                 infer_coarse_samples: int = 32, infer_fine_samples: int = 128, render_chunk: int = 4096,
                 val_images: int = 4):
        super().__init__()
        self.torso, self.optimizer_factory, self.head_ckpt = torso, optimizer, head_ckpt
        self.register_buffer("aabb", torch.tensor(aabb, dtype=torch.float32))   # torso box, head units
        self.register_buffer("canonical_c2w", torch.zeros(4, 4))                # set from the first train frame
        self.lr, self.lr_decay_steps = lr, lr_decay_steps
        self.coarse_samples, self.fine_samples = coarse_samples, fine_samples
        self.infer_coarse_samples, self.infer_fine_samples = infer_coarse_samples, infer_fine_samples
        self.render_chunk, self.val_images = render_chunk, val_images
        self._head_config: dict | None = None
        self._plate: torch.Tensor | None = None    # [H, W, 3] float
        self.val_psnr = PeakSignalNoiseRatio(data_range=1.0)     # full frame
        self.val_ssim = StructuralSimilarityIndexMeasure(data_range=1.0)

    # ---------------------------------------------------------------- the frozen head
    @property
    def height(self) -> int:
        return self._head().height

    @property
    def width(self) -> int:
        return self._head().width

    def on_fit_start(self) -> None:
        images = self.trainer.datamodule.images
        self._plate = torch.from_numpy(np.ascontiguousarray(images.plate)).float().div(255.0).to(self.device)
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
        focal, cx, cy = (float(v) for v in self._head().intrinsics)
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
        """One frame: c2w [4, 4], window [5, 204], audio [8, 16, 80], plate [H, W, 3] → rgb [H, W, 3]."""
        h, w = self.height, self.width
        c2w, plate, pixels = c2w.to(self.device), plate.to(self.device), image_pixels(h, w, self.device)
        head = self.head_rgb(c2w, pixels, plate.reshape(-1, 3), window.to(self.device), self.render_chunk)
        _, fine = self.render_torso(pixels, c2w, audio.to(self.device), head, samples=samples, chunk=self.render_chunk)
        return fine.rgb.reshape(h, w, 3)

    @torch.no_grad()
    def render_frames(self, c2w: np.ndarray, landmarks: np.ndarray, background: np.ndarray, batch_frames: int = 1,
                      audio_features: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """Inference (FrameRenderer): c2w [T, 4, 4], normalised landmarks [T, 68, 3], the plate uint8
        [H, W, 3], audio_features = the mel [2T, 80] of the driving audio → uint8 [H, W, 3] frames."""
        if audio_features is None:
            raise ValueError("the nerf_torso renderer is conditioned on audio: pass audio_features=<mel [2T, 80]> "
                             "(geneface.audio's log-mel of the driving wav)")
        self.eval()
        mel = torch.as_tensor(np.asarray(audio_features, np.float32), device=self.device)
        sequence = torch.as_tensor(np.asarray(landmarks, np.float32).reshape(len(landmarks), -1), device=self.device)
        plate = torch.as_tensor(np.asarray(background), device=self.device).float() / 255.0
        cams = torch.as_tensor(np.asarray(c2w, np.float32), device=self.device)
        samples = (self.infer_coarse_samples, self.infer_fine_samples)
        for i in range(len(sequence)):
            index = torch.tensor([i], device=self.device)
            window = condition_windows(sequence, index, padding="edge")[0]
            rgb = self.render_image(cams[i], window, mel_windows(mel, index)[0], plate, samples)
            yield (rgb.clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()

    # ---------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        pixels, c2w = batch["pixels"], batch["c2w"]
        head = self.head_rgb(c2w, pixels, self._plate[pixels[:, 0], pixels[:, 1]], batch["window"])
        coarse, fine = self.render_torso(pixels, c2w, batch["audio"], head, perturb=True)
        mse_fine, mse_coarse = F.mse_loss(fine.rgb, batch["rgb"]), F.mse_loss(coarse.rgb, batch["rgb"])
        loss = mse_fine + mse_coarse
        n, psnr = len(pixels), -10 * torch.log10(mse_fine.detach())
        self.log_dict({"train/loss": loss, "train/mse": mse_fine, "train/mse_coarse": mse_coarse, "train/psnr": psnr},
                      batch_size=n)
        self.log("train/psnr_bar", psnr, prog_bar=True, logger=False, batch_size=n)
        return loss

    # ---------------------------------------------------------------- validation
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        rgb, target = self.render_image(batch["c2w"], batch["window"], batch["audio"], batch["plate"]), batch["rgb"]
        self.log("val/loss", F.mse_loss(rgb, target), batch_size=1)
        to_image = lambda x: x.permute(2, 0, 1)[None].clamp(0, 1)             # noqa: E731  [1, 3, H, W]
        self.val_psnr.update(to_image(rgb), to_image(target))
        self.val_ssim.update(to_image(rgb), to_image(target))
        if batch_idx < self.val_images:
            save_render(self, rgb, target, int(batch["frame"]))

    def on_validation_epoch_end(self) -> None:
        for name, metric in (("val/psnr", self.val_psnr), ("val/ssim", self.val_ssim)):
            if metric.update_count:
                self.log(name, metric.compute(), prog_bar=name == "val/psnr")
            metric.reset()

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.torso.parameters(), lr=self.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, exponential_decay(self.lr_decay_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
