"""Labels, background plate and quality report: synthetic known answers, plus real-video checks."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from geneface.data.contract import Label
from geneface.data.landmarks import MEDIAPIPE_TO_IBUG68
from geneface.data import face_shape
from geneface.synthetic import head as S
from geneface.processing.background import BackgroundEstimator, fill_unseen
from geneface.processing.report import euler_degrees, landmark_jitter_px, quality_stats, write_report
from geneface.processing.segmentation import FACE_OVAL, label_frame

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MAY = DATA / "speakers" / "May_5s.mp4"


# --- labels on a synthetic frame -----------------------------------------------------------------

def _synthetic_frame(seed: int, size: int = 160, roll: float | None = None):
    """→ (rgb, exact labels, exact landmarks478 px) of a rendered head."""
    rng = np.random.default_rng(seed)
    shape, cam = face_shape.random_face_shape(rng), S.default_camera(size)
    R, t = S.head_motion(rng, 100)
    k = int(rng.integers(100))
    R, t = R[k], t[k]
    if roll is not None:
        R = S.euler_to_matrix(0.0, 0.0, roll) @ R
    lm3d = S.landmarks478(shape, face_shape.landmarks68(shape, 0.3))
    rgb, labels = S.render(shape, cam, R, t, S.make_background(rng, size, size), opening=0.3)
    return rgb, labels, S.project(cam, lm3d, R, t).astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("seed,roll", [(0, None), (1, None), (2, 0.25), (3, -0.25)])
def test_label_frame_matches_synthetic_truth(seed, roll):
    _, truth, lm = _synthetic_frame(seed, roll=roll)
    person = (truth != Label.BACKGROUND).astype(np.float32)
    pred = label_frame(person, lm)
    assert pred.dtype == np.uint8 and pred.shape == truth.shape
    head_p, head_t = pred == Label.HEAD, truth == Label.HEAD
    # The renderer's head ellipsoid reaches ~0.4 head units below its chin landmark, which any
    # landmark-based rule calls neck, so head recall is ~0.82–0.88 by construction; precision is exact.
    assert _iou(head_p, head_t) > 0.78
    assert (head_p & head_t).sum() / head_p.sum() > 0.98
    assert _iou(pred == Label.TORSO, truth == Label.TORSO) > 0.85
    assert np.array_equal(pred == Label.BACKGROUND, truth == Label.BACKGROUND)   # the person mask is exact


def test_label_frame_without_face_is_all_torso():
    prob = np.zeros((40, 50), np.float32)
    prob[10:, 15:35] = 0.9
    for lm in (None, np.full((478, 3), np.nan, np.float32)):
        labels = label_frame(prob, lm)
        assert set(np.unique(labels)) == {Label.BACKGROUND, Label.TORSO}
        assert np.array_equal(labels == Label.TORSO, prob > 0.5)


def test_face_oval_is_mediapipes():
    mp = pytest.importorskip("mediapipe")
    edges = {frozenset(e) for e in mp.solutions.face_mesh.FACEMESH_FACE_OVAL}
    loop = {frozenset((a, b)) for a, b in zip(FACE_OVAL, FACE_OVAL[1:] + FACE_OVAL[:1])}
    assert loop == edges


# --- background plate ----------------------------------------------------------------------------

def _moving_occluder(T: int, H: int, W: int):
    """A disc sweeping left → right over a static textured background: (frames, masks) generators."""
    background = S.make_background(np.random.default_rng(5), H, W)
    yy, xx = np.mgrid[0:H, 0:W]
    for t in range(T):
        cx = 0.2 * W + 0.6 * W * t / max(T - 1, 1)
        person = (xx - cx) ** 2 + (yy - 0.55 * H) ** 2 < (0.25 * H) ** 2
        person |= (yy > 0.85 * H) & (np.abs(xx - W / 2) < 0.2 * W)     # a torso that never moves
        frame = background.copy()
        frame[person] = (200, 40, 40)
        yield background, frame, ~person


def test_background_recovers_static_plate():
    H, W, T = 64, 96, 12
    est = BackgroundEstimator(H, W)
    for background, frame, mask in _moving_occluder(T, H, W):
        est.update(frame, mask)
    plate, seen = est.result()
    assert plate.dtype == np.uint8 and plate.shape == (H, W, 3) and seen.shape == (H, W)
    assert np.array_equal(plate[seen], background[seen])              # exact where reliably seen
    assert 0.7 < seen.mean() < 0.97                                    # the fixed torso is never seen
    hole = ~seen
    assert hole[int(0.95 * H), W // 2]                                 # behind the torso
    # Filled, not left black or red: close to the true background's colours there (smooth fill).
    err = np.abs(plate[hole].astype(float) - background[hole].astype(float)).mean()
    assert err < 25, err
    assert not np.any(np.all(plate == (200, 40, 40), axis=-1))


def test_background_every_subsamples_and_memory_is_flat():
    H, W = 48, 64
    frames = list(_moving_occluder(10, H, W))
    est = BackgroundEstimator(H, W, every=3)
    for _, frame, mask in frames:
        est.update(frame, mask)
    assert est.num_updates == 4                                        # calls 0, 3, 6, 9

    def peak(num_frames: int) -> int:
        est = BackgroundEstimator(H, W)
        _, frame, mask = frames[0]
        tracemalloc.start()
        for _ in range(num_frames):
            est.update(frame, mask)
        est.result()
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size

    small, large = peak(5), peak(60)
    assert large < 1.2 * small + 4096, (small, large)


def test_fill_unseen_is_smooth_and_keeps_seen():
    rng = np.random.default_rng(0)
    plate = np.zeros((32, 32, 3), np.uint8)
    plate[..., 0] = np.linspace(0, 250, 32).astype(np.uint8)[None, :]   # a horizontal ramp
    seen = np.ones((32, 32), bool)
    seen[8:24, 8:24] = False
    noisy = plate.copy()
    noisy[~seen] = rng.integers(0, 256, size=(int((~seen).sum()), 3))
    out = fill_unseen(noisy, seen)
    assert np.array_equal(out[seen], plate[seen])
    assert np.abs(out[~seen].astype(int) - plate[~seen].astype(int)).max() < 60


# --- report --------------------------------------------------------------------------------------

def test_quality_stats_keys_and_values():
    T = 20
    rng = np.random.default_rng(0)
    lm = np.tile(rng.uniform(0, 100, (1, 68, 3)), (T, 1, 1)).astype(np.float32)
    lm += np.arange(T)[:, None, None] * 0.7                           # constant velocity: no jitter
    valid = np.ones(T, bool)
    valid[5] = False
    err = np.linspace(1, 3, T)
    err[5] = np.nan
    counts = np.tile([50, 30, 5, 15], (T, 1))
    stats = quality_stats(valid, err, lm, counts, width=10, height=10)
    assert set(stats) == {"num_frames", "face_detection_rate", "reprojection_error_px_median",
                          "reprojection_error_px_p95", "landmark_jitter_px", "label_coverage"}
    assert stats["num_frames"] == T and stats["face_detection_rate"] == pytest.approx(0.95)
    assert stats["landmark_jitter_px"] == pytest.approx(0.0, abs=1e-4)
    expected = {"background": 0.5, "head": 0.3, "neck": 0.05, "torso": 0.15}
    assert stats["label_coverage"] == pytest.approx(expected)
    assert stats["reprojection_error_px_median"] == pytest.approx(np.median(np.delete(err, 5)))
    as_dict = quality_stats(valid, err, lm, {"head": counts[:, 1], "torso": counts[:, 3]}, 10, 10)
    assert as_dict["label_coverage"]["head"] == pytest.approx(0.3)
    json.dumps(stats, allow_nan=False)
    # Jitter: white noise of σ on x and y gives a second difference of σ·√6 per axis.
    noisy = lm + rng.normal(scale=0.5, size=lm.shape) * [1, 1, 0]
    assert 1.0 < landmark_jitter_px(noisy, np.ones(T, bool)) < 2.5


def test_euler_degrees_inverts_synthetic_convention():
    angles = np.radians([[5.0, -10.0, 3.0]])                           # pitch, yaw, roll
    yaw_pitch_roll = euler_degrees(S.euler_to_matrix(*angles.T))
    assert yaw_pitch_roll[0] == pytest.approx([-10.0, 5.0, 3.0], abs=1e-6)


def test_write_report_writes_three_files(tmp_path):
    size, T = 96, 6
    rng = np.random.default_rng(1)
    shape, cam = face_shape.random_face_shape(rng), S.default_camera(size)
    R, t = S.head_motion(rng, T)
    bg = S.make_background(rng, size, size)
    frames = [S.render(shape, cam, R[i], t[i], bg) for i in range(T)]
    mean_shape = face_shape.landmarks68(shape, 0.0)
    lm68 = S.project(cam, mean_shape, R, t).astype(np.float32)           # [T, 68, 3]
    lm68[2] = np.nan                                                      # a frame without a face
    counts = np.stack([np.bincount(labels.ravel(), minlength=4) for _, labels in frames])
    stats = quality_stats(np.arange(T) != 2, np.zeros(T), lm68, counts, size, size)
    paths = write_report(tmp_path / "report", frame_fn=lambda i: frames[i][0],
                         labels_fn=lambda i: frames[i][1],
                         landmarks68=lm68, head_R=R, head_t=t, focal=cam.focal, mean_shape=mean_shape,
                         stats=stats, num_tiles=4)
    assert set(paths) == {"contact_sheet", "pose", "stats"}
    for p in paths.values():
        assert p.exists() and p.stat().st_size > 0
    assert json.loads(paths["stats"].read_text()) == json.loads(json.dumps(stats))
    import cv2

    sheet = cv2.imread(str(paths["contact_sheet"]))
    assert sheet is not None and sheet.shape[1] > 2 * size


# --- real video ------------------------------------------------------------------------------------

def _may_frames(every: int = 1, limit: int = 125):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    gen = imageio_ffmpeg.read_frames(str(MAY), output_params=["-vf", "fps=25"])
    meta = next(gen)
    W, H = meta["size"]
    try:
        for i, raw in enumerate(gen):
            if i >= limit:
                break
            if i % every == 0:
                yield i, np.frombuffer(raw, np.uint8).reshape(H, W, 3)
    finally:
        gen.close()


def _require_may():
    if not MAY.exists():
        pytest.skip(f"shared real data not found: {MAY} (needs ../shared/data/speakers/May_5s.mp4)")


def _face_mesh():
    mp = pytest.importorskip("mediapipe")
    return mp.solutions.face_mesh.FaceMesh(static_image_mode=False, refine_landmarks=True, max_num_faces=1)


@pytest.mark.realdata
def test_may_labels_face_is_head_and_lower_centre_is_torso():
    _require_may()
    from geneface.processing.segmentation import PersonSegmenter

    with PersonSegmenter() as seg, _face_mesh() as mesh:
        for i, rgb in _may_frames(every=25):
            H, W = rgb.shape[:2]
            found = mesh.process(rgb).multi_face_landmarks
            assert found, f"no face in May_5s frame {i}"
            lm = np.array([[p.x * W, p.y * H, p.z * W] for p in found[0].landmark], np.float32)
            prob = seg.segment(rgb)
            assert prob.dtype == np.float32 and prob.shape == (H, W) and 0 <= prob.min() <= prob.max() <= 1
            labels = label_frame(prob, lm)
            # Face box: the extent of the 68 points from the brows to the lips' bottom (the jaw's
            # lower corners lie under the cheeks, beside the neck, so a box to the chin holds neck).
            lm68 = lm[list(MEDIAPIPE_TO_IBUG68)]
            x0, x1 = lm68[:, 0].min(), lm68[:, 0].max()
            y0, y1 = lm68[17:27, 1].min(), lm68[48:68, 1].max()
            box = labels[int(np.ceil(y0)):int(y1), int(np.ceil(x0)):int(x1)]
            assert (box == Label.HEAD).mean() >= 0.95, (i, (box == Label.HEAD).mean())
            patch = labels[int(0.9 * H):, int(0.4 * W):int(0.6 * W)]   # lower frame centre
            assert (patch == Label.TORSO).mean() > 0.8, (i, np.bincount(patch.ravel(), minlength=4))
            hair = labels[int(lm68[19, 1] - 0.3 * (x1 - x0)), int(lm68[27, 0])]   # above the brows
            assert hair == Label.HEAD


@pytest.mark.realdata
def test_may_background_plate_has_no_person_in_reliable_region():
    _require_may()
    from geneface.processing.segmentation import PersonSegmenter

    est, held = None, []
    with PersonSegmenter() as seg:
        for i, rgb in _may_frames(every=5):
            prob = seg.segment(rgb)
            if est is None:
                est = BackgroundEstimator(*rgb.shape[:2])
            est.update(rgb, prob < 0.5)
            if i % 40 == 0:
                held.append((rgb.copy(), prob > 0.5))
    plate, seen = est.result()
    assert 0.3 < seen.mean() < 0.7
    with PersonSegmenter() as seg:                                      # the segmenter finds nobody
        assert (seg.segment(plate)[seen] > 0.5).mean() < 0.002
    compared = 0
    for rgb, person in held:
        # Where a frame shows the person but the plate claims to have seen background, the plate
        # must differ from the person's colours (else it copied the person in).
        both = seen & person
        if both.sum() < 50:
            continue
        compared += 1
        diff = np.abs(plate[both].astype(int) - rgb[both].astype(int)).sum(-1)
        assert np.median(diff) > 30, np.median(diff)
    assert compared, "May never moved over the reliable region; nothing to compare"
    # Away from the person the plate equals the frames (static camera) up to noise.
    rgb, person = held[0]
    clear = seen & ~person
    assert np.median(np.abs(plate[clear].astype(int) - rgb[clear].astype(int))) <= 4
