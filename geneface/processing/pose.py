"""Head pose (R, t per frame), one focal per video, and pose-free "idexp" landmarks from face mesh.

Replaces GeneFace's AD-NeRF BFM tracker (reference §1.8): instead of a 3DMM, the speaker's own rigid
shape (the RIGID_POINTS) is estimated from the video itself. Steps:
1. init: similarity Procrustes of MediaPipe's per-frame (x, y, z) px clouds → canonical shape and
   weak-perspective poses;
2. focal search, as AD-NeRF's: at each focal of a log grid over FOCAL_RANGE, a joint
   Levenberg–Marquardt fit of shape + poses on 40 frames; the best focal seeds a joint bundle
   adjustment of shape, focal and poses on ≤ 120 frames (Schur complement on the poses, Huber);
3. every frame: pose-only LM against that shape; frames without a face interpolated;
4. zero-phase Gaussian smoothing of rotation vectors and translations (centred: no lag);
5. head frame and idexp: see `fit_head_pose`.
Residuals: the pixel reprojection of the rigid points, plus MediaPipe's relative z (Z_WEIGHT),
which fixes the depth of the shape. The focal is weakly observable from landmarks: on real
MediaPipe output the fit keeps improving toward an orthographic camera (likely because its
training targets were weak-perspective fits), so there it ends at the top of FOCAL_RANGE; the reprojection
error barely depends on it (< 0.05 px between 2·W and 8·W). With exact perspective z and ±10–20°
head turns (the synthetic test) the focal comes back within 5 %.
Deterministic: fixed grids and frame subsets, no random sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from geneface.data.contract import IDEXP_SCALE
from geneface.data.landmarks import MEDIAPIPE_TO_IBUG68, RIGID

# iBUG indices the pose is fitted to and judged on: upper face contour 0–2 and 14–16, nose 27–35,
# eye corners 36 39 42 45. (Adding MediaPipe forehead, temple, cheek and nose points made the error
# on these larger on May, Obama and cnn2, so the fit uses exactly these.)
RIGID_POINTS: tuple[int, ...] = RIGID
FIT_MP: tuple[int, ...] = tuple(MEDIAPIPE_TO_IBUG68[i] for i in RIGID_POINTS)
FOCAL_RANGE = (1.0, 4.0)  # × max(W, H); AD-NeRF searches 600–1600 px at 512², i.e. 1.2–3.1
FOCAL_GRID = tuple(np.geomspace(*FOCAL_RANGE, 7))
FOCAL_PRIOR = 2.35        # × max(W, H): AD-NeRF's usual ≈1200 px at 512²; breaks ties on flat data
PRIOR_WEIGHT = 0.005      # per observation, on (log f − log f0)², in px² units
Z_WEIGHT = 0.5            # weight of MediaPipe's z against the pixel residuals
HUBER_PX = 2.0            # robust loss threshold, pixels at 512²
HEAD_CENTRE_DEPTH = 0.8   # head origin: centroid of mean_shape moved this far back (+z), head units
_PAIRS = ((36, 45), (39, 42), (0, 16), (1, 15), (2, 14), (31, 35), (32, 34))  # subject right → left


@dataclass
class HeadPoseFit:
    head_R: np.ndarray                 # [T, 3, 3] float32, x_cam = R·x_head + t
    head_t: np.ndarray                 # [T, 3] float32, head units
    focal: float                       # pixels; cx, cy = W/2, H/2
    mean_shape: np.ndarray             # [68, 3] float32, head frame, eye span 1
    head_points68: np.ndarray          # [T, 68, 3] float32, per-frame landmarks in the head frame
    idexp_lm3d: np.ndarray             # [T, 68, 3] float32, IDEXP_SCALE·(head_points68 − mean_shape)
    idexp_mean: np.ndarray             # [68, 3] float32
    idexp_std: np.ndarray              # [68, 3] float32, ≥ 1e-4
    reprojection_error_px: np.ndarray  # [T] float32, median over RIGID_POINTS of the pixel error
    c2w: np.ndarray                    # [T, 4, 4] float32, [Rᵀ | −Rᵀt; 0 0 0 1]


def project(points_head: np.ndarray, R: np.ndarray, t: np.ndarray, focal: float, width: int,
            height: int) -> np.ndarray:
    """Head-frame points [..., N, 3], R [..., 3, 3], t [..., 3] → pixels [..., N, 2] (pinhole)."""
    p = np.einsum("...ij,...nj->...ni", R, points_head) + t[..., None, :]
    return focal * p[..., :2] / p[..., 2:] + np.array([width / 2, height / 2])


def camera_to_world(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """R [T, 3, 3], t [T, 3] → c2w [T, 4, 4] = [Rᵀ | −Rᵀt] (camera → head frame, OpenCV axes)."""
    c2w = np.zeros(R.shape[:-2] + (4, 4), R.dtype)
    c2w[..., :3, :3] = np.swapaxes(R, -1, -2)
    c2w[..., :3, 3] = -np.einsum("...ji,...j->...i", R, t)
    c2w[..., 3, 3] = 1
    return c2w


def smooth_poses(R: np.ndarray, t: np.ndarray, sigma_frames: float,
                 cuts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Centred (zero-phase, so no lag) Gaussian smoothing of R [T, 3, 3] and t [T, 3].

    Rotations are smoothed as rotation vectors relative to their mean rotation, which is well
    defined for the ±30° a talking head turns; steady motion is kept up to the ends. `cuts`
    (frame indices that start a new shot) split the smoothing, so a cut stays sharp."""
    if sigma_frames <= 0 or len(R) < 2:
        return R.copy(), t.copy()
    R_s, t_s = np.empty_like(R), np.empty_like(t)
    edges = [0, *sorted(int(c) for c in (cuts if cuts is not None else ()) if 0 < c < len(R)), len(R)]
    for a, b in zip(edges[:-1], edges[1:]):
        rot = Rotation.from_matrix(R[a:b].astype(np.float64))
        mean = rot.mean()
        rel = _smooth((mean.inv() * rot).as_rotvec(), sigma_frames)
        R_s[a:b] = (mean * Rotation.from_rotvec(rel)).as_matrix()
        t_s[a:b] = _smooth(t[a:b].astype(np.float64), sigma_frames)
    return R_s, t_s


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter along axis 0 of x [T, C]; the ends are extended by point reflection
    (2·x_end − mirror image), so a steady motion is kept right up to the ends of a shot."""
    n = min(len(x) - 1, int(np.ceil(4 * sigma)))
    padded = np.concatenate([2 * x[:1] - x[n:0:-1], x, 2 * x[-1:] - x[-2:-2 - n:-1]])
    return gaussian_filter1d(padded, sigma, axis=0, mode="nearest")[n: n + len(x)]


def find_cuts(landmarks: np.ndarray, valid: np.ndarray, jump: float = 0.08) -> np.ndarray:
    """Frames that start a new shot: the face moved more than `jump` eye spans (and 8× the median
    motion) since the previous frame with a face. landmarks [T, N, ≥2] with MediaPipe's 33 and 263
    (or iBUG-68's 36 and 45 when N = 68) as the outer eye corners → int indices."""
    a, b = (36, 45) if landmarks.shape[1] == 68 else (MEDIAPIPE_TO_IBUG68[36], MEDIAPIPE_TO_IBUG68[45])
    idx = np.flatnonzero(valid)
    if len(idx) < 3:
        return np.zeros(0, int)
    xy = landmarks[idx, :, :2].astype(np.float64)
    motion = np.linalg.norm(np.diff(xy, axis=0), axis=-1).mean(1)                # [V − 1] px
    span = np.linalg.norm(xy[:, b] - xy[:, a], axis=-1)
    big = (motion > jump * span[1:]) & (motion > 8 * np.median(motion))
    return idx[1:][big]


# --- least squares ------------------------------------------------------------------------------

def _skew(q: np.ndarray) -> np.ndarray:
    """[..., 3] → [..., 3, 3] with skew(q)·v = q × v."""
    z = np.zeros_like(q[..., 0])
    return np.stack([z, -q[..., 2], q[..., 1], q[..., 2], z, -q[..., 0], -q[..., 1], q[..., 0], z],
                    -1).reshape(q.shape + (3,))


class _Problem:
    """Residuals and Jacobians of observations obs [T, N, 3] (u, v, z px) under the model
    p = R_t·S_i + t_t, (u, v) = f·p_xy/p_z + c, z = d_t + f·(p_z − p̄_z)/p̄_z: MediaPipe's z is the
    depth about the mesh's centre at the face's own x scale (Kartynnik et al. 2019). The model uses
    the centred shape S − mean(S), so t is the centroid's position and p̄_z = t_z; the shape Jacobian
    is the per-point one times the centring operator. `prior` = (weight, log f0) pulls log f."""

    def __init__(self, obs: np.ndarray, centre: np.ndarray, huber: float, log_f_range, prior=(0.0, 0.0)):
        self.obs, self.centre, self.huber, self.zw = obs, centre, huber, Z_WEIGHT
        self.log_f_range, self.prior = log_f_range, prior

    def residuals(self, S, logf, R, t, d):
        f = np.exp(logf)
        q = np.einsum("tij,nj->tni", R, S - S.mean(0))              # [T, N, 3]
        p = q + t[:, None]
        uv = f * p[..., :2] / p[..., 2:] + self.centre
        z = d[:, None] + f * q[..., 2] / t[:, None, 2]
        r = np.concatenate([uv - self.obs[..., :2], self.zw * (z - self.obs[..., 2])[..., None]], -1)
        return r, q, p                                              # r [T, N, 3]

    def cost(self, r, w, logf):
        return 0.5 * (w * r ** 2).sum() + 0.5 * self.prior[0] * (logf - self.prior[1]) ** 2

    def weights(self, r):
        """Huber IRLS weights [T, N, 3] from the pixel error, and the robust data cost."""
        e = np.linalg.norm(r[..., :2], axis=-1) + 1e-12
        w = np.where(e <= self.huber, 1.0, self.huber / e)
        cost = np.where(e <= self.huber, 0.5 * e ** 2, self.huber * (e - 0.5 * self.huber)).sum() \
            + 0.5 * (w * r[..., 2] ** 2).sum()
        return np.repeat(w[..., None], 3, -1), cost

    def jacobians(self, R, t, q, p, logf):
        """Jp [T, N, 3, 7] (rotation increment, t, d), Js [T, N, 3, 3], Jf [T, N, 3] (log f)."""
        T, N = q.shape[:2]
        f = np.exp(logf)
        A = np.zeros((T, N, 2, 3))
        A[..., 0, 0] = A[..., 1, 1] = f / p[..., 2]
        A[..., :, 2] = -f * p[..., :2] / p[..., 2:] ** 2
        dq = -_skew(q)                                               # dq/dδ [T, N, 3, 3]
        kz = self.zw * f / t[:, None, 2]                            # [T, 1]
        Jp = np.zeros((T, N, 3, 7))
        Jp[..., :2, :3] = A @ dq
        Jp[..., :2, 3:6] = A
        Jp[..., 2, :3] = kz[..., None] * dq[..., 2, :]
        Jp[..., 2, 5] = -kz * q[..., 2] / t[:, None, 2]
        Jp[..., 2, 6] = self.zw
        Js = np.zeros((T, N, 3, 3))
        Js[..., :2, :] = A @ R[:, None]
        Js[..., 2, :] = kz[..., None] * R[:, None, 2, :]
        Jf = np.concatenate([f * p[..., :2] / p[..., 2:], kz[..., None] * q[..., 2:]], -1)
        return Jp, Js, Jf


def _update(R, t, d, dp):
    R = Rotation.from_rotvec(dp[:, :3]).as_matrix() @ R
    return R, t + dp[:, 3:6], d + dp[:, 6]


def _lm(prob: _Problem, S, logf, R, t, d, iters: int, shape: bool, focal: bool = False):
    """Levenberg–Marquardt on the poses (R, t, z offset d), and the shape S [N, 3] and log focal if
    asked, with a Schur complement on the poses. Pose-only problems are T independent 7×7 systems,
    each with its own damping."""
    T, N = prob.obs.shape[:2]
    lam = np.full(T, 1e-3) if not shape else 1e-3
    r, q, p = prob.residuals(S, logf, R, t, d)
    for _ in range(iters):
        w, _ = prob.weights(r)
        frame_cost = 0.5 * (w * r ** 2).sum((1, 2))
        Jp, Js, Jf = prob.jacobians(R, t, q, p, logf)
        Jpw = (Jp * w[..., None]).reshape(T, 3 * N, 7)
        Hpp = Jpw.transpose(0, 2, 1) @ Jp.reshape(T, 3 * N, 7)                # [T, 7, 7]
        gp = (Jpw.transpose(0, 2, 1) @ r.reshape(T, 3 * N, 1))[..., 0]         # [T, 7]
        if not shape:                                   # independent frames, per-frame damping
            H = Hpp + lam[:, None, None] * (np.eye(7) * np.diagonal(Hpp, 0, 1, 2)[:, None] + 1e-9 * np.eye(7))
            R2, t2, d2 = _update(R, t, d, np.linalg.solve(H, -gp[..., None])[..., 0])
            r2, q2, p2 = prob.residuals(S, logf, R2, t2, d2)
            better = 0.5 * (w * r2 ** 2).sum((1, 2)) < frame_cost
            keep = better[:, None, None]
            R, t, d = np.where(keep, R2, R), np.where(keep[..., 0], t2, t), np.where(better, d2, d)
            r, q, p = np.where(keep, r2, r), np.where(keep, q2, q), np.where(keep, p2, p)
            lam = np.clip(np.where(better, lam / 3, lam * 5), 1e-7, 1e7)
            continue
        Jg = Jf[..., None][..., : int(focal)]                                  # [T, N, 3, 0 or 1]
        Jpw4 = Jpw.reshape(T, N, 3, 7)
        Hps = Jpw4.transpose(0, 1, 3, 2) @ Js                                   # [T, N, 7, 3]
        centred = lambda a, ax: a - a.mean(ax, keepdims=True)  # noqa: E731  (× centring operator)
        Hpg = np.concatenate([centred(Hps, 1).transpose(0, 2, 1, 3).reshape(T, 7, 3 * N),
                              np.einsum("tnci,tncj->tij", Jpw4, Jg)], -1)      # [T, 7, G]
        G = 3 * N + int(focal)
        Hgg = np.zeros((G, G))
        Jsw = Js * w[..., None]
        Hss = np.zeros((N, 3, N, 3))
        Hss[np.arange(N), :, np.arange(N)] = (Jsw.transpose(0, 1, 3, 2) @ Js).sum(0)
        Hgg[:3 * N, :3 * N] = centred(centred(Hss, 0), 2).reshape(3 * N, 3 * N)
        Hgg[:3 * N, 3 * N:] = centred(np.einsum("tnci,tncj->nij", Jsw, Jg), 0).reshape(3 * N, -1)
        Hgg[3 * N:, :3 * N] = Hgg[:3 * N, 3 * N:].T
        Hgg[3 * N:, 3 * N:] = np.einsum("tnci,tnc,tncj->ij", Jg, w, Jg)
        gg = np.concatenate([centred((Jsw * r[..., None]).sum((0, 2)), 0).ravel(),
                             np.einsum("tnci,tnc->i", Jg, w * r)])
        if focal:                                       # the focal prior
            Hgg[3 * N, 3 * N] += prob.prior[0]
            gg[3 * N] += prob.prior[0] * (logf - prob.prior[1])
        cost = prob.cost(r, w, logf)
        for _ in range(8):                              # raise the damping until the cost drops
            Hpp_d = Hpp + lam * np.eye(7) * np.diagonal(Hpp, 0, 1, 2)[:, None] + 1e-9 * np.eye(7)
            Hpp_inv = np.linalg.inv(Hpp_d)
            Hgg_d = Hgg + np.diag(lam * np.diagonal(Hgg) + 1e-6 * np.trace(Hgg) / G)
            X = Hpp_inv @ Hpg                                                  # [T, 7, G]
            red = Hgg_d - np.einsum("tig,tih->gh", Hpg, X, optimize=True)     # reduced camera system
            Hig = (Hpp_inv @ gp[..., None])[..., 0]                            # [T, 7]
            dg = np.linalg.solve(red, -gg + (Hpg * Hig[..., None]).sum((0, 1)))
            dp = -Hig - X @ dg
            S2 = S + dg[: 3 * N].reshape(N, 3)
            f2 = np.clip(logf + dg[-1], *prob.log_f_range) if focal else logf
            R2, t2, d2 = _update(R, t, d, dp)
            r2, q2, p2 = prob.residuals(S2, f2, R2, t2, d2)
            if np.all(p2[..., 2] > 0) and prob.cost(r2, w, f2) < cost:
                S, logf, R, t, d, r, q, p = S2 - S2.mean(0), f2, R2, t2, d2, r2, q2, p2
                lam = max(lam / 3, 1e-7)
                break
            lam *= 5
        else:
            break
    return S, logf, R, t, d, r


# --- the fit --------------------------------------------------------------------------------------

def _procrustes(X: np.ndarray, Y: np.ndarray):
    """Similarity X_t ≈ s_t·R_t·Y + c_t for clouds X [T, N, 3], Y [N, 3] (centred) → s, R, c."""
    c = X.mean(1)
    Xc = X - c[:, None]
    U, sig, Vt = np.linalg.svd(np.einsum("tni,nj->tij", Xc, Y))
    D = np.ones((len(X), 3))
    D[:, 2] = np.sign(np.linalg.det(U @ Vt))
    R = U @ (D[..., None] * Vt)
    s = (sig * D).sum(1) / (Y ** 2).sum()
    return s, R, c


def interpolate_missing(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill frames where valid is False [T, ...] by linear interpolation in time (hold at the ends)."""
    idx = np.flatnonzero(valid)
    flat = x.reshape(len(x), -1)
    out = np.stack([np.interp(np.arange(len(x)), idx, flat[idx, k]) for k in range(flat.shape[1])], 1)
    return out.reshape(x.shape)


def fit_head_pose(landmarks478: np.ndarray, valid: np.ndarray, width: int, height: int,
                  smooth_sigma: float = 1.0, max_subset: int = 120) -> HeadPoseFit:
    """Landmarks [T, 478, 3] (x, y, z px; rows where valid [T] is False are ignored) → HeadPoseFit.

    Head frame (docs/data_format.md): OpenCV axes; x along the symmetric point pairs (_PAIRS) from
    the subject's right to left, y perpendicular to it toward the chin (iBUG 8) from the middle of
    the outer eye corners, z = x × y (away from the camera); unit = outer-eye-corner span of
    mean_shape; origin = centroid of mean_shape's 68 points moved HEAD_CENTRE_DEPTH back, near the
    skull's centre, so a box around the origin holds the head.
    mean_shape: the fitted rigid shape at RIGID_POINTS, the per-point median of head_points68 over
    the frames with a face elsewhere (a typical, not an average, mouth).
    head_points68: each landmark back-projected along its pixel ray to the depth
    t_z·(1 + (z_mp − d_t)/f) (the pose's depth plus MediaPipe's relative z, d_t its fitted offset),
    then taken into the head frame: the x, y of every point, mouth opening included, reproject
    exactly; z carries MediaPipe's depth deformation. Frames without a face get interpolated
    landmarks and poses. Deterministic."""
    valid = np.asarray(valid, bool)
    if not valid.any():
        raise ValueError("no frame has a face: cannot fit a head pose")
    T = len(landmarks478)
    lm = interpolate_missing(landmarks478.astype(np.float64), valid)
    size = float(max(width, height))
    centre = np.array([width / 2, height / 2])
    huber = HUBER_PX * size / 512
    rows = [FIT_MP.index(MEDIAPIPE_TO_IBUG68[i]) for i in RIGID_POINTS]       # RIGID_POINTS in S
    eye = [FIT_MP.index(MEDIAPIPE_TO_IBUG68[i]) for i in (36, 45)]
    obs = lm[:, FIT_MP]                                                         # [T, N, 3]

    # 1. init: canonical = mean of Procrustes-aligned px clouds, in units of the eye span
    Y = obs[valid][len(obs[valid]) // 2] - obs[valid][len(obs[valid]) // 2].mean(0)
    for _ in range(3):
        s, Rw, c = _procrustes(obs[valid], Y)
        Y = np.einsum("tji,tnj->ni", Rw, (obs[valid] - c[:, None]) / s[:, None, None]) / valid.sum()
        Y = (Y - Y.mean(0)) / np.linalg.norm(Y[eye[1]] - Y[eye[0]])
    s, Rw, c = _procrustes(obs, Y)                                               # every frame

    def init(f, frames):
        tz = f / s[frames]
        t0 = np.concatenate([(c[frames, :2] - centre) * (tz / f)[:, None], tz[:, None]], 1)
        return Rw[frames], t0, c[frames, 2]

    # 2. focal search on a small subset, then joint bundle adjustment on a larger one
    vidx = np.flatnonzero(valid)
    small = vidx[np.linspace(0, len(vidx) - 1, min(len(vidx), 40)).astype(int)]
    sub = vidx[np.linspace(0, len(vidx) - 1, min(len(vidx), max_subset)).astype(int)]
    logf0, bounds = np.log(FOCAL_PRIOR * size), np.log(np.array(FOCAL_RANGE) * size)
    costs = []
    for g in FOCAL_GRID:
        prob = _Problem(obs[small], centre, huber, bounds)
        _, lf, _, _, _, r = _lm(prob, Y, np.log(g * size), *init(g * size, small), 10, True)
        costs.append(prob.weights(r)[1] / r[..., 0].size + 0.5 * PRIOR_WEIGHT * (lf - logf0) ** 2)
    g = FOCAL_GRID[int(np.argmin(costs))]
    prob = _Problem(obs[sub], centre, huber, bounds, (PRIOR_WEIGHT * obs[sub, :, 0].size, logf0))
    S, logf, *_ = _lm(prob, Y, np.log(g * size), *init(g * size, sub), 40, True, True)
    focal = float(np.exp(logf))

    # 3. every frame, pose only, then fill the frames without a face and smooth
    prob = _Problem(obs, centre, huber, bounds)
    _, _, R, t, d, _ = _lm(prob, S, logf, *init(focal, np.arange(T)), 15, False)
    if not valid.all():
        rv = interpolate_missing(Rotation.from_matrix(R).as_rotvec(), valid)  # small rotations: fine
        R, t, d = Rotation.from_rotvec(rv).as_matrix(), interpolate_missing(t, valid), interpolate_missing(d, valid)
    R, t = smooth_poses(R, t, smooth_sigma, find_cuts(landmarks478, valid))

    # 4. head frame: eye span 1, x along the eyes, y toward the chin, origin at the head centre
    lm68 = lm[:, list(MEDIAPIPE_TO_IBUG68)]                                      # [T, 68, 3]
    Z = t[:, None, 2] * (1 + (lm68[..., 2] - d[:, None]) / focal)                # camera depth
    cam = np.concatenate([(lm68[..., :2] - centre) * (Z / focal)[..., None], Z[..., None]], -1)
    head = np.einsum("tji,tnj->tni", R, cam - t[:, None])                        # [T, 68, 3]
    mean_shape = np.median(head[valid], 0)
    for k, i in enumerate(RIGID_POINTS):
        mean_shape[i] = S[rows[k]]
    x_axis = sum(mean_shape[b] - mean_shape[a] for a, b in _PAIRS)
    x_axis /= np.linalg.norm(x_axis)
    y_axis = mean_shape[8] - (mean_shape[36] + mean_shape[45]) / 2
    y_axis -= x_axis * (x_axis @ y_axis)
    y_axis /= np.linalg.norm(y_axis)
    Q = np.stack([x_axis, y_axis, np.cross(x_axis, y_axis)])                    # rows: new axes
    scale = np.linalg.norm(mean_shape[45] - mean_shape[36])
    origin = Q.T @ (Q @ mean_shape.mean(0) + [0, 0, HEAD_CENTRE_DEPTH * scale])
    t = (t + R @ origin) / scale
    R = R @ Q.T
    mean_shape = (mean_shape - origin) @ Q.T / scale
    head = (head - origin) @ Q.T / scale

    err = np.linalg.norm(project(mean_shape[list(RIGID_POINTS)], R, t, focal, width, height)
                         - lm68[:, list(RIGID_POINTS), :2], axis=-1)
    idexp = IDEXP_SCALE * (head - mean_shape)
    f32 = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731
    return HeadPoseFit(
        head_R=f32(R), head_t=f32(t), focal=focal, mean_shape=f32(mean_shape), head_points68=f32(head),
        idexp_lm3d=f32(idexp), idexp_mean=f32(idexp.mean(0)), idexp_std=f32(np.maximum(idexp.std(0), 1e-4)),
        reprojection_error_px=f32(np.median(err, 1)), c2w=f32(camera_to_world(R, t)))
