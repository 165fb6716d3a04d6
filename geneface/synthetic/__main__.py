"""`python -m geneface.synthetic [out_dir=...] [write_corpus=false] [speaker.seconds=5] ...`

Thin Hydra entry: writes the synthetic speaker and/or corpus described by configs/synthetic.yaml.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from geneface.synthetic import write_synthetic_corpus, write_synthetic_speaker
from geneface.synthetic.audio import write_driving_audio


def generate(cfg: DictConfig) -> dict[str, Path]:
    """Write what `cfg` asks for; returns {"speaker": path, "corpus": path} for what it wrote."""
    out_dir = Path(to_absolute_path(cfg.out_dir))   # Hydra 1.3 keeps the cwd; be explicit anyway
    written = {}
    if cfg.write_speaker:
        written["speaker"] = write_synthetic_speaker(
            out_dir, name=cfg.speaker.name, seconds=cfg.speaker.seconds, size=cfg.speaker.size,
            seed=cfg.seed, overwrite=cfg.overwrite, progress=cfg.progress)
    if cfg.write_corpus:
        written["corpus"] = write_synthetic_corpus(
            out_dir, name=cfg.corpus.name, num_speakers=cfg.corpus.num_speakers,
            clips_per_speaker=cfg.corpus.clips_per_speaker, clip_seconds=tuple(cfg.corpus.clip_seconds),
            seed=cfg.seed, val_every=cfg.corpus.val_every, overwrite=cfg.overwrite, progress=cfg.progress)
    if cfg.get("driving_audio"):
        written["driving audio"] = write_driving_audio(
            out_dir / "raw" / "val_wavs" / cfg.driving_audio.name, cfg.driving_audio.seconds, cfg.seed)
    for kind, path in written.items():
        check = "" if kind == "driving audio" else f"  (check it: python -m geneface.data.check {path})"
        print(f"{kind}: {path}{check}")
    return written


@hydra.main(version_base="1.3", config_path="../../configs", config_name="synthetic")
def main(cfg: DictConfig) -> None:
    generate(cfg)


if __name__ == "__main__":
    main()
