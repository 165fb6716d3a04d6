"""What both halves of the data-contract validator share (geneface.data.validate for speakers and
meta.json, geneface.data.validate_corpus for corpora): the error, the report, and the array checks."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from geneface.data import contract

__all__ = ["PROGRESS_MIN_CLIPS", "CHUNK", "DatasetError", "ValidationReport", "check_array", "check_finite",
           "fmt_shape"]

PROGRESS_MIN_CLIPS = 1000   # show a progress bar when at least this many clips are checked
CHUNK = 4096                # rows per chunk when scanning memory-mapped arrays


class DatasetError(ValueError):
    """A dataset that breaks the contract: `path` is the offending file, `problem` what is wrong
    (expected vs found), `fix` what to do about it; `str(err)` holds all three."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str | None = None):
        self.path = Path(path)
        self.problem = problem
        self.fix = fix
        self.message = f"{self.path}: {problem}" + (f"\n  fix: {fix}" if fix else "")
        super().__init__(self.message)

    def __reduce__(self):  # picklable, e.g. when raised inside a DataLoader worker
        return type(self), (self.path, self.problem, self.fix)


@dataclass
class ValidationReport:
    """What a valid dataset holds. Speaker counts are frames; corpus counts are clips."""

    root: Path
    kind: str                         # "speaker" | "corpus"
    name: str
    schema_version: int
    num_frames: int                   # speaker: T; corpus: total over the index
    num_train: int                    # speaker: train frames; corpus: train clips
    num_val: int                      # speaker: val frames; corpus: val clips
    duration_s: float                 # num_frames / fps
    size_bytes: int                   # on disk (corpus: estimated from the checked clips if spot-checked)
    height: int | None = None         # speaker only
    width: int | None = None
    focal: float | None = None
    hubert_dim: int | None = None     # D, when HuBERT features are present
    num_clips: int | None = None      # corpus only
    num_speakers: int | None = None
    clips_checked: int | None = None
    extras: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One paragraph for people."""
        size = _fmt_bytes(self.size_bytes)
        hubert = f", HuBERT {self.hubert_dim}-d" if self.hubert_dim else ", no HuBERT"
        if self.kind == "speaker":
            return (
                f"OK: speaker dataset '{self.name}' (schema v{self.schema_version}) at {self.root}: "
                f"{self.num_frames} frames at {contract.FPS} fps ({_fmt_duration(self.duration_s)}), "
                f"{self.width}×{self.height} px, focal {self.focal:g} px; "
                f"train {self.num_train} frames, val {self.num_val} frames; "
                f"16 kHz mono audio, mel/f0 {2 * self.num_frames} frames at "
                f"{contract.FEATURE_RATE} Hz{hubert}; "
                f"{size} on disk.")
        checked = ("all clips checked" if self.clips_checked == self.num_clips
                   else f"{self.clips_checked} of {self.num_clips} clips spot-checked, size estimated")
        return (
            f"OK: corpus '{self.name}' (schema v{self.schema_version}) at {self.root}: "
            f"{self.num_clips} clips from {self.num_speakers} speakers, {self.num_frames} frames "
            f"({_fmt_duration(self.duration_s)}); train {self.num_train} clips, val {self.num_val} clips"
            f"{hubert}; {size} on disk ({checked}).")


def fmt_shape(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_array(path: Path, spec: contract.ArraySpec, array: np.ndarray, symbols: dict[str, int],
                 fix: str, num_frames: int, where: str = "") -> None:
    """dtype and shape of one array; binds free symbols (D) in `symbols` on first sight."""
    label = f"array '{spec.name}'{where}"
    if array.dtype != np.dtype(spec.dtype):
        raise DatasetError(path, f"{label} has dtype {array.dtype}, expected {spec.dtype}", fix)
    expected = tuple(symbols.get(s, s) if isinstance(s, str) else s for s in spec.shape)
    symbolic = fmt_shape(spec.shape)
    found = tuple(array.shape)
    audio_like = spec.shape[0] == "A"
    if len(found) == len(expected):
        ok = True
        for i, (e, f) in enumerate(zip(expected, found)):
            if isinstance(e, str):          # free symbol, consistent across arrays (and clips)
                if f <= 0:
                    ok = False
                continue
            if e != f:
                ok = False
                if audio_like and i == 0 and all(
                        isinstance(e2, str) or e2 == f2 for e2, f2 in zip(expected[1:], found[1:])):
                    raise DatasetError(
                        path, f"{label}: audio features have {f} frames but the video has {num_frames} "
                              f"frames; expected exactly {contract.FEATURES_PER_FRAME} per video frame "
                              f"(2T = {e})",
                        "re-extract the audio features for exactly T video frames "
                        "(geneface.media.features.audio_features(wave, T)), then re-run processing")
        if ok:
            for e, f in zip(expected, found):
                if isinstance(e, str):
                    symbols[e] = f
            return
    resolved = fmt_shape(expected)
    raise DatasetError(path, f"{label} has shape {fmt_shape(found)}, expected {resolved}"
                             + (f" = {symbolic}" if resolved != symbolic else "")
                             + f" with T = {num_frames}, A = 2T", fix)


def _chunks(array: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    if array.ndim == 0 or array.shape[0] <= CHUNK:
        yield 0, np.asarray(array)
        return
    for start in range(0, array.shape[0], CHUNK):
        yield start, np.asarray(array[start : start + CHUNK])


def check_finite(path: Path, name: str, array: np.ndarray, fix: str, where: str = "") -> None:
    for start, chunk in _chunks(array):
        bad = ~np.isfinite(chunk)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            index = (index[0] + start,) + index[1:] if index else index
            raise DatasetError(path, f"array '{name}'{where} holds {int(bad.sum())}+ NaN/inf values, "
                                     f"the first at index {list(index)}", fix)


# ---------------------------------------------------------------------------------------------
# formatting

def _fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _fmt_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
