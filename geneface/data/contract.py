"""The data contract, version 1: what processing writes and what training and inference read.

docs/data_format.md is the human description; this module is the machine one, used by the writers
(processing, the synthetic generator), the readers and the validator (`python -m geneface.data.check`).

Shapes use symbols: T video frames, A = 2·T audio-feature frames, H×W image size, D the HuBERT width.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

SCHEMA_VERSION = 1

FPS = 25                     # video frames per second
SAMPLE_RATE = 16_000         # audio samples per second (mono)
FEATURE_RATE = 50            # audio-feature frames per second: exactly 2 per video frame
HOP_LENGTH = SAMPLE_RATE // FEATURE_RATE          # 320 samples
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS            # 640 samples
FEATURES_PER_FRAME = FEATURE_RATE // FPS          # 2
MEL_BINS = 80
IDEXP_SCALE = 10.0  # idexp = IDEXP_SCALE × (head-frame landmarks − mean shape), head unit = eye span

META_FILE = "meta.json"      # written last: a directory without it is incomplete
INDEX_FILE = "index.tsv"     # corpus clip index
INDEX_COLUMNS = ("item_id", "speaker", "path", "num_frames", "split")


class Label(IntEnum):
    """Per-pixel semantic labels in `labels/<frame>.png`."""

    BACKGROUND = 0
    HEAD = 1   # face, hair, ears
    NECK = 2
    TORSO = 3


def num_train_frames(num_frames: int) -> int:
    """GeneFace's chronological split: the first ⌊10/11·T⌋ frames train, the rest validate."""
    return (10 * num_frames) // 11


@dataclass(frozen=True)
class ArraySpec:
    name: str                      # file stem (`<name>.npy`) or npz key
    dtype: str                     # numpy dtype name
    shape: tuple[str | int, ...]   # symbols resolved from the dataset's meta
    doc: str
    required: bool = True


def cast_to_contract(arrays: dict, specs: tuple[ArraySpec, ...], owner: str) -> dict[str, np.ndarray]:
    """`arrays` cast to their specs' dtypes, for a writer. A required array missing or one the contract
    does not know is a ValueError naming `owner` (e.g. "speaker May"): a reader would fail on it later,
    further from the cause."""
    specs_by_name = {spec.name: spec for spec in specs}
    missing = [spec.name for spec in specs if spec.required and spec.name not in arrays]
    if missing:
        raise ValueError(f"{owner}: missing arrays {missing}")
    unknown = sorted(set(arrays) - set(specs_by_name))
    if unknown:
        raise ValueError(f"{owner}: arrays {unknown} are not in the data contract (docs/data_format.md)")
    return {name: np.asarray(value, dtype=specs_by_name[name].dtype) for name, value in arrays.items()}


# Speaker dataset: one directory, arrays as `<name>.npy` next to frames/, labels/, background.png.
SPEAKER_ARRAYS: tuple[ArraySpec, ...] = (
    ArraySpec("mel", "float32", ("A", MEL_BINS), "log10 mel power, 80 bins 80–7600 Hz, 50 Hz"),
    ArraySpec("f0", "float32", ("A",), "fundamental frequency in Hz, 0 where unvoiced, 50 Hz"),
    ArraySpec("hubert", "float32", ("A", "D"), "HuBERT last hidden state, 50 Hz", required=False),
    ArraySpec("landmarks478", "float32", ("T", 478, 3),
              "MediaPipe face mesh; x, y in pixels (origin top-left corner), z in pixels, +z away from camera"),
    ArraySpec("landmarks68", "float32", ("T", 68, 3), "iBUG-order subset of landmarks478"),
    ArraySpec("head_R", "float32", ("T", 3, 3), "head-to-camera rotation: x_cam = R·x_head + t"),
    ArraySpec("head_t", "float32", ("T", 3), "head-to-camera translation, head units"),
    ArraySpec("c2w", "float32", ("T", 4, 4), "camera-to-head-world, OpenCV camera axes: [Rᵀ | −Rᵀt]"),
    ArraySpec("mean_shape", "float32", (68, 3), "the speaker's canonical 68 points in the head frame"),
    ArraySpec("idexp_lm3d", "float32", ("T", 68, 3), "10 × (head-frame landmarks − mean_shape)"),
    ArraySpec("idexp_lm3d_mean", "float32", (68, 3), "mean of idexp_lm3d over all frames"),
    ArraySpec("idexp_lm3d_std", "float32", (68, 3), "std of idexp_lm3d over all frames (> 0)"),
    ArraySpec("face_rect", "int32", ("T", 4), "face box x, y, w, h in pixels"),
    ArraySpec("lip_rect", "int32", ("T", 4), "lip box x, y, w, h in pixels"),
)
SPEAKER_AUDIO = "audio.wav"          # 16 kHz mono PCM16, exactly T·640 samples
SPEAKER_FRAMES_DIR = "frames"        # frames/000000.jpg … RGB H×W
SPEAKER_LABELS_DIR = "labels"        # labels/000000.png uint8 H×W of `Label`
SPEAKER_BACKGROUND = "background.png"  # RGB H×W
SPEAKER_META_KEYS = ("schema_version", "kind", "name", "fps", "sample_rate", "feature_rate",
                     "num_frames", "num_train", "height", "width", "focal", "cx", "cy")

# Corpus: `clips/<speaker>/<clip>.npz`, one record per clip, plus index.tsv and meta.json.
CLIP_ARRAYS: tuple[ArraySpec, ...] = (
    ArraySpec("mel", "float32", ("A", MEL_BINS), "log10 mel power, 50 Hz"),
    ArraySpec("f0", "float32", ("A",), "Hz, 0 where unvoiced, 50 Hz"),
    ArraySpec("hubert", "float32", ("A", "D"), "HuBERT last hidden state, 50 Hz", required=False),
    ArraySpec("idexp_lm3d", "float32", ("T", 68, 3), "10 × (head-frame landmarks − the clip's mean shape)"),
    ArraySpec("head_R", "float32", ("T", 3, 3), "head-to-camera rotation"),
    ArraySpec("head_t", "float32", ("T", 3), "head-to-camera translation, head units"),
)
CORPUS_CLIPS_DIR = "clips"
CORPUS_META_KEYS = ("schema_version", "kind", "name", "fps", "feature_rate", "num_clips")
SPLITS = ("train", "val")
