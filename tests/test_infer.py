"""Landmark inference pieces: driving audio of any format, padding to the VAE stride, the reference's
per-region clamp and causal smoothing."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
from torch import nn

from geneface.inference.landmarks import clamp_and_smooth, load_driving_audio, predict_idexp
from geneface.media.ffmpeg import ffmpeg_exe


@pytest.mark.parametrize("fmt,rate,channels", [("wav", 44100, 2), ("mp3", 22050, 1), ("m4a", 48000, 2)])
def test_any_audio_gives_two_features_per_frame(tmp_path, fmt, rate, channels):
    path = tmp_path / f"tone.{fmt}"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"sine=frequency=220:sample_rate={rate}",
                    "-t", "1.3", "-ac", str(channels), str(path)], check=True)
    wave, mel, num_frames = load_driving_audio(path)
    assert num_frames == pytest.approx(1.3 * 25, abs=2)
    assert wave.shape == (num_frames * 640,) and mel.shape == (2 * num_frames, 80)
    wave, mel, num_frames = load_driving_audio(path, max_seconds=0.4)    # a preview: the first 0.4 s
    assert num_frames == 10 and wave.shape == (6400,) and mel.shape == (20, 80)
    with pytest.raises(ValueError, match="max_seconds"):
        load_driving_audio(path, max_seconds=0)


def test_clamp_limits_each_region_and_smoothing_is_causal():
    mean, std = np.zeros((68, 3), np.float32), np.full((68, 3), 2.0, np.float32)
    idexp = np.zeros((6, 68, 3), np.float32)
    idexp[2:] = 100.0                                   # a step far beyond any clamp
    normalised, raw = clamp_and_smooth(idexp.copy(), mean, std, clamp_std=2.5, smoothing=0.0)
    assert normalised[3, 60, 0] == pytest.approx(2.5)   # mouth ±s
    assert normalised[3, 20, 0] == pytest.approx(1.25)  # brow x ±s/2
    assert normalised[3, 20, 2] == pytest.approx(2.5)   # brow z ±s
    assert raw[3, 60, 0] == pytest.approx(5.0)          # back in raw units: 2.5 std · 2
    smoothed, _ = clamp_and_smooth(idexp.copy(), mean, std, clamp_std=2.5, smoothing=0.2)
    assert smoothed[1, 60, 0] == 0.0                    # nothing leaks backwards in time
    assert smoothed[2, 60, 0] == pytest.approx(0.8 * 2.5)
    assert smoothed[3, 60, 0] == pytest.approx(0.2 * 2.0 + 0.8 * 2.5)


def test_the_spoken_gain_restores_the_speakers_own_spread_of_jaw_and_lips(tmp_path, monkeypatch):
    """A model whose jaw and lips move half as far as the speaker's from the mean (what mse regression
    does) gets gain 2, fitted on the train split, and its motion × 2 is the speaker's own again."""
    from geneface.data import contract
    from geneface.data.frames import arrays
    from geneface.data.landmarks import normalize_idexp
    from geneface.inference import landmarks
    from geneface.synthetic.speaker import write_synthetic_speaker

    root = write_synthetic_speaker(tmp_path / "data", seconds=3.0, size=32, progress=False)
    data = arrays(root)
    mean, std = np.asarray(data["idexp_lm3d_mean"]), np.asarray(data["idexp_lm3d_std"])
    real = np.asarray(data["idexp_lm3d"], np.float32).reshape(-1, 68, 3)
    num_train = contract.num_train_frames(len(real))
    asked = []

    def halved(model, mel, num_frames, temperature=1.0):                 # the stand-in motion model
        asked.append((len(mel), num_frames))
        return mean + 0.5 * (real[:num_frames] - mean)

    monkeypatch.setattr(landmarks, "predict_idexp", halved)
    assert landmarks.spoken_motion_gain(None, root) == pytest.approx(2.0, rel=1e-4)
    assert asked == [(2 * num_train, num_train)]                         # the train split's audio only
    restored, _ = clamp_and_smooth(mean + 0.5 * (real[:num_train] - mean), mean, std, clamp_std=1e6, smoothing=0.0,
                                   spoken_gain=2.0)
    spoken = landmarks.SPOKEN_POINTS
    np.testing.assert_allclose(restored[:, spoken], normalize_idexp(real[:num_train], mean, std)[:, spoken],
                               atol=1e-4)
    assert landmarks.resolve_spoken_gain("1", None, root) == 1.0          # off: no model run
    with pytest.raises(ValueError, match="auto or a positive number"):
        landmarks.resolve_spoken_gain(-1, None, root)


class _EchoModel(nn.Module):
    """predict() returns the first audio channel of every frame, repeated: checks alignment and padding."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def predict(self, audio, mask, temperature=1.0):
        assert audio.shape[1] == 2 * mask.shape[1] and mask.shape[1] % 4 == 0
        frames = audio[:, ::2, :1] * mask[..., None]
        return frames.expand(-1, -1, 204) + self.dummy


class _StartArtefactModel(_EchoModel):
    """Echoes the audio, but shuts the mouth (−100) at the first frame of whatever it is given."""

    def predict(self, audio, mask, temperature=1.0):
        out = super().predict(audio, mask, temperature).clone()
        out[:, 0] = -100.0
        return out


def test_the_first_frames_are_predicted_with_audio_before_them():
    mel = np.repeat(np.arange(1, 15, dtype=np.float32), 2)[:, None].repeat(80, 1)  # frame t has value t + 1
    out = predict_idexp(_StartArtefactModel(), mel, num_frames=14)
    assert np.array_equal(out[:, 0, 0], np.arange(1, 15, dtype=np.float32))      # aligned, no artefact
    assert predict_idexp(_StartArtefactModel(), mel, 14, context_frames=0)[0, 0, 0] == -100.0
    assert np.array_equal(predict_idexp(_EchoModel(), mel[:2], num_frames=1)[:, 0, 0], [1.0])  # one frame


def test_predict_pads_to_the_latent_stride_and_cuts_back():
    mel = np.repeat(np.arange(14, dtype=np.float32), 2)[:, None].repeat(80, 1)  # frame t has value t
    out = predict_idexp(_EchoModel(), mel, num_frames=14)
    assert out.shape == (14, 68, 3)
    assert np.array_equal(out[:, 0, 0], np.arange(14, dtype=np.float32))


def test_landmarks_come_from_a_postnet_or_from_a_vae_alone(tmp_path, vae_checkpoint):
    """infer/evaluate's postnet_ckpt also takes an audio2motion checkpoint (a speaker's own VAE)."""
    from geneface.inference.landmarks import VaeAsPredictor, load_motion_model
    from geneface.utils.checkpoints import WrongStageCheckpointError

    vae_checkpoint(tmp_path / "vae.ckpt")
    model, name = load_motion_model(tmp_path / "vae.ckpt")
    assert name == "audio2motion" and isinstance(model, VaeAsPredictor)
    mel = np.random.default_rng(0).normal(size=(2 * 30, 80)).astype(np.float32)
    torch.manual_seed(0)
    out = predict_idexp(model, mel, 30, temperature=0.0)
    assert out.shape == (30, 68, 3) and np.isfinite(out).all()

    checkpoint = torch.load(tmp_path / "vae.ckpt", weights_only=False)
    checkpoint["geneface_config"]["stage"]["name"] = "syncnet"
    torch.save(checkpoint, tmp_path / "syncnet.ckpt")
    with pytest.raises(WrongStageCheckpointError, match="postnet_ckpt needs a checkpoint of 'postnet' or 'audio2motion'"):
        load_motion_model(tmp_path / "syncnet.ckpt")
