"""The training entry point on the real configs: composition, learning, resume, DDP, sweeps, W&B."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from geneface.train import train
from geneface.utils.checkpoints import IncompatibleCheckpointError, MissingCheckpointError, load_stage, stage_checkpoint
from hydra_utils import REPO_ROOT, compose_train, speaker_names, stage_names

SMALL = [  # a SyncNet small enough for 2 CPU cores
    "stage.model.net.width=0.25", "stage.data.batch_size=16", "stage.data.num_workers=0",
    "stage.data.train_collate.num_pairs=256", "stage.data.val_collate.num_pairs=1024",
    "trainer.accelerator=cpu",
]


def _run(args: list[str], env_extra: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", **(env_extra or {})}
    proc = subprocess.run([sys.executable, "-m", "geneface.train", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.mark.parametrize("speaker", speaker_names())
@pytest.mark.parametrize("stage", stage_names())
def test_every_stage_and_speaker_composes_and_instantiates(stage, speaker, tmp_path):
    cfg = compose_train([f"stage={stage}", f"speaker={speaker}", f"paths.output_dir={tmp_path}"], tmp_path)
    assert cfg.speaker.name == speaker and cfg.stage.name == stage
    assert Path(cfg.paths.stage_dir) == tmp_path / speaker / stage
    datamodule = instantiate(cfg.stage.data)
    module = instantiate(cfg.stage.model)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    loggers = [instantiate(c) for c in cfg.logger.values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    assert trainer.max_steps == cfg.stage.max_steps
    assert sum(p.numel() for p in module.parameters()) > 0
    assert datamodule is not None


def test_corpus_stage_defaults_to_lrs3_and_missing_choices_fail_clearly(tmp_path):
    cfg = compose_train(["stage=syncnet", f"paths.output_dir={tmp_path}"], tmp_path)
    assert cfg.speaker.name == "lrs3"
    proc = subprocess.run([sys.executable, "-m", "geneface.train"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode != 0 and "You must specify 'stage'" in proc.stderr


def test_missing_dataset_names_the_command_to_run(tmp_path):
    cfg = compose_train(["stage=syncnet", f"paths.output_dir={tmp_path}", "logger=csv", *SMALL], tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m geneface.synthetic"):
        train(cfg)


def test_missing_upstream_checkpoint_names_the_command(tmp_path):
    with pytest.raises(MissingCheckpointError, match="python -m geneface.train stage=syncnet speaker=lrs3"):
        stage_checkpoint(tmp_path, "lrs3", "syncnet")


@pytest.mark.slow
def test_syncnet_learns_on_synthetic_corpus_and_resumes(synthetic_corpus, tmp_path):
    """Val AUROC ≥ 0.9 within the test's budget; the checkpoint rebuilds the same net; resuming
    from last.ckpt continues the global step."""
    common = ["stage=syncnet", "speaker=synthetic_corpus", f"speaker.root={synthetic_corpus}",
              f"paths.output_dir={tmp_path}", "logger=csv", *SMALL,
              "stage.model.optimizer.lr=1e-3", "stage.val_check_interval=100", "stage.limit_val_batches=2"]
    cfg = compose_train([*common, "stage.max_steps=300"], tmp_path / "run1")
    metrics = train(cfg)
    assert metrics["val/auroc"] >= 0.9, metrics
    stage_dir = tmp_path / "synthetic_corpus" / "syncnet"
    assert (stage_dir / "last.ckpt").is_file() and (stage_dir / "best.ckpt").is_file()
    assert torch.load(stage_dir / "last.ckpt", weights_only=False)["global_step"] == 300

    module = load_stage(stage_dir / "best.ckpt")
    assert module.net.embed_dim == 128 and not module.training

    cfg = compose_train([*common, "stage.max_steps=320"], tmp_path / "run2")
    train(cfg)
    assert torch.load(stage_dir / "last.ckpt", weights_only=False)["global_step"] == 320

    # resuming a network of another width names the checkpoint and the way out
    cfg = compose_train([*common, "stage.max_steps=330", "stage.model.net.width=0.125"], tmp_path / "run3")
    with pytest.raises(IncompatibleCheckpointError, match="resume=false"):
        train(cfg)


@pytest.mark.slow
def test_two_process_ddp_on_cpu(synthetic_corpus, tmp_path):
    _run(["stage=syncnet", "speaker=synthetic_corpus", f"speaker.root={synthetic_corpus}", "trainer=ddp",
          f"paths.output_dir={tmp_path}", "logger=csv", *SMALL, "stage.max_steps=4",
          "stage.val_check_interval=2", "stage.limit_val_batches=1"])
    ckpt = torch.load(tmp_path / "synthetic_corpus" / "syncnet" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 4
    assert ckpt["geneface_config"]["trainer"]["strategy"] == "ddp"


@pytest.mark.slow
def test_multirun_sweep_with_wandb_offline(synthetic_corpus, tmp_path):
    """Two jobs run, each saves its full config and an offline W&B run, with no network."""
    _run(["-m", "stage=syncnet", "speaker=synthetic_corpus", f"speaker.root={synthetic_corpus}",
          f"paths.output_dir={tmp_path}", *SMALL, "stage.max_steps=2", "stage.val_check_interval=2",
          "stage.limit_val_batches=1", "stage.model.optimizer.lr=1e-3,2e-3"],
         env_extra={"WANDB_SILENT": "true", "HTTPS_PROXY": "http://127.0.0.1:9"})
    sweeps = list((tmp_path / "synthetic_corpus" / "syncnet" / "multirun").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    lrs = set()
    for job in jobs:
        saved = (job / ".hydra" / "config.yaml").read_text()
        assert "syncnet" in saved
        lrs.add([line for line in saved.splitlines() if line.strip().startswith("lr:")][0].split()[-1])
        assert list((job / "wandb").glob("offline-run-*")), f"no offline W&B run in {job}"
        assert (job / "checkpoints" / "last.ckpt").is_file()
    assert lrs == {"0.001", "0.002"}
