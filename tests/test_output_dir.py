"""One config root: with only GENEFACE_OUTPUT_DIR set (the README: it moves outputs/ as a whole),
processing writes the dataset where training then reads it, run from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from geneface.data.validate import validate
from geneface.train import train
from hydra_utils import REPO_ROOT, compose_train

MAY = REPO_ROOT.parent / "shared" / "data" / "speakers" / "May_5s.mp4"


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not MAY.is_file(), reason=f"shared media not found at {MAY}")
def test_only_output_dir_set_processing_lands_where_radnerf_reads(tmp_path, monkeypatch):
    out = tmp_path / "outputs"
    monkeypatch.setenv("GENEFACE_OUTPUT_DIR", str(out))
    monkeypatch.delenv("GENEFACE_DATA_DIR", raising=False)
    configs = tmp_path / "configs"            # the speaker config processing writes goes here
    proc = subprocess.run([sys.executable, "-m", "geneface.process", "speaker=May_5s", f"video={MAY}",
                           f"configs_dir={configs}", "options.min_seconds=3", "options.progress=false"],
                          cwd=tmp_path, env={**os.environ, "HYDRA_FULL_ERROR": "1"}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dataset = out / "data" / "May_5s"
    assert (dataset / "meta.json").is_file(), f"processing did not write {dataset}:\n{proc.stderr[-2000:]}"
    assert validate(dataset).num_frames == 125

    # training, as `python -m geneface.train stage=radnerf speaker=May_5s debug=fdr`, with the speaker
    # config processing wrote (its root is ${paths.data_dir}/May_5s)
    tiny = ["stage.data.num_rays=512", "stage.data.val_frames=1", "stage.model.num_samples=4",   # 3 s, not 2 min
            "stage.model.occupancy.resolution=16", "stage.model.field.hidden=16", "stage.model.field.geo_dim=16",
            "stage.model.field.position_encoding.num_levels=2", "stage.model.field.ambient_encoding.num_levels=2"]
    cfg = compose_train(["stage=radnerf", "speaker=May_5s", f"hydra.searchpath=[file://{configs}]",
                         "trainer=cpu", "debug=fdr", "logger=csv", *tiny], tmp_path / "run")
    assert Path(cfg.speaker.root) == dataset and Path(cfg.stage.data.root) == dataset
    assert Path(cfg.paths.stage_dir) == out / "May_5s" / "radnerf"
    train(cfg)
