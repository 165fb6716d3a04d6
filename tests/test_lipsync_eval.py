"""geneface.evaluate_lipsync on a small synthetic corpus (mouth opening = the audio's loudness envelope):
the evaluation tells sync from no sync — the real landmarks score r 1 at lag 0, a mouth that follows the
audio scores high, a late one peaks at its delay, another clip's audio scores ≈ 0 — and a missing
model or dataset names the command that makes it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from geneface.data.corpus import finalize_corpus
from geneface.evaluate_lipsync import run
from geneface.inference import lipsync
from geneface.metrics.lipsync import frame_energy
from geneface.utils.checkpoints import MissingCheckpointError
from hydra_utils import CONFIG_DIR, compose_train


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """4 synthetic speakers × 3 clips of 3–4 s; whole speakers held out (spk001, spk003: 6 val clips)."""
    from geneface.synthetic import write_synthetic_corpus

    root = write_synthetic_corpus(tmp_path_factory.mktemp("lipsync"), "tiny_sync", num_speakers=4,
                                  clips_per_speaker=3, clip_seconds=(3.0, 4.0), progress=False)
    finalize_corpus(root, "tiny_sync", split_by="speaker", val_speakers=("spk001", "spk003"))
    return root


def compose_lipsync(corpus: Path, output_dir: Path, *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("evaluate_lipsync", overrides=[
            "speaker=synthetic_corpus", f"speaker.root={corpus}", f"paths.output_dir={output_dir}", *overrides])


class LoudMouth:
    """Stands in for a trained model: the inner lips part with the audio's frame energy, `late` frames
    late (np.roll), every other landmark still."""

    late = 0
    stage, trained_syncnet, vae, gains = "audio2motion", None, None, {}

    def __init__(self, ckpt, *args, **kwargs):
        self.ckpt = ckpt

    def __call__(self, mel: np.ndarray, num_frames: int, vae_only: bool = False) -> np.ndarray:
        idexp = np.zeros((num_frames, 68, 3), np.float32)
        idexp[:, 66, 1] = np.roll(frame_energy(mel)[:num_frames], self.late)
        return idexp


def _evaluate(corpus, tmp_path, monkeypatch, late=0, *overrides):
    monkeypatch.setattr(lipsync, "Predictor", type("Late", (LoudMouth,), {"late": late}))
    return run(compose_lipsync(corpus, tmp_path, *overrides))


def test_the_evaluation_tells_sync_from_no_sync(corpus, tmp_path, monkeypatch):
    result = _evaluate(corpus, tmp_path, monkeypatch)
    clips = result["clips"]
    assert len(clips) == 6 and {c["group"] for c in clips} == {"spk001", "spk003"}
    for clip in clips:                                              # the oracle: the real landmarks
        real = clip["rows"]["real"]
        assert real["aperture_r"] == pytest.approx(1.0) and real["best_lag"] == 0 and real["mouth_lmd"] == 0
    mean = result["mean"]
    assert mean["model"]["aperture_r"] > 0.5 and mean["model"]["lag_ok"] == 1.0, mean["model"]
    assert abs(mean["shuffled"]["aperture_r"]) < 0.2, mean["shuffled"]
    # an affine map of the same energy: the loudness baseline's r is the loud mouth's, clip by clip
    for clip in clips:
        assert clip["rows"]["loudness"]["aperture_r"] == pytest.approx(clip["rows"]["model"]["aperture_r"])
        assert clip["shuffled_audio_from"] != clip["item_id"]
    assert mean["static"]["aperture_r"] is None                    # a still mouth: r undefined, not 0
    assert mean["static"]["mouth_lmd"] > 0
    assert result["syncnet_ckpt"] is None and "sync skipped" in result["notes"][0]

    out = tmp_path / "lipsync_eval" / "synthetic_corpus"
    saved = json.loads((out / "lipsync.json").read_text())
    assert saved["mean"]["model"]["aperture_r"] == pytest.approx(mean["model"]["aperture_r"])
    text = (out / "lipsync.md").read_text()
    assert "| model (audio2motion) |" in text and "| spk003 |" in text and "spk001/clip000" in text
    from geneface.media.images import read_rgb

    assert read_rgb(out / "lipsync_openings.png").shape[0] > 100


def test_a_late_mouth_peaks_at_its_delay(corpus, tmp_path, monkeypatch):
    on_time = _evaluate(corpus, tmp_path, monkeypatch, 0, "max_lag=6")
    result = _evaluate(corpus, tmp_path, monkeypatch, 3, "max_lag=6")
    # loudness and opening have their own small lag on each clip (0 or +1 here, close to a tie); 3
    # frames late moves the whole r-by-lag curve 3 frames right
    for late, on in zip(result["clips"], on_time["clips"]):
        late_r, on_r = late["rows"]["model"]["aperture_by_lag"], on["rows"]["model"]["aperture_by_lag"]
        assert [late_r[str(k + 3)] for k in range(-3, 4)] == pytest.approx([on_r[str(k)] for k in range(-3, 4)],
                                                                          abs=0.05)
        assert late["rows"]["model"]["best_lag"] in (3, 4) and on["rows"]["model"]["best_lag"] in (0, 1)
    assert result["mean"]["model"]["lag_ok"] == 0.0
    assert result["mean"]["model"]["best_r"] > result["mean"]["model"]["aperture_r"] + 0.2


def _checkpoint(path: Path, overrides: list[str], run_dir: Path) -> Path:
    """An untrained stage written as geneface.train writes one (config inside): the real loading path."""
    cfg = compose_train(overrides, run_dir)
    module = instantiate(cfg.stage.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"geneface_config": OmegaConf.to_container(cfg, resolve=True),
                "state_dict": module.state_dict()}, path)
    return path


def test_a_real_checkpoint_and_syncnet_run_end_to_end(corpus, tmp_path):
    common = ["speaker=synthetic_corpus", f"speaker.root={corpus}", f"paths.output_dir={tmp_path}"]
    syncnet = _checkpoint(tmp_path / "synthetic_corpus" / "syncnet" / "best.ckpt",
                          ["experiment=syncnet_cpu", *common], tmp_path / "run_s")
    _checkpoint(tmp_path / "synthetic_corpus" / "audio2motion" / "best.ckpt",
                ["experiment=audio2motion_cpu", *common, f"stage.model.syncnet_ckpt={syncnet}"], tmp_path / "run_a")
    result = run(compose_lipsync(corpus, tmp_path))
    assert result["model_stage"] == "audio2motion" and result["syncnet_ckpt"] == str(syncnet)
    assert all(c["rows"]["model"]["sync"] is not None for c in result["clips"])
    assert 0 <= result["mean"]["real"]["sync"] <= 1 and not result["notes"]


def test_missing_model_or_dataset_names_the_command(corpus, tmp_path):
    with pytest.raises(MissingCheckpointError, match="python -m geneface.train stage=audio2motion "
                                                     "speaker=synthetic_corpus"):
        run(compose_lipsync(corpus, tmp_path))
    with pytest.raises(FileNotFoundError, match="python -m geneface.process.corpus"):
        run(compose_lipsync(tmp_path / "nowhere", tmp_path))


def test_a_speakers_rows_score_the_motion_infer_renders_with_its_spoken_gain(tmp_path, monkeypatch):
    """A speaker's model whose jaw and lips move half as far as the speaker's: with spoken_gain=auto
    (infer's default) its rows move as far as the truth (amplitude ≈ 1, the gain 2 recorded), with
    spoken_gain=1 half as far; the aperture r is the same either way."""
    from geneface.data.frames import arrays
    from geneface.inference import landmarks
    from geneface.synthetic.speaker import write_synthetic_speaker

    root = write_synthetic_speaker(tmp_path / "data", seconds=4.0, size=32, progress=False)
    data = arrays(root)
    mean = np.asarray(data["idexp_lm3d_mean"])
    real = np.asarray(data["idexp_lm3d"], np.float32).reshape(-1, 68, 3)
    mel = np.asarray(data["mel"], np.float32)

    def halved(model, audio, num_frames, temperature=1.0):          # finds the frames by their audio
        start = next(i for i in range(len(real)) if np.array_equal(mel[2 * i: 2 * i + 4], audio[:4]))
        return mean + 0.5 * (real[start: start + num_frames] - mean)

    checkpoint = {"geneface_config": {"stage": {"model": {"syncnet_ckpt": None}}}}
    monkeypatch.setattr(lipsync, "upstream_checkpoint", lambda ckpt: ckpt)
    monkeypatch.setattr(lipsync, "read_checkpoint", lambda *args, **kwargs: checkpoint)
    monkeypatch.setattr(lipsync, "load_motion_model", lambda *args: (object(), "audio2motion"))
    monkeypatch.setattr(lipsync, "predict_idexp", halved)
    monkeypatch.setattr(landmarks, "predict_idexp", halved)
    scored = {gain: lipsync.evaluate_lipsync(root, "speaker", "model.ckpt", spoken_gain=gain, clamp_std=1e6,
                                             smoothing=0.0)[0]
              for gain in ("auto", 1)}
    auto, off = scored["auto"]["mean"]["model"], scored[1]["mean"]["model"]
    assert scored["auto"]["settings"]["spoken_gain"]["model"] == pytest.approx(2.0, rel=1e-3)
    assert auto["amplitude"] == pytest.approx(1.0, abs=0.02) and off["amplitude"] == pytest.approx(0.5, abs=0.02)
    assert auto["aperture_r"] == pytest.approx(off["aperture_r"], abs=1e-4) and auto["aperture_r"] > 0.99
    assert auto["mouth_lmd"] < 0.01 < off["mouth_lmd"]
