"""LMD (landmark distance): how far the generated mouth shapes are from the real ones, in pixels.

Definition (docs/evaluation.md): mouth landmarks (iBUG 68-point indices 48–67) detected on the
generated frame and on the ground-truth frame with the same detector, each set centred on its own mean
(so head position does not count, only mouth shape), mean Euclidean pixel distance over the 20 points,
averaged over frames. Frames where either side has no face are left out and reported as detection
rates. The value is in pixels of the frames given: compare at 512² (the anchors' resolution).

Detector: MediaPipe face mesh (geneface.media.face_mesh), its 68-point iBUG subset; each sequence gets
its own detector in video mode (tracking), as processing does.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from geneface.data.landmarks import MEDIAPIPE_TO_IBUG68, MOUTH

__all__ = ["MOUTH_MEDIAPIPE", "detect_mouth_landmarks", "landmark_distance", "lmd_from_frames"]

# MediaPipe indices of iBUG points 48–67 (outer then inner lips).
MOUTH_MEDIAPIPE: tuple[int, ...] = tuple(MEDIAPIPE_TO_IBUG68[k] for k in MOUTH)


def detect_mouth_landmarks(frames: Iterable[np.ndarray], video_mode: bool = True) -> np.ndarray:
    """RGB uint8 [H, W, 3] frames, in order → float64 [T, 20, 2] mouth points (x, y pixels).

    Rows are NaN where no face was found. video_mode: MediaPipe tracks between frames (the frames must
    be one sequence); False detects each frame on its own.
    """
    from geneface.media.face_mesh import FaceMeshDetector

    rows = []
    with FaceMeshDetector(video_mode=video_mode) as detector:
        for frame in frames:
            face = detector.detect(np.asarray(frame))
            if face is None:
                rows.append(np.full((len(MOUTH), 2), np.nan))
            else:
                rows.append(face.landmarks[list(MOUTH_MEDIAPIPE), :2].astype(np.float64))      # [20, 2]
    return np.stack(rows) if rows else np.zeros((0, len(MOUTH), 2))


def _valid(points: np.ndarray) -> np.ndarray:
    return np.isfinite(points).all(axis=(1, 2))                                          # [T]


def _check(points: np.ndarray, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[1:] != (len(MOUTH), 2):
        raise ValueError(f"{name} must be mouth landmarks [T, {len(MOUTH)}, 2] (detect_mouth_landmarks); "
                         f"got shape {list(points.shape)}")
    return points


def landmark_distance(pred: np.ndarray, real: np.ndarray) -> float:
    """LMD between [T, 20, 2] predicted and real mouth points (NaN rows = no face): pixels.

    Each frame's set is centred on its own mean; the per-frame value is the mean Euclidean distance over
    the 20 points; the result averages frames where both sides were detected. ValueError when lengths
    differ or no frame has both.
    """
    pred, real = _check(pred, "pred"), _check(real, "real")
    if len(pred) != len(real):
        raise ValueError(f"pred has {len(pred)} frames and real has {len(real)}; LMD compares frame i with "
                         "frame i, so pass sequences of the same length (cut the longer one)")
    both = _valid(pred) & _valid(real)                                                   # [T]
    if not both.any():
        raise ValueError(f"no frame has a face in both sequences (0 of {len(pred)} frames; faces found in "
                         f"{int(_valid(pred).sum())} generated and {int(_valid(real).sum())} real frames): "
                         "check that the frames show a face, as uint8 RGB")
    p, r = pred[both], real[both]                                                         # [N, 20, 2]
    p = p - p.mean(axis=1, keepdims=True)
    r = r - r.mean(axis=1, keepdims=True)
    return float(np.linalg.norm(p - r, axis=-1).mean(axis=1).mean())


def lmd_from_frames(generated: Iterable[np.ndarray], real: Iterable[np.ndarray]) -> dict:
    """LMD between two frame sequences of the same length and resolution (RGB uint8 [H, W, 3] each).

    Returns {lmd, frames_compared, detection_rate_generated, detection_rate_real}.
    """
    if hasattr(generated, "__len__") and hasattr(real, "__len__") and len(generated) != len(real):
        raise ValueError(f"generated has {len(generated)} frames and real has {len(real)}; "
                         "pass sequences of the same length")
    pred = detect_mouth_landmarks(generated)                                              # [T, 20, 2]
    gt = detect_mouth_landmarks(real)
    if len(pred) == 0 or len(gt) == 0:
        raise ValueError(f"no frames to compare ({len(pred)} generated, {len(gt)} real)")
    value = landmark_distance(pred, gt)
    return dict(lmd=value, frames_compared=int((_valid(pred) & _valid(gt)).sum()),
                detection_rate_generated=float(_valid(pred).mean()),
                detection_rate_real=float(_valid(gt).mean()))
