"""Data for the postnet stage (GeneFace §5): length-bucketed corpus batches, each paired with the
target speaker's *whole* sequence of the same split (train frames for training, val frames for
validation) as a single item.

A batch: {"corpus": MotionCollator's dict ("audio" [B, 2T, F], "motion" [B, T, 204], "mask" [B, T], ...),
          "speaker": {"audio" [1, 2S, F], "motion" [1, S, 204], "mask" [1, S]}} with S trimmed down
to a multiple of `multiple` (the VAE's TIME_STRIDE; the original trimmed to 8 for HuBERT frames).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from geneface.data.corpus import CorpusDataset
from geneface.data.motion_batches import bucketed_loader
from geneface.data.speaker import read_meta
from geneface.models.audio2motion import TIME_STRIDE
from geneface.models.syncnet import AUDIO_PER_FRAME


def speaker_sequence(root: str | Path, split: str, audio_key: str = "mel", multiple: int = TIME_STRIDE) -> dict[str, torch.Tensor]:
    """One speaker split as a single item: {"audio" [1, 2S, F], "motion" [1, S, 204], "mask" [1, S]}."""
    root = Path(root)
    meta = read_meta(root)
    start, stop = (0, meta["num_train"]) if split == "train" else (meta["num_train"], meta["num_frames"])
    audio = np.load(root / f"{audio_key}.npy", mmap_mode="r")
    idexp = np.load(root / "idexp_lm3d.npy", mmap_mode="r")
    stop = min(stop, audio.shape[0] // AUDIO_PER_FRAME, idexp.shape[0])
    frames = (stop - start) // multiple * multiple
    if frames < multiple:
        raise ValueError(f"speaker {root} has fewer than {multiple} {split} frames")
    motion = torch.from_numpy(np.array(idexp[start:start + frames])).float().reshape(1, frames, -1)
    feats = torch.from_numpy(np.array(audio[AUDIO_PER_FRAME * start:AUDIO_PER_FRAME * (start + frames)])).float()
    return {"audio": feats[None], "motion": motion, "mask": torch.ones(1, frames)}


class WithSpeaker:
    """Collate: the corpus collate's batch under "corpus", plus a fixed speaker item under "speaker"."""

    def __init__(self, collate: Callable, speaker: dict[str, torch.Tensor]):
        self.collate, self.speaker = collate, speaker

    def __call__(self, items: list[dict]) -> dict:
        return {"corpus": self.collate(items), "speaker": self.speaker}


class PostnetDataModule(L.LightningDataModule):
    """Corpus at `corpus_root` (bucketed like audio2motion), target speaker at `speaker_root`, which
    must be a speaker dataset (`speaker_kind` "speaker"). Nothing is read before `setup`."""

    def __init__(self, corpus_root: str, speaker_root: str, speaker_kind: str, train_collate: Callable,
                 val_collate: Callable, max_frames_per_batch: int = 30000, max_clips: int = 512,
                 seed: int = 0, num_workers: int = 0, min_frames: int = 32, multiple: int = TIME_STRIDE,
                 audio_key: str = "mel"):
        super().__init__()
        self.corpus_root, self.speaker_root, self.speaker_kind = str(corpus_root), str(speaker_root), speaker_kind
        self.train_collate, self.val_collate = train_collate, val_collate
        self.max_frames_per_batch, self.max_clips, self.seed = max_frames_per_batch, max_clips, seed
        self.num_workers, self.min_frames, self.multiple, self.audio_key = num_workers, min_frames, multiple, audio_key
        self.corpus: dict[str, CorpusDataset] = {}
        self.speaker: dict[str, dict] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.speaker_kind != "speaker":
            raise ValueError(f"the postnet stage adapts to one target speaker: speaker= must name a speaker "
                             f"dataset (kind 'speaker'), got kind {self.speaker_kind!r} at {self.speaker_root}. "
                             f"Example: python -m geneface.train stage=postnet speaker=demo")
        if not self.corpus:
            for split in ("train", "val"):
                self.corpus[split] = CorpusDataset(self.corpus_root, split, min_frames=self.min_frames)
                self.speaker[split] = speaker_sequence(self.speaker_root, split, self.audio_key, self.multiple)

    def _loader(self, split: str, shuffle: bool, collate: Callable) -> DataLoader:
        return bucketed_loader(self.corpus[split], self.max_frames_per_batch, self.max_clips, shuffle, self.seed,
                               self.multiple, WithSpeaker(collate, self.speaker[split]), self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.train_collate)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.val_collate)
