"""Inference entry point: `python -m geneface.infer speaker=<speaker> wav=<file>`.

Audio → landmarks with the speaker's selected postnet checkpoint (it carries its frozen VAE), then the
reference's normalisation, per-region clamp and smoothing. Writes `<out_dir>/<wav>_lm3d.npy` (raw
idexp [T, 68, 3], the visualiser's and renderer's input) and `<wav>_lm3d_normalized.npy`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from geneface.inference.landmarks import clamp_and_smooth, load_driving_audio, predict_idexp
from geneface.utils.checkpoints import load_stage, upstream_checkpoint
from geneface.utils.io import save_npy


def resolve_audio(wav: str, data_dir: str) -> Path:
    """A path as given, else a bare name under <data_dir>/raw/val_wavs/ (GeneFace's layout)."""
    for candidate in (Path(wav), Path(data_dir) / "raw" / "val_wavs" / wav):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"audio {wav!r} not found (looked at {wav} and {data_dir}/raw/val_wavs/{wav})")


def infer_landmarks(cfg: DictConfig) -> dict[str, Path]:
    audio_path = resolve_audio(str(cfg.wav), str(cfg.paths.data_dir))
    ckpt = upstream_checkpoint(cfg.postnet_ckpt)   # missing: names the training command
    torch.manual_seed(cfg.seed)
    model = load_stage(ckpt).to(cfg.device)
    stats_root = Path(cfg.speaker.root)
    mean = np.load(stats_root / "idexp_lm3d_mean.npy")
    std = np.load(stats_root / "idexp_lm3d_std.npy")
    _, mel, num_frames = load_driving_audio(audio_path)
    raw = predict_idexp(model, mel, num_frames, temperature=cfg.temperature)
    normalised, raw = clamp_and_smooth(raw, mean, std, cfg.clamp_std, cfg.smoothing)
    out_dir = Path(cfg.out_dir)
    outputs = {"lm3d": out_dir / f"{audio_path.stem}_lm3d.npy",
               "lm3d_normalized": out_dir / f"{audio_path.stem}_lm3d_normalized.npy"}
    save_npy(outputs["lm3d"], raw)
    save_npy(outputs["lm3d_normalized"], normalised)
    return outputs


@hydra.main(version_base="1.3", config_path="../configs", config_name="infer")
def main(cfg: DictConfig) -> None:
    try:
        outputs = infer_landmarks(cfg)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"landmarks: {outputs['lm3d']}\ncheck them by eye: python -m geneface.viz npy={outputs['lm3d']} "
          f"audio={cfg.wav} mean_shape={cfg.speaker.root}")


if __name__ == "__main__":
    main()
