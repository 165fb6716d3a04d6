"""LMD (geneface.metrics.lmd): the distance's math on synthetic points, and detection on a real clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geneface.metrics.lmd import landmark_distance, lmd_from_frames

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MAY = SHARED_DATA / "speakers" / "May_5s.mp4"


def _mouth(rng, t: int) -> np.ndarray:
    return rng.uniform(200, 300, size=(t, 20, 2))                  # [T, 20, 2] pixels


def test_distance_is_translation_invariant_and_has_known_value():
    rng = np.random.default_rng(0)
    real = _mouth(rng, 6)
    assert landmark_distance(real, real) == 0.0
    moved = real + rng.uniform(-30, 30, size=(6, 1, 2))            # a different shift per frame
    assert landmark_distance(moved, real) == pytest.approx(0.0, abs=1e-9)
    # Known value: points alternately pushed ±(3, 4) from the centre keep the mean → every point is 5 px off.
    push = np.tile([[3.0, 4.0], [-3.0, -4.0]], (10, 1))             # [20, 2], mean 0
    assert landmark_distance(real + push, real) == pytest.approx(5.0)


def test_frames_without_a_face_are_left_out():
    rng = np.random.default_rng(1)
    real = _mouth(rng, 4)
    pred = real.copy()
    pred[:2] += np.tile([[3.0, 4.0], [-3.0, -4.0]], (10, 1))       # frames 0, 1: 5 px off
    pred[1] = np.nan                                                # no face in generated frame 1
    real[2] = np.nan                                                # no face in real frame 2
    assert landmark_distance(pred, real) == pytest.approx((5.0 + 0.0) / 2)      # frames 0 and 3
    with pytest.raises(ValueError, match=r"no frame has a face in both .*0 of 2 frames"):
        landmark_distance(pred[1:3], real[1:3])
    with pytest.raises(ValueError, match="4 frames and real has 3"):
        landmark_distance(pred, real[:3])
    with pytest.raises(ValueError, match=r"\[T, 20, 2\]"):
        landmark_distance(pred[:, :10], real[:, :10])


@pytest.mark.realdata
def test_real_clip():
    if not MAY.is_file():
        pytest.skip(f"{MAY} not present (see ../shared/data/MANIFEST.tsv)")
    from geneface.media.video import iter_frames

    frames = list(iter_frames(MAY, max_frames=40))[::4]             # 10 frames over 1.6 s: the mouth moves
    same = lmd_from_frames(frames, frames)
    assert same == dict(lmd=0.0, frames_compared=10, detection_rate_generated=1.0, detection_rate_real=1.0)
    shifted = [np.roll(f, (5, 5), axis=(0, 1)) for f in frames]    # 5 px right and down
    assert lmd_from_frames(shifted, frames)["lmd"] < 0.5           # centring removes the shift
    reordered = frames[5:] + frames[:5]                             # frame i vs frame i + 5 (0.8 s apart)
    assert lmd_from_frames(reordered, frames)["lmd"] > 2.0               # measured ≈ 5.8 px at 512²
