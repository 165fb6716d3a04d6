"""geneface.evaluate: the plumbing with a fake renderer on a synthetic speaker, checkpoint errors, and
the metric helpers on real frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from geneface.data.frames import SpeakerFrames, head_removed
from geneface.inference import evaluation
from geneface.models.syncnet import SyncNet
from geneface.utils.checkpoints import MissingCheckpointError
from hydra_utils import CONFIG_DIR

MAY = Path(__file__).resolve().parents[2] / "shared" / "data" / "speakers" / "May_5s.mp4"


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory) -> Path:
    """<tmp>/data/demo: a 4 s synthetic speaker at 128² (90 train, 10 val frames)."""
    from geneface.synthetic.speaker import write_synthetic_speaker

    out = tmp_path_factory.mktemp("evaluate")
    write_synthetic_speaker(out / "data", seconds=4, size=128, progress=False)
    return out


def compose_evaluate(output_dir: Path, *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("evaluate", overrides=["speaker=demo", f"paths.output_dir={output_dir}",
                                              "progress=false", *overrides])


class FakeHead:
    """Stands in for a head-only renderer: yields the real val frames, `shift` frames later (wrapping)."""

    needs_audio, draws_torso = False, False

    def __init__(self, root: Path, shift: int = 0):
        self.frames, self.shift = SpeakerFrames(root), shift
        self.height, self.width = self.frames.height, self.frames.width
        self.calls: list[dict] = []

    def render_frames(self, c2w, landmarks, background, audio_features=None):
        self.calls.append(dict(c2w=c2w.shape, landmarks=landmarks.copy(), background=background.shape,
                               first_background=np.array(background[0] if np.ndim(background) == 4 else background),
                               audio_features=audio_features))
        first, count = int(self.frames.meta["num_train"]), len(c2w)
        for k in range(count):
            yield self.frames.image(first + (k + self.shift) % count)


class FakeTorso(FakeHead):
    draws_torso = True


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def _patch(monkeypatch, renderer, driven=None):
    monkeypatch.setattr(evaluation, "load_renderer", lambda ckpt, device: renderer)
    monkeypatch.setattr(evaluation, "load_syncnet", lambda ckpt, device: (SyncNet(width=0.25).eval(), None))
    if driven is not None:
        monkeypatch.setattr(evaluation, "audio_driven_landmarks", lambda ckpt, split, *a, **k: driven(split))


def test_identity_renderer_scores_perfectly(output_dir, monkeypatch):
    from geneface.evaluate import run

    cfg = compose_evaluate(output_dir, "renderer=radnerf")
    _touch(Path(cfg.ckpt))
    _touch(Path(cfg.postnet_ckpt))
    fake = FakeHead(Path(cfg.speaker.root))
    _patch(monkeypatch, fake, driven=lambda split: np.zeros_like(split.landmarks))
    result = run(cfg)

    assert list(result["rows"]) == ["reconstruction", "frozen", "audio_driven", "ground_truth", "truth_blurred",
                                    "real_over_plate"]
    assert result["val_frames"] == [90, 100] and result["resolution"] == [128, 128]
    # the head-only renderer got each frame's own background; the real, the mean, the predicted landmarks
    assert fake.calls[0]["background"] == (10, 128, 128, 3) and fake.calls[0]["c2w"] == (10, 4, 4)
    frames, first = SpeakerFrames(cfg.speaker.root), result["val_frames"][0]    # pasted back into the video
    np.testing.assert_array_equal(fake.calls[0]["first_background"],
                                  head_removed(frames.image(first), frames.labels(first), frames.background()))
    assert np.abs(fake.calls[0]["landmarks"]).sum() > 0 and not fake.calls[1]["landmarks"].any()
    for name in ("reconstruction", "frozen", "audio_driven"):
        row = result["rows"][name]
        assert row["psnr_head"] == row["psnr_full"] == row["psnr_mouth"] == evaluation.PSNR_CAP
        assert row["ssim_head"] == pytest.approx(1.0, abs=1e-4) and row["frames"] == 10 and row["fps"] > 0
    truth = result["rows"]["ground_truth"]
    assert truth["psnr_head"] is None and truth["fps"] is None
    over_plate = result["rows"]["real_over_plate"]      # image columns only, none of the detector's
    assert over_plate["psnr_full"] > 20 and over_plate["sync"] is None and over_plate["frames"] == 10
    if truth["detection_rate"] > 0:        # MediaPipe finds the synthetic face (it does today)
        assert result["rows"]["reconstruction"]["lmd_px"] == pytest.approx(0.0, abs=1e-6)
        for name in ("reconstruction", "frozen", "audio_driven", "ground_truth"):
            assert 0.0 <= result["rows"][name]["sync"] <= 1.0
        assert result["rows"]["reconstruction"]["sync"] == pytest.approx(truth["sync"], abs=1e-5)
        assert result["rows"]["reconstruction"]["aperture_r"] == pytest.approx(1.0)
    saved = json.loads(Path(cfg.out).read_text())
    assert Path(cfg.out) == output_dir / "demo" / "evaluate" / "radnerf.json"
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    assert "| reconstruction | 100.00 |" in saved["table"] and "| ground-truth | – |" in saved["table"]


def test_worse_renderer_scores_worse(output_dir, monkeypatch):
    from geneface.evaluate import run

    cfg = compose_evaluate(output_dir, "audio_driven=false", "frozen=false", "max_frames=8")
    _touch(Path(cfg.ckpt))
    fake = FakeTorso(Path(cfg.speaker.root), shift=4)
    _patch(monkeypatch, fake)
    result = run(cfg)

    assert list(result["rows"]) == ["reconstruction", "ground_truth", "truth_blurred", "real_over_plate"]
    assert fake.calls[0]["background"] == (128, 128, 3)           # torso renderers get the plate
    row = result["rows"]["reconstruction"]
    assert row["frames"] == 8 and row["psnr_full"] < 40 and row["ssim_head"] < 0.99
    if row["detection_rate"] > 0 and result["rows"]["ground_truth"]["detection_rate"] > 0:
        assert row["lmd_px"] > 0


def test_the_truth_blurred_row_is_the_detectors_floor(output_dir, monkeypatch):
    """truth_blur_px: the real frames blurred by a Gaussian of that σ, scored as a renderer: image scores
    just under exact, and (where MediaPipe finds the synthetic face) an LMD above 0 and an aperture r
    below 1, which is the point of the row: half a pixel of blur already costs the detector that much.
    A wider blur scores lower; null skips the row and 0 is refused with what to set."""
    from geneface.evaluate import run

    cfg = compose_evaluate(output_dir, "audio_driven=false", "open_control=false", "strip=null")
    _touch(Path(cfg.ckpt))
    _patch(monkeypatch, FakeHead(Path(cfg.speaker.root), shift=3))
    rows = run(cfg)["rows"]
    blurred = rows["truth_blurred"]
    assert 30 < blurred["psnr_mouth"] < evaluation.PSNR_CAP and 0.9 < blurred["ssim_head"] < 1
    assert blurred["frames"] == 10 and blurred["psnr_head"] > rows["reconstruction"]["psnr_head"]
    if rows["ground_truth"]["detection_rate"] > 0 and blurred["detection_rate"] > 0:
        assert blurred["lmd_px"] > 0 and blurred["aperture_r"] < 1
        assert blurred["responsiveness"] == pytest.approx(rows["frozen"]["lmd_px"] / blurred["lmd_px"])
    wider = run(compose_evaluate(output_dir, "audio_driven=false", "open_control=false", "strip=null",
                                 "frozen=false", "truth_blur_px=2.0"))["rows"]["truth_blurred"]
    assert wider["psnr_mouth"] < blurred["psnr_mouth"] and wider["psnr_head"] < blurred["psnr_head"]
    skipped = run(compose_evaluate(output_dir, "audio_driven=false", "open_control=false", "strip=null",
                                   "frozen=false", "truth_blur_px=null"))
    assert "truth_blurred" not in skipped["rows"]
    with pytest.raises(ValueError, match="truth_blur_px=0"):
        run(compose_evaluate(output_dir, "audio_driven=false", "open_control=false", "strip=null",
                             "frozen=false", "truth_blur_px=0"))


def test_real_over_plate_scores_what_the_plate_costs():
    """A known answer: half of each frame is background, and the plate is 20 levels off there, so the
    full frame's mse is ½·20² (PSNR 10·log10(255²/200) = 25.12 dB); the head box holds no background
    (exact), the mouth box (inside the head) neither."""
    from types import SimpleNamespace

    from geneface.data import contract

    height = width = 64
    labels = np.full((height, width), contract.Label.BACKGROUND, np.uint8)
    labels[:, width // 2:] = contract.Label.TORSO
    labels[8:40, 40:60] = contract.Label.HEAD
    rng = np.random.default_rng(0)
    frames = [rng.integers(30, 220, (height, width, 3), dtype=np.uint8) for _ in range(3)]
    background = rng.integers(30, 220, (height, width, 3), dtype=np.uint8)
    for frame in frames:
        frame[labels == contract.Label.BACKGROUND] = background[labels == contract.Label.BACKGROUND]
    images = SimpleNamespace(image_and_labels=lambda i: (frames[i], labels), plate=background + 20,
                             width=width, height=height)
    split = evaluation.ValSplit(images, [0, 1, 2], np.zeros((3, 4, 4)), np.zeros((3, 68, 3)),
                                np.zeros((6, 80)), np.tile([44, 20, 8, 8], (3, 1)))
    row = evaluation.score_real_over_plate(split)
    assert row["psnr_full"] == pytest.approx(10 * np.log10(255.0 ** 2 / 200.0), abs=0.01)
    assert row["psnr_head"] == row["psnr_mouth"] == evaluation.PSNR_CAP
    assert row["frames"] == 3 and row["lmd_px"] is None
    table = evaluation.format_table(dict(rows={"real_over_plate": row}))
    assert "| real-over-plate | 100.00 |" in table


def test_missing_checkpoints_name_the_training_command(output_dir, tmp_path):
    from geneface.evaluate import run

    cfg = compose_evaluate(tmp_path, f"speaker.root={output_dir / 'data' / 'demo'}")
    with pytest.raises(MissingCheckpointError, match="geneface.train stage=radnerf speaker=demo"):
        run(cfg)
    _touch(Path(cfg.ckpt))
    with pytest.raises(MissingCheckpointError, match="python -m geneface.train stage=postnet speaker=demo"):
        run(cfg)
    syncnet, note = evaluation.load_syncnet(cfg.syncnet_ckpt, "cpu")
    assert syncnet is None and "python -m geneface.train stage=syncnet speaker=lrs3" in note


@pytest.mark.realdata
def test_metrics_on_real_frames():
    if not MAY.is_file():
        pytest.skip(f"{MAY} not present (see ../shared/data/MANIFEST.tsv)")
    from geneface.inference.landmarks import load_driving_audio
    from geneface.metrics.lmd import landmark_distance
    from geneface.media.video import iter_frames

    real = list(iter_frames(MAY, max_frames=20))
    height, width = real[0].shape[:2]
    mel = load_driving_audio(MAY)[1][:40]                               # [2T, 80]
    later = real[10:] + real[:10]                                       # frame i vs i + 10 (0.4 s apart)
    syncnet = SyncNet(width=0.25).eval()
    tracks = {}
    for name, frames in (("real", real), ("later", later)):
        track, scores = evaluation.FaceTrack(), evaluation.ImageScores()
        for k, (frame, target) in enumerate(zip(frames, real)):
            if k < 3:                                      # SSIM at 512² costs ~1 s on a busy CPU
                scores.update(frame, target, np.ones((height, width), bool))
            track.add(frame)
        lm478, valid = track.close()
        assert valid.all()
        tracks[name] = (evaluation.mouth_points(lm478, valid), scores.compute(),
                        evaluation.landmark_sync(syncnet, lm478, valid, width, height, mel))
    mouth, scores, sync = tracks["real"]
    assert landmark_distance(mouth, mouth) == 0.0 and scores["psnr_full"] == evaluation.PSNR_CAP
    assert 0.0 <= sync <= 1.0
    later_mouth, later_scores, _ = tracks["later"]
    assert landmark_distance(later_mouth, mouth) > 1.0
    assert later_scores["psnr_full"] < 40 and later_scores["ssim_full"] < scores["ssim_full"]


class FollowingHead(FakeHead):
    """A renderer that follows its condition: the real val frames (`shift` later) for real landmarks,
    and always the first val frame for the speaker's mean (all-zero normalised) landmarks."""

    def render_frames(self, c2w, landmarks, background, audio_features=None):
        if np.abs(landmarks).sum() > 0:
            yield from super().render_frames(c2w, landmarks, background, audio_features)
            return
        self.calls.append(dict(landmarks=landmarks.copy()))
        first = int(self.frames.meta["num_train"])
        for _ in range(len(c2w)):
            yield self.frames.image(first)


def test_the_frozen_control_tells_a_following_mouth_from_a_frozen_one(output_dir, monkeypatch):
    """responsiveness = LMD(frozen)/LMD(reconstruction) is ~1 for a renderer that ignores its condition
    and well above for one that follows it; the mouth strip shows truth and each row, frame by frame."""
    from geneface.evaluate import run
    from geneface.metrics.mouth import STRIP_CROP

    results = {}
    for name, renderer in (("ignores", FakeHead), ("follows", FollowingHead)):
        cfg = compose_evaluate(output_dir, "renderer=radnerf", "audio_driven=false",
                               f"out={output_dir}/{name}.json", f"strip={output_dir}/{name}_mouths.png")
        _touch(Path(cfg.ckpt))
        _patch(monkeypatch, renderer(Path(cfg.speaker.root), shift=1))
        results[name] = run(cfg)
    assert results["follows"]["rows"]["ground_truth"]["detection_rate"] == 1.0    # MediaPipe sees the face
    ignores, follows = (results[k]["rows"] for k in ("ignores", "follows"))
    assert ignores["reconstruction"]["responsiveness"] == pytest.approx(1.0)
    assert follows["reconstruction"]["responsiveness"] > 1.5, follows
    assert follows["frozen"]["psnr_mouth"] < follows["reconstruction"]["psnr_mouth"]
    assert ignores["reconstruction"]["mouth_gain_db"] == pytest.approx(0.0)
    assert follows["reconstruction"]["mouth_gain_db"] > 0.5, follows
    from geneface.media.images import read_rgb

    strip = read_rgb(results["follows"]["strip"])
    h, w = STRIP_CROP
    assert strip.shape[0] == 3 * h and (strip.shape[1] - 120) == 10 * w    # truth, reconstruction, frozen
    assert len(results["follows"]["strip_frames"]) == 10
    assert "| frozen |" in results["follows"]["table"]


def test_aperture_correlation_reads_a_mouth_that_opens_with_the_real_one():
    from geneface.data.landmarks import inner_lip_aperture
    from geneface.metrics.mouth import aperture_correlation

    rng = np.random.default_rng(0)
    face = rng.normal(size=(68, 2)) * 30 + 100
    face[36], face[45] = (70, 80), (130, 80)                                      # eye span 60 px
    opening = np.abs(np.sin(np.linspace(0, 6, 40))) * 12                          # [T] px
    real = np.repeat(face[None], 40, 0)
    real[:, 66] = real[:, 62] + np.stack([np.zeros(40), opening], -1)            # 66 straight below 62
    assert inner_lip_aperture(real) == pytest.approx((np.abs(real[:, 66, 1] - real[:, 62, 1])) / 60)
    bigger = real * 2                                                             # same face, twice as close
    assert inner_lip_aperture(bigger) == pytest.approx(inner_lip_aperture(real))
    assert aperture_correlation(bigger, real) == pytest.approx(1.0)
    frozen = np.repeat(real[:1], 40, 0)
    assert aperture_correlation(frozen, real) is None                             # constant: r undefined
    late = np.roll(real, 10, axis=0)
    assert aperture_correlation(late, real) < 0.5
    missing = real.copy()
    missing[::2] = np.nan                                                         # no face there
    assert aperture_correlation(missing, real) == pytest.approx(1.0)


class CameraLookupHead(FakeHead):
    """Yields, for each camera, the real val frame taken from it (so it ignores its landmarks) — or,
    with `follows`, the real frame whose landmarks it was given (its mouth follows the condition)."""

    def __init__(self, root: Path, follows: bool):
        super().__init__(root)
        from geneface.data.nerf_rays import SpeakerImages

        images = SpeakerImages(root)
        self.follows, self.first = follows, int(self.frames.meta["num_train"])
        self.c2w = images.c2w[self.first:].numpy()
        self.landmarks = images.landmarks[self.first:].reshape(-1, 68, 3).numpy()

    def render_frames(self, c2w, landmarks, background, audio_features=None):
        self.calls.append(dict(c2w=c2w.shape, landmarks=landmarks.copy()))
        for cam, lm in zip(c2w, landmarks):
            by_camera = int(np.abs(self.c2w - cam).sum((1, 2)).argmin())
            by_landmarks = int(np.abs(self.landmarks - lm).sum((1, 2)).argmin())
            yield self.frames.image(self.first + (by_landmarks if self.follows else by_camera))


def test_the_open_mouth_control_needs_a_mouth_that_follows(output_dir, monkeypatch):
    """open-mouth dB over closed: the most open val frames re-rendered with the most closed frame's
    landmarks. A renderer that ignores its landmarks scores exactly 0; one whose mouth follows them
    loses PSNR mouth when given the closed mouth, so it scores well above 0."""
    from geneface.evaluate import run

    root = output_dir / "data" / "demo"
    split = evaluation.load_val_split(root)
    most_open, most_closed = evaluation.open_and_closed(split)
    assert len(most_open) == 3 and most_closed not in most_open          # 10 val frames: a quarter, ≥ 3
    gap = np.abs(split.landmarks[:, 66, 1] - split.landmarks[:, 62, 1])   # normalised, but monotone here
    assert gap[most_open].min() > gap[most_closed]
    results = {}
    for follows in (False, True):
        cfg = compose_evaluate(output_dir, "renderer=radnerf", "audio_driven=false", "frozen=false",
                               f"out={output_dir}/open_{follows}.json", "strip=null")
        _touch(Path(cfg.ckpt))
        fake = CameraLookupHead(root, follows)
        _patch(monkeypatch, fake)
        results[follows] = run(cfg)["rows"]["reconstruction"]
        control = fake.calls[-1]
        assert control["c2w"] == (3, 4, 4) and np.allclose(control["landmarks"], split.landmarks[most_closed])
    assert results[False]["open_gain_db"] == pytest.approx(0.0)
    assert results[True]["open_gain_db"] > 10.0, results[True]      # own frames exact (capped at 100 dB)
    assert run(compose_evaluate(output_dir, "renderer=radnerf", "audio_driven=false", "frozen=false",
                                "open_control=false", "strip=null"))["rows"]["reconstruction"].get(
        "open_gain_db") is None
