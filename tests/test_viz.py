"""The landmark visualizer: idexp_lm3d + audio → mp4 (geneface.viz)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geneface.media.audio import write_wav
from geneface.media.errors import NoAudioError
from geneface.media.video import iter_frames, probe_video
from geneface.viz.landmarks_video import (
    GENERIC_MEAN_SHAPE, LandmarkInputError, RenderOptions, absolute_landmarks, fit_layout, load_idexp,
    load_mean_shape, render_frame, write_landmarks_video,
)

REPO = Path(__file__).resolve().parents[1]
T = 20
SIZE = 192
OPENING = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(T) / T)          # closed → open → closed


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    from geneface.data.face_shape import landmarks68, random_face_shape

    root = tmp_path_factory.mktemp("viz")
    face = random_face_shape(np.random.default_rng(3))
    mean = landmarks68(face, 0.0).astype(np.float32)                    # [68, 3]
    absolute = landmarks68(face, OPENING).astype(np.float32)            # [T, 68, 3]
    idexp = (absolute - mean) * 10.0
    np.save(root / "pred.npy", idexp.reshape(1, T, 204))                # GeneFace's layout
    np.save(root / "mean_shape.npy", mean)
    t = np.arange(int(16000 * (T / 25 + 0.3))) / 16000                  # longer than the video
    write_wav(root / "tone.wav", 0.3 * np.sin(2 * np.pi * 220 * t))
    return dict(root=root, idexp=idexp, mean=mean, absolute=absolute)


def _masks(frame: np.ndarray) -> dict[str, np.ndarray]:
    r, g, b = (frame[..., k].astype(int) for k in range(3))
    return {"green": (g > 120) & (r < 90) & (b < 90), "red": (r > 140) & (g < 90) & (b < 90),
            "blue": (b > 140) & (r < 90) & (g < 90)}


def _rows(mask: np.ndarray) -> int:
    rows = np.flatnonzero(mask.any(1))
    return int(rows[-1] - rows[0] + 1) if rows.size else 0


def test_video_frames_colours_audio_and_mouth_motion(sequence):
    root = sequence["root"]
    out = write_landmarks_video(root / "pred.npy", audio=root / "tone.wav", mean_shape=root / "mean_shape.npy",
                                options=RenderOptions(size=SIZE, lines=False))
    assert out == root / "pred_landmarks.mp4" and out.is_file()
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]
    info = probe_video(out)
    assert (info.num_frames_25fps, info.fps, info.width, info.height) == (T, 25.0, SIZE, SIZE)
    assert info.has_audio and info.codec == "h264"

    # Known answer: the green blob's height is the mouth's y-span at the sequence's fixed scale + a dot.
    options = RenderOptions(size=SIZE, lines=False)
    layout = fit_layout(sequence["absolute"], options)
    mouth_y = sequence["absolute"][:, 48:68, 1]
    expected = (mouth_y.max(1) - mouth_y.min(1)) * layout.scale + 2 * options.radius
    heights = []
    for i, frame in enumerate(iter_frames(out)):
        masks = _masks(frame)
        assert masks["green"].sum() > 50 and masks["red"].sum() > 50 and masks["blue"].sum() > 100, i
        heights.append(_rows(masks["green"]))
        # Eyes sit above the mouth; green pixels are only around the mouth.
        assert np.flatnonzero(masks["red"].any(1)).max() < np.flatnonzero(masks["green"].any(1)).min()
    heights = np.array(heights)
    assert len(heights) == T
    np.testing.assert_allclose(heights, expected, atol=3.0)
    assert heights[T // 2] > heights[0] + 15                              # open vs closed: clearly taller
    assert np.corrcoef(heights, OPENING)[0, 1] > 0.98


def test_accepted_shapes_give_the_same_frames(sequence, tmp_path):
    idexp = sequence["idexp"]
    for name, array in (("a.npy", idexp), ("b.npy", idexp.reshape(T, 204)), ("c.npy", idexp.reshape(1, T, 204))):
        np.save(tmp_path / name, array)
        np.testing.assert_array_equal(load_idexp(tmp_path / name), idexp)
    np.testing.assert_array_equal(load_mean_shape(sequence["root"]), sequence["mean"])   # a dataset dir
    np.testing.assert_array_equal(load_mean_shape(None), GENERIC_MEAN_SHAPE)
    options = RenderOptions(size=128, views=["front", "side"], indices=True)
    points = absolute_landmarks(idexp, GENERIC_MEAN_SHAPE)
    frame = render_frame(points[0], fit_layout(points, options), options)
    assert frame.shape == (128, 256, 3) and frame.dtype == np.uint8
    assert _masks(frame[:, 128:])["green"].any() and _masks(frame[:, 128:])["red"].any()   # side view drawn


@pytest.mark.parametrize("array", [np.zeros((5, 68)), np.zeros((5, 68, 2)), np.zeros((2, 5, 204)),
                                   np.zeros((0, 204)), np.zeros(204)])
def test_bad_shapes_are_rejected(tmp_path, array):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(LandmarkInputError, match=r"accepted shapes are \[T, 204\], \[T, 68, 3\]"):
        load_idexp(tmp_path / "bad.npy")


def test_failures_leave_no_file(sequence, tmp_path):
    root, out = sequence["root"], tmp_path / "out.mp4"
    np.save(tmp_path / "bad.npy", np.zeros((4, 67, 3)))
    with pytest.raises(LandmarkInputError, match="shape"):
        write_landmarks_video(tmp_path / "bad.npy", out)
    with pytest.raises(LandmarkInputError, match="not found"):
        write_landmarks_video(tmp_path / "missing.npy", out)
    np.save(tmp_path / "nan.npy", np.full((3, 204), np.nan))
    with pytest.raises(LandmarkInputError, match="NaN"):
        write_landmarks_video(tmp_path / "nan.npy", out)
    with pytest.raises(LandmarkInputError, match="mean_shape"):
        write_landmarks_video(root / "pred.npy", out, mean_shape=root / "tone.wav")
    silent = tmp_path / "silent.mp4"                    # a video without sound as the "audio"
    write_landmarks_video(root / "pred.npy", silent, options=RenderOptions(size=64))
    assert not probe_video(silent).has_audio and probe_video(silent).num_frames_25fps == T
    with pytest.raises(NoAudioError, match="no audio"):
        write_landmarks_video(root / "pred.npy", out, audio=silent)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.npy", "nan.npy", "silent.mp4"]


def test_audio_shorter_than_landmarks_trims_the_video(sequence, tmp_path):
    write_wav(tmp_path / "short.wav", np.zeros(640 * 8))
    out = write_landmarks_video(sequence["root"] / "pred.npy", tmp_path / "v.mp4", audio=tmp_path / "short.wav",
                                options=RenderOptions(size=64))
    assert probe_video(out).num_frames_25fps == 8


def test_cli(sequence, tmp_path):
    root, out = sequence["root"], tmp_path / "cli.mp4"
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    cmd = [sys.executable, "-m", "geneface.viz", f"npy={root / 'pred.npy'}", f"audio={root / 'tone.wav'}",
           f"mean_shape={root}", f"out={out}", "render.size=96", "render.views=[front,side]"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    info = probe_video(out)
    assert (info.width, info.height, info.num_frames_25fps, info.has_audio) == (192, 96, T, True)
    bad = subprocess.run([sys.executable, "-m", "geneface.viz", f"npy={tmp_path / 'nope.npy'}"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "error:" in bad.stderr and "not found" in bad.stderr
