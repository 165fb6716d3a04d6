"""Driving cameras for inference: the source video's tracked camera path, smoothed and looped.

Why: tracked poses jitter from frame to frame (tracking noise shows as head shake in the render), and
GeneFace indexes the source cameras by output frame, so audio longer than the source video ran off the
end and crashed (reference §9 step 3, quirk). Here the path is smoothed as GeneFace does (a centred
7-frame moving average of translation and a rotation mean) and then played forward and backward
(ping-pong: no jump at the seam) for as long as the audio lasts.

c2w is the speaker dataset's camera-to-head-world [T, 4, 4] (docs/data_format.md); numpy only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["smooth_camera_path", "loop_indices", "driving_cameras", "project_to_rotation"]


def _check_c2w(c2w: np.ndarray) -> np.ndarray:
    c2w = np.asarray(c2w)
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or c2w.shape[0] < 1:
        raise ValueError(f"c2w must be [T, 4, 4] with T ≥ 1 (the speaker dataset's c2w.npy); "
                         f"got shape {list(c2w.shape)}")
    bad = np.flatnonzero(~np.isfinite(c2w).all(axis=(1, 2)))
    if bad.size:
        raise ValueError(f"c2w has NaN or infinite values in frames {bad[:10].tolist()}"
                         f"{' …' if bad.size > 10 else ''}; re-run pose tracking for this speaker")
    return c2w


def project_to_rotation(matrix: np.ndarray) -> np.ndarray:
    """[..., 3, 3] → the nearest rotation (Frobenius norm): U · diag(1, 1, det(U Vᵀ)) · Vᵀ."""
    u, _, vt = np.linalg.svd(matrix)
    det = np.sign(np.linalg.det(u @ vt))                                   # [...]
    det = np.where(det == 0, 1.0, det)
    u = u.copy()
    u[..., :, 2] *= det[..., None]                                         # a reflection → a rotation
    return u @ vt


def smooth_camera_path(c2w: np.ndarray, window: int = 7) -> np.ndarray:
    """[T, 4, 4] → [T, 4, 4]: each frame's translation and rotation averaged over a centred window.

    Frame i averages frames max(0, i − h) … min(T − 1, i + h), h = window // 2 (the window shrinks at
    the ends, as in GeneFace's RAD-NeRF `smooth_camera_path`). Translation: the arithmetic mean.
    Rotation: the chordal L2 mean (mean of the matrices projected back onto SO(3) with an SVD), which
    for the small spread of a tracked head equals scipy's `Rotation.mean` to well below tracking noise.
    The bottom row is kept; the dtype is kept (computed in float64). window = 1 or T = 1: a copy.
    """
    c2w = _check_c2w(c2w)
    window = int(window)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number of frames (centred on each frame); got {window}")
    half, count = window // 2, len(c2w)
    if half == 0 or count == 1:
        return c2w.copy()
    poses = c2w.astype(np.float64)
    # Prefix sums → every window's sum in O(T): [T + 1, 3] and [T + 1, 3, 3].
    trans = np.concatenate([np.zeros((1, 3)), np.cumsum(poses[:, :3, 3], axis=0)])
    rots = np.concatenate([np.zeros((1, 3, 3)), np.cumsum(poses[:, :3, :3], axis=0)])
    index = np.arange(count)
    start, stop = np.maximum(index - half, 0), np.minimum(index + half + 1, count)     # [T]
    size = (stop - start).astype(np.float64)                                          # [T]
    out = poses.copy()
    out[:, :3, 3] = (trans[stop] - trans[start]) / size[:, None]
    out[:, :3, :3] = project_to_rotation((rots[stop] - rots[start]) / size[:, None, None])
    return out.astype(c2w.dtype if np.issubdtype(c2w.dtype, np.floating) else np.float64)


def loop_indices(num_source: int, num_frames: int) -> np.ndarray:
    """Source frame for each of `num_frames` output frames, ping-pong: 0, 1, …, T−1, T−2, …, 0, 1, …

    Audio longer than the source video never fails, and the path never jumps. T == 1 → all zeros.
    Returns int64 [num_frames].
    """
    num_source, num_frames = int(num_source), int(num_frames)
    if num_source < 1:
        raise ValueError(f"num_source must be ≥ 1 (the source video's frame count); got {num_source}")
    if num_frames < 0:
        raise ValueError(f"num_frames must be ≥ 0; got {num_frames}")
    if num_source == 1:
        return np.zeros(num_frames, dtype=np.int64)
    period = 2 * (num_source - 1)
    phase = np.arange(num_frames, dtype=np.int64) % period
    return np.where(phase < num_source, phase, period - phase)


def driving_cameras(c2w_source: np.ndarray, num_frames: int, window: int = 7) -> np.ndarray:
    """The cameras for `num_frames` output frames: smooth_camera_path, then ping-pong over it.

    [T, 4, 4] → [num_frames, 4, 4]; output frame i starts from source frame 0 (as GeneFace does).
    """
    smooth = smooth_camera_path(c2w_source, window)
    return smooth[loop_indices(len(smooth), num_frames)]
