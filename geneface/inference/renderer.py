"""Which renderer a checkpoint holds, behind one protocol used by inference and evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from geneface.utils.checkpoints import load_stage


class FrameRenderer(Protocol):
    height: int
    width: int

    def render_frames(self, c2w: np.ndarray, landmarks: np.ndarray, background: np.ndarray,
                      batch_frames: int = 1) -> Iterator[np.ndarray]:
        """c2w [T, 4, 4], normalised idexp landmarks [T, 68, 3], uint8 background [H, W, 3] →
        uint8 [H, W, 3] RGB frames, one per input frame."""


def load_renderer(ckpt: str | Path, device: str = "cpu") -> FrameRenderer:
    """A renderer stage's checkpoint (radnerf, radnerf_torso, nerf, nerf_torso) → a renderer on `device`."""
    module = load_stage(ckpt)
    if not hasattr(module, "render_frames"):
        raise ValueError(f"{ckpt} holds a {type(module).__name__}, not a renderer stage "
                         f"(radnerf, radnerf_torso, nerf or nerf_torso)")
    return module.to(device)
