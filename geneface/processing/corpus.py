"""Clip corpus in LRS3's layout (`<src>/<speaker>/<clip>.mp4`) → the corpus contract, clip by clip.

Run as `python -m geneface.process.corpus src=<dir> name=<corpus> [shard=i num_shards=n workers=k]`
(the Hydra entry in geneface/process/corpus.py).
Each clip is written atomically and finished clips are skipped, so shards can run as separate jobs
(Hydra multirun, a cluster array) and any job can be re-run. A clip that fails is logged with its
reason in `failures.tsv` and skipped; clips shorter than `min_frames` are counted and skipped.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geneface.data.corpus import clip_path, finalize_corpus, write_clip
from geneface.data.landmarks import NUM_MEDIAPIPE
from geneface.media.audio import load_audio
from geneface.media.errors import NoAudioError, NoFaceError, ProcessingError
from geneface.media.features import audio_features, fit_to_frames
from geneface.media.video import iter_frames, probe_video
from geneface.utils.io import save_text
from geneface.utils.progress import progress_bar

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm")


@dataclass
class CorpusReport:
    clips: int = 0        # clips in this shard
    written: int = 0
    skipped_done: int = 0
    skipped_short: int = 0
    failed: int = 0


def list_clips(src: str | Path) -> list[tuple[str, str, Path]]:
    """(speaker, clip, path) for every `<src>/<speaker>/<clip>.<video>`, sorted."""
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"{src} is not a directory; expected LRS3's layout <src>/<speaker>/<clip>.mp4")
    clips = sorted((p.parent.name, p.stem, p) for p in src.glob("*/*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not clips:
        raise FileNotFoundError(f"no videos found as {src}/<speaker>/<clip>.mp4")
    return clips


def process_clip(path: Path, min_frames: int, min_face_rate: float = 0.9) -> dict[str, np.ndarray] | None:
    """One clip → its corpus arrays, or None when it is shorter than min_frames."""
    from geneface.media.face_mesh import FaceMeshDetector
    from geneface.processing.pose import fit_head_pose

    info = probe_video(path)
    if not info.has_audio:
        raise NoAudioError(path, "no audio stream", "drop the clip or restore its audio")
    if info.num_frames_25fps < min_frames:
        return None
    landmarks, valid = [], []
    # a fresh video-mode graph per clip: tracking must not carry over from the previous clip
    with FaceMeshDetector(video_mode=True) as detector:
        for rgb in iter_frames(path):
            detection = detector.detect(rgb)
            valid.append(detection is not None)
            landmarks.append(detection.landmarks if detection is not None
                             else np.full((NUM_MEDIAPIPE, 3), np.nan, np.float32))
    valid_arr = np.array(valid)
    if valid_arr.mean() < min_face_rate:
        raise NoFaceError(path, f"a face in only {100 * valid_arr.mean():.0f}% of frames",
                          frames=np.flatnonzero(~valid_arr).tolist())
    num_frames = len(valid)
    fit = fit_head_pose(np.stack(landmarks), valid_arr, info.width, info.height)
    wave = fit_to_frames(load_audio(path), num_frames)
    features = audio_features(wave, num_frames)
    return {"mel": features["mel"], "f0": features["f0"], "idexp_lm3d": fit.idexp_lm3d,
            "head_R": fit.head_R, "head_t": fit.head_t}


def _work(job: tuple[str, str, str, str, int]) -> tuple[str, str, str]:
    speaker, clip, path, root, min_frames = job
    try:
        arrays = process_clip(Path(path), min_frames)
    except ProcessingError as err:
        return speaker, clip, f"failed\t{err.problem}"
    except Exception as err:  # noqa: BLE001 - a broken clip must not stop the corpus; it is logged
        return speaker, clip, f"failed\t{type(err).__name__}: {err}"
    if arrays is None:
        return speaker, clip, "short"
    write_clip(root, speaker, clip, arrays)
    return speaker, clip, "written"


def process_corpus(src: str | Path, root: str | Path, name: str, shard: int = 0, num_shards: int = 1,
                   workers: int = 2, min_frames: int = 32, val_every: int = 100, finalize: bool = True,
                   progress: bool = True, split_by: str = "clip", val_speaker_fraction: float = 0.2,
                   val_speakers: list[str] | None = None) -> CorpusReport:
    """Process this shard's clips; then (re)build the index from every clip written so far, split as
    geneface.data.corpus.finalize_corpus says (split_by, val_every, val_speaker_fraction, val_speakers).
    Finished clips are skipped, so re-running on a processed corpus only re-splits it."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, {num_shards}), got {shard}")
    root = Path(root)
    clips = list_clips(src)[shard::num_shards]
    report = CorpusReport(clips=len(clips))
    jobs = []
    for speaker, clip, path in clips:
        if clip_path(root, speaker, clip).is_file():
            report.skipped_done += 1
        else:
            jobs.append((speaker, clip, str(path), str(root), min_frames))
    failures = []
    with mp.get_context("spawn").Pool(max(1, workers)) if workers > 1 else _InProcess() as pool:
        results = pool.imap_unordered(_work, jobs)
        for speaker, clip, outcome in progress_bar(results, total=len(jobs), desc=f"clips (shard {shard}/{num_shards})",
                                           unit="clip", disable=not progress):
            if outcome == "written":
                report.written += 1
            elif outcome == "short":
                report.skipped_short += 1
            else:
                report.failed += 1
                failures.append(f"{speaker}/{clip}\t{outcome.split(chr(9), 1)[1]}")
                log.warning(f"{speaker}/{clip}: {failures[-1].split(chr(9), 1)[1]}")
    root.mkdir(parents=True, exist_ok=True)
    save_text(root / f"failures.shard{shard}of{num_shards}.tsv", "item_id\treason\n" + "".join(f + "\n" for f in failures))
    if finalize:
        finalize_corpus(root, name, val_every=val_every, min_frames=min_frames, split_by=split_by,
                        val_speaker_fraction=val_speaker_fraction, val_speakers=val_speakers)
    return report


class _InProcess:
    """Pool stand-in for workers=1: same interface, no subprocesses (easier to debug and profile)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap_unordered(self, fn, jobs):
        return map(fn, jobs)
