"""A parametric head whose landmarks, pose, pixels and labels are all known exactly.

Its face geometry (FaceShape, the 68 landmarks on the ellipsoid) is geneface.data.face_shape; this
module adds the 478-point mesh, head motion, the camera and the renderer. The head is an ellipsoid in a head frame in head units (the eye span, outer eye corner to outer eye
corner, is 1) with OpenCV axes: x right in the image, y down, z away from the camera; the face
looks toward −z. Landmarks are points on the front of the ellipsoid (the nose stands out), driven
by a mouth opening in [0, 1]. A numpy ray-caster renders the head over a neck, a torso and a
static background, and labels each pixel by the surface its ray hit, so masks are exact.

Camera: pinhole, focal f in pixels, principal point (W/2, H/2), pixel (i, j) centred at (j+½, i+½).
A camera point (X, Y, Z) projects to x = f·X/Z + cx, y = f·Y/Z + cy; landmark z is in pixels too:
z = (Z − t_z)·f / t_z, the depth behind the head centre at the head centre's pixel scale (+z away).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geneface.data.contract import Label
from geneface.data.face_shape import FaceShape, landmarks68, surface_z
from geneface.data.landmarks import MEDIAPIPE_TO_IBUG68, NUM_MEDIAPIPE

REST_T = np.array([0.0, -0.3, 10.0])            # head centre in the camera frame, head units
FOCAL_PER_PIXEL = 2.0                           # focal = 2 · image size: same framing at any size
LIGHT = np.array([-0.45, -0.6, -0.66]) / np.linalg.norm([-0.45, -0.6, -0.66])  # toward the light
NECK = dict(x=0.0, z=10.2, radius=0.45, y_top=-0.5, y_bottom=2.2)               # camera frame
TORSO = dict(centre=np.array([0.0, 2.85, 10.5]), radii=np.array([2.4, 1.6, 1.0]))
_FILL_IDX = np.array(sorted(set(range(468)) - set(MEDIAPIPE_TO_IBUG68)))        # [400]


def landmarks478(s: FaceShape, lm68: np.ndarray) -> np.ndarray:
    """Head-frame MediaPipe-478 points [..., 478, 3] whose 68-subset is `lm68` [..., 68, 3] exactly.

    The other 400 mesh points lie on the face front (a golden-angle spiral) and follow the nearest
    semantic points' motion; 468–477 are the irises (the subject's right eye first).
    """
    neutral = landmarks68(s, 0.0)                                         # [68, 3]
    i = np.arange(len(_FILL_IDX))
    r, phi = np.sqrt((i + 0.5) / len(i)), i * np.pi * (3 - np.sqrt(5))
    top, bottom = s.eye_y - s.brow_gap - 0.1, s.chin_y - 0.04
    xy = np.stack([0.95 * s.jaw_width * r * np.cos(phi),
                   (top + bottom) / 2 + (bottom - top) / 2 * r * np.sin(phi)], 1)
    fill = np.concatenate([xy, surface_z(s, xy)[:, None]], 1)              # [400, 3]
    dist = np.linalg.norm(fill[:, None, :2] - neutral[None, :, :2], axis=-1)  # [400, 68]
    weight = np.where(dist <= np.sort(dist, 1)[:, 3:4], 1.0 / (dist + 0.02) ** 2, 0.0)
    weight /= weight.sum(1, keepdims=True)
    out = np.empty(lm68.shape[:-2] + (NUM_MEDIAPIPE, 3))
    out[..., list(MEDIAPIPE_TO_IBUG68), :] = lm68
    out[..., _FILL_IDX, :] = fill + np.einsum("nk,...kd->...nd", weight, lm68 - neutral)
    ring = np.array([[0, 0, 0], [0.05, 0, 0], [0, -0.05, 0], [-0.05, 0, 0], [0, 0.05, 0]])
    for start, eye in ((468, slice(36, 42)), (473, slice(42, 48))):
        centre = lm68[..., eye, :].mean(-2, keepdims=True) - np.array([0, 0, 0.01])
        out[..., start:start + 5, :] = centre + ring
    return out


# --- pose and camera ---------------------------------------------------------------------------

def euler_to_matrix(pitch, yaw, roll) -> np.ndarray:
    """Angles [...] in radians about x, y, z → R = Rz·Ry·Rx [..., 3, 3]."""
    cx, sx, cy, sy = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    cz, sz = np.cos(roll), np.sin(roll)
    one, zero = np.ones_like(cx), np.zeros_like(cx)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(*np.shape(cx), 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*np.shape(cx), 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(*np.shape(cx), 3, 3)
    return rz @ ry @ rx


def head_motion(rng: np.random.Generator, num_frames: int, degrees=(3.0, 4.0, 2.0),
                shift=(0.06, 0.05, 0.15)) -> tuple[np.ndarray, np.ndarray]:
    """Smooth small head motion: R [T, 3, 3], t [T, 3] (x_cam = R·x_head + t) around REST_T."""
    time = np.arange(num_frames) / 25.0
    def wobble(amplitude: float) -> np.ndarray:  # three slow sinusoids, peak ≈ amplitude
        freq, phase = rng.uniform(0.05, 0.4, 3), rng.uniform(0, 2 * np.pi, 3)
        return amplitude / 2 * np.sin(2 * np.pi * freq * time[:, None] + phase).sum(1)
    angles = [np.deg2rad(wobble(d)) for d in degrees]
    return euler_to_matrix(*angles), REST_T + np.stack([wobble(d) for d in shift], 1)


@dataclass(frozen=True)
class Camera:
    width: int
    height: int
    focal: float

    @property
    def cx(self) -> float:
        return self.width / 2.0

    @property
    def cy(self) -> float:
        return self.height / 2.0


def default_camera(size: int) -> Camera:
    return Camera(size, size, FOCAL_PER_PIXEL * size)


def project(cam: Camera, points_head: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Head-frame points [..., N, 3] with pose R [..., 3, 3], t [..., 3] → image x, y, z px [..., N, 3]."""
    p = np.einsum("...ij,...nj->...ni", R, points_head) + t[..., None, :]
    tz = t[..., None, 2]
    return np.stack([cam.focal * p[..., 0] / p[..., 2] + cam.cx, cam.focal * p[..., 1] / p[..., 2] + cam.cy,
                     (p[..., 2] - tz) * cam.focal / tz], -1)


# --- rendering ---------------------------------------------------------------------------------

def make_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A static textured plate [H, W, 3] uint8: vertical gradient, soft diagonal stripes, blobs."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    top, bottom = rng.uniform(0.3, 0.9, 3), rng.uniform(0.1, 0.6, 3)
    img = top + (bottom - top) * y[..., None]
    angle, period = rng.uniform(0, np.pi), rng.uniform(0.08, 0.2)
    img *= 1 + 0.08 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)[..., None]
    for _ in range(4):
        cx, cy, rad = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.2)
        img += (rng.uniform(-0.15, 0.15, 3) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / rad**2)[..., None])
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _ellipsoid_hit(origin: np.ndarray, dirs: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Nearest ray parameter s > 0 of origin + s·dir on an origin-centred ellipsoid, inf on a miss."""
    o, d = origin / radii, dirs / radii                                  # [3], [N, 3]
    a, b, c = (d * d).sum(1), 2 * d @ o, o @ o - 1.0
    disc = b * b - 4 * a * c
    s = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    return np.where((disc > 0) & (s > 0), s, np.inf)


def _in_ellipse(x, y, cx, cy, hw, hh) -> np.ndarray:
    return ((x - cx) / max(hw, 1e-6)) ** 2 + ((y - cy) / max(hh, 1e-6)) ** 2 < 1.0


def _head_albedo(s: FaceShape, p: np.ndarray, opening: float, blink: float, brow: float) -> np.ndarray:
    """Colour [N, 3] of head-frame surface points p [N, 3]: skin, hair, eyes, brows, lips, mouth."""
    a, b, c = s.radii
    u, v, w = p[:, 0] / a, p[:, 1] / b, p[:, 2] / c
    x, y, front = p[:, 0], p[:, 1], p[:, 2] < 0
    grain = 1 + 0.05 * np.sin(11 * u + 3) * np.sin(9 * v) + 0.03 * np.sin(23 * w + 7 * u)  # on the head
    col = np.asarray(s.skin) * grain[:, None]
    hair = (v < -0.5 + 0.3 * u**2) | ((w > 0.15) & (v < 0.55))
    col[hair] = np.asarray(s.hair) * (1 + 0.15 * np.sin(40 * u + 10 * v))[hair, None]
    eh = s.eye_open * (1 - 0.95 * blink)
    for ex in (-0.5 + s.eye_width / 2, 0.5 - s.eye_width / 2):
        sclera = front & _in_ellipse(x, y, ex, s.eye_y, s.eye_width / 2, eh)
        col[sclera] = (0.93, 0.92, 0.9)
        col[sclera & _in_ellipse(x, y, ex, s.eye_y, 0.055, 0.055)] = s.iris
        col[sclera & _in_ellipse(x, y, ex, s.eye_y, 0.025, 0.025)] = (0.05, 0.05, 0.05)
        brow_y = s.eye_y - s.brow_gap - 0.04 - 0.05 * brow
        col[front & _in_ellipse(x, y, 1.1 * ex, brow_y, 0.24, 0.03)] = np.asarray(s.hair) * 0.8
    for nx in (-0.06, 0.06):
        col[front & _in_ellipse(x, y, nx, s.nose_y + 0.07, 0.035, 0.018)] = np.asarray(s.skin) * 0.35
    gap = s.max_gap * opening
    cy = s.mouth_y + 0.35 * gap
    squeeze = 1 - 0.1 * opening                                           # corners draw inward
    lips = front & _in_ellipse(x, y, 0, cy, s.mouth_width / 2 * squeeze, gap / 2 + 1.1 * s.lip_height)
    col[lips] = s.lips
    inside = front & _in_ellipse(x, y, 0, cy, 0.4 * s.mouth_width * squeeze, gap / 2)
    col[inside] = (0.25, 0.05, 0.06)
    col[inside & (y < cy - gap / 2 + 0.035)] = (0.9, 0.88, 0.82)            # upper teeth
    return col


def render(s: FaceShape, cam: Camera, R: np.ndarray, t: np.ndarray, background: np.ndarray,
           opening: float = 0.0, blink: float = 0.0, brow: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast one frame with head pose R [3, 3], t [3] → (RGB [H, W, 3] uint8, labels [H, W] uint8)."""
    j, i = np.meshgrid(np.arange(cam.width) + 0.5, np.arange(cam.height) + 0.5)
    dirs = np.stack([(j - cam.cx) / cam.focal, (i - cam.cy) / cam.focal, np.ones_like(j)], -1).reshape(-1, 3)
    radii = np.asarray(s.radii)
    origin_h, dirs_h = -R.T @ t, dirs @ R                                 # rays in the head frame
    s_head = _ellipsoid_hit(origin_h, dirs_h, radii)                      # ray parameter = camera Z
    s_torso = _ellipsoid_hit(-TORSO["centre"], dirs, TORSO["radii"])
    # Neck: vertical cylinder (x − x0)² + (z − z0)² = r², y_top ≤ y ≤ y_bottom, camera frame.
    qa = dirs[:, 0] ** 2 + dirs[:, 2] ** 2
    qb = -2 * (NECK["x"] * dirs[:, 0] + NECK["z"] * dirs[:, 2])
    qc = NECK["x"] ** 2 + NECK["z"] ** 2 - NECK["radius"] ** 2
    disc = qb * qb - 4 * qa * qc
    s_neck = (-qb - np.sqrt(np.maximum(disc, 0))) / (2 * qa)
    ok = (disc > 0) & (s_neck * dirs[:, 1] >= NECK["y_top"]) & (s_neck * dirs[:, 1] <= NECK["y_bottom"])
    s_neck = np.where(ok, s_neck, np.inf)

    depth = np.stack([np.full(len(dirs), np.inf), s_head, s_neck, s_torso], 1)   # order = Label values
    label = np.argmin(depth, 1)
    label[~np.isfinite(depth.min(1))] = Label.BACKGROUND
    colour = background.reshape(-1, 3).astype(np.float64) / 255
    for which in (Label.HEAD, Label.NECK, Label.TORSO):
        m = label == which
        if not m.any():
            continue
        p = dirs[m] * depth[m, which][:, None]                                  # camera-frame hits
        if which == Label.HEAD:
            ph = (p - t) @ R                                                    # R^T (p − t)
            normal, albedo = (ph / radii**2) @ R.T, _head_albedo(s, ph, opening, blink, brow)
        elif which == Label.NECK:
            normal = np.stack([p[:, 0] - NECK["x"], np.zeros(len(p)), p[:, 2] - NECK["z"]], 1)
            albedo = np.tile(np.asarray(s.skin) * 0.88, (len(p), 1))
        else:
            normal = (p - TORSO["centre"]) / TORSO["radii"] ** 2
            stripes = 1 + 0.12 * np.sign(np.sin(6 * p[:, 1] + 2 * p[:, 0]))
            albedo = np.asarray(s.shirt) * stripes[:, None]
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        colour[m] = albedo * (0.35 + 0.65 * np.clip(normal @ LIGHT, 0, 1))[:, None]
    rgb = (np.clip(colour, 0, 1) * 255).round().astype(np.uint8).reshape(cam.height, cam.width, 3)
    return rgb, label.astype(np.uint8).reshape(cam.height, cam.width)

