"""Corpus format: one `.npz` record per clip plus an index; written clip by clip, read as a stream.

Layout: `<root>/clips/<speaker>/<clip>.npz` (arrays of contract.CLIP_ARRAYS), `<root>/index.tsv`
and `<root>/meta.json`, the last two rebuilt from the clips by `finalize_corpus`. Clip files are
written atomically, so a killed job leaves only complete clips and a re-run skips them.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from geneface.data import contract
from geneface.utils.io import save_json, save_npz, save_text


@dataclass(frozen=True)
class ClipEntry:
    item_id: str      # "<speaker>/<clip>"
    speaker: str
    path: str         # relative to the corpus root
    num_frames: int
    split: str


def clip_path(root: str | Path, speaker: str, clip: str) -> Path:
    return Path(root) / contract.CORPUS_CLIPS_DIR / speaker / f"{clip}.npz"


def write_clip(root: str | Path, speaker: str, clip: str, arrays: dict[str, np.ndarray]) -> Path:
    """Atomically write one clip record; arrays are cast to the contract's dtypes."""
    cast = contract.cast_to_contract(arrays, contract.CLIP_ARRAYS, f"clip {speaker}/{clip}")
    out = clip_path(root, speaker, clip)
    save_npz(out, **cast)
    return out


def default_split(item_id: str, val_every: int) -> str:
    """Stable split by a hash of the item id: about 1 clip in `val_every` validates (LRS3: 100)."""
    digest = int(hashlib.sha1(item_id.encode()).hexdigest()[:8], 16)
    return "val" if digest % val_every == 0 else "train"


SPLIT_RULES = ("clip", "speaker")


def speaker_hash(speaker: str) -> float:
    """A speaker name → a stable number in [0, 1): the speaker-disjoint split's draw."""
    return int(hashlib.sha1(speaker.encode()).hexdigest()[:8], 16) / 2 ** 32


def speaker_split(speaker: str, val_fraction: float) -> str:
    """Stable split of a whole speaker by a hash of its name: about `val_fraction` of the speakers
    validate, with all their clips, so val holds only people the models never saw. A speaker's split
    depends on its name alone: it never changes when the corpus grows."""
    return "val" if speaker_hash(speaker) < val_fraction else "train"


def _splits(entries: list[ClipEntry], split_by: str, val_every: int, val_speaker_fraction: float,
            val_speakers: tuple[str, ...] | list[str] | None) -> list[str]:
    """Each entry's split under the rule (finalize_corpus documents it)."""
    if split_by not in SPLIT_RULES:
        raise ValueError(f"split_by must be one of {SPLIT_RULES}, got {split_by!r}")
    if split_by == "clip":
        splits = [default_split(e.item_id, val_every) for e in entries]
        if "val" not in splits:              # tiny corpora: keep one val clip
            splits[-1] = "val"
        return splits
    speakers = sorted({e.speaker for e in entries})
    if len(speakers) < 2:
        raise ValueError(f"a speaker-disjoint split needs at least 2 speakers; this corpus has {speakers}. "
                         f"Split by clip instead (split_by=clip)")
    if val_speakers is not None:
        unknown = sorted(set(val_speakers) - set(speakers))
        if unknown or not val_speakers:
            raise ValueError(f"val_speakers {list(val_speakers)} must name some of the corpus's speakers "
                             f"({', '.join(speakers)}); not there: {unknown}")
        held_out = set(val_speakers)
    else:
        held_out = {s for s in speakers if speaker_split(s, val_speaker_fraction) == "val"}
        if not held_out:                     # few speakers: the one with the smallest draw validates
            held_out = {min(speakers, key=speaker_hash)}
    if held_out == set(speakers):
        raise ValueError(f"every speaker would validate ({sorted(held_out)}); lower val_speaker_fraction "
                         f"or name fewer val_speakers")
    return ["val" if e.speaker in held_out else "train" for e in entries]


def finalize_corpus(root: str | Path, name: str, val_every: int = 100, min_frames: int = 1,
                    split_by: str = "clip", val_speaker_fraction: float = 0.2,
                    val_speakers: tuple[str, ...] | list[str] | None = None) -> list[ClipEntry]:
    """Scan the clips, write index.tsv and then meta.json (which marks the corpus complete).

    The split: `split_by="clip"`, about 1 clip in `val_every` by a hash of its id (LRS3's rule; the
    last clip validates if none does); `split_by="speaker"`, whole speakers by a hash of their name,
    about `val_speaker_fraction` of them (at least one, never all), or exactly `val_speakers`. Only the
    index is rewritten, so a corpus is re-split in seconds, without re-processing its clips."""
    root = Path(root)
    entries = []
    for npz in sorted((root / contract.CORPUS_CLIPS_DIR).glob("*/*.npz")):
        speaker, clip = npz.parent.name, npz.stem
        with np.load(npz) as data:
            num_frames = int(data["idexp_lm3d"].shape[0])
        if num_frames < min_frames:
            continue
        entries.append(ClipEntry(f"{speaker}/{clip}", speaker, str(npz.relative_to(root)), num_frames, ""))
    if not entries:
        raise ValueError(f"{root}: no clip of at least {min_frames} frames under {contract.CORPUS_CLIPS_DIR}/; "
                         f"nothing to index")
    splits = _splits(entries, split_by, val_every, val_speaker_fraction, val_speakers)
    entries = [ClipEntry(e.item_id, e.speaker, e.path, e.num_frames, split) for e, split in zip(entries, splits)]
    rows = ["\t".join(contract.INDEX_COLUMNS)]
    rows += [f"{e.item_id}\t{e.speaker}\t{e.path}\t{e.num_frames}\t{e.split}" for e in entries]
    save_text(root / contract.INDEX_FILE, "\n".join(rows) + "\n")
    save_json(root / contract.META_FILE, {
        "schema_version": contract.SCHEMA_VERSION, "kind": "corpus", "name": name,
        "fps": contract.FPS, "feature_rate": contract.FEATURE_RATE, "num_clips": len(entries),
        "num_speakers": len({e.speaker for e in entries}),
        "num_frames": sum(e.num_frames for e in entries),
        "split_by": split_by,
        "val_speakers": sorted({e.speaker for e in entries if e.split == "val"}),
    })
    return entries


def read_index(root: str | Path) -> list[ClipEntry]:
    root = Path(root)
    index = root / contract.INDEX_FILE
    if not (root / contract.META_FILE).exists() or not index.exists():
        raise FileNotFoundError(
            f"{root} is not a finished corpus (no {contract.META_FILE} / {contract.INDEX_FILE}): it was never "
            f"written or its writing was interrupted. Write it again (the synthetic one: "
            f"`python -m geneface.synthetic`), then check it with `python -m geneface.data.check {root}`.")
    with open(index, newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        return [ClipEntry(r["item_id"], r["speaker"], r["path"], int(r["num_frames"]), r["split"])
                for r in reader]


class CorpusDataset(Dataset):
    """Map-style view of one split; each item is loaded from its own file when asked for.

    Only the index is held in memory, so the corpus may be far larger than RAM.
    Item: {"item_id", "speaker", "mel" [A,80], "f0" [A], "idexp_lm3d" [T,68,3]} as tensors (A = 2T).
    """

    def __init__(self, root: str | Path, split: str, min_frames: int = 1, max_frames: int | None = None):
        if split not in contract.SPLITS:
            raise ValueError(f"split must be one of {contract.SPLITS}, got {split!r}")
        self.root = Path(root)
        self.max_frames = max_frames
        index = read_index(self.root)
        self.entries = [e for e in index if e.split == split and e.num_frames >= min_frames]
        if not self.entries:
            raise ValueError(f"corpus {self.root} has no {split} clips of at least {min_frames} frames")
        speakers = sorted({e.speaker for e in index})
        self.speaker_ids = {s: i for i, s in enumerate(speakers)}

    def __len__(self) -> int:
        return len(self.entries)

    def lengths(self) -> list[int]:
        return [e.num_frames for e in self.entries]

    def __getitem__(self, i: int) -> dict:
        entry = self.entries[i]
        with np.load(self.root / entry.path) as data:
            mel, f0, idexp = data["mel"], data["f0"], data["idexp_lm3d"]
        num_frames = idexp.shape[0] if self.max_frames is None else min(idexp.shape[0], self.max_frames)
        return {
            "item_id": entry.item_id,
            "speaker_id": self.speaker_ids[entry.speaker],
            "mel": torch.from_numpy(np.ascontiguousarray(mel[: 2 * num_frames])),
            "f0": torch.from_numpy(np.ascontiguousarray(f0[: 2 * num_frames])),
            "idexp_lm3d": torch.from_numpy(np.ascontiguousarray(idexp[:num_frames])),
        }
