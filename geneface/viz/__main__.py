"""`python -m geneface.viz npy=<file> [audio=<file>] [mean_shape=<dir or npy>] [out=<mp4>]`: landmarks → mp4."""

from __future__ import annotations

import logging

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from geneface.utils.cli import errors_as_exit
from geneface.viz.landmarks_video import write_landmarks_video

log = logging.getLogger("geneface.viz")


@hydra.main(version_base="1.3", config_path="../../configs/viz", config_name="landmarks")
def main(cfg: DictConfig) -> None:
    with errors_as_exit(RuntimeError):                          # RuntimeError: ffmpeg failed
        options = instantiate(cfg.render, views=OmegaConf.to_container(cfg.render.views))
        out = write_landmarks_video(cfg.npy, cfg.out, audio=cfg.audio, mean_shape=cfg.mean_shape,
                                    options=options, max_seconds=cfg.max_seconds)
    face = f"mean shape {cfg.mean_shape}" if cfg.mean_shape else "a generic mean face (pass mean_shape=<dataset>)"
    log.info(f"wrote {out} ({face})")


if __name__ == "__main__":
    main()
