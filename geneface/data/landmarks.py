"""Landmark index semantics: MediaPipe's 478-point face mesh and its 68-point iBUG-order subset.

iBUG order is the one of dlib / face_alignment / GeneFace's BFM keypoints: 0–16 jaw (subject's
right to left), 17–21 right brow, 22–26 left brow, 27–30 nose bridge, 31–35 nose base, 36–41 right
eye, 42–47 left eye, 48–59 outer lips, 60–67 inner lips. "Right" is the subject's right, which is
the image's left in a frontal view. MediaPipe's indices 468–477 are the irises.
"""

from __future__ import annotations

import numpy as np

from geneface.data.contract import IDEXP_SCALE

# MEDIAPIPE_TO_IBUG68[k] is the MediaPipe index of iBUG point k.
MEDIAPIPE_TO_IBUG68: tuple[int, ...] = (
    # jaw 0–16
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
    # right brow 17–21, left brow 22–26
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # nose bridge 27–30, nose base 31–35
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    # right eye 36–41, left eye 42–47
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    # outer lips 48–59, inner lips 60–67
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91, 78, 81, 13, 311, 308, 402, 14, 178,
)
assert len(MEDIAPIPE_TO_IBUG68) == 68 and len(set(MEDIAPIPE_TO_IBUG68)) == 68

NUM_MEDIAPIPE = 478
NUM_IBUG = 68

JAW = tuple(range(0, 17))
BROWS = tuple(range(17, 27))
NOSE = tuple(range(27, 36))
EYES = tuple(range(36, 48))
MOUTH = tuple(range(48, 68))  # the 20 points SyncNet watches
EXPRESSION_MOVED = BROWS + EYES + JAW[3:14] + MOUTH   # what talking moves: brows, lids, lower jaw, lips
# Points that move with the skull, not with expression: eye corners, nose, upper jaw contour.
RIGID = (0, 1, 2, 14, 15, 16, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)


def ibug68_from_mediapipe(landmarks478: np.ndarray) -> np.ndarray:
    """[..., 478, C] → [..., 68, C] in iBUG order."""
    return landmarks478[..., list(MEDIAPIPE_TO_IBUG68), :]


def mouth_points(landmarks68: np.ndarray) -> np.ndarray:
    """[..., 68, 3] → [..., 20, 3], points 48–67."""
    return landmarks68[..., MOUTH[0] : MOUTH[-1] + 1, :]


INNER_LIP_TOP, INNER_LIP_BOTTOM = 62, 66      # the inner lips' middle points
MOUTH_CORNERS = (48, 54)                      # the outer lips' corners (subject's right, left)
EYE_OUTER_CORNERS = (36, 45)


def inner_lip_aperture(landmarks68: np.ndarray) -> np.ndarray:
    """How open the mouth is: [..., 68, ≥2] → [...], the inner-lip gap (62↔66) over the eye span (36↔45),
    so it reads the same at any face size or distance (x, y only; NaN in, NaN out)."""
    points = np.asarray(landmarks68, np.float64)[..., :2]
    gap = np.linalg.norm(points[..., INNER_LIP_TOP, :] - points[..., INNER_LIP_BOTTOM, :], axis=-1)
    span = np.linalg.norm(points[..., EYE_OUTER_CORNERS[0], :] - points[..., EYE_OUTER_CORNERS[1], :], axis=-1)
    return gap / np.maximum(span, 1e-9)


# The renderers' condition is the idexp landmarks normalised per point and axis by the speaker's own
# statistics (idexp_lm3d_mean/std.npy). Training and inference both go through these two functions,
# so a landmark means the same to a renderer whether it came from the video or from audio.
STD_FLOOR = 1e-6     # a point that never moves (std 0 in a synthetic or frozen clip) stays finite


def absolute_landmarks(idexp: np.ndarray, mean_shape: np.ndarray) -> np.ndarray:
    """[..., 68, 3] raw idexp_lm3d + [68, 3] neutral face → [..., 68, 3] head-frame landmarks
    (idexp = IDEXP_SCALE·(points − mean_shape))."""
    return np.asarray(mean_shape) + np.asarray(idexp) / IDEXP_SCALE


def normalize_idexp(idexp: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """idexp [..., 68, 3] → float32 (idexp − mean) / max(std, STD_FLOOR)."""
    return ((np.asarray(idexp, np.float32) - mean) / np.maximum(std, STD_FLOOR)).astype(np.float32)


def denormalize_idexp(normalised: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The inverse of normalize_idexp: [..., 68, 3] → float32 idexp."""
    return (np.asarray(normalised, np.float32) * np.maximum(std, STD_FLOOR) + mean).astype(np.float32)
