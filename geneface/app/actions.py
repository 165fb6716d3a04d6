"""What the web page does, as plain functions the Gradio callbacks wrap: render a trained speaker
saying some audio (through geneface.infer itself, composed from configs/infer.yaml as the command line
composes it), list speakers, and start the pipeline for a new one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from geneface.media.errors import ProcessingError
from geneface.pipeline.status import list_speakers, speaker_status
from geneface.pipeline.steps import trained_corpora
from geneface.utils.checkpoints import MissingCheckpointError

CONFIG_DIR = Path(os.environ.get("GENEFACE_CONFIG_DIR", Path(__file__).resolve().parents[2] / "configs"))
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
BACKGROUNDS = ("auto", "video", "plate", "white", "black", "green")     # configs/infer.yaml says what each is


class UserError(Exception):
    """Bad input or a missing stage: shown in the page as it is (no traceback)."""


def compose_infer(overrides: list[str]):
    """configs/infer.yaml with `overrides`, resolved as `python -m geneface.infer` would see it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("infer", overrides=overrides)


def speak(output_dir: Path, speaker: str, audio: str | None, renderer: str = "radnerf",
          background: str = "auto", seconds: float | None = None, device: str = "cpu") -> Path:
    """Audio file (any format ffmpeg reads) → mp4 of `speaker` saying it; returns the mp4's path.
    Raises UserError with a readable message for bad audio or an untrained speaker."""
    if not speaker:
        raise UserError("choose a speaker first (the list shows the trained ones)")
    if not audio:
        raise UserError("give some audio: upload a file or record from the microphone")
    if not (CONFIG_DIR / "speaker" / f"{speaker}.yaml").is_file():
        raise UserError(f"there is no speaker config {CONFIG_DIR}/speaker/{speaker}.yaml: process the speaker first")
    from geneface.infer import infer

    out_dir = Path(output_dir) / speaker / "app" / time.strftime("%Y%m%d-%H%M%S")
    overrides = [f"speaker={speaker}", f"wav={audio}", f"renderer={renderer}", f"background={background}",
                 f"device={device}", f"out_dir={out_dir}", f"paths.output_dir={output_dir}"]
    if seconds:
        overrides.append(f"max_seconds={float(seconds):g}")
    try:
        cfg = compose_infer(overrides)
        outputs = infer(cfg)
    except (FileNotFoundError, ValueError, MissingCheckpointError, ProcessingError) as err:
        raise UserError(str(err)) from None
    return outputs["video"]


def speaker_overview(output_dir: Path, data_dir: Path) -> tuple[list[str], list[list[str]]]:
    """(the speakers that can speak, one table row per speaker: what is trained, its key figures, its
    report), each speaker's files read once."""
    speakable, rows = [], []
    for name in list_speakers(output_dir, data_dir):
        status = speaker_status(output_dir, data_dir, name)
        if status.can_speak:
            speakable.append(name)
        cells = [name, "yes" if status.dataset else "no"]
        for stage, info in status.stages.items():
            cells.append(info.summary() if info else "–")
        recon = (status.evaluation or {}).get("rows", {}).get("reconstruction")
        cells.append(f"head {recon['psnr_head']:.2f} dB, LMD {recon['lmd_px']:.2f} px"
                     if recon and recon.get("psnr_head") is not None and recon.get("lmd_px") is not None else "–")
        cells.append(str(status.report) if status.report else "–")
        rows.append(cells)
    return speakable, rows


def corpora(output_dir: Path) -> list[str]:
    return trained_corpora(Path(output_dir))


def start_pipeline(output_dir: Path, name: str, video: str | None, preset: str, corpus: str,
                   env: dict | None = None) -> Iterator[str]:
    """Run `python -m geneface.pipeline` for a new speaker; yields its output so far, as it comes."""
    if not name or not NAME.match(name):
        raise UserError("give the speaker a name: letters, digits, '_', '-' or '.', no spaces (e.g. obama)")
    if not video:
        raise UserError("upload the speaker's video (≥ 15 s of one face talking; any format ffmpeg reads)")
    kept = Path(output_dir) / name / "upload" / Path(video).name     # Gradio's upload is temporary
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(video, kept)
    argv = [sys.executable, "-m", "geneface.pipeline", f"speaker={name}", f"video={kept}", f"preset={preset}",
            f"corpus={corpus}", f"paths.output_dir={output_dir}"]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    lines = [f"python {' '.join(argv[1:])}"]
    for line in child.stdout:
        lines.append(line.rstrip())
        yield "\n".join(lines[-40:])
    child.wait()
    lines.append("finished" if child.returncode == 0 else f"stopped (exit {child.returncode}): see the message above")
    yield "\n".join(lines[-40:])
