"""Corpus half of the data-contract validator (see geneface.data.validate): the index, then each
clip, one at a time, so a corpus far larger than memory can be checked."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from tqdm import tqdm

from geneface.data import contract
from geneface.data.checks import PROGRESS_MIN_CLIPS, DatasetError, ValidationReport, check_array, check_finite

# ---------------------------------------------------------------------------------------------
# corpus

_CORPUS_FIX = ("re-process the clip (corpus processing skips finished clips) and rebuild index.tsv and "
               "meta.json with geneface.data.corpus.finalize_corpus")


def validate_corpus(root: Path, meta: dict, max_clips: int | None,
                     progress: bool | None) -> ValidationReport:
    index = root / contract.INDEX_FILE
    if not index.exists():
        raise DatasetError(index, f"missing {contract.INDEX_FILE} (columns {list(contract.INDEX_COLUMNS)})",
                           "rebuild it with geneface.data.corpus.finalize_corpus")
    with open(index, newline="") as f:
        header = f.readline().rstrip("\r\n").split("\t")
        total = sum(1 for line in f if line.strip())
    if tuple(header) != contract.INDEX_COLUMNS:
        raise DatasetError(index, f"header is {header}, expected the columns {list(contract.INDEX_COLUMNS)}",
                           "rebuild it with geneface.data.corpus.finalize_corpus")
    if max_clips is not None and max_clips < 0:
        raise ValueError(f"max_clips must be >= 0, got {max_clips}")
    to_check = total if max_clips is None else min(total, max_clips)
    chosen = None if to_check == total else {(i * total) // to_check for i in range(to_check)}
    show = to_check >= PROGRESS_MIN_CLIPS if progress is None else progress

    symbols: dict[str, int] = {}   # D, shared by every clip
    split_counts = {s: 0 for s in contract.SPLITS}
    speakers: set[str] = set()
    item_ids: set[str] = set()
    frames_total = checked = checked_bytes = 0
    bar = tqdm(total=to_check, desc=f"check {root.name}", unit="clip", disable=not show)
    with open(index, newline="") as f, bar:
        f.readline()
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for i, row in enumerate(r for r in reader if r):
            line = f"{contract.INDEX_FILE} line {i + 2}"
            if len(row) != len(contract.INDEX_COLUMNS):
                columns = list(contract.INDEX_COLUMNS)
                raise DatasetError(index, f"{line} has {len(row)} fields, expected {len(columns)} {columns}",
                                   "rebuild it with finalize_corpus")
            item_id, speaker, rel, num_frames_text, split = row
            try:
                num_frames = int(num_frames_text)
            except ValueError:
                num_frames = -1
            if num_frames <= 0:
                raise DatasetError(index, f"{line} ({item_id}): num_frames is {num_frames_text!r}, "
                                          f"expected a positive integer", "rebuild it with finalize_corpus")
            if split not in contract.SPLITS:
                raise DatasetError(index, f"{line} ({item_id}): split is {split!r}, expected one of "
                                          f"{list(contract.SPLITS)}", "rebuild it with finalize_corpus")
            if item_id in item_ids:
                raise DatasetError(index, f"{line}: item_id {item_id!r} is listed twice",
                                   "rebuild it with finalize_corpus")
            item_ids.add(item_id)
            path = root / rel
            if not path.is_file():
                raise DatasetError(path, f"{line} lists clip {item_id!r} at {rel}, which does not exist",
                                   _CORPUS_FIX)
            if chosen is None or i in chosen:
                _check_clip(path, item_id, num_frames, symbols)
                checked += 1
                checked_bytes += path.stat().st_size
                bar.update(1)
            split_counts[split] += 1
            speakers.add(speaker)
            frames_total += num_frames

    meta_path = root / contract.META_FILE
    num_clips = sum(split_counts.values())
    if meta["num_clips"] != num_clips:
        raise DatasetError(meta_path, f"num_clips is {meta['num_clips']} but {contract.INDEX_FILE} lists "
                                      f"{num_clips} clips", "rebuild index and meta with finalize_corpus")
    for key, found in (("num_frames", frames_total), ("num_speakers", len(speakers))):
        if key in meta and meta[key] != found:
            raise DatasetError(meta_path, f"{key} is {meta[key]} but {contract.INDEX_FILE} gives {found}",
                               "rebuild index and meta with finalize_corpus")
    for split in contract.SPLITS:
        if split_counts[split] == 0:
            raise DatasetError(index, f"the {split} split is empty ({split_counts}); both train and val need "
                                      f"clips", "add clips, or finalize_corpus with a smaller val_every")
    size_bytes = checked_bytes if checked == num_clips else int(checked_bytes / max(checked, 1) * num_clips)
    return ValidationReport(
        root=root, kind="corpus", name=str(meta["name"]), schema_version=meta["schema_version"],
        num_frames=frames_total, num_train=split_counts["train"], num_val=split_counts["val"],
        duration_s=frames_total / contract.FPS, size_bytes=size_bytes, hubert_dim=symbols.get("D"),
        num_clips=num_clips, num_speakers=len(speakers), clips_checked=checked)


def _check_clip(path: Path, item_id: str, index_frames: int, symbols: dict[str, int]) -> None:
    specs = {s.name: s for s in contract.CLIP_ARRAYS}
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DatasetError(path, f"clip {item_id!r} cannot be read as .npz ({err})", _CORPUS_FIX) from None
    with data:
        keys = set(data.files)
        missing = [s.name for s in contract.CLIP_ARRAYS if s.required and s.name not in keys]
        if missing:
            raise DatasetError(path, f"clip {item_id!r} lacks the arrays {missing}", _CORPUS_FIX)
        unknown = sorted(keys - set(specs))
        if unknown:
            raise DatasetError(path, f"clip {item_id!r} holds arrays {unknown} that are not in the contract "
                                     f"{list(specs)}", _CORPUS_FIX)
        try:
            arrays = {k: data[k] for k in specs if k in keys}
        except Exception as err:
            raise DatasetError(path, f"clip {item_id!r} cannot be read ({err})", _CORPUS_FIX) from None
    idexp = arrays["idexp_lm3d"]
    num_frames = int(idexp.shape[0]) if idexp.ndim == 3 else index_frames
    clip_symbols = {"T": num_frames, "A": contract.FEATURES_PER_FRAME * num_frames}
    clip_symbols.update({k: v for k, v in symbols.items() if k not in ("T", "A")})
    where = f" of clip {item_id!r}"
    for name, array in arrays.items():
        check_array(path, specs[name], array, clip_symbols, _CORPUS_FIX, num_frames, where=where)
    if num_frames != index_frames:
        raise DatasetError(path, f"clip {item_id!r} has {num_frames} frames but {contract.INDEX_FILE} "
                                 f"says {index_frames}",
                           "rebuild the index with geneface.data.corpus.finalize_corpus")
    for name, array in arrays.items():
        check_finite(path, name, array, _CORPUS_FIX, where=where)
    symbols.update({k: v for k, v in clip_symbols.items() if k not in ("T", "A")})


