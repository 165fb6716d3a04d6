"""The whole pipeline for one speaker, as a function: the Hydra entry (geneface.pipeline.__main__) and
the web app call it with the same arguments."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from geneface.pipeline.report import write_report
from geneface.pipeline.runner import run_steps
from geneface.pipeline.status import speaker_status
from geneface.pipeline.steps import (RENDERERS, STEP_NAMES, Paths, PipelineError, check_dataset_source, choose_corpus,
                                     plan)

PRESETS = ("cpu", "gpu", "full")


@dataclass
class PipelineOptions:
    speaker: str
    video: str | None = None
    preset: str = "auto"
    corpus: str = "auto"
    wav: str | None = None
    renderer: str = RENDERERS[0]
    device: str = "auto"
    steps: list[str] = field(default_factory=lambda: list(STEP_NAMES))
    evaluate_frames: dict[str, int | None] = field(default_factory=dict)    # per preset
    sample_seconds: dict[str, float | None] = field(default_factory=dict)   # per preset
    overrides: dict[str, list[str] | str] = field(default_factory=dict)   # a string: split as a shell would
    threads: str | int = "auto"
    progress: bool = True


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_preset(preset: str) -> str:
    if preset == "auto":
        return "gpu" if _cuda() else "cpu"
    if preset not in PRESETS:
        raise PipelineError(f"preset={preset!r}: choose one of {', '.join(PRESETS)} (or auto)")
    return preset


def run_pipeline(options: PipelineOptions, paths: Paths, env: dict | None = None) -> Path:
    """Run the speaker's steps (skipping finished ones) and write its report.html; returns the report.
    Raises PipelineError before anything long starts when an input or a corpus model is missing."""
    preset = resolve_preset(options.preset)
    device = ("cuda" if _cuda() else "cpu") if options.device == "auto" else options.device
    if options.video is not None and not Path(options.video).is_file():
        raise PipelineError(f"video {options.video} does not exist")
    check_dataset_source(paths, options.video)
    needs_corpus = any(s in options.steps for s in ("audio2motion", "postnet", "evaluate"))
    corpus = choose_corpus(options.corpus, paths, preset) if needs_corpus else options.corpus
    overrides = {k: shlex.split(v) if isinstance(v, str) else list(v or []) for k, v in options.overrides.items()}
    if str(options.threads) != "auto":               # the processing step sets no torch threads
        for step in STEP_NAMES[1:]:                  # every step after process
            overrides.setdefault(step, []).insert(0, f"runtime.threads={options.threads}")
    steps = plan(paths, video=options.video, preset=preset, corpus=corpus, wav=options.wav,
                 evaluate_frames=options.evaluate_frames.get(preset), sample_seconds=options.sample_seconds.get(preset),
                 device=device, overrides=overrides, steps=list(options.steps), renderer=options.renderer)
    if options.progress:
        print(f"speaker {paths.speaker}: preset {preset}, corpus {corpus}, device {device}; "
              f"{len(steps)} steps, logs in {paths.pipeline_dir / 'logs'}", flush=True)

    def report(state: dict) -> None:                 # after every step: a partial run has a report too
        write_report(speaker_status(paths.output_dir, paths.data_dir, paths.speaker), paths.output_dir, state)

    state = run_steps(steps, paths.pipeline_dir, progress=options.progress, after=report, env=env)
    report(state)
    return paths.speaker_dir / "report.html"
