"""What is trained for each speaker under outputs/: which stages have a checkpoint, the one in use, its
step and key metric, the evaluation, the sample videos. Read from the files the stages write, so the
report and the web app show what is on disk, not what a pipeline remembers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from geneface.data import contract
from geneface.pipeline.steps import RENDERERS, SPEAKER_ONLY_STAGES, TRAINED_STAGES


@dataclass
class StageStatus:
    stage: str
    checkpoint: Path                    # the one inference uses (postnet: the picker's selected.ckpt)
    step: int | None
    metrics: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        values = ", ".join(f"{k} {v:.4g}" for k, v in self.metrics.items())
        return f"step {self.step}" + (f", {values}" if values else "")


def _checkpoint_metrics(path: Path) -> tuple[int | None, dict[str, float]]:
    """(global step, {monitored metric: best value}) from a Lightning checkpoint, read memory-mapped
    (the weights stay on disk)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    except Exception:                                    # noqa: BLE001 (a damaged file: no figures)
        return None, {}
    metrics = {}
    for key, value in (ckpt.get("callbacks") or {}).items():
        if key.startswith("ModelCheckpoint") and value.get("best_model_score") is not None:
            monitor = key.split("'monitor': '")[1].split("'")[0] if "'monitor': '" in key else "best"
            metrics[monitor] = float(value["best_model_score"])
    return ckpt.get("global_step"), metrics


def stage_status(output_dir: Path, speaker: str, stage: str) -> StageStatus | None:
    stage_dir = Path(output_dir) / speaker / stage
    if stage == "postnet":
        selected = stage_dir / "selected.json"
        if not (stage_dir / "selected.ckpt").is_file():
            return None
        chosen = json.loads(selected.read_text()).get("selected", {}) if selected.is_file() else {}
        return StageStatus(stage, stage_dir / "selected.ckpt", chosen.get("step"),
                           {k: float(v) for k, v in (chosen.get("metrics") or {}).items()})
    best = stage_dir / "best.ckpt"
    if not best.is_file():
        return None
    step, metrics = _checkpoint_metrics(best)
    return StageStatus(stage, best, step, metrics)


@dataclass
class SpeakerStatus:
    name: str
    dataset: Path | None                      # None: not processed here
    stages: dict[str, StageStatus | None]
    evaluation: dict | None
    videos: list[Path]
    report: Path | None

    @property
    def can_speak(self) -> bool:
        """Has what `geneface.infer` needs: a selected postnet and a renderer."""
        return self.stages.get("postnet") is not None and any(
            self.stages.get(s) is not None for s in RENDERERS)

    def renderers(self) -> list[str]:
        return [s for s in RENDERERS if self.stages.get(s) is not None]


def speaker_status(output_dir: Path, data_dir: Path, name: str) -> SpeakerStatus:
    output_dir, data_dir = Path(output_dir), Path(data_dir)
    dataset = data_dir / name
    evaluations = [f for f in (output_dir / name / "evaluate" / f"{r}.json" for r in RENDERERS) if f.is_file()]
    latest = max(evaluations, key=lambda f: f.stat().st_mtime, default=None)      # the renderer last scored
    evaluation = json.loads(latest.read_text()) if latest else None
    videos = sorted((output_dir / name / "infer").glob("*.mp4"), key=lambda p: p.stat().st_mtime)
    report = output_dir / name / "report.html"
    return SpeakerStatus(name, dataset if (dataset / contract.META_FILE).is_file() else None,
                         {s: stage_status(output_dir, name, s) for s in TRAINED_STAGES}, evaluation, videos,
                         report if report.is_file() else None)


def list_speakers(output_dir: Path, data_dir: Path) -> list[str]:
    """Names with a processed speaker dataset or a trained speaker stage (corpora left out)."""
    names = set()
    for meta in Path(data_dir).glob(f"*/{contract.META_FILE}"):
        try:
            if json.loads(meta.read_text()).get("kind") == "speaker":
                names.add(meta.parent.name)
        except (OSError, ValueError):
            continue
    for stage in SPEAKER_ONLY_STAGES:
        names.update(p.parent.parent.name for p in Path(output_dir).glob(f"*/{stage}/*.ckpt"))
    return sorted(names)
