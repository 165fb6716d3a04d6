"""The base of the four renderer stages (radnerf, radnerf_torso, nerf, nerf_torso).

Why one base: inference and evaluation drive any renderer through the same small interface, and each
stage used to carry its own copy of the camera, the frame loop, the val metrics and the optimiser.
What a renderer declares instead of being guessed from its class name or signature:

- `needs_audio`: `render_frames` needs the driving audio's features (`audio_features`, mel [2T, 80]);
- `draws_torso`: True when it draws neck and torso itself and composites over the bare plate (or a
  chosen background); False for a head alone, trained over each frame's real neck and torso over the
  plate, which evaluation therefore gives it (else the torso would count as its error);
- `window`: frames of landmarks per condition (the head field's, `condition.window` in its config).

A subclass implements `render_frame` (one inference frame), `validation_images` (its val renders and
what each val metric compares), `param_groups` and its training step. Frames are rendered one at a
time: a frame is already `render_chunk` rays per pass, which fills a GPU at 512² (262k rays).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, ClassVar, Iterator

import cv2
import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from geneface.metrics.image import ImageMetrics, mask_box
from geneface.nerf.condition import condition_windows
from geneface.stages.frozen import FrozenNets


def exponential_decay(decay_steps: int) -> Callable[[int], float]:
    """The reference's lr factor 0.1^(step/decay_steps), no warmup (every renderer stage uses it)."""
    return lambda step: 0.1 ** min(step / decay_steps, 1.0)


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """[H, W, 3] float in [0, 1] → uint8 [H, W, 3] on the CPU (rounded)."""
    return (rgb.clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()


class RendererStage(L.LightningModule):
    """Camera buffers, the inference frame loop, val metrics and PNGs, and the optimiser."""

    needs_audio: ClassVar[bool] = False
    draws_torso: ClassVar[bool] = False
    val_metric_names: ClassVar[tuple[str, ...]] = ("val/psnr",)    # 'ssim' in a name → SSIM, else PSNR

    def __init__(self, optimizer: Callable, lr: float, lr_decay_steps: int, render_chunk: int | None,
                 val_images: int):
        super().__init__()
        self.optimizer_factory, self.lr, self.lr_decay_steps = optimizer, lr, lr_decay_steps
        self.render_chunk, self.val_images = render_chunk, val_images
        # the camera travels with the weights, so a checkpoint alone renders
        self.register_buffer("intrinsics", torch.zeros(3))                    # focal, cx, cy (pixels)
        self.register_buffer("image_size", torch.zeros(2, dtype=torch.long))  # height, width
        self.val_metrics = ImageMetrics(self.val_metric_names)

    # ---------------------------------------------------------------- the camera
    @property
    def height(self) -> int:
        return int(self.image_size[0])

    @property
    def width(self) -> int:
        return int(self.image_size[1])

    @property
    def window(self) -> int:
        """Frames per landmark condition window."""
        raise NotImplementedError

    def on_fit_start(self) -> None:
        """The data serves landmark windows of this renderer's length (its `condition.window`)."""
        datamodule = self.trainer.datamodule
        if datamodule is not None and hasattr(datamodule, "window"):
            datamodule.window = self.window

    def set_camera(self, focal: float, cx: float, cy: float, height: int, width: int) -> None:
        self.intrinsics.copy_(torch.tensor([focal, cx, cy]))
        self.image_size.copy_(torch.tensor([height, width]))

    # ---------------------------------------------------------------- inference
    def render_frame(self, c2w: torch.Tensor, window: torch.Tensor, background: torch.Tensor,
                     audio: torch.Tensor | None = None) -> torch.Tensor:
        """One inference frame: c2w [4, 4], landmark window [window, 204], background [H, W, 3] float in
        [0, 1], audio the frame's `audio_window` (needs_audio renderers) → rgb [H, W, 3]."""
        raise NotImplementedError

    def source_cameras(self, c2w: np.ndarray) -> np.ndarray:
        """The speaker video's cameras [T, 4, 4] as trained on: the processed ones, unless a stage learnt
        corrections of them (radnerf's pose refinement)."""
        return c2w

    def audio_window(self, mel: torch.Tensor, frame: int) -> torch.Tensor:
        """The audio condition of one frame from the whole mel [2T, 80] (needs_audio renderers)."""
        raise NotImplementedError

    @torch.no_grad()
    def render_frames(self, c2w: np.ndarray, landmarks: np.ndarray, background: np.ndarray,
                      audio_features: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """Inference and evaluation: c2w [T, 4, 4], normalised landmarks [T, 68, 3], background uint8
        [H, W, 3] (or one per frame, [T, H, W, 3]), audio_features the driving mel [2T, 80] (read only
        by renderers that need_audio) → uint8 [H, W, 3] frames; windows edge-padded at the ends."""
        if self.needs_audio and audio_features is None:
            raise ValueError(f"the {type(self).__name__} renderer is conditioned on audio: pass "
                             "audio_features=<mel [2T, 80]> (geneface.inference.landmarks.load_driving_audio)")
        self.eval()
        sequence = torch.as_tensor(np.asarray(landmarks, np.float32).reshape(len(landmarks), -1), device=self.device)
        cams = torch.as_tensor(np.asarray(c2w, np.float32), device=self.device)
        self._check_render_inputs(cams, sequence, background)
        mel = (torch.as_tensor(np.asarray(audio_features, np.float32), device=self.device)
               if self.needs_audio else None)
        per_frame = np.ndim(background) == 4
        shared = None if per_frame else self._float_image(background)
        for i in range(len(sequence)):
            window = condition_windows(sequence, torch.tensor([i], device=self.device), self.window, "edge")[0]
            image = self._float_image(background[i]) if per_frame else shared
            audio = self.audio_window(mel, i) if mel is not None else None
            yield to_uint8(self.render_frame(cams[i], window, image, audio))

    def _float_image(self, image: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(image), device=self.device).float() / 255.0

    def _check_render_inputs(self, c2w: torch.Tensor, landmarks: torch.Tensor, background: np.ndarray) -> None:
        """Fail before rendering, naming what does not fit, instead of deep inside the ray marcher."""
        t = len(c2w)
        if c2w.shape[1:] != (4, 4) or landmarks.shape != (t, 204):
            raise ValueError(f"render_frames needs c2w [T, 4, 4] and landmarks [T, 68, 3] for the same T; got "
                             f"{tuple(c2w.shape)} and {tuple(landmarks.shape)}")
        size = (self.height, self.width, 3)
        shape = tuple(np.shape(background))
        if shape != size and shape != (t, *size):
            raise ValueError(f"background must be uint8 {size} (or one per frame, ({t}, ...)) — the size the "
                             f"renderer was trained at; got {shape}")

    # ---------------------------------------------------------------- validation
    def validation_images(self, batch: dict) -> tuple[torch.Tensor, dict[str, tuple]]:
        """→ (the val render [H, W, 3], {metric name: (pred, target) [H, W, 3]}); a metric of a region
        (the head box) gets the cropped images, or is left out of the dict when the region is empty."""
        raise NotImplementedError

    @staticmethod
    def head_scores(rgb: torch.Tensor, batch: dict) -> dict[str, tuple]:
        """A head stage's val metrics: its head label's bounding box (val/psnr, val/ssim; left out of a
        frame without one), which is what the stage is judged on, and the full frame (val/psnr_full)."""
        target = batch["rgb"]
        scored = {"val/psnr_full": (rgb, target)}
        box = mask_box(batch["head_mask"])                                     # the head's bounding box
        if box is not None:
            scored.update({"val/psnr": (rgb[box], target[box]), "val/ssim": (rgb[box], target[box])})
        return scored

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        rgb, scored = self.validation_images(batch)
        target = batch["rgb"]
        self.log("val/loss", F.mse_loss(rgb, target), batch_size=1)
        for name, (pred, truth) in scored.items():
            self.val_metrics.update(name, pred, truth)
        if batch_idx < self.val_images:
            self.save_render(rgb, target, int(batch["frame"]))

    def on_validation_epoch_end(self) -> None:
        for name, value in self.val_metrics.compute().items():
            self.log(name, value, prog_bar=name == "val/psnr")
        self.val_metrics.reset()

    def save_render(self, rgb: torch.Tensor, target: torch.Tensor, frame: int) -> None:
        """render | ground truth, as a PNG in the run directory's val_renders/ and as an image in
        W&B/TensorBoard."""
        side = to_uint8(torch.cat([rgb, target], 1))                         # [H, 2W, 3]
        out_dir = Path(self.trainer.default_root_dir) / "val_renders"
        out_dir.mkdir(parents=True, exist_ok=True)
        step = self.global_step
        cv2.imwrite(str(out_dir / f"step{step:07d}_frame{frame:06d}.png"), cv2.cvtColor(side, cv2.COLOR_RGB2BGR))
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="val/render", images=[side], caption=[f"frame {frame}: render | truth"],
                                 step=step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(f"val/render_{frame}", side, step, dataformats="HWC")

    # ---------------------------------------------------------------- optimisation
    def param_groups(self) -> list[dict]:
        """The optimiser's parameter groups, each with its lr."""
        raise NotImplementedError

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.param_groups())
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, exponential_decay(self.lr_decay_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class TorsoStage(FrozenNets, RendererStage):
    """Base of the torso stages: a frozen head stage (`self.head_ckpt`, loaded at set-up) is carried in
    every checkpoint, so a torso checkpoint alone renders whole frames. The torso renders at the head's
    camera and condition window, and trains over the speaker's background plate."""

    draws_torso = True
    head_stage: ClassVar[str] = "radnerf"     # the head's stage, named in error messages
    plate: torch.Tensor | None = None         # [H, W, 3] float, the speaker's background plate (fit only)

    @property
    def head(self):
        return self.frozen.get("head")

    @property
    def window(self) -> int:
        return self._head().window

    def setup(self, stage: str) -> None:
        if self.head is None:
            if self.head_ckpt is None:
                raise ValueError("this torso stage needs a trained head: set stage.model.head_ckpt")
            hint = f"\n(the torso is trained under a trained head: train stage={self.head_stage} first)"
            self.carry_upstream("head", self.head_ckpt, hint, stages=(self.head_stage,),
                                role="stage.model.head_ckpt")

    def carry(self, name: str, stage, config: dict) -> None:
        super().carry(name, stage, config)
        if name == "head":                       # the torso renders at its head's camera
            self.intrinsics.copy_(stage.intrinsics)
            self.image_size.copy_(stage.image_size)

    def _head(self):
        if self.head is None:
            raise RuntimeError("no head attached: load the module with geneface.utils.checkpoints.load_stage")
        return self.frozen_on("head", self.device)

    def on_fit_start(self) -> None:
        super().on_fit_start()
        images = getattr(self.trainer.datamodule, "images", None)
        if images is None or not hasattr(images, "plate"):
            raise RuntimeError(f"{type(self).__name__} trains on geneface.data.nerf_datamodule.SpeakerRaysDataModule "
                               "(it reads the speaker's background plate from datamodule.images)")
        if (images.height, images.width) != (self.height, self.width):
            raise ValueError(f"the head was trained on {self.height}×{self.width} frames but this speaker's are "
                             f"{images.height}×{images.width}: point stage.model.head_ckpt at this speaker's head")
        self.plate = torch.from_numpy(np.ascontiguousarray(images.plate)).float().div(255.0).to(self.device)
