"""The synthetic speaker: a full speaker dataset (contract v1) whose every array has a known answer.

Frames, labels, landmarks, poses and audio all come from one parametric head and one speech-like
signal, so stages can be trained and checked end to end in minutes on a CPU, and tests can compare
what processing or a model recovers with the truth.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm.auto import tqdm

from geneface.data import contract
from geneface.data.landmarks import MEDIAPIPE_TO_IBUG68
from geneface.data.boxes import face_rect, lip_rect
from geneface.data.face_shape import FaceShape, landmarks68, random_face_shape
from geneface.data.speaker import write_speaker_dataset
from geneface.media.features import audio_features, fit_to_frames
from geneface.synthetic.audio import random_voice, speech_like_audio
from geneface.synthetic.head import (Camera, default_camera, head_motion, landmarks478, make_background, project,
                                     render)


def blinks_and_brows(rng: np.random.Generator, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Blink [T] (a 5-frame closing every 2–6 s) and a slow small brow raise [T], both in [0, 1]."""
    blink = np.zeros(num_frames)
    frame = int(rng.uniform(10, 100))
    while frame < num_frames:
        for k, value in enumerate((0.4, 0.9, 1.0, 0.7, 0.3)):
            if frame + k < num_frames:
                blink[frame + k] = value
        frame += int(rng.uniform(2.0, 6.0) * contract.FPS)
    time = np.arange(num_frames) / contract.FPS
    brow = 0.5 + 0.25 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * time + rng.uniform(0, 2 * np.pi))
    return blink, brow


def _frames(shape: FaceShape, cam: Camera, R, t, background, opening, blink, brow,
            progress: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Render frame by frame, so memory does not grow with the video's length."""
    for i in tqdm(range(len(R)), desc="render frames", unit="frame", disable=not progress):
        yield render(shape, cam, R[i], t[i], background, opening[i], blink[i], brow[i])


def write_synthetic_speaker(out_dir: str | Path, name: str = "demo", seconds: float = 20.0, size: int = 128,
                            seed: int = 0, overwrite: bool = False, progress: bool = True) -> Path:
    """Write the speaker dataset `<out_dir>/<name>` and return its path; a finished one is kept.

    `seconds` of video at 25 fps, `size`² pixels; everything is a function of `seed`.
    """
    root = Path(out_dir) / name
    if (root / contract.META_FILE).exists() and not overwrite:
        print(f"speaker {name}: {root} is complete, skipped (overwrite=true rewrites it)")
        return root
    num_frames = int(round(seconds * contract.FPS))
    if num_frames < 2:
        raise ValueError(f"speaker {name}: {seconds} s is fewer than 2 frames")
    rng_face, rng_voice, rng_audio, rng_motion, rng_bg = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, 0]).spawn(5))
    shape, cam = random_face_shape(rng_face), default_camera(size)
    wave, opening = speech_like_audio(rng_audio, num_frames, random_voice(rng_voice))  # [T·640], [T]
    blink, brow = blinks_and_brows(rng_motion, num_frames)                             # [T], [T]
    R, t = head_motion(rng_motion, num_frames)                                         # [T,3,3], [T,3]
    background = make_background(rng_bg, size, size)                                  # [H,W,3]

    lm_head = landmarks68(shape, opening, blink, brow)                                # [T,68,3]
    mean_shape = landmarks68(shape, float(opening.mean()))                            # [68,3]
    idexp = contract.IDEXP_SCALE * (lm_head - mean_shape)                             # [T,68,3]
    lm478 = project(cam, landmarks478(shape, lm_head), R, t).astype(np.float32)       # [T,478,3]
    lm68 = lm478[:, list(MEDIAPIPE_TO_IBUG68)]                                        # [T,68,3]
    c2w = np.zeros((num_frames, 4, 4))
    c2w[:, :3, :3] = R.transpose(0, 2, 1)
    c2w[:, :3, 3] = -np.einsum("tji,tj->ti", R, t)                                    # −Rᵀt
    c2w[:, 3, 3] = 1.0
    wave = fit_to_frames(wave, num_frames)
    features = audio_features(wave, num_frames)                                       # mel [2T,80], f0 [2T]
    arrays = {
        **features, "landmarks478": lm478, "landmarks68": lm68, "head_R": R, "head_t": t, "c2w": c2w,
        "mean_shape": mean_shape, "idexp_lm3d": idexp, "idexp_lm3d_mean": idexp.mean(0),
        "idexp_lm3d_std": np.maximum(idexp.std(0), 1e-4),
        "face_rect": face_rect(lm68, size, size), "lip_rect": lip_rect(lm68, size, size),
    }
    pairs = _frames(shape, cam, R, t, background, opening, blink, brow, progress)
    frames, labels = itertools.tee(pairs)        # zip() in the writer keeps the two in step
    write_speaker_dataset(
        root, name=name, arrays=arrays, audio=wave, frames=(f for f, _ in frames),
        labels=(lab for _, lab in labels), background=background, focal=cam.focal,
        extra_meta={"synthetic": True, "generator": {"seed": seed, "size": size, "seconds": seconds},
                    "landmark_z": "(Z - t_z) * focal / t_z pixels"})
    print(f"speaker {name}: wrote {num_frames} frames at {size}x{size} to {root}")
    return root
