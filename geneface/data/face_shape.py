"""The parametric face of the synthetic head: iBUG-68 landmarks in head units from a FaceShape.

The head is an ellipsoid in a head frame in head units (the eye span, outer eye corner to outer eye
corner, is 1) with OpenCV axes: x right, y down, z away from the camera; the face looks toward −z.
Landmarks are points on the front of the ellipsoid (the nose stands out), driven by a mouth opening,
a blink and a brow raise in [0, 1]. The synthetic producer (geneface.synthetic.head) renders this face;
the landmark visualizer uses its default FaceShape as a generic mean face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FaceShape:
    """Identity: head size, feature placement and colours (head units, y down, RGB in [0, 1])."""

    radii: tuple[float, float, float] = (0.82, 1.35, 0.95)   # ellipsoid half-axes x, y, z
    eye_y: float = -0.16        # height of the eye corners; outer corners at x = ±0.5
    eye_width: float = 0.30     # corner to corner, one eye
    eye_open: float = 0.055     # half-height of the open eye
    brow_gap: float = 0.17      # brows above the eye corners
    nose_y: float = 0.27        # nose tip
    nose_depth: float = 0.28    # nose tip in front of the ellipsoid surface
    mouth_y: float = 0.52       # mouth corners
    mouth_width: float = 0.52   # corner to corner
    lip_height: float = 0.055   # thickness of each lip
    max_gap: float = 0.24       # inner-lip gap at opening 1
    jaw_width: float = 0.72     # half-width of the jaw contour at its top
    chin_y: float = 0.82
    skin: tuple[float, float, float] = (0.86, 0.66, 0.54)
    hair: tuple[float, float, float] = (0.25, 0.16, 0.10)
    lips: tuple[float, float, float] = (0.72, 0.35, 0.35)
    iris: tuple[float, float, float] = (0.30, 0.22, 0.12)
    shirt: tuple[float, float, float] = (0.20, 0.35, 0.60)


def random_face_shape(rng: np.random.Generator) -> FaceShape:
    """A plausible random identity; features stay inside the ellipsoid's front."""
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    a = u(0.76, 0.88)
    eye_y = u(-0.2, -0.12)
    nose_y = eye_y + u(0.40, 0.46)
    mouth_y = nose_y + u(0.22, 0.27)
    def colour(base, jitter: float) -> tuple[float, float, float]:
        return tuple(float(c) for c in np.clip(np.asarray(base) + rng.uniform(-jitter, jitter, 3), 0, 1))
    tone = u(0.45, 1.0)
    return FaceShape(
        radii=(a, u(1.3, 1.4), u(0.88, 1.0)), eye_y=eye_y, eye_width=u(0.27, 0.33), eye_open=u(0.045, 0.065),
        brow_gap=u(0.14, 0.2), nose_y=nose_y, nose_depth=u(0.22, 0.32), mouth_y=mouth_y,
        mouth_width=u(0.45, 0.58), lip_height=u(0.045, 0.065), max_gap=u(0.2, 0.26),
        jaw_width=a * u(0.84, 0.9), chin_y=mouth_y + u(0.28, 0.33),
        skin=colour(np.array([0.9, 0.7, 0.58]) * tone, 0.04), hair=colour((0.2, 0.14, 0.1), 0.1),
        lips=colour((0.7, 0.34, 0.34), 0.06), iris=colour((0.3, 0.25, 0.2), 0.1),
        shirt=colour((0.4, 0.4, 0.5), 0.3))


def _template(s: FaceShape) -> tuple[np.ndarray, ...]:
    """68 points as xy = base + opening·d_open + blink·d_blink + brow·d_brow, plus protrusion [68]."""
    base, d_open, d_blink, d_brow = (np.zeros((68, 2)) for _ in range(4))
    protrude = np.zeros(68)
    theta = np.pi - np.arange(17) * np.pi / 16                     # jaw 0–16, subject right to left
    top = s.eye_y + 0.06
    base[0:17] = np.stack([s.jaw_width * np.cos(theta), top + (s.chin_y - top) * np.sin(theta)], 1)
    d_open[0:17, 1] = 0.85 * s.max_gap * np.sin(theta) ** 2       # the chin drops with the lower lip
    bx = np.array([0.62, 0.5, 0.37, 0.25, 0.13])
    arch = np.array([0.0, 0.04, 0.055, 0.045, 0.02])
    base[17:22] = np.stack([-bx, s.eye_y - s.brow_gap - arch], 1)
    base[22:27] = np.stack([bx[::-1], s.eye_y - s.brow_gap - arch[::-1]], 1)
    d_brow[17:27, 1] = -0.05
    protrude[17:27] = 0.02
    frac = np.array([0.0, 0.33, 0.66, 1.0])                           # nose bridge 27–30
    base[27:31] = np.stack([np.zeros(4), s.eye_y - 0.02 + frac * (s.nose_y - s.eye_y + 0.02)], 1)
    protrude[27:31] = [0.04, 0.1, 0.18, s.nose_depth]
    nostril_y = s.nose_y + np.array([0.06, 0.08, 0.1, 0.08, 0.06])            # nose base 31–35
    base[31:36] = np.stack([[-0.17, -0.09, 0.0, 0.09, 0.17], nostril_y], 1)
    protrude[31:36] = [0.06, 0.1, 0.14, 0.1, 0.06]
    ew, eh = s.eye_width, s.eye_open
    for first, outer, sign in ((36, -0.5, 1.0), (42, 0.5, -1.0)):     # right eye 36–41, left eye 42–47
        xs = outer + sign * ew * np.array([0, 1 / 3, 2 / 3, 1, 2 / 3, 1 / 3])
        ys = s.eye_y + eh * np.array([0, -1, -1, 0, 0.8, 0.8])
        blink = eh * np.array([0, 1.6, 1.6, 0, -0.1, -0.1])
        order = np.arange(6) if first == 36 else np.array([3, 2, 1, 0, 5, 4])  # 42 is the inner corner
        base[first:first + 6] = np.stack([xs[order], ys[order]], 1)
        d_blink[first:first + 6, 1] = blink[order]
    wm, wi, lh, g, ym = s.mouth_width / 2, 0.4 * s.mouth_width, s.lip_height, s.max_gap, s.mouth_y
    outer_x = wm * np.array([-1, -0.6, -0.25, 0, 0.25, 0.6, 1, 0.6, 0.25, 0, -0.25, -0.6])   # 48–59
    outer_y = lh * np.array([0, -0.8, -1.05, -0.95, -1.05, -0.8, 0, 1.0, 1.2, 1.25, 1.2, 1.0])
    outer_open = g * np.array([0.35, -0.15, -0.15, -0.15, -0.15, -0.15, 0.35, 0.65, 0.8, 0.85, 0.8, 0.65])
    inner_x = wi * np.array([-1, -0.4, 0, 0.4, 1, 0.4, 0, -0.4])                                 # 60–67
    inner_open = g * np.array([0.35, -0.12, -0.15, -0.12, 0.35, 0.7, 0.85, 0.7])
    base[48:60] = np.stack([outer_x, ym + outer_y], 1)
    base[60:68] = np.stack([inner_x, np.full(8, ym)], 1)
    d_open[48:60, 1], d_open[60:68, 1] = outer_open, inner_open
    d_open[[48, 54, 60, 64], 0] = [0.1 * wm, -0.1 * wm, 0.1 * wi, -0.1 * wi]   # corners draw inward
    protrude[48:68] = 0.04
    protrude[[48, 54, 60, 64]] = 0.0
    return base, d_open, d_blink, d_brow, protrude


def surface_z(s: FaceShape, xy: np.ndarray) -> np.ndarray:
    """z of the ellipsoid's front (face side, z < 0) at head-frame xy [..., 2] → [...]."""
    a, b, c = s.radii
    inside = 1.0 - (xy[..., 0] / a) ** 2 - (xy[..., 1] / b) ** 2
    return -c * np.sqrt(np.maximum(inside, 0.05))


def landmarks68(s: FaceShape, opening, blink=0.0, brow=0.0) -> np.ndarray:
    """Head-frame iBUG-68 points: opening/blink/brow of shape [...] in [0, 1] → [..., 68, 3]."""
    base, d_open, d_blink, d_brow, protrude = _template(s)
    o, k, w = (np.asarray(v, dtype=float)[..., None, None] for v in (opening, blink, brow))
    xy = base + o * d_open + k * d_blink + w * d_brow
    z = surface_z(s, xy) - protrude
    return np.concatenate([xy, z[..., None]], -1)
