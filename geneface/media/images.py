"""Still images in and out of the RGB convention (uint8 [H, W, 3]) every array in geneface uses."""

from __future__ import annotations

import os

from pathlib import Path

import cv2
import numpy as np

from geneface.utils.io import atomic_path

__all__ = ["read_rgb", "write_rgb"]


def read_rgb(path: str | os.PathLike, hint: str | None = None) -> np.ndarray:
    """An image file (jpg, png …) as RGB uint8 [H, W, 3]; FileNotFoundError naming it when it is missing
    or cannot be decoded, followed by `hint` (what to do) when given."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path} (missing or corrupt)" + (f"; {hint}" if hint else ""))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_rgb(path: str | os.PathLike, image: np.ndarray) -> None:
    """RGB uint8 [H, W, 3] → an image file whose format its suffix names (.png, .jpg), written atomically
    (a reader never sees half an image)."""
    suffix = Path(path).suffix or ".png"
    ok, data = cv2.imencode(suffix, cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cannot encode an image as {suffix} for {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
