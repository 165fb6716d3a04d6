"""Compose the real configs in-process, the way geneface.train does, with test-sized overrides."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")
REPO_ROOT = Path(__file__).resolve().parents[1]


def compose_train(overrides: list[str], run_dir: Path) -> DictConfig:
    """The composed train config with hydra's runtime set up, as inside @hydra.main."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def stage_names() -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / "stage").glob("*.yaml"))


def speaker_names() -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / "speaker").glob("*.yaml"))
