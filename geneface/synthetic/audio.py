"""Speech-like audio whose loudness is the answer key for mouth motion.

Tests of lip sync and audio→motion need audio whose features predict the mouth, not real speech: a
train of voiced "syllables" (a harmonic source at a speaker's pitch, shaped by vowel formants) with
smooth loudness envelopes and pauses. The same envelope, smoothed and sampled per video frame, is
the mouth opening, so a model can learn it from mel/f0 and a test knows what it should learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

from geneface.data.contract import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from geneface.media.audio import write_wav

# (F1, F2, F3) in Hz of a few vowels (Peterson & Barney, adult male): the spectral shape per syllable.
VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
          (570, 840, 2410), (660, 1720, 2410), (440, 1020, 2240), (490, 1350, 1690))
FORMANT_BANDWIDTHS = (90.0, 110.0, 170.0)
MAX_HARMONIC_HZ = 5000.0
ROOM_NOISE = 3e-4  # white-noise floor, so silence is not digital zero


@dataclass(frozen=True)
class Voice:
    """A speaker's voice: what differs between synthetic speakers in the audio."""

    f0: float = 140.0            # mean pitch in Hz (90–250)
    formant_scale: float = 1.0   # vocal-tract factor on the formants (shorter tract → higher)
    breathiness: float = 0.03    # aspiration noise relative to the voiced part


def random_voice(rng: np.random.Generator) -> Voice:
    return Voice(f0=float(rng.uniform(90.0, 250.0)), formant_scale=float(rng.uniform(0.9, 1.2)),
                 breathiness=float(rng.uniform(0.01, 0.06)))


def _syllable(rng: np.random.Generator, length: int, voice: Voice, vowel: tuple[int, int, int]) -> np.ndarray:
    """One voiced syllable [length] of unit RMS: harmonics weighted by formant resonances."""
    tau = np.arange(length) / SAMPLE_RATE
    base = voice.f0 * rng.uniform(0.88, 1.12)
    # Intonation: a slow glide plus a little vibrato-like wobble.
    f0 = base * (1.0 + rng.uniform(-0.08, 0.08) * tau / max(tau[-1], 1e-3)
                 + 0.02 * np.sin(2 * np.pi * rng.uniform(3.0, 6.0) * tau + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE + rng.uniform(0, 2 * np.pi)   # [L]
    k = np.arange(1, int(MAX_HARMONIC_HZ / (base * 1.1)) + 1)                      # [K]
    freqs = k * base
    gain = 1.0 / k**0.6                                                             # glottal tilt
    formants = np.asarray(vowel, dtype=float) * voice.formant_scale
    resonance = sum(1.0 / (1.0 + ((freqs - f) / bw) ** 2) for f, bw in zip(formants, FORMANT_BANDWIDTHS))
    amps = gain * (0.05 + resonance)                                                # [K]
    wave = amps @ np.sin(k[:, None] * phase[None, :])                               # [L]
    wave += voice.breathiness * np.sqrt(np.mean(amps**2) * len(k) / 2) * rng.standard_normal(length)
    return wave / (np.sqrt(np.mean(wave**2)) + 1e-12)


def speech_like_audio(rng: np.random.Generator, num_frames: int, voice: Voice = Voice(),
                      lead_s: float = 0.02, pause_prob: float = 0.15
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Audio for `num_frames` video frames and the mouth opening it implies.

    Returns wave [num_frames·640] float32 in [-1, 1] at 16 kHz and opening [num_frames] float32 in
    [0, 1]: the loudness envelope (scaled by how open the vowel is, F1) smoothed over 40 ms and
    sampled at each frame's centre `lead_s` ahead, as the mouth moves slightly before the sound.
    """
    total = num_frames * SAMPLES_PER_FRAME
    wave = np.zeros(total)
    envelope = np.zeros(total)          # the mouth's target, [N]
    cursor = int(rng.uniform(0.05, 0.3) * SAMPLE_RATE)
    while cursor < total:
        length = int(rng.uniform(0.12, 0.30) * SAMPLE_RATE)
        stop = min(cursor + length, total)
        vowel = VOWELS[rng.integers(len(VOWELS))]
        loudness = rng.uniform(0.35, 1.0)
        shape = np.sin(np.pi * np.arange(length) / length) ** 2   # smooth attack and release
        voiced = _syllable(rng, length, voice, vowel)
        wave[cursor:stop] += (0.25 * loudness * shape * voiced)[: stop - cursor]
        openness = 0.7 + 0.3 * np.clip((vowel[0] - 270) / 460, 0.0, 1.0)   # open vowels, open mouth
        envelope[cursor:stop] = (loudness * openness * shape)[: stop - cursor]
        gap = rng.uniform(0.3, 1.0) if rng.random() < pause_prob else rng.uniform(0.03, 0.12)
        cursor = stop + int(gap * SAMPLE_RATE)
    wave += ROOM_NOISE * rng.standard_normal(total)

    window = SAMPLE_RATE // 25                                          # 40 ms box filter
    smooth = uniform_filter1d(envelope, window, mode="constant")
    centres = np.arange(num_frames) * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME // 2 + int(lead_s * SAMPLE_RATE)
    opening = smooth[np.clip(centres, 0, total - 1)]
    return np.clip(wave, -1.0, 1.0).astype(np.float32), np.clip(opening, 0.0, 1.0).astype(np.float32)


def write_driving_audio(path: Path, seconds: float, seed: int) -> Path:
    """A speech-like wav in a voice the synthetic speaker never had (a cross-driven test)."""
    rng = np.random.default_rng(seed + 7919)
    wave, _ = speech_like_audio(rng, int(round(seconds * FPS)), random_voice(rng))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, 0.5 * wave)
    return path
