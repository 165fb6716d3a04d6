"""geneface.metrics.lipsync: known answers on synthetic series (a late copy, a scaled copy, noise)."""

from __future__ import annotations

import numpy as np
import pytest

from geneface.metrics.lipsync import (AffineFit, amplitude_ratio, frame_energy, lagged_pearson, lip_opening,
                                      mouth_lmd, mouth_width)


def _speech_like(num: int, seed: int = 0) -> np.ndarray:
    """[T] a smooth, aperiodic opening signal: smoothed noise, so a shifted copy is not periodic."""
    rng = np.random.default_rng(seed)
    return np.convolve(rng.standard_normal(num + 6), np.ones(4) / 4, mode="valid")[:num]


@pytest.mark.parametrize("shift", [-4, -1, 0, 2, 5])
def test_a_late_copy_peaks_at_its_shift(shift):
    real = _speech_like(300)
    pred = np.roll(real, shift)                       # pred[t] = real[t − shift]: `shift` frames late
    scores = lagged_pearson(pred, real, max_lag=5)
    assert scores.best_lag == shift
    assert scores.best_r == pytest.approx(1.0, abs=0.02)      # only the wrapped frames differ
    if shift:
        assert scores.r < 0.9                         # at lag 0 a late copy is not in sync
    assert set(scores.by_lag) == set(range(-5, 6))


def test_a_scaled_offset_copy_scores_one_and_noise_zero():
    real = _speech_like(400)
    assert lagged_pearson(3.0 * real - 7.0, real).r == pytest.approx(1.0)
    assert lagged_pearson(-real, real).r == pytest.approx(-1.0)
    noise = np.random.default_rng(1).standard_normal(400)
    scores = lagged_pearson(noise, real)
    assert abs(scores.r) < 0.15 and abs(scores.best_r) < 0.25
    constant = lagged_pearson(np.ones(400), real)
    assert constant.r is None and constant.best_lag is None       # r undefined, not 0


def test_lagged_pearson_rejects_mismatched_series():
    with pytest.raises(ValueError, match="same length"):
        lagged_pearson(np.zeros(10), np.zeros(11))


def test_opening_and_width_read_the_head_frame():
    idexp = np.zeros((3, 68, 3))
    idexp[:, 66, 1] = [0.0, 0.5, 2.0]                 # lower inner lip moves down (y down)
    idexp[:, 54, 0] = [0.0, 0.1, 0.3]                 # left corner moves out
    idexp[:, 48, 0] = [0.0, -0.1, -0.3]
    assert lip_opening(idexp).tolist() == [0.0, 0.5, 2.0]
    assert mouth_width(idexp) == pytest.approx([0.0, 0.2, 0.6])


def test_mouth_lmd_ignores_translation_and_is_in_percent_of_the_eye_span():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(20, 68, 3))
    assert mouth_lmd(real, real) == 0.0
    moved = real + np.array([5.0, -3.0, 1.0])          # the whole face moved: no mouth-shape difference
    assert mouth_lmd(moved, real) == pytest.approx(0.0, abs=1e-9)
    off = real.copy()
    off[:, 48:68, 0] += np.where(np.arange(20) < 10, 1.0, -1.0)    # half the points 1 idexp unit right, half left
    assert mouth_lmd(off, real) == pytest.approx(10.0)             # 1 idexp unit = 0.1 eye span = 10 %


def test_amplitude_ratio():
    real = _speech_like(100)
    assert amplitude_ratio(0.25 * real + 3, real) == pytest.approx(0.25)
    assert amplitude_ratio(real, np.ones(100)) is None


def test_frame_energy_and_the_affine_fit():
    mel = np.full((6, 80), -2.0)
    mel[2:4] = 0.0                                     # video frame 1 loud (power 1), the others 0.01
    assert frame_energy(mel) == pytest.approx([-2.0, 0.0, -2.0])
    x = [np.arange(10.0), np.arange(5.0)]
    fit = AffineFit.fit(x, [2 * v + 1 for v in x])
    assert (fit.slope, fit.intercept) == pytest.approx((2.0, 1.0))
    assert fit(np.array([3.0])) == pytest.approx([7.0])
    with pytest.raises(ValueError, match="distinct x"):
        AffineFit.fit([np.ones(5)], [np.arange(5.0)])
