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


# How far above the top of a column's neck head pixels take the neck's colour, as a share of the head's
# height (head_removed): enough for the chin of a source frame whose mouth was open (on cnn2 the fill
# reaches the lower lip, which the rendered head covers), short of the hair, for which the plate stands.
NECK_FILL_HEIGHT = 0.2


def head_removed(image: np.ndarray, labels: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """A frame [H, W, 3] with the pixels its labels [H, W] call head replaced: by the colour of the neck's
    top pixel in the same column for up to NECK_FILL_HEIGHT of the head's height above it, elsewhere by
    the plate [H, W, 3].

    Why: a head rendered over it is pasted back into the speaker's own video (its real neck, torso and
    background stay; inference's background=video, evaluation of head-only renderers). Where the
    rendered chin ends above the source frame's (a closed mouth over a frame whose mouth was open),
    the neck continues up under it, not the plate's background (a crescent of wall under the chin), nor
    the source's own chin (a second chin)."""
    head = labels == contract.Label.HEAD                                  # [H, W]
    out = np.where(head[..., None], plate, image)
    neck = labels == contract.Label.NECK
    rows_with_head = np.flatnonzero(head.any(1))
    if not neck.any() or rows_with_head.size == 0:
        return out
    reach = NECK_FILL_HEIGHT * (rows_with_head[-1] - rows_with_head[0] + 1)
    top = np.argmax(neck, axis=0)                                         # [W] first neck row per column
    rows = np.arange(len(labels))[:, None]                                # [H, 1]
    fill = head & neck.any(0)[None] & (rows < top[None]) & (rows >= top[None] - reach)
    columns = np.nonzero(fill)[1]
    out[fill] = image[top[columns], columns]
    return out


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
