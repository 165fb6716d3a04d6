"""Speaker dataset: the writer (used by processing and the synthetic generator) and its readers.

A speaker directory is built under a temporary name and renamed into place when complete, and
`meta.json` is its last file, so a half-written speaker never validates.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from geneface.data import contract
from geneface.utils.io import atomic_dir, save_json


def frame_name(index: int, ext: str) -> str:
    return f"{index:06d}.{ext}"


def write_images(root: Path, frames: Iterable[np.ndarray], labels: Iterable[np.ndarray],
                 jpeg_quality: int = 95, start: int = 0) -> int:
    """Encode frames (RGB) as frames/NNNNNN.jpg and labels as labels/NNNNNN.png; returns the count."""
    (root / contract.SPEAKER_FRAMES_DIR).mkdir(parents=True, exist_ok=True)
    (root / contract.SPEAKER_LABELS_DIR).mkdir(parents=True, exist_ok=True)
    written = 0
    for i, (frame, label) in enumerate(zip(frames, labels), start=start):
        cv2.imwrite(str(root / contract.SPEAKER_FRAMES_DIR / frame_name(i, "jpg")),
                    cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        cv2.imwrite(str(root / contract.SPEAKER_LABELS_DIR / frame_name(i, "png")), label)
        written += 1
    return written


def write_speaker_dataset(
    out_dir: str | Path,
    *,
    name: str,
    arrays: dict[str, np.ndarray],
    audio: np.ndarray,                 # [T·640] float in [-1, 1], 16 kHz mono
    frames: Iterable[np.ndarray] = (),  # T × [H, W, 3] uint8 RGB, streamed
    labels: Iterable[np.ndarray] = (),  # T × [H, W] uint8 of contract.Label
    images_from: str | Path | None = None,  # or: a directory whose frames/ and labels/ are moved in
    extra_dirs: Iterable[str | Path] = (),  # moved in under their own names (e.g. report/)
    background: np.ndarray,            # [H, W, 3] uint8 RGB
    focal: float,
    extra_meta: dict | None = None,
    jpeg_quality: int = 95,
) -> Path:
    """Write a complete speaker dataset to `out_dir` atomically and return its path.

    Images are either encoded from `frames`/`labels` or, when processing already wrote them,
    moved from `images_from` (no re-encoding; that directory loses its frames/ and labels/).
    """
    arrays = contract.cast_to_contract(arrays, contract.SPEAKER_ARRAYS, f"speaker {name}")
    num_frames = int(arrays["landmarks68"].shape[0])
    height, width = background.shape[:2]
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        for key, value in arrays.items():
            np.save(tmp / f"{key}.npy", value)
        import soundfile as sf   # the writer's only: readers (training, a GPU machine) need no audio library

        sf.write(tmp / contract.SPEAKER_AUDIO, np.clip(audio, -1, 1), contract.SAMPLE_RATE, subtype="PCM_16")
        cv2.imwrite(str(tmp / contract.SPEAKER_BACKGROUND), cv2.cvtColor(background, cv2.COLOR_RGB2BGR))
        if images_from is not None:
            for sub in (contract.SPEAKER_FRAMES_DIR, contract.SPEAKER_LABELS_DIR):
                os.replace(Path(images_from) / sub, tmp / sub)
            written = len(list((tmp / contract.SPEAKER_FRAMES_DIR).glob("*.jpg")))
        else:
            written = write_images(tmp, frames, labels, jpeg_quality)
        for extra in extra_dirs:
            os.replace(extra, tmp / Path(extra).name)
        if written != num_frames:
            raise ValueError(f"speaker {name}: {written} frames/labels written for {num_frames} landmark frames")
        meta = {
            "schema_version": contract.SCHEMA_VERSION, "kind": "speaker", "name": name,
            "fps": contract.FPS, "sample_rate": contract.SAMPLE_RATE, "feature_rate": contract.FEATURE_RATE,
            "num_frames": num_frames, "num_train": contract.num_train_frames(num_frames),
            "height": int(height), "width": int(width),
            "focal": float(focal), "cx": width / 2.0, "cy": height / 2.0,
            "camera_convention": "opencv", "idexp_scale": contract.IDEXP_SCALE,
            **(extra_meta or {}),
        }
        save_json(tmp / contract.META_FILE, meta)
    return out_dir


def read_meta(root: str | Path) -> dict:
    path = Path(root) / contract.META_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{root} is not a finished dataset (no {contract.META_FILE}): it was never written or its "
            f"writing was interrupted. Write it again (the synthetic one: `python -m geneface.synthetic`), "
            f"then check it with `python -m geneface.data.check {root}`.")
    return json.loads(path.read_text())


class SpeakerClips(Dataset):
    """A speaker's audio and idexp landmarks cut into fixed-length clips, so that corpus stages
    (SyncNet, audio2motion) can also train or be evaluated on one speaker. Train clips come from the
    train frames and val clips from the val frames, as in the corpus. Items match CorpusDataset's.
    """

    def __init__(self, root: str | Path, split: str, clip_frames: int = 100, min_frames: int = 1):
        self.root = Path(root)
        if split not in contract.SPLITS:
            raise ValueError(f"split must be one of {contract.SPLITS}, got {split!r}")
        meta = read_meta(self.root)
        num_frames, num_train = meta["num_frames"], meta["num_train"]
        start, stop = (0, num_train) if split == "train" else (num_train, num_frames)
        self.mel = np.load(self.root / "mel.npy", mmap_mode="r")
        self.f0 = np.load(self.root / "f0.npy", mmap_mode="r")
        self.idexp = np.load(self.root / "idexp_lm3d.npy", mmap_mode="r")
        self.ranges = [(s, min(s + clip_frames, stop)) for s in range(start, stop, clip_frames)]
        self.ranges = [(a, b) for a, b in self.ranges if b - a >= min_frames]
        if not self.ranges:
            raise ValueError(f"speaker {self.root} has no {split} clip of at least {min_frames} frames")
        self.name = meta["name"]

    def __len__(self) -> int:
        return len(self.ranges)

    def lengths(self) -> list[int]:
        return [b - a for a, b in self.ranges]

    def __getitem__(self, i: int) -> dict:
        a, b = self.ranges[i]
        return {
            "item_id": f"{self.name}/{a:06d}",
            "speaker_id": 0,
            "mel": torch.from_numpy(np.array(self.mel[2 * a : 2 * b])),
            "f0": torch.from_numpy(np.array(self.f0[2 * a : 2 * b])),
            "idexp_lm3d": torch.from_numpy(np.array(self.idexp[a:b])),
        }
