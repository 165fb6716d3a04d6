"""What inference and evaluation need of a renderer, and how to get one from a checkpoint.

The renderer stages implement it in geneface/stages/renderer.py; this module only reads checkpoints,
so inference never imports a stage by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from geneface.utils.checkpoints import RENDERER_STAGES, load_stage


class FrameRenderer(Protocol):
    height: int
    width: int
    needs_audio: bool      # render_frames reads audio_features (the driving mel [2T, 80])
    draws_torso: bool      # False: a head alone, composited over what it is given as background

    def render_frames(self, c2w: np.ndarray, landmarks: np.ndarray, background: np.ndarray,
                      audio_features: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """c2w [T, 4, 4], normalised idexp landmarks [T, 68, 3], uint8 background [H, W, 3] (or one per
        frame, [T, H, W, 3]), the mel [2T, 80] → uint8 [H, W, 3] RGB frames, one per input frame."""

    def source_cameras(self, c2w: np.ndarray) -> np.ndarray:
        """The speaker video's cameras [T, 4, 4] (its c2w.npy) as this renderer was trained on them: with
        its learnt pose corrections applied to the training frames, where it has any."""


def load_renderer(ckpt: str | Path, device: str = "cpu") -> FrameRenderer:
    """A renderer stage's checkpoint (radnerf, radnerf_torso, nerf, nerf_torso) → a renderer on `device`."""
    return load_stage(ckpt, stages=RENDERER_STAGES, role="the renderer checkpoint").to(device)
