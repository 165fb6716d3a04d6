"""Shared fixtures: tiny datasets that satisfy the data contract (docs/data_format.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geneface.data import contract
from geneface.data.corpus import finalize_corpus, write_clip
from geneface.data.landmarks import MEDIAPIPE_TO_IBUG68, NUM_MEDIAPIPE


def _rotations(rng: np.random.Generator, n: int, max_angle: float = 0.2) -> np.ndarray:
    """[n, 3, 3] small random rotations (Rodrigues)."""
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = rng.uniform(-max_angle, max_angle, size=(n, 1, 1))
    k = np.zeros((n, 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(0, 2, 1)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def _smooth_frame(height: int, width: int, i: int) -> np.ndarray:
    """RGB uint8 with red rising along x, green along y, blue set by i (survives JPEG)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                     np.full_like(x, (40 + 7 * i) % 256)], axis=-1).astype(np.uint8)


def tiny_speaker_inputs(num_frames: int = 22, size: int = 32, seed: int = 0) -> dict:
    """Keyword arguments for write_speaker_dataset (all but out_dir): T frames of size×size."""
    rng = np.random.default_rng(seed)
    T, H, W = num_frames, size, size
    mean_shape = rng.normal(scale=0.5, size=(68, 3))
    span = np.linalg.norm(mean_shape[45] - mean_shape[36])
    mean_shape /= span                                             # head unit = outer-eye-corner span
    idexp = rng.normal(scale=0.1, size=(T, 68, 3))
    R = _rotations(rng, T)
    t = np.stack([rng.normal(scale=0.05, size=T), rng.normal(scale=0.05, size=T), 8 + rng.normal(size=T)], 1)
    c2w = np.zeros((T, 4, 4))
    c2w[:, :3, :3] = R.transpose(0, 2, 1)
    c2w[:, :3, 3] = -(R.transpose(0, 2, 1) @ t[:, :, None])[:, :, 0]
    c2w[:, 3, 3] = 1
    lm478 = np.concatenate([rng.uniform(0, W, size=(T, NUM_MEDIAPIPE, 2)),
                            rng.normal(scale=2, size=(T, NUM_MEDIAPIPE, 1))], axis=2)
    rect = np.tile(np.array([4, 4, 24, 24]), (T, 1))
    arrays = {
        "mel": rng.normal(-3, 1, size=(2 * T, contract.MEL_BINS)),
        "f0": np.where(rng.random(2 * T) < 0.5, 0.0, rng.uniform(80, 300, 2 * T)),
        "landmarks478": lm478, "landmarks68": lm478[:, list(MEDIAPIPE_TO_IBUG68)],
        "head_R": R, "head_t": t, "c2w": c2w, "mean_shape": mean_shape,
        "idexp_lm3d": idexp, "idexp_lm3d_mean": idexp.mean(0), "idexp_lm3d_std": idexp.std(0),
        "face_rect": rect, "lip_rect": rect // 2,
    }
    audio = 0.3 * np.sin(2 * np.pi * 220 * np.arange(T * contract.SAMPLES_PER_FRAME) / contract.SAMPLE_RATE)
    return {
        "name": "tiny", "arrays": arrays, "audio": audio, "focal": 40.0,
        "frames": [_smooth_frame(H, W, i) for i in range(T)],
        "labels": [rng.integers(0, len(contract.Label), size=(H, W), dtype=np.uint8) for _ in range(T)],
        "background": rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8),
    }


def tiny_clip_arrays(num_frames: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    T = num_frames
    return {
        "mel": rng.normal(-3, 1, size=(2 * T, contract.MEL_BINS)),
        "f0": rng.uniform(0, 300, size=2 * T),
        "idexp_lm3d": rng.normal(scale=0.1, size=(T, 68, 3)),
        "head_R": _rotations(rng, T),
        "head_t": rng.normal(size=(T, 3)),
    }


@pytest.fixture
def tiny_speaker(tmp_path: Path) -> Path:
    """A valid speaker dataset: T = 22 frames of 32×32 at tmp_path/speakers/tiny."""
    from geneface.data.speaker import write_speaker_dataset

    return write_speaker_dataset(tmp_path / "speakers" / "tiny", **tiny_speaker_inputs())


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A valid corpus at tmp_path/corpus: 2 speakers × 3 clips of 10–20 frames, both splits non-empty."""
    root = tmp_path / "corpus"
    for s, speaker in enumerate(("spk_a", "spk_b")):
        for c in range(3):
            write_clip(root, speaker, f"clip{c:02d}", tiny_clip_arrays(10 + 4 * c + s, seed=10 * s + c))
    finalize_corpus(root, name="tiny_corpus")
    return root


@pytest.fixture
def make_speaker_inputs():
    """The factory behind tiny_speaker: make_speaker_inputs(num_frames=22, size=32, seed=0) -> kwargs."""
    return tiny_speaker_inputs


@pytest.fixture
def make_clip_arrays():
    """make_clip_arrays(num_frames, seed=0) -> arrays for corpus.write_clip."""
    return tiny_clip_arrays


def save_vae_checkpoint(path: Path, seed: int = 0, **net):
    """A checkpoint of a small audio2motion VAE (`net` options over hidden 32 and 2 layers) as
    geneface.train writes one, config inside; returns the stage whose weights it holds."""
    import torch
    from hydra.utils import instantiate

    net = {"_target_": "geneface.models.audio2motion.Audio2MotionVAE", "hidden": 32, "cond_channels": 16,
           "enc_layers": 2, "dec_layers": 2, "flow_hidden": 16, "flow_layers": 2, **net}
    config = {"stage": {"name": "audio2motion", "model": {
        "_target_": "geneface.stages.audio2motion.Audio2MotionStage", "syncnet_ckpt": None, "net": net,
        "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True}}}}
    torch.manual_seed(seed)
    stage = instantiate(config["stage"]["model"])
    torch.save({"geneface_config": config, "state_dict": stage.state_dict()}, path)
    return stage


@pytest.fixture
def vae_checkpoint():
    """save_vae_checkpoint(path, seed=0, **net) -> the saved stage (see there)."""
    return save_vae_checkpoint


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    """The default synthetic corpus (8 speakers × 12 clips), written once per test session."""
    from geneface.synthetic import write_synthetic_corpus

    return write_synthetic_corpus(tmp_path_factory.mktemp("data"), progress=False)


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Path:
    """An output directory where `python -m geneface.pipeline` has trained the tiny speaker `demo`
    end to end (tests/pipeline_utils.py); tests only read it."""
    from pipeline_utils import TINY, make_inputs, run_module

    root = make_inputs(tmp_path_factory.mktemp("pipeline"))
    done = run_module(root, "geneface.pipeline", *TINY)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (root / "pipeline_stdout.txt").write_text(done.stdout)
    return root


def pytest_collection_modifyitems(config, items):
    """`gpu` tests need CUDA: skip them, with the reason, where there is none."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marker gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
