"""The shared mp4 writer (geneface.media.mp4) and the driving camera path (geneface.inference.camera_path)."""

from __future__ import annotations

import numpy as np
import pytest

from geneface.inference.camera_path import driving_cameras, loop_indices, smooth_camera_path
from geneface.media.audio import write_wav
from geneface.media.video import iter_frames, probe_video
from geneface.media.mp4 import write_mp4

T = 12


def _frames(n: int, height: int, width: int):
    for i in range(n):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[..., 0] = 20 * i                                      # a per-frame red level to check order
        frame[..., 1] = 128
        yield frame


def _duration(path) -> float:
    """The container's duration (the longest stream), from ffmpeg -i's header."""
    import re
    import subprocess

    from geneface.media.ffmpeg import ffmpeg_exe

    header = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", header).groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


@pytest.mark.parametrize("audio_s", [T / 25 + 0.5, T / 25 - 0.2])       # longer, then shorter than the video
def test_frames_define_the_duration_and_audio_is_muxed(tmp_path, audio_s):
    import imageio_ffmpeg

    t = np.arange(int(16000 * audio_s)) / 16000
    write_wav(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 220 * t))
    out = write_mp4(_frames(T, 31, 33), tmp_path / "v.mp4", width=33, height=31, audio=tmp_path / "a.wav",
                    total=T)                                        # odd size → padded to 34 × 32
    assert out == tmp_path / "v.mp4" and sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "v.mp4"]
    info = probe_video(out)
    assert (info.fps, info.width, info.height, info.has_audio, info.codec) == (25.0, 34, 32, True, "h264")
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == T
    assert abs(_duration(out) - T / 25) < 0.07                      # audio cut or padded to the video
    reds = [int(f[:31, :33, 0].mean()) for f in iter_frames(out)]
    assert len(reds) == T and np.all(np.abs(np.array(reds) - 20 * np.arange(T)) <= 8)   # order kept (yuv rounding)


def test_silent_and_bitrate(tmp_path):
    out = write_mp4(_frames(5, 32, 48), tmp_path / "sub" / "s.mp4", width=48, height=32, bitrate="500k")
    info = probe_video(out)
    assert (info.num_frames_25fps, info.width, info.height, info.has_audio) == (5, 48, 32, False)


def test_failures_leave_nothing(tmp_path):
    out = tmp_path / "v.mp4"
    with pytest.raises(ValueError, match=r"frame 2 has shape \[16, 20, 3\]"):
        write_mp4(list(_frames(2, 16, 16)) + [np.zeros((16, 20, 3), np.uint8)], out, width=16, height=16)
    with pytest.raises(ValueError, match="dtype float32"):
        write_mp4([np.zeros((16, 16, 3), np.float32)], out, width=16, height=16)
    with pytest.raises(ValueError, match="no frames"):
        write_mp4([], out, width=16, height=16)
    with pytest.raises(FileNotFoundError, match="not found"):
        write_mp4(_frames(2, 16, 16), out, width=16, height=16, audio=tmp_path / "missing.wav")
    (tmp_path / "notaudio.wav").write_text("not audio")
    with pytest.raises(ValueError, match="cannot read audio file .*notaudio.wav"):
        write_mp4(_frames(2, 16, 16), out, width=16, height=16, audio=tmp_path / "notaudio.wav")
    with pytest.raises(RuntimeError, match="ffmpeg could not encode .*v.mp4: .*"):
        write_mp4(_frames(2, 16, 16), out, width=16, height=16, crf=-5)           # ffmpeg's own error

    def interrupted():
        yield from _frames(3, 16, 16)
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        write_mp4(interrupted(), out, width=16, height=16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notaudio.wav"]


def _rotation(axis, angle) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _path(rng, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """A smooth head path and the same path with tracking noise: two [n, 4, 4]."""
    clean = np.tile(np.eye(4), (n, 1, 1))
    s = np.linspace(0, 1, n)
    for i in range(n):
        clean[i, :3, :3] = _rotation([0, 1, 0.2], 0.2 * np.sin(2 * s[i]))
        clean[i, :3, 3] = [0.1 * s[i], 0.0, -8.0]
    noisy = clean.copy()
    for i in range(n):
        noisy[i, :3, :3] = _rotation(rng.normal(size=3), rng.normal(scale=noise)) @ clean[i, :3, :3]
        noisy[i, :3, 3] += rng.normal(scale=noise, size=3)
    return clean, noisy


def test_constant_path_is_unchanged():
    c2w = np.tile(np.eye(4), (9, 1, 1))
    c2w[:, :3, :3] = _rotation([1, 2, 3], 0.4)
    c2w[:, :3, 3] = [0.1, -0.2, 7.0]
    np.testing.assert_allclose(smooth_camera_path(c2w), c2w, atol=1e-12)
    np.testing.assert_allclose(smooth_camera_path(c2w.astype(np.float32)), c2w, atol=1e-6)
    assert smooth_camera_path(c2w.astype(np.float32)).dtype == np.float32


def test_smoothing_reduces_noise_and_keeps_rotations():
    clean, noisy = _path(np.random.default_rng(0), 200, 0.02)
    smooth = smooth_camera_path(noisy, 7)
    err = lambda a: np.abs(a[:, :3, :] - clean[:, :3, :]).mean()            # noqa: E731
    assert err(smooth) < 0.5 * err(noisy)
    rot = smooth[:, :3, :3]
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-10)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-10)
    np.testing.assert_array_equal(smooth[:, 3], noisy[:, 3])
    # Edge-shrunk window: frame 0 averages frames 0–3.
    np.testing.assert_allclose(smooth[0, :3, 3], noisy[:4, :3, 3].mean(0))
    np.testing.assert_array_equal(smooth_camera_path(noisy, 1), noisy)
    rotation = pytest.importorskip("scipy.spatial.transform").Rotation          # GeneFace's rotation mean
    np.testing.assert_allclose(smooth[10, :3, :3], rotation.from_matrix(noisy[7:14, :3, :3]).mean().as_matrix(),
                               atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        smooth_camera_path(noisy, 6)
    with pytest.raises(ValueError, match=r"\[T, 4, 4\]"):
        smooth_camera_path(noisy[:, :3])


def test_ping_pong_indices_and_driving_cameras():
    assert loop_indices(3, 10).tolist() == [0, 1, 2, 1, 0, 1, 2, 1, 0, 1]
    assert loop_indices(2, 5).tolist() == [0, 1, 0, 1, 0]
    assert loop_indices(1, 4).tolist() == [0, 0, 0, 0]
    assert loop_indices(5, 3).tolist() == [0, 1, 2] and loop_indices(4, 0).tolist() == []
    with pytest.raises(ValueError, match="num_source"):
        loop_indices(0, 3)
    _, noisy = _path(np.random.default_rng(1), 20, 0.01)
    cams = driving_cameras(noisy, 55)                              # audio longer than the source video
    assert cams.shape == (55, 4, 4)
    smooth = smooth_camera_path(noisy)
    np.testing.assert_array_equal(cams, smooth[loop_indices(20, 55)])
    np.testing.assert_array_equal(cams[20], smooth[18])                # the way back, no jump
    assert driving_cameras(noisy[:1], 4).shape == (4, 4, 4)
