"""Speaker video → speaker dataset (the data contract), in resumable steps.

Steps and what each leaves in the work directory (`<data_dir>/.work/<name>/`):
  audio    audio.npz        16 kHz mono wave aligned to the 25 fps frames, mel, f0 (+ HuBERT)
  frames   frames/ labels/  one streamed pass: decode → face mesh → person segmentation → labels,
           tracking.npz     JPEG frames, label PNGs, landmarks, background plate
           background.png
  pose     pose.npz         head pose, focal, idexp landmarks
  assemble <data_dir>/<name>/  arrays + images moved into a directory renamed into place, meta.json last
A finished step writes `<step>.done`; re-running skips finished steps, so an interrupted run resumes.
The work directory is tied to its input (`input.json`: the video's path, size and mtime, and the options
that shape what the steps write): a run for another video or other options under the same name starts
it over instead of resuming someone else's steps.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from geneface.data import contract
from geneface.data.boxes import face_rect, lip_rect
from geneface.data.landmarks import NUM_MEDIAPIPE, ibug68_from_mediapipe
from geneface.data.speaker import frame_name, write_speaker_dataset
from geneface.media.audio import load_audio
from geneface.media.errors import (FaceTooSmallError, FaceTrackLostError, NoAudioError, NoFaceError,
                                   VideoTooShortError)
from geneface.media.features import audio_features, fit_to_frames
from geneface.media.images import read_rgb
from geneface.media.video import VideoInfo, iter_frames, probe_video
from geneface.utils.io import recover_atomic_dir
from geneface.utils.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass
class SpeakerProcessConfig:
    min_seconds: float = 15.0          # shorter videos cannot train a speaker model
    recommended_seconds: float = 120.0  # GeneFace asks for ~3 minutes; warn below this
    min_face_rate: float = 0.95        # fraction of frames that must show a face
    min_face_px: float = 64.0          # median face-box width, in pixels
    jpeg_quality: int = 95
    background_every: int = 5          # background plate from every k-th frame
    hubert_dir: str | None = None      # local HuBERT weights; None = mel + f0 only
    keep_work: bool = False
    progress: bool = True
    timings: dict = field(default_factory=dict)


# options that change what the steps write (the others are checks, re-run every time)
WORK_OPTIONS = ("jpeg_quality", "background_every", "hubert_dir")


def _input_stamp(video: Path, cfg: SpeakerProcessConfig) -> dict:
    stat = video.stat()
    return {"video": str(video.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "options": {key: getattr(cfg, key) for key in WORK_OPTIONS}}


def _work_dir_for(work: Path, stamp: dict) -> None:
    """Make `work` the work directory of this input: kept when it holds this input's steps, emptied
    when it holds another's (or an unstamped one from before stamps existed)."""
    file = work / "input.json"
    if work.exists():
        held = json.loads(file.read_text()) if file.is_file() else None
        if held != stamp:
            if any(work.iterdir()):
                log.warning("%s held the steps of %s; starting over for %s", work,
                            held["video"] if held else "an earlier run", stamp["video"])
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(stamp))


def _recover_interrupted_assemble(out_dir: Path, work: Path) -> None:
    """A kill during the assemble step leaves this input's frames and labels in a `.<name>.*.partial`
    directory beside `out_dir` (they are moved, not copied, into the dataset being built): move them
    back into `work` so the frames step need not run again, and delete the leftovers. When `work`
    cannot be completed (frames of another input were wiped with it), the frames step is redone."""
    images = (contract.SPEAKER_FRAMES_DIR, contract.SPEAKER_LABELS_DIR)
    for partial in recover_atomic_dir(out_dir):
        if (work / "frames.done").is_file():
            for sub in images:
                if (partial / sub).is_dir() and not (work / sub).exists():
                    os.replace(partial / sub, work / sub)
        shutil.rmtree(partial, ignore_errors=True)
    if (work / "frames.done").is_file() and not all((work / sub).is_dir() for sub in images):
        log.warning("%s lost its frames (an interrupted run?): the frames step runs again", work)
        (work / "frames.done").unlink()


class _Steps:
    def __init__(self, work: Path, timings: dict):
        self.work, self.timings = work, timings

    def done(self, step: str) -> bool:
        return (self.work / f"{step}.done").is_file()

    def finish(self, step: str, started: float, info: dict | None = None) -> None:
        self.timings[step] = time.perf_counter() - started
        (self.work / f"{step}.done").write_text(json.dumps({"seconds": self.timings[step], **(info or {})}))


def process_speaker(video: str | Path, name: str, data_dir: str | Path,
                    cfg: SpeakerProcessConfig | None = None) -> Path:
    """Process `video` into `<data_dir>/<name>` and return that path."""
    cfg = cfg or SpeakerProcessConfig()
    data_dir = Path(data_dir)
    out_dir, work = data_dir / name, data_dir / ".work" / name

    t0 = time.perf_counter()
    info = probe_video(video)
    _check_input(info, cfg)
    num_frames = info.num_frames_25fps
    cfg.timings["probe"] = time.perf_counter() - t0
    _work_dir_for(work, _input_stamp(Path(info.path), cfg))
    _recover_interrupted_assemble(out_dir, work)
    steps = _Steps(work, cfg.timings)

    if not steps.done("audio"):
        t0 = time.perf_counter()
        wave = fit_to_frames(load_audio(info.path), num_frames)
        features = audio_features(wave, num_frames)
        if cfg.hubert_dir:
            from geneface.media.hubert import hubert_features, load_hubert

            features["hubert"] = hubert_features(load_hubert(cfg.hubert_dir), wave, num_frames)
        np.savez(work / "audio.npz", wave=wave, **features)
        steps.finish("audio", t0)

    if not steps.done("frames"):
        t0 = time.perf_counter()
        num_frames = _frames_pass(info, work, cfg)
        steps.finish("frames", t0, {"num_frames": num_frames})
    tracking = dict(np.load(work / "tracking.npz"))
    num_frames = len(tracking["valid"])
    _check_faces(info, tracking, cfg)

    if not steps.done("pose"):
        t0 = time.perf_counter()
        from geneface.processing.pose import fit_head_pose

        fit = fit_head_pose(tracking["landmarks478"], tracking["valid"], info.width, info.height)
        np.savez(work / "pose.npz", head_R=fit.head_R, head_t=fit.head_t, focal=fit.focal, c2w=fit.c2w,
                 mean_shape=fit.mean_shape, idexp_lm3d=fit.idexp_lm3d, idexp_mean=fit.idexp_mean,
                 idexp_std=fit.idexp_std, reprojection_error_px=fit.reprojection_error_px)
        steps.finish("pose", t0)

    t0 = time.perf_counter()
    _assemble(info, name, out_dir, work, tracking, cfg)
    cfg.timings["assemble"] = time.perf_counter() - t0
    if not cfg.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return out_dir


def _check_input(info: VideoInfo, cfg: SpeakerProcessConfig) -> None:
    if not info.has_audio:
        raise NoAudioError(info.path, "the video has no audio stream; a speaker model learns from speech",
                           "use the original recording with its sound, or mux audio in with ffmpeg")
    if info.duration_s < cfg.min_seconds:
        raise VideoTooShortError(
            info.path, f"the video lasts {info.duration_s:.1f} s; a speaker model needs at least "
            f"{cfg.min_seconds:.0f} s (GeneFace recommends about 3 minutes)",
            "record a longer video, or lower min_seconds if you only want to test the pipeline")
    if info.duration_s < cfg.recommended_seconds:
        log.warning(f"{info.path}: {info.duration_s:.0f} s of video; quality improves with 2–5 minutes")
    if info.storage_size is not None:
        stored_w, stored_h = info.storage_size
        log.warning(f"{info.path}: non-square pixels (sample aspect ratio {info.sample_aspect.numerator}:"
                    f"{info.sample_aspect.denominator}): stored {stored_w}x{stored_h}, processed at the size a "
                    f"player shows, {info.width}x{info.height}")


def _frames_pass(info: VideoInfo, work: Path, cfg: SpeakerProcessConfig) -> int:
    """Decode once; per frame: landmarks, person mask, labels, JPEG; feed the background plate."""
    from geneface.media.face_mesh import FaceMeshDetector
    from geneface.processing.background import BackgroundEstimator
    from geneface.processing.segmentation import PersonSegmenter, label_frame

    for sub in (contract.SPEAKER_FRAMES_DIR, contract.SPEAKER_LABELS_DIR):
        shutil.rmtree(work / sub, ignore_errors=True)
        (work / sub).mkdir()
    landmarks, valid, faces, label_counts = [], [], [], []
    background = BackgroundEstimator(info.height, info.width)
    last_landmarks = None
    quality = [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]
    with FaceMeshDetector(video_mode=True) as detector, PersonSegmenter() as segmenter:
        frames = progress_bar(iter_frames(info.path), total=info.num_frames_25fps, desc="frames", unit="frame",
                      disable=not cfg.progress)
        for i, rgb in enumerate(frames):
            detection = detector.detect(rgb, previous=last_landmarks)
            person = segmenter.segment(rgb)
            if detection is not None:
                last_landmarks = detection.landmarks
            landmarks.append(detection.landmarks if detection is not None
                             else np.full((NUM_MEDIAPIPE, 3), np.nan, np.float32))
            valid.append(detection is not None)
            faces.append(detection.num_faces if detection is not None else 0)
            labels = label_frame(person, last_landmarks)
            label_counts.append(np.bincount(labels.ravel(), minlength=len(contract.Label)))
            cv2.imwrite(str(work / contract.SPEAKER_FRAMES_DIR / frame_name(i, "jpg")),
                        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), quality)
            cv2.imwrite(str(work / contract.SPEAKER_LABELS_DIR / frame_name(i, "png")), labels)
            if i % cfg.background_every == 0:
                background.update(rgb, labels == contract.Label.BACKGROUND)
    plate, seen = background.result()
    cv2.imwrite(str(work / "background.png"), cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))
    np.savez(work / "tracking.npz", landmarks478=np.stack(landmarks).astype(np.float32),
             valid=np.array(valid), num_faces=np.array(faces), background_seen=seen,
             label_counts=np.stack(label_counts))
    return len(valid)


def _check_faces(info: VideoInfo, tracking: dict, cfg: SpeakerProcessConfig) -> None:
    valid = tracking["valid"]
    missing = np.flatnonzero(~valid).tolist()
    if valid.mean() < cfg.min_face_rate:
        raise NoFaceError(
            info.path, f"no face found in {len(missing)} of {len(valid)} frames "
            f"({100 * (1 - valid.mean()):.1f}% > the allowed {100 * (1 - cfg.min_face_rate):.0f}%)",
            "use a video where one face is visible and frontal in (nearly) every frame, or cut those parts out",
            frames=missing)
    lm = tracking["landmarks478"][valid]
    widths = np.nanmax(lm[..., 0], axis=1) - np.nanmin(lm[..., 0], axis=1)
    jumps = _face_jumps(tracking["landmarks478"], valid)
    if jumps:
        raise FaceTrackLostError(
            info.path, f"the tracked face jumps by more than {MAX_FACE_JUMP:.0%} of its width between "
            f"consecutive frames {len(jumps)} times: another face took its place (two people in view?) or "
            f"tracking failed", "crop the video to the one person who speaks (ffmpeg -i in.mp4 -vf "
            "crop=w:h:x:y out.mp4), or cut those parts out", frames=jumps)
    if np.median(widths) < cfg.min_face_px:
        lower = f"options.min_face_px={int(np.median(widths)) // 8 * 8} accepts it, at a cost in detail"
        if min(info.width, info.height) < 2 * cfg.min_face_px:      # a crop cannot make it bigger
            fix = (f"the whole video is only {info.width}x{info.height}: use a higher-resolution recording "
                   f"(≥ 512 px with the face ≥ {cfg.min_face_px:.0f} px wide), or {lower}")
        else:
            fix = ("crop the video around the head (e.g. to 512×512 with the face in the upper half), or "
                   f"{lower}")
        raise FaceTooSmallError(
            info.path, f"the face is {np.median(widths):.0f} px wide (median); at least {cfg.min_face_px:.0f} px "
            f"are needed", fix)


MAX_FACE_JUMP = 0.5      # of the face's width between consecutive frames (25 fps): no head moves that fast


def _face_jumps(landmarks478: np.ndarray, valid: np.ndarray) -> list[int]:
    """Frames whose face centre lies more than MAX_FACE_JUMP face widths from the previous detected
    frame's: the kept face changed person (or tracking broke). landmarks478 [T, 478, 3], valid [T]."""
    index = np.flatnonzero(valid)
    if len(index) < 2:
        return []
    lm = landmarks478[index, :, :2]
    centres = lm.mean(1)                                                   # [N, 2]
    widths = lm[..., 0].max(1) - lm[..., 0].min(1)                         # [N]
    step = np.linalg.norm(np.diff(centres, axis=0), axis=1)                # [N-1]
    return index[1:][step > MAX_FACE_JUMP * np.maximum(widths[1:], 1.0)].tolist()


def _assemble(info: VideoInfo, name: str, out_dir: Path, work: Path, tracking: dict,
              cfg: SpeakerProcessConfig) -> None:
    from geneface.processing.report import quality_stats, write_report

    audio = np.load(work / "audio.npz")
    pose = np.load(work / "pose.npz")
    num_frames = len(tracking["valid"])
    from geneface.processing.pose import interpolate_missing

    valid = tracking["valid"]
    lm478 = tracking["landmarks478"] if valid.all() else \
        interpolate_missing(tracking["landmarks478"], valid).astype(np.float32)
    lm68 = ibug68_from_mediapipe(lm478)
    arrays = {
        "mel": audio["mel"][: 2 * num_frames], "f0": audio["f0"][: 2 * num_frames],
        "landmarks478": lm478, "landmarks68": lm68,
        "head_R": pose["head_R"], "head_t": pose["head_t"], "c2w": pose["c2w"],
        "mean_shape": pose["mean_shape"], "idexp_lm3d": pose["idexp_lm3d"],
        "idexp_lm3d_mean": pose["idexp_mean"], "idexp_lm3d_std": pose["idexp_std"],
        "face_rect": face_rect(lm68, info.width, info.height), "lip_rect": lip_rect(lm68, info.width, info.height),
    }
    if "hubert" in audio:
        arrays["hubert"] = audio["hubert"][: 2 * num_frames]
    stats = quality_stats(tracking["valid"], pose["reprojection_error_px"], lm68, tracking["label_counts"],
                          info.width, info.height)
    background = cv2.cvtColor(cv2.imread(str(work / "background.png")), cv2.COLOR_BGR2RGB)
    report_dir = work / "report"
    write_report(report_dir, frame_fn=lambda i: read_rgb(work / contract.SPEAKER_FRAMES_DIR / frame_name(i, "jpg")),
                 labels_fn=lambda i: cv2.imread(str(work / contract.SPEAKER_LABELS_DIR / frame_name(i, "png")),
                                                cv2.IMREAD_UNCHANGED),
                 landmarks68=lm68, head_R=pose["head_R"], head_t=pose["head_t"], focal=float(pose["focal"]),
                 mean_shape=pose["mean_shape"], stats=stats)
    extra = {"source_video": str(info.path), "source_fps": info.fps, "timings_s": cfg.timings, "quality": stats}
    write_speaker_dataset(out_dir, name=name, arrays=arrays, audio=audio["wave"][: num_frames * 640],
                          images_from=work, extra_dirs=[report_dir], background=background,
                          focal=float(pose["focal"]), extra_meta=extra, jpeg_quality=cfg.jpeg_quality)

