"""`python -m geneface.process speaker=<name> video=<path>`: a speaker video → its dataset."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from geneface.media.errors import ProcessingError
from geneface.processing.speaker import process_speaker
from geneface.utils.io import save_text

log = logging.getLogger("geneface.process")

SPEAKER_CONFIG = """# Written by `python -m geneface.process` for the speaker dataset at {root}.
name: {name}
kind: speaker
root: ${{paths.data_dir}}/{name}
# NeRF scene box in head units (eye span 1, origin near the skull centre, y down): set it, starting from
# default_nerf_aabb in configs/train.yaml and growing it, if the first radnerf val renders cut off hair or a hat.
# nerf_aabb: [x_min, y_min, z_min, x_max, y_max, z_max]
"""


def _log_to_file(message: str) -> None:
    """Into the run's log file only: the console already shows it once, on stderr."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


@hydra.main(version_base="1.3", config_path="../../configs/process", config_name="speaker")
def main(cfg: DictConfig) -> None:
    options = instantiate(cfg.options)
    try:
        out_dir = process_speaker(cfg.video, cfg.speaker, cfg.data_dir, options)
    except ProcessingError as err:
        _log_to_file(f"error: {err}")
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    speaker_config = Path(cfg.configs_dir) / "speaker" / f"{cfg.speaker}.yaml"
    if not speaker_config.exists():
        save_text(speaker_config, SPEAKER_CONFIG.format(name=cfg.speaker, root=out_dir))
        log.info(f"wrote {speaker_config}")
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in options.timings.items())
    log.info(f"speaker {cfg.speaker}: {out_dir} ({timings}); report in {out_dir}/report/. "
             f"Check: python -m geneface.data.check {out_dir}")


if __name__ == "__main__":
    main()
