"""Streaming estimate of the static background plate (GeneFace's bc.jpg), O(H·W) memory.

The reference samples every 20th frame, keeps for each pixel the colour of the frame in which the
pixel lies farthest from any person pixel, trusts pixels whose largest distance exceeds 5 px, and
copies the nearest trusted colour everywhere else. We stream the same idea with one change: rather
than one frame's colour, each pixel keeps a running mean weighted by its distance to the person,

    weight = clip((dist − reliable_px) / ramp_px, 0, 1)²,

so pixels far from the person average many frames (less JPEG noise and flicker than one frame),
while pixels that are only ever near the person still take their colour from the frames in which
they were farthest from it (hair wisps and the segmentation's soft edge stay out). Pixels whose
largest distance never exceeded `reliable_px` are not "seen"; `result()` fills them (e.g. behind
the torso) from the seen ones with a smooth pull-push interpolation, see `fill_unseen`.
State: three float32 H×W planes, whatever the number of frames.
"""

from __future__ import annotations

import cv2
import numpy as np


class BackgroundEstimator:
    """Feed frames with their background masks; read the plate and where it was seen.

    The caller may subsample (the speaker pipeline passes every k-th frame) or pass every frame and
    set `every` to have the estimator keep every `every`-th call.
    """

    def __init__(self, height: int, width: int, every: int = 1, reliable_px: float = 5.0,
                 ramp_px: float = 10.0):
        self.height, self.width = int(height), int(width)
        self.every, self.reliable_px, self.ramp_px = max(int(every), 1), float(reliable_px), float(ramp_px)
        self._calls = 0
        self.num_updates = 0
        self._max_dist = np.zeros((self.height, self.width), np.float32)     # [H, W] px
        self._weight = np.zeros((self.height, self.width), np.float32)       # [H, W] Σ weight
        self._colour = np.zeros((self.height, self.width, 3), np.float32)    # [H, W, 3] Σ weight·rgb

    def update(self, rgb: np.ndarray, background_mask: np.ndarray) -> None:
        """rgb [H, W, 3] uint8, background_mask [H, W] bool (True where no person)."""
        self._calls += 1
        if (self._calls - 1) % self.every:
            return
        if rgb.shape != (self.height, self.width, 3) or background_mask.shape != (self.height, self.width):
            raise ValueError(f"expected [{self.height}, {self.width}, 3] and [{self.height}, {self.width}], "
                             f"got {rgb.shape} and {background_mask.shape}")
        mask = np.ascontiguousarray(background_mask, dtype=bool).view(np.uint8)
        if mask.all():   # no person at all: distances are infinite; treat as far from everyone
            dist = np.full(mask.shape, self.reliable_px + self.ramp_px, np.float32)
        else:            # distance of each background pixel to the nearest person pixel, 0 on the person
            dist = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        np.maximum(self._max_dist, dist, out=self._max_dist)
        w = np.clip((dist - self.reliable_px) * (1.0 / self.ramp_px), 0.0, 1.0)
        w *= w                                                                # [H, W]
        self._weight += w
        # Σ w·rgb via cv2 (one pass, float32): accumulateProduct adds src1·src2 to dst.
        cv2.accumulateProduct(rgb.astype(np.float32), cv2.merge([w, w, w]), self._colour)
        self.num_updates += 1

    def seen(self) -> np.ndarray:
        """[H, W] bool: pixels that were at least `reliable_px` from the person in some frame."""
        return (self._max_dist > self.reliable_px) & (self._weight > 0)

    def result(self, fill_radius: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
        """→ (plate [H, W, 3] uint8 RGB, seen [H, W] bool). Unseen pixels are filled from seen ones."""
        seen = self.seen()
        plate = np.zeros((self.height, self.width, 3), np.uint8)
        if not seen.any():
            return plate, seen
        mean = self._colour[seen] / self._weight[seen][:, None]
        plate[seen] = np.clip(np.rint(mean), 0, 255).astype(np.uint8)
        if not seen.all():
            # Fill from pixels seen well clear of the person: the rim of `seen` still holds hair wisps.
            clear = self._max_dist > 2 * self.reliable_px
            plate = fill_unseen(plate, seen, fill_radius, clear if clear.any() else None)
        return plate, seen


def fill_unseen(plate: np.ndarray, seen: np.ndarray, radius: float = 5.0,
                source: np.ndarray | None = None) -> np.ndarray:
    """Fill plate [H, W, 3] uint8 where ~seen [H, W] with a smooth pull-push interpolation.

    The reference copies the nearest seen colour, which smears radial streaks (and any hair wisp at
    the rim) across the hole; cv2.inpaint does much the same on holes this large and is slow. Here a
    mask-weighted image pyramid is built down to 1 px and pulled back up: every hole pixel gets the
    average of the seen colours around it at the finest scale that has any, blended smoothly across
    scales. O(H·W). `radius` (px) is a bit of feathering at the hole's edge. `source` [H, W] bool
    (default `seen`) names the pixels the fill may copy from.
    """
    source = seen if source is None else source & seen
    img = plate.astype(np.float32) * source[..., None]
    weight = source.astype(np.float32)
    levels = [(img, weight)]
    while min(levels[-1][1].shape) > 1:
        c, w = levels[-1]
        size = (max(c.shape[1] // 2, 1), max(c.shape[0] // 2, 1))
        levels.append((cv2.resize(c, size, interpolation=cv2.INTER_AREA),
                       cv2.resize(w, size, interpolation=cv2.INTER_AREA)))
    c, w = levels[-1]
    out = c / np.maximum(w, 1e-8)[..., None]
    for c, w in reversed(levels[:-1]):                   # coarse → fine
        up = cv2.resize(out, (c.shape[1], c.shape[0]), interpolation=cv2.INTER_LINEAR)
        known = np.clip(w * 4.0, 0.0, 1.0)[..., None]    # a block ≥ ¼ seen is trusted at this scale
        out = known * (c / np.maximum(w, 1e-8)[..., None]) + (1.0 - known) * up
    if radius > 0:   # feather: soften the fill next to the rim, keep the seen pixels exact
        out = cv2.GaussianBlur(out, (0, 0), radius / 2)
    filled = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return np.where(seen[..., None], plate, filled)
