"""Audio features at 50 Hz, exactly two per 25 fps video frame (reference §1.10).

One code path for real and synthetic audio, so models trained on one see the same features on the other.
Alignment: audio is padded by 96 samples at the start, so feature frame k covers samples
[320k − 96, 320k + 416) and is centred on the middle of its own 20 ms slot; video frame t pairs
with feature frames 2t and 2t + 1.
"""

from __future__ import annotations

import numpy as np

from geneface.data.contract import HOP_LENGTH, MEL_BINS, SAMPLE_RATE, SAMPLES_PER_FRAME

N_FFT = 512
WIN_LENGTH = 512
FMIN, FMAX = 80.0, 7600.0
LOG_FLOOR = 1e-6
F0_MIN, F0_MAX = 80.0, 750.0
_LEFT_PAD = (N_FFT - HOP_LENGTH) // 2  # 96


def fit_to_frames(wave: np.ndarray, num_frames: int) -> np.ndarray:
    """Zero-pad or cut a 16 kHz mono wave to exactly num_frames·640 samples."""
    target = num_frames * SAMPLES_PER_FRAME
    if len(wave) >= target:
        return wave[:target]
    return np.pad(wave, (0, target - len(wave)))


def _framed_input(wave: np.ndarray, num_feature_frames: int) -> np.ndarray:
    total = (num_feature_frames - 1) * HOP_LENGTH + N_FFT
    padded = np.zeros(total, dtype=np.float32)
    body = wave[: total - _LEFT_PAD]
    padded[_LEFT_PAD : _LEFT_PAD + len(body)] = body
    return padded


def log_mel(wave: np.ndarray, num_feature_frames: int) -> np.ndarray:
    """[N] float 16 kHz → [A, 80] log10 mel power (n_fft 512, hop 320, Hann 512, 80–7600 Hz)."""
    import librosa

    x = _framed_input(wave, num_feature_frames)
    spec = np.abs(librosa.stft(x, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH,
                               window="hann", center=False)) ** 2
    mel_basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=MEL_BINS, fmin=FMIN, fmax=FMAX)
    mel = np.log10(np.maximum(LOG_FLOOR, mel_basis @ spec)).T
    assert mel.shape[0] == num_feature_frames, (mel.shape, num_feature_frames)
    return mel.astype(np.float32)


def fundamental_frequency(wave: np.ndarray, num_feature_frames: int) -> np.ndarray:
    """[N] → [A] f0 in Hz (YIN, 80–750 Hz), 0 on frames judged unvoiced (aperiodic or silent)."""
    import librosa

    frame_length = 1024  # YIN needs two periods of the lowest pitch: 2·16000/80 = 400 < 1024
    x = _framed_input(wave, num_feature_frames)
    x = np.pad(x, (0, frame_length))
    f0 = librosa.yin(x, fmin=F0_MIN, fmax=F0_MAX, sr=SAMPLE_RATE, frame_length=frame_length,
                     hop_length=HOP_LENGTH, center=False, trough_threshold=0.1)[:num_feature_frames]
    frames = librosa.util.frame(x, frame_length=N_FFT, hop_length=HOP_LENGTH)[:, :num_feature_frames]
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=0))
    voiced = rms > max(1e-4, 0.05 * float(np.percentile(rms, 95)))
    f0 = np.where(voiced & (f0 < F0_MAX * 0.99), f0, 0.0)
    return f0.astype(np.float32)


def audio_features(wave: np.ndarray, num_frames: int) -> dict[str, np.ndarray]:
    """16 kHz mono wave → {"mel": [2T, 80], "f0": [2T]} for T video frames."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"audio must be mono [N]; got shape {wave.shape}")
    num_feature_frames = 2 * num_frames
    return {"mel": log_mel(wave, num_feature_frames), "f0": fundamental_frequency(wave, num_feature_frames)}
