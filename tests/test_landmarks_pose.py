"""Face mesh landmarks and the head-pose / focal / idexp fit (geneface.media.face_mesh, .pose).

Synthetic tests have a known answer: the parametric head of geneface.synthetic.head, projected
with a known focal and poses, 0.3 px noise, and MediaPipe-like z (depth about the mesh's centroid at
the face's x scale). `realdata` tests read ../shared/data and skip without it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from geneface.data.landmarks import MEDIAPIPE_TO_IBUG68
from geneface.data import face_shape
from geneface.synthetic import head as synth
from geneface.processing import pose

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SIZE = 512


def synthetic_track(seed: int = 0, num_frames: int = 150, degrees=(8.0, 20.0, 4.0),
                    focal_per_px: float = 2.0, noise: float = 0.3, cut_at: int | None = None):
    """→ landmarks478 [T, 478, 3] px, true R [T, 3, 3], t [T, 3], camera, mouth opening [T].
    cut_at: a jump cut there (the head turns 12° and shifts by 0.8 eye spans)."""
    rng = np.random.default_rng(seed)
    shape = face_shape.random_face_shape(rng)
    time = np.arange(num_frames) / 25.0
    opening = np.clip(0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * time) + 0.1 * rng.normal(size=num_frames), 0, 1)
    points = synth.landmarks478(shape, face_shape.landmarks68(shape, opening))          # [T, 478, 3] head frame
    R, t = synth.head_motion(rng, num_frames, degrees=degrees)
    if cut_at is not None:
        R[cut_at:] = Rotation.from_euler("y", 12, degrees=True).as_matrix() @ R[cut_at:]
        t[cut_at:] += [0.8, 0.2, 0.0]
    cam = synth.Camera(SIZE, SIZE, focal_per_px * SIZE)
    lm = synth.project(cam, points, R, t)
    depth = np.einsum("tij,tnj->tni", R, points)[..., 2] + t[:, None, 2]          # camera Z [T, 478]
    centre = depth.mean(1, keepdims=True)
    lm[..., 2] = (depth - centre) * cam.focal / centre                             # MediaPipe-like z
    lm[..., :2] += rng.normal(scale=noise, size=lm[..., :2].shape)
    return lm.astype(np.float32), R, t, cam, opening


def relative_rotation_error_deg(R_fit: np.ndarray, R_true: np.ndarray) -> np.ndarray:
    """The head frame is fixed only up to a rotation, so compare R_t·R_0ᵀ, which does not depend on it."""
    rel_fit, rel_true = R_fit @ R_fit[0].T, R_true @ R_true[0].T
    return np.degrees(Rotation.from_matrix(rel_fit @ np.swapaxes(rel_true, 1, 2)).magnitude())


@pytest.fixture(scope="module")
def synthetic_fit():
    lm, R, t, cam, opening = synthetic_track()
    return pose.fit_head_pose(lm, np.ones(len(lm), bool), SIZE, SIZE), lm, R, t, cam, opening


def test_recovers_focal_rotation_and_reprojects(synthetic_fit):
    fit, lm, R, t, cam, _ = synthetic_fit
    assert abs(fit.focal / cam.focal - 1) < 0.05
    assert relative_rotation_error_deg(fit.head_R, R).max() < 1.0
    assert np.median(fit.reprojection_error_px) < 0.6            # 0.3 px noise per coordinate
    assert fit.reprojection_error_px.shape == (len(lm),)
    rigid = list(pose.RIGID_POINTS)                              # the error is what it says it is
    proj = pose.project(fit.mean_shape[rigid], fit.head_R, fit.head_t, fit.focal, SIZE, SIZE)
    err = np.median(np.linalg.norm(proj - lm[:, [MEDIAPIPE_TO_IBUG68[i] for i in rigid], :2], axis=-1), 1)
    np.testing.assert_allclose(fit.reprojection_error_px, err, atol=1e-3)


def test_head_frame_and_camera_convention(synthetic_fit):
    fit = synthetic_fit[0]
    T = len(fit.head_R)
    assert fit.mean_shape.shape == (68, 3) and fit.mean_shape.dtype == np.float32
    assert np.linalg.norm(fit.mean_shape[45] - fit.mean_shape[36]) == pytest.approx(1.0, abs=1e-5)
    assert fit.mean_shape[45, 0] > fit.mean_shape[36, 0]           # x: subject's right → left
    assert fit.mean_shape[8, 1] > fit.mean_shape[27, 1]            # y down: chin below the nose bridge
    assert fit.mean_shape[30, 2] < fit.mean_shape[0, 2]            # z away from camera: nose tip in front
    assert np.all(fit.head_t[:, 2] > 0)
    eye = np.broadcast_to(np.eye(3), (T, 3, 3))
    np.testing.assert_allclose(fit.head_R @ np.swapaxes(fit.head_R, 1, 2), eye, atol=1e-5)
    assert fit.c2w.shape == (T, 4, 4)
    x = fit.mean_shape[30].astype(np.float64)                      # head point → camera → back with c2w
    cam = np.einsum("tij,j->ti", fit.head_R, x) + fit.head_t
    back = np.einsum("tij,tj->ti", fit.c2w[:, :3, :3], cam) + fit.c2w[:, :3, 3]
    np.testing.assert_allclose(back, np.broadcast_to(x, back.shape), atol=1e-4)
    np.testing.assert_array_equal(fit.c2w[:, 3], np.broadcast_to([0, 0, 0, 1], (T, 4)))


def test_idexp_follows_the_mouth(synthetic_fit):
    fit, lm, _, _, _, opening = synthetic_fit
    T = len(lm)
    for name in ("head_points68", "idexp_lm3d"):
        assert getattr(fit, name).shape == (T, 68, 3)
    np.testing.assert_allclose(fit.idexp_lm3d, 10 * (fit.head_points68 - fit.mean_shape), atol=1e-4)
    np.testing.assert_allclose(fit.idexp_mean, fit.idexp_lm3d.mean(0), atol=1e-5)
    assert np.all(fit.idexp_std >= 1e-4)
    gap = fit.idexp_lm3d[:, 66, 1] - fit.idexp_lm3d[:, 62, 1]     # inner lips apart, head frame
    assert np.corrcoef(gap, opening)[0, 1] > 0.98
    # pose-free: the rigid points barely move in the head frame, the mouth does
    assert fit.idexp_std[list(pose.RIGID_POINTS)].mean() < 0.3 * fit.idexp_std[60:68].mean()
    # the per-frame head points project onto the observed landmarks (x, y kept exactly)
    proj = pose.project(fit.head_points68, fit.head_R, fit.head_t, fit.focal, SIZE, SIZE)
    np.testing.assert_allclose(proj, lm[:, list(MEDIAPIPE_TO_IBUG68), :2], atol=0.05)


def test_missing_frames_are_interpolated():
    lm, R, t, _, _ = synthetic_track(seed=1, num_frames=100)
    valid = np.ones(len(lm), bool)
    valid[[0, 1, 40, 41, 42, 70, 99]] = False
    lm[~valid] = 0                                                 # what a failed detection leaves
    fit = pose.fit_head_pose(lm, valid, SIZE, SIZE)
    for name in ("head_R", "head_t", "idexp_lm3d", "c2w", "reprojection_error_px"):
        assert np.isfinite(getattr(fit, name)).all(), name
    assert relative_rotation_error_deg(fit.head_R, R).max() < 1.5
    assert np.abs(fit.idexp_lm3d[~valid]).max() < 3 * np.abs(fit.idexp_lm3d[valid]).max()


def test_a_shot_cut_stays_sharp():
    cut = 60
    lm, *_ = synthetic_track(seed=3, num_frames=120, cut_at=cut)
    valid = np.ones(len(lm), bool)
    np.testing.assert_array_equal(pose.find_cuts(lm, valid), [cut])
    fit = pose.fit_head_pose(lm, valid, SIZE, SIZE, smooth_sigma=2.0)
    assert fit.reprojection_error_px[cut - 2: cut + 2].max() < 0.8   # not smeared across the cut


def test_deterministic():
    lm, *_ = synthetic_track(seed=2, num_frames=60)
    a = pose.fit_head_pose(lm, np.ones(len(lm), bool), SIZE, SIZE)
    b = pose.fit_head_pose(lm.copy(), np.ones(len(lm), bool), SIZE, SIZE)
    for name, value in vars(a).items():
        np.testing.assert_array_equal(value, getattr(b, name), err_msg=name)


def test_smooth_poses_has_no_lag():
    T = 60
    angle = np.linspace(0, 0.3, T)                                 # a steady turn and drift
    R = Rotation.from_rotvec(np.stack([0.1 * angle, angle, np.zeros(T)], 1)).as_matrix()
    t = np.stack([np.linspace(0, 1, T), np.zeros(T), np.full(T, 10.0)], 1)
    R_s, t_s = pose.smooth_poses(R, t, 1.5)
    assert relative_rotation_error_deg(R_s, R).max() < 0.05         # centred: ramps stay in place,
    np.testing.assert_allclose(t_s, t, atol=1e-3)                  # up to the ends
    noisy = t + np.random.default_rng(0).normal(scale=0.05, size=t.shape)
    smoothed = pose.smooth_poses(R, noisy, 1.5)[1]
    assert np.diff(smoothed, 2, axis=0).std() < 0.5 * np.diff(noisy, 2, axis=0).std()


def test_project_and_camera_to_world():
    R = np.eye(3)[None]
    t = np.array([[0.0, 0.0, 10.0]])
    points = np.array([[[0.0, 0.0, 0.0], [1.0, -1.0, 0.0]]])
    np.testing.assert_allclose(pose.project(points, R, t, 100.0, 64, 48),
                               [[[32.0, 24.0], [42.0, 14.0]]])
    c2w = pose.camera_to_world(R, t)
    np.testing.assert_allclose(c2w[0, :3, 3], [0, 0, -10])       # camera centre in the head frame


# --- real media -------------------------------------------------------------------------------------

def _needs(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real media not found: {path} (the shared data directory is absent)")
    return path


def _video_frames(path: Path, limit: int | None = None):
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), output_params=["-vf", "fps=25"])
    meta = next(reader)
    width, height = meta["size"]
    for i, raw in enumerate(reader):
        if limit is not None and i >= limit:
            break
        yield np.frombuffer(raw, np.uint8).reshape(height, width, 3)


def _process(path: Path):
    from geneface.media.face_mesh import detect_frames

    frames = list(_video_frames(path))
    height, width = frames[0].shape[:2]
    landmarks, valid = detect_frames(frames)
    return landmarks, valid, pose.fit_head_pose(landmarks, valid, width, height), width, height


@pytest.mark.realdata
def test_may_landmarks_and_pose_accuracy_and_determinism():
    video = _needs(DATA / "speakers" / "May_5s.mp4")
    lm, valid, fit, width, height = _process(video)
    assert lm.shape == (len(valid), 478, 3) and lm.dtype == np.float32
    assert valid.mean() >= 0.99
    error_512 = fit.reprojection_error_px[valid] * 512 / max(width, height)
    assert np.median(error_512) <= 2.0
    lm2, valid2, fit2, *_ = _process(video)                     # processing twice: identical arrays
    np.testing.assert_array_equal(lm, lm2)
    np.testing.assert_array_equal(valid, valid2)
    for name, value in vars(fit).items():
        np.testing.assert_array_equal(value, getattr(fit2, name), err_msg=name)


@pytest.mark.realdata
def test_still_images_have_a_face():
    from geneface.media.face_mesh import detect_images

    images = sorted(p for p in _needs(DATA / "images").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    assert images, "no still images"
    for path, face in zip(images, detect_images(images)):
        assert face is not None, f"no face in {path.name}"
        assert face.landmarks.shape == (478, 3) and face.num_faces >= 1 and face.box_area > 0


@pytest.mark.realdata
def test_largest_of_several_faces_with_one_warning():
    import cv2

    from geneface.media.face_mesh import FaceMeshDetector

    rgb = next(_video_frames(_needs(DATA / "speakers" / "May_5s.mp4")))
    small = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((rgb.shape[0], rgb.shape[1] + small.shape[1], 3), np.uint8)
    canvas[:, : rgb.shape[1]] = rgb
    canvas[: small.shape[0], rgb.shape[1]:] = small
    with FaceMeshDetector(video_mode=False) as detector, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        faces = [detector.detect(canvas) for _ in range(3)]
    assert all(f is not None and f.num_faces == 2 for f in faces)
    assert faces[0].landmarks[:, 0].max() <= rgb.shape[1] + 1    # the big face, on the left
    assert detector.multi_face_frames == 3
    assert sum("faces in image" in str(w.message) for w in caught) == 1
