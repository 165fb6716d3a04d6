"""`python -m geneface.evaluate_lipsync speaker=<speaker or corpus> [ckpt=...] [tag=...]`.

Lip sync from audio on held-out real clips (geneface.inference.lipsync says what each row and score
means): prints the mean table and writes lipsync.md, lipsync.json and lipsync_openings.png to out_dir.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from geneface.inference.lipsync import evaluate_lipsync
from geneface.inference.lipsync_report import markdown_report, plot_openings, summary_table
from geneface.utils.cli import check_choices, errors_as_exit
from geneface.utils.io import save_json, save_text
from geneface.utils.threads import set_threads


def default_checkpoint(cfg: DictConfig) -> str:
    """The model a speaker (its selected postnet) or a corpus (its audio2motion VAE) is judged by."""
    if cfg.ckpt is not None:
        return str(cfg.ckpt)
    stage, name = ("audio2motion", "best.ckpt") if cfg.speaker.kind == "corpus" else ("postnet", "selected.ckpt")
    return str(Path(cfg.paths.output_dir) / cfg.speaker.name / stage / name)


def run(cfg: DictConfig) -> dict:
    """The composed config → the result (also written to cfg.out_dir)."""
    result, series = evaluate_lipsync(
        cfg.speaker.root, cfg.speaker.kind, default_checkpoint(cfg), cfg.syncnet_ckpt, split=cfg.split,
        fit_split=cfg.fit_split, max_lag=cfg.max_lag, temperature=cfg.temperature, seed=cfg.seed,
        postprocess=cfg.postprocess, clamp_std=cfg.clamp_std, smoothing=cfg.smoothing,
        spoken_gain=cfg.spoken_gain, device=cfg.device)
    out = Path(cfg.out_dir)
    result["plot"] = str(plot_openings(out / "lipsync_openings.png", series, result, cfg.plot_clips,
                                          cfg.plot_seconds))
    result.update(speaker=cfg.speaker.name, markdown=str(out / "lipsync.md"))
    save_text(out / "lipsync.md", markdown_report(result))
    save_json(out / "lipsync.json", result)
    return result


@hydra.main(version_base="1.3", config_path="../configs", config_name="evaluate_lipsync")
def main(cfg: DictConfig) -> None:
    set_threads(cfg.runtime.threads)
    with errors_as_exit():
        result = run(cfg)
    print(f"\n{cfg.speaker.name}, {result['split']} split, {len(result['clips'])} clips, "
          f"model {result['model_stage']} ({result['wall_s']:.1f} s):")
    print(summary_table(result["mean"], result))
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"written: {result['markdown']}, {Path(result['markdown']).with_suffix('.json')}, {result['plot']}")


if __name__ == "__main__":
    check_choices(sys.argv[1:], groups=("speaker",))
    main()
