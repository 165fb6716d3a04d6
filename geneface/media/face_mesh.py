"""MediaPipe face mesh: 478 landmarks (mesh + irises) per frame, in the contract's pixel convention.

Why MediaPipe: it replaces GeneFace's face_alignment 68-point detector and the BFM fit (reference
§1.7–8), runs at a few ms per 512² frame on a CPU core, and its video mode tracks the face between
frames (steadier than per-frame detection). The 68 iBUG-order points are a fixed subset
(`geneface.data.landmarks.MEDIAPIPE_TO_IBUG68`).

Conventions (docs/data_format.md): x, y in pixels with the origin at the top-left corner of the
top-left pixel (MediaPipe's normalised coordinates × W, × H); z = MediaPipe's relative depth × W,
pixels, +z away from the camera, origin near the face's centre.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from geneface.data.landmarks import NUM_MEDIAPIPE
from geneface.media.images import read_rgb

log = logging.getLogger(__name__)


@dataclass
class FaceDetection:
    """The face kept in one image: the one nearest the previous frame's, else the largest."""

    landmarks: np.ndarray   # [478, 3] float32: x, y pixels; z pixels (MediaPipe z × width)
    num_faces: int          # faces MediaPipe found in the image (≥ 1)
    box_area: float         # landmark bounding-box area of the chosen face, px²


def _face_mesh_module():
    import mediapipe as mp  # imported lazily: heavy, and only processing needs it

    return mp.solutions.face_mesh


class FaceMeshDetector:
    """MediaPipe FaceMesh (refine_landmarks=True → 478 points), keeping one face per image.

    Given the previous frame's landmarks, the face kept is the one whose centre is nearest theirs, so
    with two people in view the track stays on one person (keeping the largest flipped between two of
    similar size dozens of times a second); without, the largest.

    In video mode (the default) MediaPipe tracks the face from frame to frame and only re-runs the
    face detector when tracking is lost: faster and steadier, but frames must be fed in order and a
    detector must not be shared between videos. Use one detector per video, in a `with` block.
    """

    def __init__(self, max_faces: int = 2, video_mode: bool = True, min_detection_confidence: float = 0.5):
        self.video_mode = video_mode
        self._mesh = _face_mesh_module().FaceMesh(
            static_image_mode=not video_mode, max_num_faces=max_faces, refine_landmarks=True,
            min_detection_confidence=min_detection_confidence, min_tracking_confidence=0.5)
        self.frames = 0               # images seen
        self.multi_face_frames = 0    # images where several faces were found
        self.missed_frames = 0        # images without a face

    def detect(self, rgb: np.ndarray, previous: np.ndarray | None = None) -> FaceDetection | None:
        """RGB uint8 [H, W, 3] → the face nearest `previous` ([478, ≥2] landmarks of the face kept in
        the frame before) or, without it, the largest; None when there is no face."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {rgb.dtype} {rgb.shape}")
        height, width = rgb.shape[:2]
        self.frames += 1
        result = self._mesh.process(np.ascontiguousarray(rgb))
        faces = result.multi_face_landmarks or []
        if not faces:
            self.missed_frames += 1
            return None
        candidates = []
        for face in faces:
            lm = np.array([(p.x * width, p.y * height, p.z * width) for p in face.landmark], np.float32)
            span = lm[:, :2].max(0) - lm[:, :2].min(0)
            candidates.append((lm, float(span[0] * span[1])))
        if previous is not None and len(candidates) > 1:
            centre = np.nanmean(previous[:, :2], 0)
            best, best_area = min(candidates, key=lambda c: float(np.linalg.norm(c[0][:, :2].mean(0) - centre)))
        else:
            best, best_area = max(candidates, key=lambda c: c[1])
        if len(faces) > 1:
            self.multi_face_frames += 1
            if self.multi_face_frames == 1:
                rule = "the one nearest the previous frame's" if previous is not None else "the largest"
                warnings.warn(f"{len(faces)} faces in image {self.frames - 1}: keeping {rule} "
                              "(the count of such images is logged on close())", stacklevel=2)
        assert best.shape == (NUM_MEDIAPIPE, 3), best.shape
        return FaceDetection(best, len(faces), best_area)

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None
            if self.multi_face_frames:
                log.warning("face mesh: several faces in %d of %d images; kept one face, tracked from frame "
                            "to frame",
                            self.multi_face_frames, self.frames)

    def __enter__(self) -> "FaceMeshDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def detect_frames(frames: Iterable[np.ndarray], **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """A video's RGB frames, in order → (landmarks478 [T, 478, 3] float32, zeros where missing;
    valid [T] bool). Video mode unless `video_mode=False` is passed."""
    out, valid = [], []
    with FaceMeshDetector(**kwargs) as detector:
        for rgb in frames:
            face = detector.detect(rgb)
            valid.append(face is not None)
            out.append(face.landmarks if face is not None else np.zeros((NUM_MEDIAPIPE, 3), np.float32))
    return np.stack(out) if out else np.zeros((0, NUM_MEDIAPIPE, 3), np.float32), np.array(valid, bool)


def detect_images(paths_or_arrays: Iterable[str | Path | np.ndarray], **kwargs) -> list[FaceDetection | None]:
    """Still images (paths or RGB uint8 arrays), each on its own (static mode) → one result each."""
    kwargs.setdefault("video_mode", False)
    with FaceMeshDetector(**kwargs) as detector:
        return [detector.detect(x if isinstance(x, np.ndarray) else read_rgb(x)) for x in paths_or_arrays]
