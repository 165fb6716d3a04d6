"""Still images in and out of the RGB convention (uint8 [H, W, 3]) every array in geneface uses."""

from __future__ import annotations

import os

import cv2
import numpy as np

__all__ = ["read_rgb"]


def read_rgb(path: str | os.PathLike, hint: str | None = None) -> np.ndarray:
    """An image file (jpg, png …) as RGB uint8 [H, W, 3]; FileNotFoundError naming it when it is missing
    or cannot be decoded, followed by `hint` (what to do) when given."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path} (missing or corrupt)" + (f"; {hint}" if hint else ""))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
