"""`python -m geneface.pipeline speaker=<name> video=<file> [preset=cpu|gpu|full]`: one speaker from
its video to a talking head (configs/pipeline.yaml says what each option does)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from geneface.pipeline.speaker_pipeline import PipelineOptions, run_pipeline
from geneface.pipeline.steps import Paths, PipelineError


def options_from(cfg: DictConfig) -> tuple[PipelineOptions, Paths]:
    plain = {key: OmegaConf.to_container(cfg[key], resolve=True)
             for key in ("evaluate_frames", "sample_seconds", "overrides")}   # (paths.stage_dir needs a stage)
    options = PipelineOptions(
        speaker=str(cfg.speaker), video=cfg.video, preset=cfg.preset, corpus=cfg.corpus, wav=cfg.wav,
        renderer=cfg.renderer, device=cfg.device, steps=list(cfg.steps), evaluate_frames=plain["evaluate_frames"],
        sample_seconds=plain["sample_seconds"], overrides=plain["overrides"], threads=cfg.threads,
        progress=cfg.progress)
    paths = Paths(Path(cfg.paths.output_dir), Path(cfg.paths.data_dir), Path(cfg.configs_dir), str(cfg.speaker))
    return options, paths


@hydra.main(version_base="1.3", config_path="../../configs/pipeline", config_name="speaker")
def main(cfg: DictConfig) -> None:
    options, paths = options_from(cfg)
    try:
        report = run_pipeline(options, paths)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("stopped: run the same command again to continue where it stopped", file=sys.stderr)
        raise SystemExit(130) from None
    print(f"report: {report}")


if __name__ == "__main__":
    main()
