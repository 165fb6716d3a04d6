"""Quality report of a processed speaker: a contact sheet, a pose plot and JSON statistics.

The report is for a person deciding whether a video processed well, so it shows the things that
fail in practice: missed faces, landmarks that slide off the face, a head pose that jumps, labels
that give hair to the torso or the shoulders to the head.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Mapping

import cv2
import numpy as np

from geneface.data.contract import Label
from geneface.processing.pose import project

LABEL_NAMES = tuple(label.name.lower() for label in Label)                 # background, head, neck, torso
LABEL_COLOURS = np.array([[0, 0, 0], [255, 70, 70], [70, 230, 70], [70, 110, 255]], np.uint8)  # RGB


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _jsonable(x):
    """Recursively: numpy scalars/arrays → Python, non-finite floats → None (strict JSON)."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in (x.tolist() if isinstance(x, np.ndarray) else x)]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return _finite_or_none(float(x))
    return x


def landmark_jitter_px(landmarks68: np.ndarray, valid: np.ndarray) -> float:
    """Median over frames and points of |x[t+1] − 2·x[t] + x[t−1]| (Euclidean in x, y, px).

    The second temporal difference cancels steady motion (constant velocity), so on a still or
    smoothly moving head it measures frame-to-frame detector noise. Only triplets of consecutive
    valid frames count; NaN when there are none.
    """
    xy = np.asarray(landmarks68, np.float64)[..., :2]                        # [T, 68, 2]
    valid = np.asarray(valid, bool)
    if len(xy) < 3:
        return float("nan")
    ok = valid[2:] & valid[1:-1] & valid[:-2]                                # [T−2]
    if not ok.any():
        return float("nan")
    acc = np.linalg.norm(xy[2:] - 2 * xy[1:-1] + xy[:-2], axis=-1)[ok]       # [n, 68]
    return float(np.median(acc))


def quality_stats(valid: np.ndarray, reprojection_error_px: np.ndarray, landmarks68: np.ndarray,
                  label_counts: np.ndarray | Mapping[str, np.ndarray], width: int, height: int) -> dict:
    """Per-video numbers for stats.json; every value is a plain float/int/dict (NaN → None).

    valid [T] bool (a face was found); reprojection_error_px [T] (the pose fit's mean landmark
    error per frame, NaN where undefined; only valid frames count); landmarks68 [T, 68, 3] px;
    label_counts [T, 4] pixel counts per Label, or a dict name → [T].
    Keys: num_frames, face_detection_rate, reprojection_error_px_median / _p95 (over valid frames),
    landmark_jitter_px (see `landmark_jitter_px`), label_coverage (name → mean fraction of pixels).
    """
    valid = np.asarray(valid, bool)
    T = len(valid)
    err = np.asarray(reprojection_error_px, np.float64).reshape(-1)
    err = err[valid[: len(err)] & np.isfinite(err)] if len(err) == T else err[np.isfinite(err)]
    if isinstance(label_counts, Mapping):
        counts = np.stack([np.asarray(label_counts.get(n, np.zeros(T)), np.float64) for n in LABEL_NAMES], 1)
    else:
        counts = np.asarray(label_counts, np.float64).reshape(-1, len(Label))   # [T, 4]
    coverage = counts.mean(0) / float(width * height) if len(counts) else np.full(len(Label), np.nan)
    return {
        "num_frames": int(T),
        "face_detection_rate": _finite_or_none(valid.mean() if T else np.nan),
        "reprojection_error_px_median": _finite_or_none(np.median(err) if len(err) else np.nan),
        "reprojection_error_px_p95": _finite_or_none(np.percentile(err, 95) if len(err) else np.nan),
        "landmark_jitter_px": _finite_or_none(landmark_jitter_px(landmarks68, valid)),
        "label_coverage": {n: _finite_or_none(c) for n, c in zip(LABEL_NAMES, coverage)},
    }


def euler_degrees(R: np.ndarray) -> np.ndarray:
    """R [..., 3, 3] = Rz(roll)·Ry(yaw)·Rx(pitch) → [..., 3] (yaw, pitch, roll) in degrees."""
    pitch = np.arctan2(R[..., 2, 1], R[..., 2, 2])
    yaw = np.arcsin(np.clip(-R[..., 2, 0], -1.0, 1.0))
    roll = np.arctan2(R[..., 1, 0], R[..., 0, 0])
    return np.degrees(np.stack([yaw, pitch, roll], -1))


def _draw_tile(rgb: np.ndarray, labels: np.ndarray | None, lm68: np.ndarray, R: np.ndarray, t: np.ndarray,
               focal: float, mean_shape: np.ndarray | None, scale: float, index: int) -> np.ndarray:
    """One frame → [h, 2w, 3]: left the frame with landmarks, fitted shape and head axes; right the labels."""
    H, W = rgb.shape[:2]
    size = (max(int(round(W * scale)), 1), max(int(round(H * scale)), 1))
    left = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    if labels is not None:
        lab = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
        right = (0.45 * left + 0.55 * LABEL_COLOURS[np.clip(lab, 0, len(Label) - 1)]).astype(np.uint8)
    else:
        right = left.copy()
    left = np.ascontiguousarray(left)

    def px(p: np.ndarray) -> tuple[int, int]:                                  # tile px, 4 subpixel bits
        return int(round(p[0] * scale * 16)), int(round(p[1] * scale * 16))
    if np.all(np.isfinite(R)) and np.all(np.isfinite(t)):
        if mean_shape is not None:   # the pose fit's model points, hollow: compare with the landmarks
            for p in project(np.asarray(mean_shape, np.float64), R, t, focal, W, H):
                if np.all(np.isfinite(p)):
                    cv2.circle(left, px(p), 3 * 16, (255, 255, 255), 1, cv2.LINE_AA, 4)
        axes = np.array([[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]], np.float64)
        o, *ends = project(axes, R, t, focal, W, H)
        if np.all(np.isfinite(o)):
            for end, colour in zip(ends, ((255, 40, 40), (40, 255, 40), (60, 120, 255))):   # x, y, z
                if np.all(np.isfinite(end)):
                    cv2.line(left, px(o), px(end), colour, 2, cv2.LINE_AA, 4)
    lm = np.asarray(lm68, np.float64)
    if np.all(np.isfinite(lm[:, :2])):
        for k, p in enumerate(lm):
            colour = (255, 60, 200) if k >= 48 else (0, 230, 255) if 36 <= k < 48 else (255, 230, 0)
            cv2.circle(left, px(p), 2 * 16, colour, -1, cv2.LINE_AA, 4)
    else:
        cv2.putText(left, "no face", (6, size[1] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 0, 0), 2)
    cv2.putText(left, f"#{index}", (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([left, right], 1)


def write_contact_sheet(path: Path, frame_fn: Callable[[int], np.ndarray],
                        labels_fn: Callable[[int], np.ndarray], landmarks68: np.ndarray, head_R: np.ndarray,
                        head_t: np.ndarray, focal: float, mean_shape: np.ndarray | None, num_tiles: int = 12,
                        tile_height: int = 256) -> Path:
    """num_tiles evenly spaced frames, each a pair (annotated frame | label overlay), 3 pairs a row."""
    T = len(landmarks68)
    idx = np.unique(np.linspace(0, T - 1, min(num_tiles, T)).round().astype(int))
    tiles = []
    for i in idx:
        rgb = np.asarray(frame_fn(int(i)))
        tiles.append(_draw_tile(rgb, np.asarray(labels_fn(int(i))), landmarks68[i], head_R[i], head_t[i],
                                focal, mean_shape, tile_height / rgb.shape[0], int(i)))
    cols = min(3, len(tiles))
    h, w = tiles[0].shape[:2]
    sheet = np.full((math.ceil(len(tiles) / cols) * (h + 4), cols * (w + 4), 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        th, tw = min(tile.shape[0], h), min(tile.shape[1], w)
        sheet[r * (h + 4): r * (h + 4) + th, c * (w + 4): c * (w + 4) + tw] = tile[:th, :tw]
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def plot_pose(path: Path, head_R: np.ndarray, head_t: np.ndarray, valid: np.ndarray | None = None,
              fps: float = 25.0) -> Path:
    """Yaw/pitch/roll (degrees) and translation (head units) over time; frames without a face blank."""
    from matplotlib.figure import Figure   # no pyplot: renders with Agg, leaves the global backend alone

    angles = euler_degrees(np.asarray(head_R, np.float64))                  # [T, 3]
    trans = np.asarray(head_t, np.float64).copy()                          # [T, 3]
    if valid is not None:
        angles[~np.asarray(valid, bool)] = np.nan
        trans[~np.asarray(valid, bool)] = np.nan
    time = np.arange(len(angles)) / fps
    fig = Figure(figsize=(10, 7))
    ax = fig.subplots(3, 1, sharex=True)
    for k, name in enumerate(("yaw", "pitch", "roll")):
        ax[0].plot(time, angles[:, k], lw=0.8, label=name)
    ax[0].set_ylabel("degrees")
    for k, name in enumerate(("t_x", "t_y")):
        ax[1].plot(time, trans[:, k], lw=0.8, label=name)
    ax[1].set_ylabel("head units")
    ax[2].plot(time, trans[:, 2], lw=0.8, label="t_z", color="C3")
    ax[2].set_ylabel("head units")
    ax[2].set_xlabel("time (s)")
    for a in ax:
        a.legend(loc="upper right", fontsize=8)
        a.grid(alpha=0.3)
    fig.suptitle("head pose (x_cam = R·x_head + t; R = Rz(roll)·Ry(yaw)·Rx(pitch))")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def write_report(out_dir: str | Path, *, frame_fn: Callable[[int], np.ndarray],
                 labels_fn: Callable[[int], np.ndarray], landmarks68: np.ndarray, head_R: np.ndarray,
                 head_t: np.ndarray, focal: float, mean_shape: np.ndarray | None, stats: dict,
                 num_tiles: int = 12, valid: np.ndarray | None = None) -> dict[str, Path]:
    """Write contact_sheet.png, pose.png and stats.json into out_dir → {name: path}.

    frame_fn(i) → RGB [H, W, 3] uint8; labels_fn(i) → [H, W] uint8 of Label; landmarks68 [T, 68, 3]
    px; head_R [T, 3, 3], head_t [T, 3] (x_cam = R·x_head + t, head units); the principal point is
    the image centre. mean_shape [68, 3] (head frame) is drawn projected, as hollow circles.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "contact_sheet": write_contact_sheet(
            out / "contact_sheet.png", frame_fn, labels_fn, np.asarray(landmarks68), np.asarray(head_R),
            np.asarray(head_t), float(focal), mean_shape, num_tiles),
        "pose": plot_pose(out / "pose.png", head_R, head_t, valid),
        "stats": out / "stats.json",
    }
    paths["stats"].write_text(json.dumps(_jsonable(stats), indent=2, allow_nan=False) + "\n")
    return paths
