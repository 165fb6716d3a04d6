"""Evaluation entry point: `python -m geneface.evaluate speaker=<speaker> [renderer=radnerf_torso]`.

Scores the renderer on the speaker's val split, reconstruction and audio-driven, beside the real frames
(geneface.inference.evaluation says what each metric means); prints a markdown table and writes it as
JSON to `out`.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from geneface.inference.evaluation import evaluate_speaker, format_table
from geneface.utils.cli import check_choices, errors_as_exit, require_speaker_kind
from geneface.utils.io import save_json
from geneface.utils.threads import set_threads


def run(cfg: DictConfig) -> dict:
    """The composed evaluate config → the result (also written to cfg.out)."""
    require_speaker_kind(cfg.speaker, "evaluate")
    result = evaluate_speaker(
        cfg.speaker.root, cfg.ckpt, cfg.postnet_ckpt if cfg.audio_driven else None, cfg.syncnet_ckpt,
        device=cfg.device, max_frames=cfg.max_frames,
        temperature=cfg.temperature, clamp_std=cfg.clamp_std, smoothing=cfg.smoothing,
        spoken_gain=cfg.spoken_gain, seed=cfg.seed,
        progress=cfg.progress, frozen=cfg.frozen, strip=cfg.strip, open_control=cfg.open_control,
        truth_blur_px=cfg.truth_blur_px)
    result.update(speaker=cfg.speaker.name, renderer_stage=cfg.renderer, table=format_table(result))
    save_json(cfg.out, result)
    return result


@hydra.main(version_base="1.3", config_path="../configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    set_threads(cfg.runtime.threads)
    with errors_as_exit():
        result = run(cfg)
    (first, end), (height, width) = result["val_frames"], result["resolution"]
    print(f"\n{cfg.speaker.name}, {cfg.renderer}, val frames {first}–{end - 1} at {width}x{height}:")
    print(result["table"])
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"written to {cfg.out}" + (f"; the mouth strip to {result['strip']}" if result["strip"] else ""))


if __name__ == "__main__":
    check_choices(sys.argv[1:])
    main()
