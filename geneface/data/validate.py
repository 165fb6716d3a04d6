"""The data-contract validator: checks a speaker or corpus directory against contract v1.

`validate(root)` returns a `ValidationReport` for a valid dataset and raises `DatasetError` at the
first problem it finds, naming the file, the array, what was expected and found, and what to do.
The kind (speaker or corpus) comes from meta.json. Corpus clips are checked one at a time, so a
corpus far larger than memory can be checked; `max_clips` spot-checks an evenly spaced subset.

Command line: `python -m geneface.data.check <dir> [--max-clips N]` (geneface/data/check.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

from geneface.data import contract
from geneface.data.checks import CHUNK, DatasetError, ValidationReport, check_array, check_finite, fmt_shape
from geneface.data.landmarks import MEDIAPIPE_TO_IBUG68
from geneface.data.speaker import frame_name
from geneface.data.validate_corpus import validate_corpus

__all__ = ["DatasetError", "ValidationReport", "validate"]

_LANDMARK_ATOL = 1e-4       # px: landmarks68 must equal landmarks478[:, MEDIAPIPE_TO_IBUG68]
_POSE_ATOL = 1e-3           # rotation orthonormality and c2w = [Rᵀ | −Rᵀt]
_EYE_SPAN_RTOL = 0.05       # mean_shape: outer eye corners (iBUG 36, 45) are 1 head unit apart


def validate(root: str | os.PathLike, max_clips: int | None = None,
             progress: bool | None = None) -> ValidationReport:
    """Check the dataset at `root` against the contract; raise DatasetError at the first problem.

    max_clips: corpus only, check at most this many clips (evenly spaced over the index); the
    index itself is always read in full. progress: show a tqdm bar over the clips (None: only
    when at least PROGRESS_MIN_CLIPS clips are checked).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, "no such dataset directory",
                           "check the path; process a dataset first (`python -m geneface.process ...`)")
    meta = _read_meta(root)
    if meta["kind"] == "speaker":
        return _validate_speaker(root, meta)
    return validate_corpus(root, meta, max_clips=max_clips, progress=progress)


# ---------------------------------------------------------------------------------------------
# meta.json

def _read_meta(root: Path) -> dict:
    path = root / contract.META_FILE
    if not path.exists():
        partial = sorted(p.name for p in root.parent.glob(f".{root.name}.*.partial"))
        seen = f" (a temporary {partial[0]} lies beside it)" if partial else ""
        inside = sorted(p.parent.name for p in root.glob(f"*/{contract.META_FILE}"))
        if inside:  # e.g. `check outputs/data` when the datasets are outputs/data/<name>
            raise DatasetError(path, f"no {contract.META_FILE} here, but {len(inside)} dataset(s) below: "
                                     f"{', '.join(inside[:5])}",
                               f"check one of them, e.g. {root / inside[0]}")
        raise DatasetError(
            path, f"incomplete: no {contract.META_FILE} — the dataset was not finished writing{seen}",
            "re-run processing (meta.json is written last, so a dataset without it is incomplete); "
            "for a corpus, run finalize_corpus after the last clip")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(path, f"cannot be read as JSON ({err})", "re-run processing") from None
    if not isinstance(meta, dict):
        raise DatasetError(path, f"expected a JSON object, found {type(meta).__name__}", "re-run processing")
    version = meta.get("schema_version")
    if version != contract.SCHEMA_VERSION:
        raise DatasetError(
            path, f"schema_version is {version!r}, this code reads version {contract.SCHEMA_VERSION}",
            "re-process the data with this version of geneface, or use the geneface version that wrote it")
    kind = meta.get("kind")
    if kind not in ("speaker", "corpus"):
        raise DatasetError(path, f"kind is {kind!r}, expected 'speaker' or 'corpus'", "re-run processing")
    keys = contract.SPEAKER_META_KEYS if kind == "speaker" else contract.CORPUS_META_KEYS
    missing = [k for k in keys if k not in meta]
    if missing:
        raise DatasetError(path, f"{kind} meta lacks the required keys {missing}", "re-run processing")
    expected = {"fps": contract.FPS, "feature_rate": contract.FEATURE_RATE}
    if kind == "speaker":
        expected["sample_rate"] = contract.SAMPLE_RATE
    for key, value in expected.items():
        if meta[key] != value:
            raise DatasetError(path, f"{key} is {meta[key]!r}, the contract fixes it at {value}",
                               "re-run processing (video is resampled to 25 fps, audio to 16 kHz)")
    counts = ("num_frames", "num_train", "height", "width") if kind == "speaker" else ("num_clips",)
    for key in counts:
        if not isinstance(meta[key], int) or isinstance(meta[key], bool) or meta[key] < 0:
            raise DatasetError(path, f"{key} is {meta[key]!r}, expected a non-negative integer",
                               "re-run processing")
    if kind == "speaker":
        for key in ("num_frames", "height", "width"):
            if meta[key] == 0:
                raise DatasetError(path, f"{key} is 0", "re-run processing on a non-empty video")
        for key in ("focal", "cx", "cy"):
            value = meta[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise DatasetError(path, f"{key} is {value!r}, expected a positive number of pixels",
                                   "re-run processing")
    return meta


# ---------------------------------------------------------------------------------------------
# speaker

def _speaker_fix(meta: dict) -> str:
    name = meta.get("name", "<name>")
    return (f"re-run processing for this speaker (`python -m geneface.process speaker={name} "
            f"video=<file>`) or rewrite it with geneface.data.speaker.write_speaker_dataset")


def _validate_speaker(root: Path, meta: dict) -> ValidationReport:
    fix = _speaker_fix(meta)
    num_frames, height, width = meta["num_frames"], meta["height"], meta["width"]
    symbols: dict[str, int] = {"T": num_frames, "A": contract.FEATURES_PER_FRAME * num_frames}

    # Every required array file exists; then dtype and shape of each present one.
    for spec in contract.SPEAKER_ARRAYS:
        path = root / f"{spec.name}.npy"
        if spec.required and not path.exists():
            raise DatasetError(path, f"missing array file {path.name} ('{spec.name}': {spec.doc})", fix)
    arrays: dict[str, np.ndarray] = {}
    for spec in contract.SPEAKER_ARRAYS:
        path = root / f"{spec.name}.npy"
        if not path.exists():
            continue
        array = _load_npy(path, fix)
        check_array(path, spec, array, symbols, fix, num_frames)
        arrays[spec.name] = array

    # Audio: 16 kHz mono, exactly T·640 samples.
    wav = root / contract.SPEAKER_AUDIO
    if not wav.exists():
        raise DatasetError(wav, f"missing {contract.SPEAKER_AUDIO} (16 kHz mono, T·640 samples)", fix)
    try:
        info = sf.info(str(wav))
    except Exception as err:  # soundfile raises its own LibsndfileError / RuntimeError
        raise DatasetError(wav, f"cannot be read as audio ({err})", fix) from None
    if info.samplerate != contract.SAMPLE_RATE or info.channels != 1:
        raise DatasetError(wav, f"expected {contract.SAMPLE_RATE} Hz mono, found {info.samplerate} Hz with "
                                f"{info.channels} channels", fix)
    expected_samples = num_frames * contract.SAMPLES_PER_FRAME
    if info.frames != expected_samples:
        raise DatasetError(
            wav, f"audio has {info.frames} samples but the video has {num_frames} frames; expected exactly "
                 f"{contract.SAMPLES_PER_FRAME} per frame ({expected_samples})",
            "cut or pad the audio to T·640 samples (geneface.media.features.fit_to_frames) "
            "and re-run processing")

    # frames/ and labels/: exactly T files named 000000.jpg … / 000000.png.
    size_bytes = sum(p.stat().st_size for p in root.iterdir() if p.is_file())
    for folder, ext in ((contract.SPEAKER_FRAMES_DIR, "jpg"), (contract.SPEAKER_LABELS_DIR, "png")):
        size_bytes += _check_image_folder(root / folder, ext, num_frames, fix)

    # Background and one frame / one label: sizes and label values.
    _check_image(root / contract.SPEAKER_BACKGROUND, height, width, 3, fix)
    _check_image(root / contract.SPEAKER_FRAMES_DIR / frame_name(0, "jpg"), height, width, 3, fix)
    label_path = root / contract.SPEAKER_LABELS_DIR / frame_name(0, "png")
    label = _check_image(label_path, height, width, None, fix)
    allowed = [int(v) for v in contract.Label]
    if not np.isin(label, allowed).all():
        bad = sorted(set(np.unique(label).tolist()) - set(allowed))
        raise DatasetError(label_path, f"label values {bad[:8]} are not in contract.Label {allowed} "
                                       f"(background/head/neck/torso)", fix)

    # The split.
    meta_path = root / contract.META_FILE
    if meta["num_train"] != contract.num_train_frames(num_frames):
        raise DatasetError(meta_path, f"num_train is {meta['num_train']}, expected ⌊10·T/11⌋ = "
                                      f"{contract.num_train_frames(num_frames)} for T = {num_frames}", fix)

    # Values: finite floats, positive std, landmarks68 the iBUG subset of landmarks478, poses.
    for spec in contract.SPEAKER_ARRAYS:
        if spec.name in arrays and spec.dtype.startswith("float"):
            check_finite(root / f"{spec.name}.npy", spec.name, arrays[spec.name], fix)
    std = arrays["idexp_lm3d_std"]
    if not (std > 0).all():
        where = tuple(int(i) for i in np.argwhere(~(std > 0))[0])
        raise DatasetError(root / "idexp_lm3d_std.npy",
                           f"idexp_lm3d_std must be > 0 everywhere; found {float(std[where])} "
                           f"at [point, coord] {list(where)}", fix)
    _check_landmarks68(root, arrays["landmarks478"], arrays["landmarks68"], fix)
    _check_poses(root, arrays["head_R"], arrays["head_t"], arrays["c2w"], fix)
    mean_shape = arrays["mean_shape"]
    span = float(np.linalg.norm(mean_shape[45] - mean_shape[36]))
    if abs(span - 1.0) > _EYE_SPAN_RTOL:
        raise DatasetError(root / "mean_shape.npy",
                           f"the outer eye corners (iBUG 36, 45) of mean_shape are {span:.4g} apart; "
                           f"the head unit is that distance, so expected 1", fix)

    hubert = arrays.get("hubert")
    return ValidationReport(
        root=root, kind="speaker", name=str(meta["name"]), schema_version=meta["schema_version"],
        num_frames=num_frames, num_train=meta["num_train"], num_val=num_frames - meta["num_train"],
        duration_s=num_frames / contract.FPS, size_bytes=size_bytes, height=height, width=width,
        focal=float(meta["focal"]), hubert_dim=None if hubert is None else int(hubert.shape[1]))


def _load_npy(path: Path, fix: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:
        raise DatasetError(path, f"cannot be read as a .npy array ({err})", fix) from None


def _check_image_folder(folder: Path, ext: str, num_frames: int, fix: str) -> int:
    """Exactly T files 000000.<ext> … ; returns their total size in bytes."""
    if not folder.is_dir():
        raise DatasetError(folder, f"missing folder {folder.name}/ (T = {num_frames} files "
                                   f"000000.{ext} …)", fix)
    names: dict[str, int] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.startswith("."):
                names[entry.name] = entry.stat().st_size if entry.is_file() else -1
    for i in range(num_frames):
        name = frame_name(i, ext)
        if names.get(name, -1) < 0:
            last = frame_name(num_frames - 1, ext)
            raise DatasetError(folder / name, f"missing {folder.name}/{name}: {folder.name}/ must hold "
                                              f"exactly T = {num_frames} files 000000.{ext} … {last}, "
                                              f"found {len(names)} entries", fix)
    if len(names) != num_frames:
        expected = {frame_name(i, ext) for i in range(num_frames)}
        extra = sorted(set(names) - expected)
        raise DatasetError(folder / extra[0], f"unexpected file in {folder.name}/: expected exactly "
                                              f"T = {num_frames} files, found {len(names)} "
                                              f"({len(extra)} extra)", fix)
    return sum(names.values())


def _check_image(path: Path, height: int, width: int, channels: int | None, fix: str) -> np.ndarray:
    """channels None: a single-channel uint8 label map."""
    if not path.exists():
        raise DatasetError(path, f"missing image {path.name}", fix)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(path, "cannot be decoded as an image", fix)
    expected = (height, width) if channels is None else (height, width, channels)
    kind = "single-channel uint8 label map" if channels is None else "RGB image"
    if image.shape != expected or image.dtype != np.uint8:
        raise DatasetError(path, f"expected a {kind} of shape H×W{'' if channels is None else '×3'} = "
                                 f"{fmt_shape(expected)} uint8 (meta height × width), found "
                                 f"{fmt_shape(image.shape)} {image.dtype}", fix)
    return image


def _check_landmarks68(root: Path, lm478: np.ndarray, lm68: np.ndarray, fix: str) -> None:
    index = list(MEDIAPIPE_TO_IBUG68)
    for start in range(0, lm478.shape[0], CHUNK):
        a = np.asarray(lm68[start : start + CHUNK], dtype=np.float64)
        b = np.asarray(lm478[start : start + CHUNK], dtype=np.float64)[:, index]
        err = np.abs(a - b)
        if (err > _LANDMARK_ATOL).any():
            t, k, _ = (int(i) for i in np.unravel_index(err.argmax(), err.shape))
            raise DatasetError(
                root / "landmarks68.npy",
                f"landmarks68 must equal landmarks478[:, MEDIAPIPE_TO_IBUG68]; frame {start + t}, point {k} "
                f"(MediaPipe {index[k]}) differs by {float(err.max()):.4g} px",
                "derive it with geneface.data.landmarks.ibug68_from_mediapipe and re-run processing")


def _check_poses(root: Path, head_R: np.ndarray, head_t: np.ndarray, c2w: np.ndarray, fix: str) -> None:
    for start in range(0, head_R.shape[0], CHUNK):
        R = np.asarray(head_R[start : start + CHUNK], dtype=np.float64)
        t = np.asarray(head_t[start : start + CHUNK], dtype=np.float64)
        M = np.asarray(c2w[start : start + CHUNK], dtype=np.float64)
        ortho = np.abs(R @ R.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2))
        det = np.linalg.det(R)
        bad = np.flatnonzero((ortho > _POSE_ATOL) | (np.abs(det - 1) > _POSE_ATOL))
        if bad.size:
            b = bad[0]
            raise DatasetError(root / "head_R.npy",
                               f"head_R[{start + b}] is not a rotation "
                               f"(|R·Rᵀ − I| = {ortho[b]:.3g}, det = {det[b]:.4g})", fix)
        Rt = R.transpose(0, 2, 1)
        expected = np.zeros_like(M)
        expected[:, :3, :3] = Rt
        expected[:, :3, 3] = -(Rt @ t[:, :, None])[:, :, 0]
        expected[:, 3, 3] = 1.0
        scale = 1.0 + np.abs(t).max(axis=1)
        err = np.abs(M - expected).max(axis=(1, 2)) / scale
        bad = np.flatnonzero(err > _POSE_ATOL)
        if bad.size:
            raise DatasetError(root / "c2w.npy",
                               f"c2w[{start + bad[0]}] is not [Rᵀ | −Rᵀt; 0 0 0 1] of head_R, head_t "
                               f"(relative error {err[bad[0]]:.3g})", fix)
