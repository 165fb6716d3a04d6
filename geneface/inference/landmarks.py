"""wav → audio features → VAE sample → postnet → the speaker's idexp landmarks (reference §9).

After prediction the landmarks are normalised with the speaker's idexp mean/std, the jaw and lips'
motion is scaled to the speaker's own spread (spoken_motion_gain), then clamped per face region
(GeneFace's `infer_lm3d_clamp_std`) and smoothed by a causal exponential moving average, as the
original does before rendering. Audio of any length works: the networks are convolutional over time,
so the whole sequence is predicted in one pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from geneface.data import contract
from geneface.data.frames import arrays
from geneface.data.landmarks import denormalize_idexp, normalize_idexp
from geneface.data.motion_batches import padded_frames
from geneface.media.audio import load_audio
from geneface.media.features import audio_features, fit_to_frames
from geneface.models.audio2motion import TIME_STRIDE
from geneface.utils.checkpoints import checkpoint_stage, load_stage, read_checkpoint

MOTION_STAGES = ("postnet", "audio2motion")     # what turns audio into landmarks

# (first point, last point + 1, clamp factor for x, y, z) — reference §9: jaw, nose and mouth ±s,
# brows and eyes ±s/2 in x and y (they barely move) and ±s in z.
CLAMP_REGIONS = (
    (0, 17, (1.0, 1.0, 1.0)),     # jaw
    (17, 27, (0.5, 0.5, 1.0)),    # brows
    (27, 36, (1.0, 1.0, 1.0)),    # nose
    (36, 48, (0.5, 0.5, 1.0)),    # eyes
    (48, 68, (1.0, 1.0, 1.0)),    # mouth
)
SPOKEN_POINTS = np.r_[0:17, 48:68]   # the jaw and the lips: the points whose motion the audio drives


def load_driving_audio(path: str | Path, max_seconds: float | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Any audio or video file → (16 kHz mono wave [T·640], mel [2T, 80], T video frames at 25 fps);
    only its first `max_seconds` when given (a quick preview of a long file)."""
    wave = load_audio(path)
    if max_seconds is not None:
        if float(max_seconds) <= 0:
            raise ValueError(f"max_seconds must be positive; got {max_seconds}")
        wave = wave[: int(round(float(max_seconds) * contract.SAMPLE_RATE))]
    num_frames = max(1, int(np.ceil(len(wave) / contract.SAMPLES_PER_FRAME)))
    wave = fit_to_frames(wave, num_frames)
    return wave, audio_features(wave, num_frames)["mel"], num_frames


def clamp_and_smooth(idexp: np.ndarray, mean: np.ndarray, std: np.ndarray, clamp_std: float = 2.5,
                     smoothing: float = 0.2, spoken_gain: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Raw idexp [T, 68, 3] → (normalised [T, 68, 3], raw [T, 68, 3]) after the jaw and lips' motion is
    scaled by spoken_gain (spoken_motion_gain), the per-region clamp and the causal EMA
    lm_t ← smoothing·lm_{t−1} + (1 − smoothing)·lm_t (recursive, as fixed upstream)."""
    normalised = normalize_idexp(idexp, mean, std)
    normalised[:, SPOKEN_POINTS] *= spoken_gain
    for start, stop, factors in CLAMP_REGIONS:
        limit = clamp_std * np.asarray(factors, dtype=np.float32)
        normalised[:, start:stop] = np.clip(normalised[:, start:stop], -limit, limit)
    for t in range(1, len(normalised)):
        normalised[t] = smoothing * normalised[t - 1] + (1.0 - smoothing) * normalised[t]
    normalised = normalised.astype(np.float32)
    return normalised, denormalize_idexp(normalised, mean, std)


class VaeAsPredictor(nn.Module):
    """An audio2motion stage seen through the postnet's `predict(audio, mask, temperature)`, the
    signature predict_idexp calls: the VAE's sample, with no postnet after it."""

    def __init__(self, stage: nn.Module):
        super().__init__()
        self.stage = stage

    def predict(self, audio: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return self.stage.sample(audio, mask, temperature)             # [B, T, 204]


def load_motion_model(checkpoint: str | Path | dict, device: str = "cpu",
                      role: str = "postnet_ckpt") -> tuple[nn.Module, str]:
    """A postnet checkpoint (its carried VAE → the postnet, GeneFace's chain) or an audio2motion one
    (the VAE alone, e.g. a speaker's own fine-tuned VAE: README, "A speaker's own VAE") → (a module
    with `predict`, for predict_idexp; the stage's name). Any other stage is refused naming `role`."""
    if not isinstance(checkpoint, dict):
        checkpoint = read_checkpoint(checkpoint, stages=MOTION_STAGES, role=role)
    stage = checkpoint_stage(checkpoint)
    module = load_stage(checkpoint).to(device)
    return (module if stage == "postnet" else VaeAsPredictor(module)), stage


# Frames of mirrored audio the VAE hears beyond each end of the driving audio (0.32 s at 25 fps), cut
# from the prediction: the networks slam the mouth shut at a sequence's first frames (z −2 … −6 on the
# shared corpus's val clips), so with no context the first frames of every clip and video were wrong.
# Measured on those 8 clips (corpus VAE): mean aperture r 0.412 → 0.438, a 3 s GRID clip 0.586 → 0.761.
CONTEXT_FRAMES = 8


@torch.no_grad()
def predict_idexp(model, mel: np.ndarray, num_frames: int, temperature: float = 1.0,
                  context_frames: int = CONTEXT_FRAMES) -> np.ndarray:
    """mel [2T, F] → raw idexp [T, 68, 3] from a module with `predict(audio, mask, temperature)`
    (the postnet stage; its frozen VAE samples, the postnet refines). The audio is extended at both
    ends by up to `context_frames` frames mirrored about its first and last frame (CONTEXT_FRAMES says
    why), T is padded to a multiple of the VAE's latent stride (TIME_STRIDE), and both are cut back."""
    context = max(0, min(int(context_frames), num_frames - 1))
    mel = np.asarray(mel[: 2 * num_frames], np.float32)
    if context:
        mel = np.concatenate([mel[1: 2 * context + 1][::-1], mel, mel[-2 * context - 1: -1][::-1]])
    total = num_frames + 2 * context
    padded = padded_frames(total, TIME_STRIDE)
    device = next(model.parameters()).device
    audio = torch.zeros(1, 2 * padded, mel.shape[1], device=device)
    audio[0, : 2 * total] = torch.from_numpy(np.ascontiguousarray(mel)).to(device)
    mask = torch.zeros(1, padded, device=device)
    mask[0, :total] = 1
    pred = model.predict(audio, mask, temperature=temperature)   # [1, T', 204]
    return pred[0, context: context + num_frames].reshape(num_frames, 68, 3).float().cpu().numpy()


def spoken_motion_gain(model, speaker_root: str | Path, temperature: float = 1.0) -> float:
    """How much farther the speaker's own jaw and lips move than `model` predicts from the same audio,
    over the speaker's train split: std(real) / std(predicted) of their normalised points. A motion
    model trained by mse regresses towards the mean wherever the audio leaves the motion uncertain, so
    its mouth moves less than the person's (cnn2: her jaw and lips 1.44× as far as predicted) and a
    renderer driven by it barely opens the mouth. Fitted on the train split, never on what is scored."""
    data = arrays(speaker_root)
    num_train = contract.num_train_frames(len(data["idexp_lm3d"]))
    mean, std = np.asarray(data["idexp_lm3d_mean"]), np.asarray(data["idexp_lm3d_std"])
    predicted = normalize_idexp(predict_idexp(model, data["mel"][: 2 * num_train], num_train, temperature), mean, std)
    real = normalize_idexp(np.asarray(data["idexp_lm3d"][:num_train]).reshape(num_train, 68, 3), mean, std)
    return float(np.std(real[:, SPOKEN_POINTS]) / max(float(np.std(predicted[:, SPOKEN_POINTS])), 1e-6))


def speaker_landmarks(model, mel: np.ndarray, num_frames: int, speaker_root: str | Path, temperature: float = 1.0,
                      clamp_std: float = 2.5, smoothing: float = 0.2,
                      spoken_gain: str | float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """mel [2T, 80] → (normalised, raw) idexp [T, 68, 3] as geneface.infer renders them: predicted, then
    the jaw and lips scaled by the spoken gain (resolved after the prediction, so its samples are the
    same with the gain on or off), clamped and smoothed with the speaker's statistics."""
    raw = predict_idexp(model, mel, num_frames, temperature=temperature)
    gain = resolve_spoken_gain(spoken_gain, model, speaker_root, temperature)
    data = arrays(speaker_root)
    mean, std = np.asarray(data["idexp_lm3d_mean"]), np.asarray(data["idexp_lm3d_std"])
    return clamp_and_smooth(raw, mean, std, clamp_std, smoothing, gain)


def resolve_spoken_gain(setting: str | float, model, speaker_root: str | Path, temperature: float = 1.0) -> float:
    """`auto` → spoken_motion_gain; a number → itself (1: the motion as predicted)."""
    if str(setting) == "auto":
        return spoken_motion_gain(model, speaker_root, temperature)
    gain = float(setting)
    if gain <= 0:
        raise ValueError(f"spoken_gain must be auto or a positive number; got {setting}")
    return gain
