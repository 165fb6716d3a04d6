"""Stage postnet: the refiner and discriminator, the checkpoint picker, frozen upstream nets, and
learning on the synthetic corpus + a synthetic speaker."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from geneface.callbacks.postnet_picker import pick
from geneface.data.motion_batches import MotionCollator
from geneface.models.audio2motion import Audio2MotionVAE
from geneface.models.postnet import CNNPostNet, MLPDiscriminator
from geneface.models.syncnet import SyncNet
from geneface.stages.postnet import PostnetStage, load_postnet
from geneface.train import train
from geneface.utils.checkpoints import MissingCheckpointError
from hydra_utils import compose_train


def _stage(**kw) -> PostnetStage:
    return PostnetStage(CNNPostNet(width=0.125), MLPDiscriminator(width=0.125),
                        optimizer=lambda params: torch.optim.RMSprop(params, lr=1e-4),
                        disc_optimizer=lambda params: torch.optim.RMSprop(params, lr=1e-4), **kw)


def test_postnet_shapes_and_zero_delta_on_padding():
    torch.manual_seed(0)
    net = CNNPostNet(width=0.25).eval()
    x = torch.randn(2, 12, 204)
    mask = torch.ones(2, 12)
    mask[1, 7:] = 0
    x[1, 7:] = 0
    y = net(x, mask)
    assert y.shape == (2, 12, 204)
    assert y[1, 7:].abs().max() == 0                                   # Δ is zero on padding
    assert (y[0] - x[0]).abs().max() > 0                               # and not elsewhere
    torch.testing.assert_close(net(x), y)                              # no mask: all-zero frames are padding
    garbage = x.clone()
    garbage[1, 7:] = 3.0                                               # padding content does not leak in
    torch.testing.assert_close(net(garbage, mask)[1, :7], y[1, :7], atol=1e-5, rtol=1e-4)
    assert sum(p.numel() for p in CNNPostNet().parameters()) > 5e5     # the original's widths


def test_a_postnet_can_start_as_the_identity():
    torch.manual_seed(0)
    x, mask = torch.randn(2, 12, 204), torch.ones(2, 12)
    torch.testing.assert_close(CNNPostNet(width=0.25, start_as_identity=True)(x, mask), x)
    assert (CNNPostNet(width=0.25)(x, mask) - x).abs().max() > 1e-3        # the original's: a random Δ


def test_discriminator_sees_only_real_frames():
    torch.manual_seed(0)
    disc = MLPDiscriminator(width=0.25).eval()
    x = torch.randn(2, 10, 204)
    mask = torch.ones(2, 10)
    mask[0, 6:] = 0
    scores = disc(x, mask)
    assert scores.shape == (16,)
    garbage = x.clone()
    garbage[0, 6:] = 100.0
    torch.testing.assert_close(disc(garbage, mask), scores)
    torch.testing.assert_close(scores[:6], disc(x[:1, :6]))           # per frame: independent of the rest
    assert disc.net[-1].bias is None


def _c(step, mse, sync, pos, neg):
    return {"step": step, "metrics": {"val/mse": mse, "val/sync": sync, "val/disc_pos_conf": pos,
                                      "val/disc_neg_conf": neg}, "checkpoint": f"candidates/step={step}.ckpt"}


def test_picker_known_answer_and_reasons():
    history = [
        _c(1000, 0.30, 0.60, 0.90, 0.10),    # not converged, metrics too high
        _c(2000, 0.12, 0.52, 0.58, 0.44),    # passes everything, but later than 3000? no: earlier → wins
        _c(3000, 0.10, 0.50, 0.52, 0.47),    # passes everything, more steps
        _c(4000, 0.11, 0.51, 0.70, 0.45),    # pos conf off
        _c(5000, 0.40, 0.50, 0.50, 0.50),    # converged, mse too high (collapse)
    ]
    report = pick(history, conf_tolerance=0.1, metric_factor=1.5)
    assert report["mode"] == "all_rules" and report["selected"]["step"] == 2000
    why = {c["step"]: " ".join(c.get("why_not", [])) for c in report["candidates"]}
    assert "not converged" in why[1000] and "val/mse" in why[1000]
    assert "fewest steps" in why[3000]
    assert "val/disc_pos_conf" in why[4000] and "val/disc_neg_conf" not in why[4000]
    assert "val/mse" in why[5000] and "not converged" not in why[5000]
    assert why[2000] == "" and [c["selected"] for c in report["candidates"]].count(True) == 1


def test_picker_fallback_when_none_passes():
    history = [_c(1000, 0.10, 0.50, 0.80, 0.20), _c(2000, 0.12, 0.55, 0.68, 0.35),
               _c(3000, 0.11, 0.52, 0.68, 0.36), _c(4000, 0.50, 0.90, 0.75, 0.50)]
    report = pick(history, conf_tolerance=0.1, metric_factor=1.5)
    # none converged; 2000 and 3000 tie on the closest confidence gap (0.18):
    # the lower mse/best + sync/best wins (3000)
    assert report["mode"] == "fallback" and report["selected"]["step"] == 3000
    assert not report["selected"]["passed"]
    assert all("fallback" in " ".join(c["why_not"]) for c in report["candidates"] if not c["selected"])


def test_frozen_nets_stay_in_eval_and_out_of_the_state_dict():
    stage = _stage()
    stage.attach_frozen(vae=Audio2MotionVAE(hidden=16, cond_channels=8, enc_layers=1, dec_layers=1,
                                            flow_hidden=8, flow_layers=1).train(),
                        syncnet=SyncNet(width=0.125).train())
    stage.train()
    assert stage.postnet.training and not stage.vae.training and not stage.syncnet.training
    assert all(k.startswith(("postnet.", "discriminator.")) for k in stage.state_dict())
    assert all(not p.requires_grad for p in stage.vae.parameters())
    batch = MotionCollator()([{"item_id": "a", "speaker_id": 0, "mel": torch.randn(40, 80),
                               "idexp_lm3d": torch.randn(20, 68, 3)}])
    assert stage.predict(batch["audio"], batch["mask"]).shape == (1, 20, 204)


def test_missing_upstream_names_the_command_and_lrs3_is_not_a_speaker(tmp_path):
    cfg = compose_train(["stage=postnet", "speaker=demo", f"paths.output_dir={tmp_path}"], tmp_path)
    module = instantiate(cfg.stage.model)                              # construction touches no file
    with pytest.raises(MissingCheckpointError, match="python -m geneface.train stage=audio2motion speaker=lrs3"):
        module.setup("fit")
    cfg = compose_train(["stage=postnet", "speaker=lrs3", f"paths.output_dir={tmp_path}"], tmp_path)
    with pytest.raises(ValueError, match="kind 'speaker'"):
        instantiate(cfg.stage.data).setup("fit")


@pytest.fixture
def one_thread():
    """One intra-op thread: on 2 shared cores, 2 OpenMP threads per process slow training many-fold."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.slow
def test_postnet_learns_and_selects_a_converged_checkpoint(synthetic_corpus, tmp_path, one_thread):
    """Small SyncNet and VAE on the synthetic corpus, then the postnet on a synthetic speaker: the
    picker's selected step has both discriminator confidences within 0.1 of 0.5, and selected.ckpt
    alone predicts once the upstream checkpoints are gone."""
    from geneface.synthetic.speaker import write_synthetic_speaker

    t0 = time.time()
    speaker = write_synthetic_speaker(tmp_path / "data", seconds=20, size=32, progress=False)
    common = [f"speaker.root={synthetic_corpus}", f"paths.output_dir={tmp_path}", "logger=csv",
              "trainer.accelerator=cpu", "stage.data.num_workers=0"]
    train(compose_train(["stage=syncnet", "speaker=synthetic_corpus", *common, "stage.model.net.width=0.25",
                         "stage.data.batch_size=16", "stage.data.train_collate.num_pairs=256",
                         "stage.data.val_collate.num_pairs=512", "stage.model.optimizer.lr=1e-3",
                         "stage.max_steps=60", "stage.val_check_interval=60", "stage.limit_val_batches=1"],
                        tmp_path / "run_syncnet"))
    train(compose_train(["experiment=audio2motion_cpu", *common, "stage.max_steps=100",
                         "stage.val_check_interval=100", "stage.model.net.hidden=32", "stage.model.net.enc_layers=2"],
                        tmp_path / "run_a2m"))
    t1 = time.time()

    captured = {}
    original_setup = PostnetStage.setup

    def spy(self, stage):
        original_setup(self, stage)
        captured["module"] = self

    PostnetStage.setup = spy
    try:
        train(compose_train(["experiment=postnet_cpu", f"speaker.root={speaker}", f"stage.corpus_root={synthetic_corpus}",
                             f"paths.output_dir={tmp_path}", "logger=csv", "stage.data.num_workers=0"],
                            tmp_path / "run_postnet"))
    finally:
        PostnetStage.setup = original_setup
    module = captured["module"]
    assert not module.vae.training and not module.syncnet.training    # after fit and its validations

    stage_dir = tmp_path / "demo" / "postnet"
    report = json.loads((stage_dir / "selected.json").read_text())
    chosen = report["selected"]["metrics"]
    print(f"upstream {t1 - t0:.0f} s, postnet {time.time() - t1:.0f} s; selected step {report['selected']['step']} "
          f"({report['mode']}): {chosen}")
    for c in report["candidates"]:
        print(c["step"], c["metrics"], c.get("why_not"))
    assert len(report["candidates"]) == 6
    assert abs(chosen["val/disc_pos_conf"] - 0.5) <= 0.1 and abs(chosen["val/disc_neg_conf"] - 0.5) <= 0.1
    assert (stage_dir / "selected.ckpt").is_file()
    assert (stage_dir / f"candidates/step={report['selected']['step']}.ckpt").is_file()

    for upstream in ("syncnet", "audio2motion"):
        for f in (tmp_path / "synthetic_corpus" / upstream).glob("*.ckpt"):
            f.unlink()
    rebuilt = load_postnet("demo", tmp_path)                            # selected.ckpt by default
    assert rebuilt.vae is not None and rebuilt.syncnet is None and not rebuilt.training
    batch = MotionCollator()([{"item_id": "a", "speaker_id": 0, "mel": torch.randn(64, 80),
                               "idexp_lm3d": torch.zeros(32, 68, 3)}])
    out = rebuilt.predict(batch["audio"], batch["mask"])
    assert out.shape == (1, 32, 204) and torch.isfinite(out).all()

    # the inference entry uses selected.ckpt alone: any audio file → the speaker's landmarks
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from geneface.infer import infer
    from geneface.media.audio import write_wav
    from hydra_utils import CONFIG_DIR

    wav = tmp_path / "speech.wav"
    write_wav(wav, (0.3 * np.sin(np.linspace(0, 2000, 16000 * 3))).astype(np.float32))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("infer", overrides=["speaker=demo", f"speaker.root={speaker}", f"wav={wav}",
                                          f"paths.output_dir={tmp_path}", "render=false"])
    outputs = infer(cfg)
    lm3d = np.load(outputs["lm3d"])
    assert lm3d.shape == (75, 68, 3) and np.isfinite(lm3d).all()
    assert np.load(outputs["lm3d_normalized"]).shape == (75, 68, 3)


def test_a_checkpoint_in_the_old_carried_format_names_the_way_out():
    stage = _stage()
    with pytest.raises(ValueError, match="train this stage again"):
        stage.on_load_stage({"postnet_vae": {"config": {}, "state_dict": {}}})
