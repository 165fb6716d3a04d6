"""Image-quality scores shared by the renderer stages' validation and `geneface.evaluate`.

PSNR and SSIM are torchmetrics' (data range 1). Both places score the same regions of a frame: the
full frame and the bounding box of a label mask (the HEAD pixels of the real frame), so a number in a
training log and one in an evaluation table mean the same thing.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

__all__ = ["mask_box", "as_batch", "image_metric", "ImageMetrics", "ImageScores", "PSNR_CAP"]

PSNR_CAP = 100.0    # dB: identical frames give +inf, which JSON cannot hold
SSIM_MIN_SIDE = 11  # px: torchmetrics' SSIM window; a smaller region gets PSNR only


def mask_box(mask: Tensor, margin: int = 4) -> tuple[slice, slice] | None:
    """Bounding box (rows, cols) of a [H, W] bool mask grown by `margin` pixels, or None when empty."""
    rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
    if len(rows) == 0:
        return None
    h, w = mask.shape
    return (slice(max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, h)),
            slice(max(int(cols[0]) - margin, 0), min(int(cols[-1]) + margin + 1, w)))


def as_batch(image: Tensor) -> Tensor:
    """[H, W, 3] float in [0, 1] (or uint8) → [1, 3, H, W] float clamped to [0, 1], as torchmetrics wants."""
    if image.dtype == torch.uint8:
        image = image.float() / 255
    return image.permute(2, 0, 1)[None].clamp(0, 1)


def image_metric(name: str) -> nn.Module:
    """The torchmetrics metric a score's name asks for: SSIM when it names ssim, else PSNR."""
    if "ssim" in name:
        return StructuralSimilarityIndexMeasure(data_range=1.0)
    return PeakSignalNoiseRatio(data_range=1.0)


class ImageMetrics(nn.Module):
    """Named PSNR/SSIM accumulators over a sequence of frames; `update(name, pred, target)` takes
    [H, W, 3] images; `compute()` gives {name: value} for the names that were updated."""

    def __init__(self, names: tuple[str, ...] | list[str]):
        super().__init__()
        self.names = tuple(names)
        # ModuleDict keys cannot hold '.', and '/' reads badly in a state dict: val/psnr → val_psnr
        self.metrics = nn.ModuleDict({self._key(n): image_metric(n) for n in self.names})

    @staticmethod
    def _key(name: str) -> str:
        return name.replace("/", "_").replace(".", "_")

    def update(self, name: str, pred: Tensor, target: Tensor) -> None:
        self.metrics[self._key(name)].update(as_batch(pred), as_batch(target))

    def compute(self) -> dict[str, float]:
        return {n: float(m.compute()) for n, m in ((n, self.metrics[self._key(n)]) for n in self.names)
                if m.update_count}

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()


class ImageScores:
    """PSNR and SSIM over a sequence, on the real frame's head box, on its mouth box (when given) and on
    the full frame (the same regions and metrics as the renderer stages' validation: mask_box and
    ImageMetrics above)."""

    NAMES = ("psnr_head", "ssim_head", "psnr_mouth", "ssim_mouth", "psnr_full", "ssim_full")

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.metrics = ImageMetrics(self.NAMES).to(self.device)

    def update(self, frame: np.ndarray, real: np.ndarray, head_mask: np.ndarray,
               mouth_box: tuple[slice, slice] | None = None) -> None:
        """uint8 [H, W, 3] generated and real frames, bool [H, W] HEAD pixels of the real frame, the
        (rows, cols) of its mouth (geneface.data.boxes.grown_box of the lip box)."""
        pred, target = self._tensor(frame), self._tensor(real)                              # [H, W, 3]
        for name in ("psnr_full", "ssim_full"):
            self.metrics.update(name, pred, target)
        regions = {"head": mask_box(torch.from_numpy(head_mask)), "mouth": mouth_box}
        for region, box in regions.items():
            if box is None:
                continue
            self.metrics.update(f"psnr_{region}", pred[box], target[box])
            if min(pred[box].shape[:2]) >= SSIM_MIN_SIDE:
                self.metrics.update(f"ssim_{region}", pred[box], target[box])

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image)).to(self.device)               # [H, W, 3] uint8

    def compute(self) -> dict[str, float | None]:
        values = self.metrics.compute()
        out = {}
        for name in self.metrics.names:
            value = values.get(name)
            out[name] = min(value, PSNR_CAP) if value is not None and name.startswith("psnr") else value
        return out
