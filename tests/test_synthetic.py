"""The synthetic generator writes contract-conformant data whose known answers hold."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from geneface.data import contract
from geneface.data.corpus import clip_path, default_split, read_index
from geneface.data.landmarks import MEDIAPIPE_TO_IBUG68
from geneface.synthetic import write_synthetic_corpus, write_synthetic_speaker
from geneface.synthetic.corpus import clip_name, speaker_name
from geneface.data.face_shape import FaceShape, landmarks68
from geneface.synthetic.head import REST_T, default_camera, euler_to_matrix, landmarks478, make_background, render

SECONDS, SIZE = 2.0, 64
T = int(SECONDS * contract.FPS)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def speaker(tmp_path_factory) -> Path:
    return write_synthetic_speaker(tmp_path_factory.mktemp("data"), name="tiny", seconds=SECONDS, size=SIZE,
                                   seed=3, progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_synthetic_corpus(tmp_path_factory.mktemp("data"), name="tiny_corpus", num_speakers=3,
                                  clips_per_speaker=3, seed=1, val_every=4, progress=False)


def load(root: Path, name: str) -> np.ndarray:
    return np.load(root / f"{name}.npy")


def test_speaker_follows_the_contract(speaker):
    meta = json.loads((speaker / contract.META_FILE).read_text())
    assert meta["synthetic"] is True and meta["generator"]["seed"] == 3 and meta["generator"]["size"] == SIZE
    assert meta["num_frames"] == T and (meta["height"], meta["width"]) == (SIZE, SIZE)
    sizes = {"T": T, "A": 2 * T}
    for spec in contract.SPEAKER_ARRAYS:
        if not spec.required:
            continue
        array = load(speaker, spec.name)
        assert array.dtype == np.dtype(spec.dtype), spec.name
        assert array.shape == tuple(sizes.get(d, d) for d in spec.shape), spec.name
    assert (load(speaker, "idexp_lm3d_std") > 0).all()
    wave, rate = sf.read(speaker / contract.SPEAKER_AUDIO)
    assert rate == contract.SAMPLE_RATE and len(wave) == T * contract.SAMPLES_PER_FRAME
    assert len(list((speaker / "frames").glob("*.jpg"))) == T == len(list((speaker / "labels").glob("*.png")))


def test_landmarks68_is_the_mediapipe_subset(speaker):
    lm478, lm68 = load(speaker, "landmarks478"), load(speaker, "landmarks68")
    np.testing.assert_array_equal(lm68, lm478[:, list(MEDIAPIPE_TO_IBUG68)])
    assert np.isfinite(lm478).all() and (lm478[..., :2] > 0).all() and (lm478[..., :2] < SIZE).all()


def test_idexp_and_pose_reproduce_the_image_landmarks(speaker):
    """Head-frame points (mean_shape + idexp/10), posed and projected, land on landmarks68."""
    focal = json.loads((speaker / contract.META_FILE).read_text())["focal"]
    points = load(speaker, "mean_shape") + load(speaker, "idexp_lm3d") / contract.IDEXP_SCALE   # [T,68,3]
    R, t = load(speaker, "head_R").astype(np.float64), load(speaker, "head_t").astype(np.float64)
    cam = np.einsum("tij,tnj->tni", R, points) + t[:, None]
    xy = focal * cam[..., :2] / cam[..., 2:] + SIZE / 2
    np.testing.assert_allclose(xy, load(speaker, "landmarks68")[..., :2], atol=1e-3)
    # Eye span is the head unit: outer eye corners are 1 apart in the head frame.
    np.testing.assert_allclose(np.linalg.norm(points[:, 45] - points[:, 36], axis=-1), 1.0, atol=1e-4)


def test_c2w_is_the_inverse_head_pose(speaker):
    R, t, c2w = load(speaker, "head_R"), load(speaker, "head_t"), load(speaker, "c2w")
    w2c = np.tile(np.eye(4, dtype=np.float32), (T, 1, 1))
    w2c[:, :3, :3], w2c[:, :3, 3] = R, t
    np.testing.assert_allclose(c2w @ w2c, np.tile(np.eye(4), (T, 1, 1)), atol=1e-5)
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.tile(np.eye(3), (T, 1, 1)), atol=1e-5)


def test_labels_mark_head_torso_and_background(speaker):
    lm68 = load(speaker, "landmarks68")
    background = cv2.cvtColor(cv2.imread(str(speaker / contract.SPEAKER_BACKGROUND)), cv2.COLOR_BGR2RGB)
    for i in (0, T // 2, T - 1):
        label = cv2.imread(str(speaker / "labels" / f"{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        frame = cv2.cvtColor(cv2.imread(str(speaker / "frames" / f"{i:06d}.jpg")), cv2.COLOR_BGR2RGB)
        nose_x, nose_y = lm68[i, 30, :2].astype(int)
        assert label[nose_y, nose_x] == contract.Label.HEAD
        assert label[SIZE - 1, SIZE // 2] == contract.Label.TORSO
        assert set(np.unique(label)) == {int(v) for v in contract.Label}
        assert label[0, 0] == label[0, SIZE - 1] == contract.Label.BACKGROUND
        corner = np.abs(frame[:4, :4].astype(int) - background[:4, :4]).mean()
        assert corner < 4, corner  # JPEG-close to the plate where nothing covers it


def test_renderer_is_exact_on_the_background():
    cam, shape = default_camera(48), FaceShape()
    background = make_background(np.random.default_rng(0), 48, 48)
    rgb, label = render(shape, cam, euler_to_matrix(0.05, -0.1, 0.02), REST_T, background, opening=0.7)
    bg = label == contract.Label.BACKGROUND
    np.testing.assert_array_equal(rgb[bg], background[bg])
    assert (rgb[~bg] != background[~bg]).any(axis=-1).mean() > 0.9


def test_mesh_478_contains_the_68_points_and_follows_the_mouth():
    shape = FaceShape()
    lm68 = landmarks68(shape, np.array([0.0, 1.0]))
    mesh = landmarks478(shape, lm68)
    np.testing.assert_array_equal(mesh[:, list(MEDIAPIPE_TO_IBUG68)], lm68)
    assert (mesh[..., 2] < 0).all()   # all on the face side, toward the camera
    gap = lm68[:, 66, 1] - lm68[:, 62, 1]
    np.testing.assert_allclose(gap, [0.0, shape.max_gap], atol=1e-9)
    assert lm68[1, 8, 1] > lm68[0, 8, 1]   # the chin drops


def test_audio_features_have_two_frames_per_video_frame(speaker):
    assert load(speaker, "mel").shape == (2 * T, contract.MEL_BINS)
    f0 = load(speaker, "f0")
    assert f0.shape == (2 * T,) and (f0 == 0).any() and (f0 > 0).any()
    assert 80 <= np.median(f0[f0 > 0]) <= 300


def test_corpus_mouth_follows_the_audio(corpus):
    entries = read_index(corpus)
    assert len(entries) == 9 and {e.speaker for e in entries} == {speaker_name(i) for i in range(3)}
    assert any(e.split == "val" for e in entries)
    gaps, energy = [], []
    for e in entries:
        with np.load(corpus / e.path) as clip:
            n = clip["idexp_lm3d"].shape[0]
            assert clip["mel"].shape == (2 * n, contract.MEL_BINS) and clip["f0"].shape == (2 * n,)
            assert clip["head_R"].shape == (n, 3, 3) and clip["head_t"].shape == (n, 3)
            assert 50 <= n <= 100
            idexp = clip["idexp_lm3d"]
            gaps.append(idexp[:, 66, 1] - idexp[:, 62, 1])   # inner-lip gap minus its clip mean
            energy.append(clip["mel"].reshape(n, 2, -1).mean(axis=(1, 2)))
    r = np.corrcoef(np.concatenate(gaps), np.concatenate(energy))[0, 1]
    assert r > 0.5, r


def test_default_corpus_has_enough_val_clips():
    """The default 8 speakers × 12 clips with val_every=8 put clips of several speakers in val."""
    val = [(s, c) for s in range(8) for c in range(12)
           if default_split(f"{speaker_name(s)}/{clip_name(c)}", 8) == "val"]
    assert len(val) >= 8 and len({s for s, _ in val}) >= 4


def test_writers_are_rerunnable(speaker, corpus, capsys):
    stamp = (speaker / contract.META_FILE).stat().st_mtime_ns
    write_synthetic_speaker(speaker.parent, name="tiny", seconds=SECONDS, size=SIZE, seed=3, progress=False)
    assert (speaker / contract.META_FILE).stat().st_mtime_ns == stamp
    assert "skipped" in capsys.readouterr().out

    write_synthetic_corpus(corpus.parent, name="tiny_corpus", num_speakers=3, clips_per_speaker=3, seed=1,
                           val_every=4, progress=False)
    assert "skipped" in capsys.readouterr().out
    # A lost clip is rewritten, identical to the first time; the others are left alone.
    lost = clip_path(corpus, speaker_name(1), clip_name(2))
    kept = clip_path(corpus, speaker_name(0), clip_name(0))
    before, kept_stamp = dict(np.load(lost)), kept.stat().st_mtime_ns
    lost.unlink()
    write_synthetic_corpus(corpus.parent, name="tiny_corpus", num_speakers=3, clips_per_speaker=3, seed=1,
                           val_every=4, progress=False)
    assert "wrote 1 clips" in capsys.readouterr().out and kept.stat().st_mtime_ns == kept_stamp
    after = dict(np.load(lost))
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
    assert len(read_index(corpus)) == 9


def test_generation_is_deterministic_for_a_seed(speaker, tmp_path):
    again = write_synthetic_speaker(tmp_path, name="tiny", seconds=SECONDS, size=SIZE, seed=3, progress=False)
    other = write_synthetic_speaker(tmp_path, name="other", seconds=SECONDS, size=SIZE, seed=4,
                                    progress=False)
    for name in ("landmarks478", "idexp_lm3d", "head_R", "mel", "face_rect"):
        np.testing.assert_array_equal(load(again, name), load(speaker, name))
        assert not np.array_equal(load(other, name), load(speaker, name)), name
    for sub in ("frames/000007.jpg", "labels/000007.png", "background.png", "audio.wav"):
        assert (again / sub).read_bytes() == (speaker / sub).read_bytes()


def test_cli_config_composes_and_writes(tmp_path):
    from hydra import compose, initialize_config_dir

    from geneface.synthetic.__main__ import generate

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("synthetic", overrides=[
            f"out_dir={tmp_path}", "speaker.seconds=0.4", "speaker.size=32", "corpus.num_speakers=2",
            "corpus.clips_per_speaker=1", "corpus.clip_seconds=[0.4,0.6]", "progress=false"])
    assert cfg.speaker.name == "demo" and cfg.corpus.name == "synthetic_corpus" and cfg.overwrite is False
    written = generate(cfg)
    assert (written["speaker"] / contract.META_FILE).exists() and written["speaker"] == tmp_path / "demo"
    assert len(read_index(written["corpus"])) == 2
