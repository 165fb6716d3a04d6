"""A tiny trained speaker for the pipeline and app tests: the synthetic speaker `demo` (3 s, 64²) and a
3-speaker synthetic corpus whose syncnet and audio2motion train for a few steps, under one output
directory that the commands find through GENEFACE_OUTPUT_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# every step at a size that runs in seconds; the same arguments a user passes on the command line
TINY = ["speaker=demo", "preset=cpu", "corpus=synthetic_corpus", "device=cpu", "threads=1",
        "overrides.audio2motion='stage.max_steps=4 stage.val_check_interval=2 stage.data.min_frames=4 logger=csv'",
        "overrides.postnet='stage.max_steps=6 stage.val_check_interval=3 logger=csv'",
        "overrides.radnerf='stage.max_steps=6 stage.val_check_interval=3 stage.data.num_rays=256 logger=csv'",
        "overrides.radnerf_torso='stage.max_steps=6 stage.val_check_interval=3 stage.data.num_rays=256 logger=csv'",
        "evaluate_frames.cpu=3", "sample_seconds.cpu=0.6"]
SAMPLE_SECONDS = 0.6


def env_for(root: Path) -> dict[str, str]:
    return {**os.environ, "GENEFACE_OUTPUT_DIR": str(root), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}


def run_module(root: Path, module: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env_for(root), capture_output=True,
                          text=True, timeout=timeout)


def make_inputs(root: Path) -> Path:
    """The speaker's dataset and the corpus's two trained stages under root (the pipeline's inputs)."""
    from geneface.synthetic.corpus import write_synthetic_corpus
    from geneface.synthetic.speaker import write_synthetic_speaker

    write_synthetic_speaker(root / "data", seconds=3.0, size=64, progress=False)
    write_synthetic_corpus(root / "data", num_speakers=3, clips_per_speaker=4, val_every=4, progress=False)
    for experiment in ("syncnet_cpu", "audio2motion_cpu"):
        done = run_module(root, "geneface.train", f"experiment={experiment}", "stage.max_steps=4",
                          "stage.val_check_interval=2", "logger=csv", "runtime.threads=1")
        assert done.returncode == 0, done.stderr[-3000:]
    return root
