"""Lip-sync scores of landmarks predicted from audio against a clip's real ones; no pretrained weights.

A model that has learnt lip sync opens the mouth when the real one opens, at the same moment. So the
main score is the Pearson r between the predicted and the real inner-lip opening (and mouth width)
over a clip, at lag 0 and at the best lag within ±max_lag frames: a synced model peaks at 0 ± 1, one
that reacts late peaks at a positive lag, one that ignores the audio has no peak (r ≈ 0 everywhere).

The openings are read in the head frame (`idexp_lm3d`, docs/data_format.md): pose-free, one eye span
per head unit, x across the face (48 → 54 positive) and y down. There, unlike in the image, the
inner-lip gap is a coordinate difference (y66 − y62), signed, so it does not fold at closed lips, and
it needs no mean shape: idexp is 10 × (points − the clip's mean shape), and a per-clip constant does
not change r. (On a speaker with a mean shape it agrees with `inner_lip_aperture`: r = 0.999 on cnn2.)

The loudness baseline (`frame_energy` → `AffineFit`) is the opening any model must beat: the mouth
opening predicted by an affine map of the audio's energy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from geneface.data.contract import FEATURES_PER_FRAME, IDEXP_SCALE
from geneface.data.landmarks import INNER_LIP_BOTTOM, INNER_LIP_TOP, MOUTH_CORNERS, mouth_points
from geneface.metrics.lmd import landmark_distance
from geneface.metrics.mouth import MIN_FRAMES, pearson

__all__ = ["LagScores", "lagged_pearson", "lip_opening", "mouth_width", "mouth_lmd", "amplitude_ratio",
           "frame_energy", "AffineFit"]


@dataclass(frozen=True)
class LagScores:
    r: float | None                 # Pearson r at lag 0 (None: undefined, see metrics.mouth.pearson)
    best_lag: int | None            # frames; > 0: the prediction comes that many frames late
    best_r: float | None            # r at best_lag
    by_lag: dict[int, float | None] = field(default_factory=dict)


def lagged_pearson(pred: np.ndarray, real: np.ndarray, max_lag: int = 5) -> LagScores:
    """Pearson r of two [T] series with the prediction shifted by −max_lag … +max_lag frames.

    At lag k, pred[t + k] is paired with real[t] (over the T − |k| frames where both exist), so a
    prediction that is a copy of the real series k frames late — pred[t] = real[t − k] — peaks at
    lag k. The best lag is the one with the highest r; ties go to the smaller |lag|."""
    pred, real = np.asarray(pred, np.float64), np.asarray(real, np.float64)
    if pred.shape != real.shape or pred.ndim != 1:
        raise ValueError(f"pred and real must be [T] series of the same length; got shapes {list(pred.shape)} "
                         f"and {list(real.shape)}")
    if max_lag < 0:
        raise ValueError(f"max_lag must be ≥ 0; got {max_lag}")
    num = len(pred)
    by_lag = {}
    for lag in range(-max_lag, max_lag + 1):
        if num - abs(lag) < MIN_FRAMES:
            by_lag[lag] = None
        elif lag >= 0:
            by_lag[lag] = pearson(pred[lag:], real[: num - lag])
        else:
            by_lag[lag] = pearson(pred[: num + lag], real[-lag:])
    defined = [(r, -abs(lag), lag) for lag, r in by_lag.items() if r is not None]
    if not defined:
        return LagScores(None, None, None, by_lag)
    best_r, _, best_lag = max(defined)
    return LagScores(by_lag[0], best_lag, best_r, by_lag)


def lip_opening(points: np.ndarray) -> np.ndarray:
    """Head-frame landmarks (idexp or head points) [..., 68, ≥2] → [...] the inner-lip gap y66 − y62,
    signed (negative: lips pressed past their rest)."""
    points = np.asarray(points, np.float64)
    return points[..., INNER_LIP_BOTTOM, 1] - points[..., INNER_LIP_TOP, 1]


def mouth_width(points: np.ndarray) -> np.ndarray:
    """Head-frame landmarks [..., 68, ≥2] → [...] the corner-to-corner width x54 − x48."""
    points = np.asarray(points, np.float64)
    return points[..., MOUTH_CORNERS[1], 0] - points[..., MOUTH_CORNERS[0], 0]


def mouth_lmd(pred_idexp: np.ndarray, real_idexp: np.ndarray) -> float:
    """Mouth LMD of idexp landmarks [T, 68, 3] in eye spans (×100: % of the eye span), x and y.

    metrics.lmd's definition (20 mouth points, each frame's set centred on its own mean, mean Euclidean
    distance), on pose-free points scaled per clip: processing fits each clip's head frame to one eye
    span, so clips of big and small faces, near and far, count alike. It compares motion, not identity:
    both sides are offsets from their own clip's rest shape."""
    scale = 100.0 / IDEXP_SCALE
    return scale * landmark_distance(mouth_points(np.asarray(pred_idexp, np.float64))[..., :2],
                                     mouth_points(np.asarray(real_idexp, np.float64))[..., :2])


def amplitude_ratio(pred: np.ndarray, real: np.ndarray) -> float | None:
    """std(pred) / std(real) of two [T] series: 1 when the predicted mouth moves as much as the real
    one, ≪ 1 for a mouth that barely moves (a model regressing to the mean); None if real is constant."""
    real_std = float(np.nanstd(real))
    return float(np.nanstd(pred)) / real_std if real_std > 1e-12 else None


def frame_energy(mel: np.ndarray) -> np.ndarray:
    """log10 mel power [2T, 80] → [T] log10 of the mean power over the frame's 2 feature frames and 80
    bins: how loud each video frame is."""
    mel = np.asarray(mel, np.float64)
    num = mel.shape[0] // FEATURES_PER_FRAME
    power = 10.0 ** mel[: num * FEATURES_PER_FRAME].reshape(num, FEATURES_PER_FRAME * mel.shape[1])
    return np.log10(power.mean(1))


@dataclass(frozen=True)
class AffineFit:
    """y ≈ slope · x + intercept, least squares over the finite pairs of many series (`fit`)."""

    slope: float
    intercept: float

    @classmethod
    def fit(cls, xs: list[np.ndarray], ys: list[np.ndarray]) -> "AffineFit":
        x = np.concatenate([np.asarray(v, np.float64).ravel() for v in xs])
        y = np.concatenate([np.asarray(v, np.float64).ravel() for v in ys])
        if x.shape != y.shape:
            raise ValueError(f"x and y hold {x.size} and {y.size} values; pair them frame by frame")
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 2 or np.ptp(x[ok]) == 0:
            raise ValueError(f"an affine fit needs ≥ 2 frames with distinct x; got {int(ok.sum())} finite pairs")
        slope, intercept = np.polyfit(x[ok], y[ok], 1)
        return cls(float(slope), float(intercept))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.slope * np.asarray(x, np.float64) + self.intercept
