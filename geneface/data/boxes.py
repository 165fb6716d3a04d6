"""Face and lip boxes from image landmarks, as GeneFace computes them (reference §1.9)."""

from __future__ import annotations

import numpy as np

# The lip box grown by half its side each way: the lips and what moves with them (the chin's top, the
# cheeks' corners). The head stage samples its lip rays there and evaluation scores the mouth there.
LIP_BOX_GROW = 0.5


def face_rect(lm68: np.ndarray, width: int, height: int) -> np.ndarray:
    """GeneFace's face box from image landmarks [T, 68, ≥2] → x, y, w, h [T, 4] int32, in the image.

    Centre x = middle of the x range, centre y = y of point 27; half-width 1.5·(max x − centre x),
    half-height 1.15·(y of point 8 − centre y).
    """
    xs, ys = lm68[..., 0], lm68[..., 1]
    cx, cy = (xs.min(1) + xs.max(1)) / 2, ys[:, 27]
    hw, hh = 1.5 * (xs.max(1) - cx), 1.15 * (ys[:, 8] - cy)
    return _clipped_box(cx - hw, cy - hh, cx + hw, cy + hh, width, height)


def lip_rect(lm68: np.ndarray, width: int, height: int) -> np.ndarray:
    """GeneFace's square lip box (side = the larger extent of points 48–59) → x, y, w, h [T, 4] int32."""
    lips = lm68[:, 48:60, :2]
    lo, hi = lips.min(1), lips.max(1)                                   # [T, 2]
    centre, half = (lo + hi) / 2, (hi - lo).max(1) / 2
    return _clipped_box(centre[:, 0] - half, centre[:, 1] - half, centre[:, 0] + half, centre[:, 1] + half,
                        width, height)


def _clipped_box(x0, y0, x1, y1, width: int, height: int) -> np.ndarray:
    x0, y0 = np.clip(np.floor(x0), 0, width - 1), np.clip(np.floor(y0), 0, height - 1)
    x1, y1 = np.clip(np.ceil(x1), x0 + 1, width), np.clip(np.ceil(y1), y0 + 1, height)
    return np.stack([x0, y0, x1 - x0, y1 - y0], 1).astype(np.int32)


def grown_box(rect, grow: float, width: int, height: int) -> tuple[slice, slice]:
    """A box (x, y, w, h) grown by `grow`·size on each side and clipped to the image → (rows, cols)
    slices, never empty."""
    x, y, w, h = (float(v) for v in rect)
    x, y, w, h = x - grow * w, y - grow * h, w * (1 + 2 * grow), h * (1 + 2 * grow)
    x0, y0 = min(max(int(x), 0), width - 1), min(max(int(y), 0), height - 1)
    x1, y1 = max(min(int(round(x + w)), width), x0 + 1), max(min(int(round(y + h)), height), y0 + 1)
    return slice(y0, y1), slice(x0, x1)
