"""Landmarks → frames → mp4: the camera path, background options and the video's contract, with a
stand-in renderer (the real ones are trained in their own tests)."""

from __future__ import annotations

import numpy as np
import pytest

from geneface.data import contract
from geneface.data.frames import SpeakerFrames, head_removed
from geneface.data.nerf_rays import SpeakerImages
from geneface.inference.talking_head import background_image, render_video, renderer_stage
from geneface.media.audio import write_wav
from geneface.media.video import iter_frames, probe_video


class RecordingRenderer:
    """Paints the background and writes the frame number into the red channel; records its inputs."""

    needs_audio, draws_torso = False, True

    def __init__(self, height: int, width: int, draws_torso: bool = True, camera_shift: float = 0.0):
        self.height, self.width, self.draws_torso = height, width, draws_torso
        self.camera_shift = camera_shift      # its "learnt correction": every source camera moved along x
        self.calls: dict = {}

    def source_cameras(self, c2w):
        moved = np.array(c2w, copy=True)
        moved[:, 0, 3] += self.camera_shift
        return moved

    def render_frames(self, c2w, landmarks, background, audio_features=None):
        self.calls = {"c2w": c2w, "landmarks": landmarks, "background": background}
        for i in range(len(landmarks)):
            frame = np.array(background[i] if np.ndim(background) == 4 else background)
            frame[:8, :8] = (min(5 * i, 255), 0, 0)
            yield frame


@pytest.fixture(scope="module")
def speaker(tmp_path_factory):
    from geneface.synthetic.speaker import write_synthetic_speaker

    return write_synthetic_speaker(tmp_path_factory.mktemp("th") / "data", seconds=1.2, size=64, progress=False)


def test_longer_audio_runs_the_camera_path_back_and_forth(speaker, tmp_path):
    images = SpeakerImages(speaker)                        # 30 frames of video
    num_frames = 70                                         # 2.8 s of audio: longer than the video
    write_wav(tmp_path / "a.wav", 0.2 * np.sin(np.arange(num_frames * 640) / 10.0))
    renderer = RecordingRenderer(64, 64)
    out = render_video(renderer, speaker, np.zeros((num_frames, 68, 3), np.float32), tmp_path / "a.wav",
                       tmp_path / "out" / "v.mp4", pose_window=1)
    info = probe_video(out)
    assert info.fps == 25 and info.has_audio and info.num_frames_25fps == num_frames   # within a frame of the audio
    c2w = renderer.calls["c2w"]
    source = images.c2w.numpy()
    np.testing.assert_allclose(c2w[29], source[29], atol=1e-6)
    np.testing.assert_allclose(c2w[30], source[28], atol=1e-6)    # back …
    np.testing.assert_allclose(c2w[58], source[0], atol=1e-6)     # … and forth again
    np.testing.assert_allclose(c2w[59], source[1], atol=1e-6)
    reds = [int(f[:8, :8, 0].mean()) for f in iter_frames(out)]
    assert len(reds) == num_frames and abs(reds[40] - 200) <= 8    # frames in order


def test_background_options(speaker, tmp_path):
    plate = SpeakerImages(speaker).plate
    assert background_image("plate", plate) is plate
    assert (background_image("white", plate) == 255).all()
    assert background_image("#ff8000", plate)[3, 3].tolist() == [255, 128, 0]
    import cv2

    cv2.imwrite(str(tmp_path / "bg.png"), np.full((20, 30, 3), (0, 0, 255), np.uint8))   # BGR red
    image = background_image(str(tmp_path / "bg.png"), plate)
    assert image.shape == plate.shape and image[0, 0].tolist() == [255, 0, 0]
    with pytest.raises(ValueError, match="neither 'plate', 'video', a colour"):
        background_image("mauve-ish", plate)


def test_video_background_pastes_the_head_into_the_source_frames(speaker, tmp_path):
    frames, source = SpeakerFrames(speaker), SpeakerImages(speaker).c2w.numpy()   # 30 frames
    plate = frames.background()
    num_frames = 35                                         # past the video's end: back and forth
    write_wav(tmp_path / "a.wav", 0.2 * np.sin(np.arange(num_frames * 640) / 10.0))
    renderer = RecordingRenderer(64, 64, draws_torso=False, camera_shift=0.01)
    out = render_video(renderer, speaker, np.zeros((num_frames, 68, 3), np.float32), tmp_path / "a.wav",
                       tmp_path / "v.mp4", background="video", pose_window=7)
    assert probe_video(out).num_frames_25fps == num_frames
    # its own camera, not smoothed, as the renderer was trained on it (source_cameras: a learnt correction)
    np.testing.assert_allclose(renderer.calls["c2w"][31], renderer.source_cameras(source)[27])
    assert renderer.calls["c2w"][31][0, 3] == pytest.approx(source[27][0, 3] + 0.01)
    backdrop = renderer.calls["background"]
    assert backdrop.shape == (num_frames, 64, 64, 3)
    image, labels = frames.image(27), frames.labels(27)
    head = labels == contract.Label.HEAD
    assert head.any() and (~head).any()
    np.testing.assert_array_equal(backdrop[31], head_removed(image, labels, plate))
    assert (backdrop[31][head] != image[head]).any(axis=-1).mean() > 0.9    # no second head under it
    np.testing.assert_array_equal(backdrop[31][~head], image[~head])       # the frame's torso and background
    with pytest.raises(ValueError, match="head-only renderer"):            # a torso over a real torso
        render_video(RecordingRenderer(64, 64), speaker, np.zeros((5, 68, 3)), tmp_path / "a.wav",
                     tmp_path / "t.mp4", background="video")
    assert not (tmp_path / "t.mp4").exists()


def test_head_removed_continues_the_neck_under_the_chin_and_the_plate_elsewhere():
    labels = np.zeros((20, 20), np.uint8)
    labels[2:12, 5:15] = contract.Label.HEAD                 # a head 10 rows tall: the fill reaches 2 rows
    labels[12:16, 8:12] = contract.Label.NECK
    labels[16:] = contract.Label.TORSO
    rng = np.random.default_rng(0)
    image, plate = rng.integers(0, 256, (2, 20, 20, 3), dtype=np.uint8)
    out = head_removed(image, labels, plate)
    np.testing.assert_array_equal(out[10:12, 8:12], np.broadcast_to(image[12, 8:12], (2, 4, 3)))   # the neck, up
    np.testing.assert_array_equal(out[2:10, 5:15], plate[2:10, 5:15])    # beyond its reach: the plate
    np.testing.assert_array_equal(out[10:12, 5:8], plate[10:12, 5:8])    # no neck below: the plate
    np.testing.assert_array_equal(out[labels != contract.Label.HEAD], image[labels != contract.Label.HEAD])
    no_neck = np.where(labels == contract.Label.NECK, contract.Label.TORSO, labels)
    np.testing.assert_array_equal(head_removed(image, no_neck, plate)[2:12, 5:15], plate[2:12, 5:15])


def test_renderer_choice_and_size_mismatch(speaker, tmp_path):
    assert renderer_stage("radnerf_torso", head_only=True) == "radnerf"
    assert renderer_stage("nerf_torso", head_only=False) == "nerf_torso"
    with pytest.raises(ValueError, match="renderer must be"):
        renderer_stage("gaussians", head_only=False)
    write_wav(tmp_path / "a.wav", np.zeros(640 * 5))
    with pytest.raises(ValueError, match="trained at 128×128"):
        render_video(RecordingRenderer(128, 128), speaker, np.zeros((5, 68, 3)), tmp_path / "a.wav",
                     tmp_path / "v.mp4")
    assert not (tmp_path / "v.mp4").exists()


@pytest.mark.parametrize("overrides, expected", [
    ([], ("radnerf", "video")),                                              # the default: the head, pasted back
    (["renderer=radnerf_torso"], ("radnerf_torso", "plate")),                # a rendered torso: over the plate
    (["renderer=radnerf_torso", "head_only=true"], ("radnerf", "video")),    # the torso stage's head, pasted back
    (["renderer=radnerf_torso", "background=video"], ("radnerf", "video")),  # video implies the head alone
    (["background=green"], ("radnerf", "green")),
])
def test_the_default_pastes_the_head_into_the_speakers_own_video(overrides, expected):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra_utils import CONFIG_DIR

    from geneface.infer import render_plan

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("infer", overrides=["speaker=demo", "wav=a.wav", *overrides])
    assert render_plan(cfg) == expected
