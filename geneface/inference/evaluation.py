"""Evaluation of a speaker's renderer on its val split (the last ~1/11 of the video, never trained on).

Three rows are measured against the real val frames: *reconstruction* (the renderer driven by the real
val landmarks: the renderer's own quality), *frozen* (the same cameras with every frame's landmarks
replaced by the speaker's mean: a control that shows how much the mouth follows its condition at
all) and *audio-driven* (the whole chain from the val audio: postnet landmarks, then the renderer). A
fourth row scores the real frames themselves as a reference, and a fifth, *real over plate*, the real
frames with every pixel labelled background replaced by the plate: what the plate and the labels alone
cost, the image scores a renderer would get that drew the labelled person exactly (on a video whose
background moves, or whose labels miss the hair's edge, this caps the head and full-frame PSNR of every
renderer here). A sixth, *truth blurred*, scores the real frames blurred by a Gaussian of `truth_blur_px`
(½ px): what a renderer within half a pixel of the truth would get, so the detector's floor at this
resolution — LMD and aperture r beyond it cannot be asked of any renderer. Metric definitions:
docs/evaluation.md.

- PSNR / SSIM (torchmetrics, data range 1): on the bounding box of the pixels labelled HEAD in the
  real frame, on the mouth box (the frame's lip box grown by LIP_BOX_GROW, the region the head stage
  samples lip rays in), and on the full frame; accumulated over the sequence as the stages validate.
- responsiveness: LMD(frozen) / LMD(row). A renderer that ignores its condition scores ~1.
- mouth gain: PSNR mouth(row) − PSNR mouth(frozen), dB: how much nearer the truth the mouth's pixels
  come for reading the condition. The same question as responsiveness, asked of the pixels rather
  than of re-detected landmarks, so it holds where the detector is noisy (small or drawn faces).
- aperture r: Pearson r between the inner-lip opening re-detected on the rendered frames and on the
  real ones (geneface.metrics.mouth); ~0 for a mouth that does not move with the real one.
- open-mouth dB over closed (open gain): on the most open quarter of the val frames (by the inner-lip
  opening of their real landmarks), PSNR mouth of the row minus that of the same cameras rendered
  with the most closed val frame's landmarks. Unlike the frozen control, the closed mouth is a real
  condition the renderer was trained on (the mean landmarks are not one for a renderer that reads
  them strongly: such a renderer draws them badly, which inflates mouth gain), and unlike LMD and
  aperture r it needs no face detector, which is mostly noise on the 128² synthetic speaker.
- LMD: mouth landmarks re-detected on generated and real frames with the same detector, at the
  video's resolution (compare at 512², the anchors' resolution).
- sync: the corpus landmark SyncNet's score of landmarks re-detected on the frames against the val
  audio; head pose and idexp are fitted to the detections as the processing pipeline does.
  It is our landmark SyncNet, not the audio-visual one of LSE-C/D.
- frames/s: rendering only, wall clock over the sequence.

One MediaPipe pass per sequence (video mode) feeds LMD, aperture and sync. Frames are streamed:
nothing holds a whole sequence of images except the head-only renderers' per-frame backgrounds and
the few mouth crops of the strip image (truth | reconstruction | frozen | audio-driven, ~12 frames).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from geneface.data import contract
from geneface.data.boxes import LIP_BOX_GROW, grown_box
from geneface.data.frames import arrays, head_removed, val_indices
from geneface.data.landmarks import absolute_landmarks, denormalize_idexp, ibug68_from_mediapipe, inner_lip_aperture
from geneface.data.landmarks import mouth_points as lip_points
from geneface.data.nerf_rays import SpeakerImages
from geneface.inference.landmarks import load_motion_model, speaker_landmarks
from geneface.inference.renderer import load_renderer
from geneface.media.face_mesh import FaceMeshDetector
from geneface.media.images import write_rgb
from geneface.metrics.image import PSNR_CAP, ImageScores  # noqa: F401  (PSNR_CAP: part of this API)
from geneface.metrics.lmd import landmark_distance
from geneface.metrics.mouth import aperture_correlation, mouth_strip
from geneface.metrics.sync import sync_score
from geneface.utils.checkpoints import MissingCheckpointError, load_stage, upstream_checkpoint
from geneface.utils.progress import progress_bar

ROWS = ("reconstruction", "frozen", "audio_driven", "ground_truth", "truth_blurred", "real_over_plate")
COLUMNS = (("psnr_head", "PSNR head", ".2f"), ("ssim_head", "SSIM head", ".4f"),
           ("psnr_mouth", "PSNR mouth", ".2f"), ("ssim_mouth", "SSIM mouth", ".4f"),
           ("psnr_full", "PSNR full", ".2f"), ("ssim_full", "SSIM full", ".4f"), ("lmd_px", "LMD px", ".3f"),
           ("responsiveness", "LMD frozen/LMD", ".2f"), ("mouth_gain_db", "mouth dB over frozen", "+.2f"),
           ("open_gain_db", "open-mouth dB over closed", "+.2f"), ("aperture_r", "aperture r", ".3f"),
           ("sync", "sync", ".3f"), ("fps", "frames/s", ".2f"), ("frames", "frames", "d"))
STRIP_FRAMES = 12         # val frames shown in the mouth strip image
OPEN_SHARE, MIN_OPEN = 0.25, 3   # the open-mouth control's frames: the most open quarter, at least 3


@dataclass
class ValSplit:
    images: SpeakerImages
    frames: list[int]          # dataset frame indices, contiguous (tracking and sync need a sequence)
    c2w: np.ndarray            # [T, 4, 4]
    landmarks: np.ndarray      # [T, 68, 3] real idexp, normalised
    mel: np.ndarray            # [2T, 80]
    lip_rect: np.ndarray       # [T, 4] x, y, w, h of the real frame's lip box (pixels)

    def mouth_box(self, k: int) -> tuple[slice, slice]:
        """(rows, cols) of val frame k's mouth region: its lip box grown by LIP_BOX_GROW."""
        return grown_box(self.lip_rect[k], LIP_BOX_GROW, self.images.width, self.images.height)


def load_val_split(root: str | Path, max_frames: int | None = None) -> ValSplit:
    """The speaker's val frames (the first `max_frames` of them when set) with cameras, landmarks, mel."""
    images = SpeakerImages(root)
    frames = list(val_indices(images.frames.meta))[: max_frames or None]
    if len(frames) == 0:
        raise ValueError(f"{root}: the val split is empty (num_train = num_frames = {images.num_frames})")
    first, last = frames[0], frames[-1] + 1
    data = arrays(root)
    mel = np.array(data["mel"][2 * first: 2 * last], np.float32)                           # [2T, 80]
    landmarks = images.landmarks[first:last].reshape(len(frames), 68, 3).numpy()
    return ValSplit(images, frames, images.c2w[first:last].numpy(), landmarks, mel,
                    np.array(data["lip_rect"][first:last]))


def audio_driven_landmarks(postnet_ckpt: str | Path, split: ValSplit, device: str,
                           temperature: float = 1.0, clamp_std: float = 2.5, smoothing: float = 0.2,
                           seed: int = 9999, spoken_gain: str | float = 1.0) -> np.ndarray:
    """The val mel → normalised [T, 68, 3] landmarks, exactly as `geneface.infer` makes them."""
    torch.manual_seed(seed)
    model, _ = load_motion_model(postnet_ckpt, device)
    return speaker_landmarks(model, split.mel, len(split.frames), split.images.root, temperature, clamp_std,
                             smoothing, spoken_gain)[0]


def load_syncnet(ckpt: str | Path | None, device: str) -> tuple[torch.nn.Module | None, str | None]:
    """The corpus SyncNet, or (None, a note naming the command that trains it) when it is missing."""
    if ckpt is None:
        return None, "sync skipped: syncnet_ckpt=null"
    try:
        path = upstream_checkpoint(ckpt)
    except MissingCheckpointError as err:
        return None, f"sync skipped: {err}"
    return load_stage(path, stages=("syncnet",), role="syncnet_ckpt").net.to(device).eval(), None


class FaceTrack:
    """One MediaPipe face-mesh pass over a sequence, fed frame by frame: 478 points for LMD and sync."""

    def __init__(self):
        self.detector = FaceMeshDetector(video_mode=True)
        self.points: list[np.ndarray] = []
        self.valid: list[bool] = []

    def add(self, frame: np.ndarray) -> None:
        face = self.detector.detect(np.ascontiguousarray(frame))
        self.valid.append(face is not None)
        self.points.append(face.landmarks if face is not None else np.zeros((478, 3), np.float32))

    def close(self) -> tuple[np.ndarray, np.ndarray]:
        """→ (landmarks478 [T, 478, 3] px, zeros where missing; valid [T] bool)."""
        self.detector.close()
        return np.stack(self.points), np.array(self.valid, bool)


def ibug68_points(landmarks478: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[T, 478, 3] + valid [T] → [T, 68, 2] (px), NaN rows where no face."""
    out = ibug68_from_mediapipe(landmarks478)[..., :2].astype(np.float64)
    out[~valid] = np.nan
    return out


def mouth_points(landmarks478: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[T, 478, 3] + valid [T] → [T, 20, 2] mouth points (lmd.py's layout), NaN rows where no face."""
    return lip_points(ibug68_points(landmarks478, valid))


def strip_frames(count: int) -> list[int]:
    """The val frames (positions in the split) the mouth strip shows: STRIP_FRAMES evenly spaced."""
    return sorted(set(np.linspace(0, count - 1, min(STRIP_FRAMES, count)).round().astype(int).tolist()))


class StripCrops:
    """Collects one sequence's mouth crops of the strip's frames (position in the split → uint8 crop)."""

    def __init__(self, split: ValSplit):
        self.keep, self.crops = set(strip_frames(len(split.frames))), {}

    def add(self, k: int, frame: np.ndarray, box: tuple[slice, slice]) -> None:
        if k in self.keep:
            self.crops[k] = frame[box].copy()

    def in_order(self) -> list[np.ndarray]:
        return [self.crops[k] for k in sorted(self.crops)]


def landmark_sync(syncnet: torch.nn.Module | None, landmarks478: np.ndarray, valid: np.ndarray, width: int,
                  height: int, mel: np.ndarray) -> float | None:
    """Sync score of re-detected landmarks against the audio mel [2T, 80]; None without a SyncNet,
    a detected face or the 5 frames of one window."""
    if syncnet is None or not valid.any() or len(valid) < 5:
        return None
    from geneface.processing.pose import fit_head_pose   # scipy: only here, so image scores run without it

    idexp = fit_head_pose(landmarks478, valid, width, height).idexp_lm3d                   # [T, 68, 3]
    return sync_score(syncnet, torch.from_numpy(idexp), torch.from_numpy(np.asarray(mel, np.float32)))


def _frame_and_mask(split: ValSplit, k: int) -> tuple[np.ndarray, np.ndarray]:
    image, labels = split.images.image_and_labels(split.frames[k])
    return image, labels == contract.Label.HEAD


def score_ground_truth(split: ValSplit, syncnet, progress: bool = True,
                       crops: StripCrops | None = None) -> tuple[dict, np.ndarray]:
    """The real frames' row (LMD 0 and aperture r 1 by definition, their sync) and their re-detected
    68 points [T, 68, 2] (NaN rows where no face). crops: gets the strip frames' mouths."""
    track = FaceTrack()
    for k in progress_bar(range(len(split.frames)), desc="ground truth", unit="frame", disable=not progress):
        frame = _frame_and_mask(split, k)[0]
        track.add(frame)
        if crops is not None:
            crops.add(k, frame, split.mouth_box(k))
    lm478, valid = track.close()
    real68 = ibug68_points(lm478, valid)
    row = dict(psnr_head=None, ssim_head=None, psnr_mouth=None, ssim_mouth=None, psnr_full=None, ssim_full=None,
               lmd_px=0.0 if valid.any() else None, aperture_r=aperture_correlation(real68, real68),
               sync=landmark_sync(syncnet, lm478, valid, split.images.width, split.images.height, split.mel),
               fps=None, frames=len(split.frames), detection_rate=float(valid.mean()))
    return row, real68


def score_real_over_plate(split: ValSplit, device: str = "cpu") -> dict:
    """Image scores of the real frames with their background-labelled pixels replaced by the plate (no
    face detection: the person's pixels are the real ones, so LMD, aperture and sync are the truth's)."""
    scores = ImageScores(device)
    for k in range(len(split.frames)):
        image, labels = split.images.image_and_labels(split.frames[k])
        over_plate = np.where((labels == contract.Label.BACKGROUND)[..., None], split.images.plate, image)
        scores.update(over_plate, image, labels == contract.Label.HEAD, split.mouth_box(k))
    return dict(**scores.compute(), lmd_px=None, aperture_r=None, sync=None, fps=None, frames=len(split.frames),
                detection_rate=None)


class BlurredTruth:
    """Stands in for a renderer in the truth-blurred row: each val frame's real pixels, blurred by a
    Gaussian of `sigma_px`. Why: LMD and aperture r re-detect faces, and a detector cannot tell a mouth
    drawn half a pixel off from the real one; this row says where that floor lies (on the 128² synthetic
    speaker the truth blurred by ½ px already scores aperture r 0.77, on cnn2 at 512² far closer to 1)."""

    draws_torso = True           # paints every pixel: the background it is handed is unused

    def __init__(self, split: ValSplit, sigma_px: float):
        if not sigma_px > 0:
            raise ValueError(f"truth_blur_px={sigma_px}: the truth-blurred row needs a blur above 0 px "
                             "(e.g. 0.5), or null to skip the row")
        self.split, self.sigma_px = split, float(sigma_px)

    def render_frames(self, c2w, landmarks, background, audio_features=None):
        for k in range(len(self.split.frames)):
            yield cv2.GaussianBlur(_frame_and_mask(self.split, k)[0], (0, 0), self.sigma_px)


def _backgrounds(renderer, split: ValSplit) -> np.ndarray:
    """Renderers that draw the torso get the plate [H, W, 3]; head-only ones each frame with its head
    pixels replaced [T, H, W, 3] (head_removed: the neck under the chin, the plate elsewhere), pasted
    back into the video as `geneface.infer` shows them, so the torso and background are not their error."""
    if renderer.draws_torso:
        return split.images.plate
    return np.stack([head_removed(*split.images.image_and_labels(i), split.images.plate) for i in split.frames])


def open_and_closed(split: ValSplit) -> tuple[np.ndarray, int]:
    """(positions in the split of its most open frames, the position of its most closed one), by the
    inner-lip opening of the real landmarks in the head frame (pose-free)."""
    data = arrays(split.images.root)
    mean, std = np.asarray(data["idexp_lm3d_mean"]), np.asarray(data["idexp_lm3d_std"])
    idexp = denormalize_idexp(split.landmarks, mean, std)                                   # [T, 68, 3]
    opening = inner_lip_aperture(absolute_landmarks(idexp, data["mean_shape"]))               # [T]
    order = np.argsort(opening, kind="stable")
    count = min(len(order), max(MIN_OPEN, round(len(order) * OPEN_SHARE)))
    return np.sort(order[-count:]), int(order[0])


def mouth_mse(frame: np.ndarray, real: np.ndarray, box: tuple[slice, slice]) -> float:
    """Mean squared error (uint8 levels) of a generated frame's mouth box against the real frame's."""
    return float(((frame[box].astype(np.float32) - real[box].astype(np.float32)) ** 2).mean())


def mse_psnr(mse: float) -> float:
    """uint8 mean squared error → PSNR in dB at data range 1, capped as the image scores are."""
    return min(float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12))), PSNR_CAP)


def closed_mouth_psnr(renderer, split: ValSplit, positions: np.ndarray, closed: int,
                      backgrounds: np.ndarray) -> float:
    """PSNR mouth over the split's frames `positions` rendered at their cameras with frame `closed`'s
    landmarks (renderers that read audio get each frame's own mel, so only the landmarks change);
    backgrounds: _backgrounds' for the whole split."""
    background = backgrounds[positions] if np.ndim(backgrounds) == 4 else backgrounds
    mel = np.concatenate([split.mel[2 * k: 2 * k + 2] for k in positions])                  # [2·len, 80]
    landmarks = np.repeat(split.landmarks[[closed]], len(positions), 0)
    errors = []
    for k, frame in zip(positions, renderer.render_frames(split.c2w[positions], landmarks, background,
                                                         audio_features=mel)):
        errors.append(mouth_mse(frame, _frame_and_mask(split, k)[0], split.mouth_box(k)))
    return mse_psnr(float(np.mean(errors)))


def score_renderer(renderer, split: ValSplit, landmarks: np.ndarray, real68: np.ndarray | None, syncnet,
                   device: str = "cpu", desc: str = "render", progress: bool = True, faces: bool = True,
                   crops: StripCrops | None = None, mouth_errors: list | None = None,
                   backgrounds: np.ndarray | None = None) -> dict:
    """Render the val cameras with `landmarks` [T, 68, 3] (normalised) and score every frame against
    the real one (whose re-detected points are real68, score_ground_truth's) as it arrives.
    faces=False: image scores and speed only (no face mesh: LMD, aperture, sync and the detection rate
    are None), where MediaPipe is not installed. crops: gets the strip frames' mouths; mouth_errors:
    gets each frame's mean squared error (uint8) on its mouth box. backgrounds: _backgrounds(renderer,
    split), when the caller scores several rows (a head-only renderer's are every val frame's)."""
    if backgrounds is None:
        backgrounds = _backgrounds(renderer, split)
    frames = renderer.render_frames(split.c2w, landmarks, backgrounds, audio_features=split.mel)
    scores, track, render_s, count = ImageScores(device), FaceTrack() if faces else None, 0.0, 0
    bar = progress_bar(total=len(split.frames), desc=desc, unit="frame", disable=not progress)
    while True:
        start = time.perf_counter()
        frame = next(frames, None)
        render_s += time.perf_counter() - start
        if frame is None:
            break
        if count >= len(split.frames):
            raise ValueError(f"the renderer yielded more frames than the {len(split.frames)} asked for")
        real_frame, head_mask = _frame_and_mask(split, count)
        if frame.shape != real_frame.shape:
            raise ValueError(f"the renderer made {frame.shape} frames; the video's are {real_frame.shape}")
        mouth_box = split.mouth_box(count)
        scores.update(frame, real_frame, head_mask, mouth_box)
        if crops is not None:
            crops.add(count, frame, mouth_box)
        if mouth_errors is not None:
            mouth_errors.append(mouth_mse(frame, real_frame, mouth_box))
        if track is not None:
            track.add(frame)
        count += 1
        bar.update()
    bar.close()
    if count != len(split.frames):
        raise ValueError(f"the renderer yielded {count} frames for {len(split.frames)} cameras")
    if track is None:
        return dict(**scores.compute(), lmd_px=None, aperture_r=None, sync=None, fps=count / max(render_s, 1e-9),
                    frames=count, detection_rate=None)
    lm478, valid = track.close()
    points68 = ibug68_points(lm478, valid)
    mouth, real_mouth = lip_points(points68), lip_points(real68)
    both = np.isfinite(mouth).all(axis=(1, 2)) & np.isfinite(real_mouth).all(axis=(1, 2))
    return dict(**scores.compute(),
                lmd_px=landmark_distance(mouth, real_mouth) if both.any() else None,
                aperture_r=aperture_correlation(points68, real68),
                sync=landmark_sync(syncnet, lm478, valid, split.images.width, split.images.height, split.mel),
                fps=count / max(render_s, 1e-9), frames=count, detection_rate=float(valid.mean()))


def evaluate_speaker(speaker_root: str | Path, renderer_ckpt: str | Path, postnet_ckpt: str | Path | None,
                     syncnet_ckpt: str | Path | None, device: str = "cpu", max_frames: int | None = None,
                     temperature: float = 1.0, clamp_std: float = 2.5,
                     smoothing: float = 0.2, seed: int = 9999, progress: bool = True, frozen: bool = True,
                     strip: str | Path | None = None, open_control: bool = True,
                     spoken_gain: str | float = 1.0, truth_blur_px: float | None = 0.5) -> dict:
    """Every row on the val split → {"rows": {row: {metric: value}}, ...}. postnet_ckpt None skips the
    audio-driven row, frozen=False the frozen control, open_control=False the open-mouth control (a
    quarter more renders), truth_blur_px None the truth-blurred row; strip: where to write the mouth
    strip PNG.
    Checkpoints are resolved first, so a missing one fails before any rendering."""
    renderer_ckpt = upstream_checkpoint(renderer_ckpt)
    postnet_ckpt = upstream_checkpoint(postnet_ckpt) if postnet_ckpt is not None else None
    split = load_val_split(speaker_root, max_frames)
    syncnet, note = load_syncnet(syncnet_ckpt, device)
    renderer = load_renderer(renderer_ckpt, device)
    rows, crops = {}, {"truth": StripCrops(split)}
    rows["ground_truth"], real68 = score_ground_truth(split, syncnet, progress, crops["truth"])
    if truth_blur_px is not None:
        rows["truth_blurred"] = score_renderer(BlurredTruth(split, truth_blur_px), split, split.landmarks, real68,
                                               syncnet, device, "truth blurred", progress,
                                               backgrounds=split.images.plate)
        rows["truth_blurred"]["fps"] = None                                  # a blur, not a render
    rows["real_over_plate"] = score_real_over_plate(split, device)
    drives = {"reconstruction": split.landmarks}
    if frozen:   # the normalised landmarks' mean is 0: every frame gets the speaker's mean face
        drives["frozen"] = np.zeros_like(split.landmarks)
    if postnet_ckpt is not None:
        drives["audio_driven"] = audio_driven_landmarks(postnet_ckpt, split, device, temperature, clamp_std,
                                                        smoothing, seed, spoken_gain)
    mouth_errors: dict[str, list] = {}
    backgrounds = _backgrounds(renderer, split)               # read once for every row and the control
    for name, landmarks in drives.items():
        crops[name], mouth_errors[name] = StripCrops(split), []
        rows[name] = score_renderer(renderer, split, landmarks, real68, syncnet, device, name.replace("_", "-"),
                                    progress, crops=crops[name], mouth_errors=mouth_errors[name],
                                    backgrounds=backgrounds)
    if open_control:
        most_open, most_closed = open_and_closed(split)
        closed = closed_mouth_psnr(renderer, split, most_open, most_closed, backgrounds)
        for name in ("reconstruction", "audio_driven"):
            if name in rows:
                own = mse_psnr(float(np.mean([mouth_errors[name][k] for k in most_open])))
                rows[name]["open_gain_db"] = own - closed
    if "frozen" in rows:
        for name in ("reconstruction", "audio_driven", "truth_blurred"):
            if name in rows and rows[name]["lmd_px"] and rows["frozen"]["lmd_px"] is not None:
                rows[name]["responsiveness"] = rows["frozen"]["lmd_px"] / rows[name]["lmd_px"]
            if name in rows and None not in (rows[name]["psnr_mouth"], rows["frozen"]["psnr_mouth"]):
                rows[name]["mouth_gain_db"] = rows[name]["psnr_mouth"] - rows["frozen"]["psnr_mouth"]
    notes = [note] if note else []
    notes += [f"{name}: a face was found in {row['detection_rate']:.0%} of the frames; LMD, aperture and sync "
              "use only those" for name, row in rows.items()
              if row["detection_rate"] is not None and row["detection_rate"] < 1]
    strip_path = None
    if strip is not None:
        strip_path = str(strip)
        write_rgb(strip, mouth_strip({name.replace("_", "-"): c.in_order() for name, c in crops.items()}))
    return dict(speaker_root=str(speaker_root), renderer=type(renderer).__name__,
                renderer_ckpt=str(renderer_ckpt),
                postnet_ckpt=None if postnet_ckpt is None else str(postnet_ckpt),
                syncnet_ckpt=None if syncnet is None else str(syncnet_ckpt),
                val_frames=[split.frames[0], split.frames[-1] + 1],
                resolution=[split.images.height, split.images.width], device=device, notes=notes,
                strip=strip_path, strip_frames=[split.frames[k] for k in strip_frames(len(split.frames))],
                open_frames=[split.frames[k] for k in most_open] if open_control else None,
                rows={r: rows[r] for r in ROWS if r in rows})


def format_table(result: dict) -> str:
    """The rows as a markdown table; "–" where a metric does not apply or could not be measured."""
    lines = ["| | " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for row, values in result["rows"].items():
        cells = ["–" if values.get(key) is None else format(values[key], fmt) for key, _, fmt in COLUMNS]
        lines.append(f"| {row.replace('_', '-')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
