"""Lazy readers for a speaker dataset's images and arrays.

Nothing here loads all frames: images are decoded one at a time when asked for, and the .npy arrays
are memory-mapped by default. Layout and conventions: docs/data_format.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from geneface.data import contract
from geneface.data.speaker import frame_name, read_meta
from geneface.media.images import read_rgb


def _read_dataset_rgb(path: Path) -> np.ndarray:
    root = path.parent if path.name == contract.SPEAKER_BACKGROUND else path.parent.parent
    return read_rgb(path, hint=f"check the dataset with `python -m geneface.data.check {root}`")


class SpeakerFrames(Dataset):
    """The frames, per-pixel labels and background plate of one speaker, read on demand.

    `ds[i]` is {"index": i, "image": uint8 [H, W, 3] RGB, "labels": uint8 [H, W] of contract.Label}.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.meta = read_meta(self.root)
        self.num_frames = int(self.meta["num_frames"])
        self.height = int(self.meta["height"])
        self.width = int(self.meta["width"])

    def __len__(self) -> int:
        return self.num_frames

    def _index(self, i: int) -> int:
        i = int(i)
        if i < 0:
            i += self.num_frames
        if not 0 <= i < self.num_frames:
            raise IndexError(f"frame {i} out of range for {self.num_frames} frames of {self.root}")
        return i

    def frame_path(self, i: int) -> Path:
        return self.root / contract.SPEAKER_FRAMES_DIR / frame_name(self._index(i), "jpg")

    def label_path(self, i: int) -> Path:
        return self.root / contract.SPEAKER_LABELS_DIR / frame_name(self._index(i), "png")

    def image(self, i: int) -> np.ndarray:
        """Frame i as uint8 [H, W, 3] RGB."""
        return _read_dataset_rgb(self.frame_path(i))

    def labels(self, i: int) -> np.ndarray:
        """Label map of frame i as uint8 [H, W] (values of contract.Label)."""
        path = self.label_path(i)
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if label is None:
            raise FileNotFoundError(f"cannot read label map {path} (missing or corrupt); "
                                    f"check the dataset with `python -m geneface.data.check {self.root}`")
        if label.ndim != 2 or label.dtype != np.uint8:
            raise ValueError(f"{path}: expected a single-channel uint8 label map, found "
                             f"{label.shape} {label.dtype}")
        return label

    def background(self) -> np.ndarray:
        """The background plate as uint8 [H, W, 3] RGB."""
        return _read_dataset_rgb(self.root / contract.SPEAKER_BACKGROUND)

    def __getitem__(self, i: int) -> dict:
        i = self._index(i)
        return {"index": i, "image": self.image(i), "labels": self.labels(i)}


def arrays(root: str | os.PathLike, mmap: bool = True) -> dict[str, np.ndarray]:
    """The speaker's .npy arrays by name (contract.SPEAKER_ARRAYS), memory-mapped read-only by default.

    Optional arrays (hubert) are included when present; a missing required one raises FileNotFoundError.
    """
    root = Path(root)
    out: dict[str, np.ndarray] = {}
    for spec in contract.SPEAKER_ARRAYS:
        path = root / f"{spec.name}.npy"
        if not path.exists():
            if spec.required:
                raise FileNotFoundError(f"{path}: missing array '{spec.name}'; check the dataset with "
                                        f"`python -m geneface.data.check {root}`")
            continue
        out[spec.name] = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    return out


def train_indices(meta: dict) -> range:
    """Frames 0 … num_train − 1 (the first ⌊10T/11⌋, chronological)."""
    return range(0, int(meta["num_train"]))


def val_indices(meta: dict) -> range:
    """Frames num_train … T − 1 (the last ~1/11)."""
    return range(int(meta["num_train"]), int(meta["num_frames"]))
