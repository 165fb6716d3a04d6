"""The synthetic corpus: many speakers, short clips, mouth motion that follows the audio.

It stands in for LRS3 in tests and the demo: each speaker has its own face shape and voice, and in
each clip the mouth opening is the audio's loudness envelope plus noise, so lip sync (SyncNet) and
audio→motion (the VAE) have something real to learn, and a wrong audio/motion pairing is detectable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from geneface.data import contract
from geneface.data.corpus import clip_path, finalize_corpus, write_clip
from geneface.data.face_shape import FaceShape, landmarks68, random_face_shape
from geneface.media.features import audio_features, fit_to_frames
from geneface.synthetic.audio import Voice, random_voice, speech_like_audio
from geneface.synthetic.head import head_motion
from geneface.synthetic.speaker import blinks_and_brows

OPENING_NOISE = 0.05     # std of the noise on the mouth opening (opening is in [0, 1])
LANDMARK_NOISE = 0.004   # std of the noise on every head-frame landmark coordinate, head units


def speaker_name(index: int) -> str:
    return f"spk{index:03d}"


def clip_name(index: int) -> str:
    return f"clip{index:03d}"


def synthetic_clip(rng: np.random.Generator, shape: FaceShape, voice: Voice,
                   num_frames: int) -> dict[str, np.ndarray]:
    """One clip's record: mel [2T, 80], f0 [2T], idexp_lm3d [T, 68, 3], head_R [T, 3, 3], head_t [T, 3]."""
    wave, opening = speech_like_audio(rng, num_frames, voice)
    opening = np.clip(opening + OPENING_NOISE * rng.standard_normal(num_frames), 0.0, 1.0)
    blink, brow = blinks_and_brows(rng, num_frames)
    points = landmarks68(shape, opening, blink, brow)                      # [T, 68, 3] head frame
    points = points + LANDMARK_NOISE * rng.standard_normal(points.shape)
    R, t = head_motion(rng, num_frames)
    features = audio_features(fit_to_frames(wave, num_frames), num_frames)
    idexp = contract.IDEXP_SCALE * (points - points.mean(0))             # the clip's mean shape removed
    return {**features, "idexp_lm3d": idexp, "head_R": R, "head_t": t}


def write_synthetic_corpus(out_dir: str | Path, name: str = "synthetic_corpus", num_speakers: int = 8,
                           clips_per_speaker: int = 12, clip_seconds: tuple[float, float] = (2.0, 4.0),
                           seed: int = 0, val_every: int = 8, overwrite: bool = False,
                           progress: bool = True) -> Path:
    """Write the corpus `<out_dir>/<name>` clip by clip, then its index and meta; return its path.

    Clips already on disk are skipped (a killed run resumes), unless `overwrite`. Speaker i, clip j
    depend only on (seed, i, j), so a resumed or extended corpus equals one written in a single go.
    About 1 clip in `val_every` (hash of its id) is held out for validation.
    """
    root = Path(out_dir) / name
    lo, hi = clip_seconds
    written = skipped = 0
    total = num_speakers * clips_per_speaker
    with tqdm(total=total, desc="write clips", unit="clip", disable=not progress) as bar:
        for i in range(num_speakers):
            speaker_rng = np.random.default_rng([seed, 1, i])
            shape, voice = random_face_shape(speaker_rng), random_voice(speaker_rng)
            for j in range(clips_per_speaker):
                bar.update()
                if clip_path(root, speaker_name(i), clip_name(j)).exists() and not overwrite:
                    skipped += 1
                    continue
                rng = np.random.default_rng([seed, 2, i, j])
                num_frames = int(round(rng.uniform(lo, hi) * contract.FPS))
                write_clip(root, speaker_name(i), clip_name(j), synthetic_clip(rng, shape, voice, num_frames))
                written += 1
    if written == 0 and (root / contract.META_FILE).exists():
        print(f"corpus {name}: {root} is complete ({skipped} clips), skipped (overwrite=true rewrites it)")
        return root
    entries = finalize_corpus(root, name, val_every=val_every)
    val = [e for e in entries if e.split == "val"]
    print(f"corpus {name}: wrote {written} clips, kept {skipped}, {len(entries)} in the index "
          f"({len(val)} val from {len({e.speaker for e in val})} speakers) at {root}")
    return root
