"""`python -m geneface.process.corpus src=<dir> name=<corpus> [shard=i num_shards=n workers=k]`.

Thin Hydra entry (configs/process/corpus.yaml) for geneface.processing.corpus.process_corpus.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from geneface.processing.corpus import process_corpus

log = logging.getLogger("geneface.process.corpus")


@hydra.main(version_base="1.3", config_path="../../configs/process", config_name="corpus")
def main(cfg: DictConfig) -> None:
    val_speakers = None if cfg.val_speakers is None else list(cfg.val_speakers)
    report = process_corpus(cfg.src, cfg.root, cfg.name, cfg.shard, cfg.num_shards, cfg.workers,
                            cfg.min_frames, cfg.val_every, cfg.finalize, split_by=cfg.split_by,
                            val_speaker_fraction=cfg.val_speaker_fraction, val_speakers=val_speakers)
    speaker_config = Path(cfg.configs_dir) / "speaker" / f"{cfg.name}.yaml"
    if not speaker_config.exists():  # so that `speaker=<name>` works for the corpus stages
        speaker_config.parent.mkdir(parents=True, exist_ok=True)
        speaker_config.write_text(f"# Written by `python -m geneface.process.corpus` for {cfg.root}.\n"
                                  f"name: {cfg.name}\nkind: corpus\nroot: ${{paths.data_dir}}/{cfg.name}\n")
        log.info(f"wrote {speaker_config}")
    log.info(f"corpus {cfg.name} shard {cfg.shard}/{cfg.num_shards}: {report}. "
             f"Check: python -m geneface.data.check {cfg.root}")


if __name__ == "__main__":
    main()
