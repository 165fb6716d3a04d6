"""Render a 3D landmark sequence (raw idexp_lm3d) and its audio into an mp4, to check motion by eye.

The port of GeneFace's `utils/visualization/lm_visualizer.py`, used to look at a postnet checkpoint's
prediction before rendering it with a NeRF:

* Input: raw idexp_lm3d, i.e. 10 × (head-frame landmarks − mean_shape), as [T, 204], [T, 68, 3] or
  GeneFace's `pred_lm3d/*.npy` layout [1, T, 204]. Absolute landmarks are mean_shape + idexp / 10.
  `mean_shape` is the speaker's neutral face (a speaker dataset directory, or a [68, 3] npy); without
  one, GENERIC_MEAN_SHAPE is used: the synthetic head's default face (geneface.data.face_shape,
  FaceShape() at mouth opening 0), a canonical face in head units that only approximates a real
  speaker's proportions (real eyes sit higher, for example); the motion drawn on it is exact.
* Views: orthographic. The front view draws head-frame (x, y) directly as image (right, down); the
  optional side view draws (−z, y), so the nose points right. One fixed scale and centre for the whole
  sequence (and for both views), fitted to the canvas, so motion shows as motion.
* Colours (RGB, the order frames are piped to ffmpeg in): mouth 48–67 green, eyes 36–47 red, the rest
  (jaw, brows, nose) blue, as filled circles on white; optional grey lines along each region's contour
  and optional point indices.
* Output: 25 fps H.264 yuv420p mp4 with the audio (16 kHz mono, as load_audio decodes it) as AAC,
  trimmed to the shorter of the two (here, before encoding); frames are rendered one at a time and
  streamed through geneface.media.mp4.write_mp4 (written under a temporary name, renamed when complete).
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from geneface.data.contract import FPS, SAMPLE_RATE
from geneface.data.face_shape import FaceShape, landmarks68
from geneface.data.landmarks import BROWS, EYES, JAW, MOUTH, NOSE, absolute_landmarks
from geneface.media.audio import load_audio, write_wav
from geneface.media.errors import ProcessingError
from geneface.media.mp4 import write_mp4

__all__ = ["RenderOptions", "Layout", "LandmarkInputError", "GENERIC_MEAN_SHAPE", "MOUTH_RGB", "EYES_RGB",
           "OTHER_RGB", "load_idexp", "load_mean_shape", "absolute_landmarks", "fit_layout", "render_frame",
           "iter_rendered_frames", "write_landmarks_video", "default_out_path"]

MOUTH_RGB = (0, 190, 0)
EYES_RGB = (220, 0, 0)
OTHER_RGB = (0, 0, 220)
LINE_RGB = (170, 170, 170)
TEXT_RGB = (60, 60, 60)
VIEWS = ("front", "side")
ACCEPTED_SHAPES = "[T, 204], [T, 68, 3] or GeneFace's [1, T, 204] (raw idexp_lm3d, T ≥ 1)"

# Open polylines and closed loops along each region (iBUG order).
CONTOURS: tuple[tuple[tuple[int, ...], bool], ...] = (
    (JAW, False), (BROWS[:5], False), (BROWS[5:], False), (NOSE[:4], False), (NOSE[4:], False),
    ((30, 33), False), (EYES[:6], True), (EYES[6:], True), (MOUTH[:12], True), (MOUTH[12:], True),
)


def _generic_mean_shape() -> np.ndarray:
    return landmarks68(FaceShape(), 0.0).astype(np.float32)          # [68, 3], head units


GENERIC_MEAN_SHAPE: np.ndarray = _generic_mean_shape()


class LandmarkInputError(ProcessingError):
    """A landmark or mean-shape file that the visualizer cannot use."""


@dataclass(frozen=True)
class RenderOptions:
    """How frames look. size: each view is size × size pixels (rounded up to even for yuv420p)."""

    size: int = 512
    views: Sequence[str] = ("front",)
    radius: int = 3
    lines: bool = True
    indices: bool = False
    margin: float = 0.08           # fraction of the canvas left empty around the sequence's bounds

    def __post_init__(self) -> None:
        views = tuple(self.views)
        if not views or any(v not in VIEWS for v in views):
            raise ValueError(f"views must be a non-empty list of {list(VIEWS)}; got {list(views)}")
        if int(self.size) < 16:
            raise ValueError(f"size must be ≥ 16 pixels; got {self.size}")
        if not 0.0 <= float(self.margin) < 0.5:
            raise ValueError(f"margin must be in [0, 0.5); got {self.margin}")
        object.__setattr__(self, "views", views)
        object.__setattr__(self, "size", int(self.size) + int(self.size) % 2)


@dataclass(frozen=True)
class Layout:
    """Head units → pixels, fixed for a whole sequence: pixel = (v − centre) · scale + size / 2."""

    size: int
    scale: float                    # pixels per head unit, the same in every view
    centre_front: tuple[float, float]   # (x, y) centre of the sequence's bounds
    centre_side: tuple[float, float]    # (−z, y)

    def to_pixels(self, points: np.ndarray, view: str) -> np.ndarray:
        """[N, 3] head-frame points → [N, 2] float pixel (column, row) in one view's canvas."""
        uv = points[:, :2] if view == "front" else np.stack([-points[:, 2], points[:, 1]], 1)
        centre = np.asarray(self.centre_front if view == "front" else self.centre_side)
        return (uv - centre) * self.scale + self.size / 2.0


def _fail(path, problem: str, fix: str | None = None) -> LandmarkInputError:
    return LandmarkInputError(path, problem, fix=fix)


def load_idexp(npy: str | os.PathLike) -> np.ndarray:
    """A raw idexp_lm3d file → float32 [T, 68, 3]. Accepts [T, 204], [T, 68, 3] and [1, T, 204]."""
    path = Path(npy)
    if not path.is_file():
        raise _fail(path, "is a directory, not a .npy file" if path.is_dir() else "file not found",
                    fix=f"pass a landmark .npy of shape {ACCEPTED_SHAPES}")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 — any unreadable file gets the same clear message
        raise _fail(path, f"is not a readable .npy array ({type(err).__name__}: {err})",
                    fix=f"pass a file written by np.save, of shape {ACCEPTED_SHAPES}") from None
    shape = tuple(array.shape)
    if array.ndim == 3 and shape[0] == 1 and shape[2] == 204:
        array = array[0]
    if array.ndim == 2 and array.shape[1] == 204:
        array = array.reshape(array.shape[0], 68, 3)
    if array.ndim != 3 or array.shape[1:] != (68, 3) or array.shape[0] < 1:
        raise _fail(path, f"has shape {list(shape)}; accepted shapes are {ACCEPTED_SHAPES}",
                    fix="pass the postnet's pred_lm3d npy or a speaker dataset's idexp_lm3d.npy")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise _fail(path, f"has dtype {array.dtype}; expected real numbers")
    array = array.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(array).all(axis=(1, 2)))
    if bad.size:
        raise LandmarkInputError(path, "contains NaN or infinite values", frames=bad.tolist(),
                                 fix="the model that wrote it diverged; check its checkpoint")
    return array


def load_mean_shape(source: str | os.PathLike | None) -> np.ndarray:
    """The neutral face to add idexp / 10 to: None → GENERIC_MEAN_SHAPE; a speaker dataset directory →
    its mean_shape.npy; a .npy of shape [68, 3] (or [204]). Returns float32 [68, 3] in head units."""
    if source is None:
        return GENERIC_MEAN_SHAPE.copy()
    path = Path(source)
    if path.is_dir():
        path = path / "mean_shape.npy"
        if not path.is_file():
            raise _fail(path, "file not found: the directory is not a speaker dataset",
                        fix="pass a speaker dataset directory (outputs/data/<speaker>) or a mean_shape .npy")
    if not path.is_file():
        raise _fail(path, "file not found", fix="pass a speaker dataset directory or a [68, 3] .npy")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001
        raise _fail(path, f"is not a readable .npy array ({type(err).__name__}: {err})",
                    fix="pass a speaker dataset directory or its mean_shape.npy ([68, 3])") from None
    if array.shape not in ((68, 3), (204,)) or not np.issubdtype(array.dtype, np.floating):
        raise _fail(path, f"has shape {list(array.shape)} ({array.dtype}); a mean shape is float [68, 3]",
                    fix="pass the mean_shape.npy of the speaker dataset the landmarks belong to")
    array = array.reshape(68, 3).astype(np.float32)
    if not np.isfinite(array).all():
        raise _fail(path, "contains NaN or infinite values")
    return array


def fit_layout(landmarks: np.ndarray, options: RenderOptions) -> Layout:
    """One scale and centre for the whole [T, 68, 3] sequence (all views share the scale)."""
    lo, hi = landmarks.reshape(-1, 3).min(0), landmarks.reshape(-1, 3).max(0)     # [3]
    spans = [hi[0] - lo[0], hi[1] - lo[1]] + ([hi[2] - lo[2]] if "side" in options.views else [])
    usable = options.size * (1.0 - 2.0 * options.margin) - 2 * options.radius
    scale = usable / max(max(spans), 1e-6)
    mid = (lo + hi) / 2.0
    return Layout(size=options.size, scale=float(scale), centre_front=(float(mid[0]), float(mid[1])),
                  centre_side=(float(-mid[2]), float(mid[1])))


_SHIFT = 4                      # cv2 sub-pixel bits: positions at 1/16 pixel
_REGION_COLOUR = np.array([OTHER_RGB] * 36 + [EYES_RGB] * 12 + [MOUTH_RGB] * 20, dtype=np.int64)


def _draw_view(canvas: np.ndarray, pixels: np.ndarray, options: RenderOptions) -> None:
    fixed = np.round(pixels * (1 << _SHIFT)).astype(np.int64)        # [68, 2]
    fixed = np.clip(fixed, -(1 << 24), 1 << 24)                      # stray points stay drawable
    if options.lines:
        for indices, closed in CONTOURS:
            pts = fixed[list(indices)].reshape(-1, 1, 2).astype(np.int32)
            cv2.polylines(canvas, [pts], closed, LINE_RGB, 1, cv2.LINE_AA, _SHIFT)
    radius = max(1, int(options.radius)) << _SHIFT
    for k in (*range(0, 36), *range(36, 48), *range(48, 68)):       # mouth last, on top
        centre = (int(fixed[k, 0]), int(fixed[k, 1]))
        cv2.circle(canvas, centre, radius, tuple(int(c) for c in _REGION_COLOUR[k]), -1, cv2.LINE_AA, _SHIFT)
    if options.indices:
        scale = 0.3 * options.size / 512
        for k in range(68):
            x, y = pixels[k]
            if -50 < x < options.size + 50 and -50 < y < options.size + 50:
                cv2.putText(canvas, str(k), (int(x) + options.radius + 1, int(y) - options.radius),
                            cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_RGB, 1, cv2.LINE_AA)


def render_frame(points: np.ndarray, layout: Layout, options: RenderOptions) -> np.ndarray:
    """One frame: [68, 3] head-frame landmarks → RGB uint8 [size, size · len(views), 3] on white."""
    views = []
    for view in options.views:
        canvas = np.full((layout.size, layout.size, 3), 255, dtype=np.uint8)
        _draw_view(canvas, layout.to_pixels(np.asarray(points, dtype=np.float64), view), options)
        views.append(canvas)
    return np.concatenate(views, axis=1)


def iter_rendered_frames(landmarks: np.ndarray, options: RenderOptions,
                         layout: Layout | None = None) -> Iterator[np.ndarray]:
    """Frames of a [T, 68, 3] sequence, one at a time, with one layout fitted to the whole sequence."""
    layout = layout or fit_layout(landmarks, options)
    for points in landmarks:
        yield render_frame(points, layout, options)


def default_out_path(npy: str | os.PathLike) -> Path:
    """`<dir>/<stem>_landmarks.mp4`, next to the landmark file."""
    npy = Path(npy)
    return npy.with_name(f"{npy.stem}_landmarks.mp4")


def write_landmarks_video(npy: str | os.PathLike, out: str | os.PathLike | None = None,
                          audio: str | os.PathLike | None = None, mean_shape: str | os.PathLike | None = None,
                          options: RenderOptions | None = None, max_seconds: float | None = None) -> Path:
    """Render `npy` (raw idexp_lm3d) with `audio` (any media file, or None: silent) into an mp4.

    The video has one frame per landmark frame at 25 fps, cut to the audio's length when the audio is
    shorter (and to max_seconds when given). Returns the written path (default: default_out_path(npy)).
    Raises LandmarkInputError for a bad landmark/mean-shape file, NoAudioError / UnreadableMediaError
    for an audio file without usable audio, RuntimeError if ffmpeg fails; no file is left behind then.
    """
    options = options or RenderOptions()
    idexp = load_idexp(npy)
    landmarks = absolute_landmarks(idexp, load_mean_shape(mean_shape))              # [T, 68, 3]
    num_frames = len(landmarks)
    if max_seconds is not None:
        num_frames = min(num_frames, max(1, int(round(float(max_seconds) * FPS))))
    wave = None
    if audio is not None:
        wave = load_audio(audio, SAMPLE_RATE)                                        # [N] float32
        per_frame = SAMPLE_RATE // FPS
        num_frames = min(num_frames, max(1, math.ceil(len(wave) / per_frame)))
        wave = wave[: num_frames * per_frame]
    landmarks = landmarks[:num_frames]
    out = Path(out) if out is not None else default_out_path(npy)
    if out.is_dir():
        raise _fail(out, "is a directory", fix="pass out=<file>.mp4")
    layout = fit_layout(landmarks, options)
    with tempfile.TemporaryDirectory(prefix="geneface_viz_") as work:
        wav = None
        if wave is not None:
            wav = Path(work) / "audio.wav"
            write_wav(wav, wave, SAMPLE_RATE)
        write_mp4(iter_rendered_frames(landmarks, options, layout), out, width=layout.size * len(options.views),
                  height=layout.size, audio=wav, fps=FPS)
    return out
