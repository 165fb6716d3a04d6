"""LightningDataModules. The only place in geneface/data that imports Lightning."""

from __future__ import annotations

from typing import Callable

import lightning as L
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from geneface.data.corpus import CorpusDataset
from geneface.data.speaker import SpeakerClips


def sequence_dataset(root: str, kind: str, split: str, min_frames: int = 8, clip_frames: int = 100) -> Dataset:
    """Clips of (audio features, idexp landmarks) from a corpus, or from one speaker cut into clips."""
    if kind == "corpus":
        return CorpusDataset(root, split, min_frames=min_frames)
    if kind == "speaker":
        return SpeakerClips(root, split, clip_frames=clip_frames, min_frames=min_frames)
    raise ValueError(f"dataset kind must be 'corpus' or 'speaker', got {kind!r} (set speaker.kind)")


class JoinedClips(ConcatDataset):
    """Clip datasets as one (each with `lengths()`, for the length buckets)."""

    def lengths(self) -> list[int]:
        return [n for dataset in self.datasets for n in dataset.lengths()]


class SequenceDataModule(L.LightningDataModule):
    """Batches of whole clips for the corpus stages; `train_collate`/`val_collate` turn them into
    what the stage consumes (e.g. SyncNet pairs).

    `extra_train` (datasets, e.g. `sequence_dataset` of a corpus) train beside this dataset's train
    split, which counts `train_repeat` times per epoch: a speaker's minute of video beside a corpus's
    many voices, so a VAE refined on that speaker keeps hearing other people. Validation stays on
    this dataset's val split."""

    def __init__(self, root: str, kind: str, train_collate: Callable, val_collate: Callable,
                 batch_size: int = 64, val_batch_size: int | None = None, num_workers: int = 0,
                 min_frames: int = 8, clip_frames: int = 100, extra_train: list[Dataset] | None = None,
                 train_repeat: int = 1):
        super().__init__()
        if train_repeat < 1:
            raise ValueError(f"train_repeat must be ≥ 1, got {train_repeat}")
        self.extra_train, self.train_repeat = list(extra_train or []), int(train_repeat)
        self.root, self.kind = str(root), kind
        self.train_collate, self.val_collate = train_collate, val_collate
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.num_workers, self.min_frames, self.clip_frames = num_workers, min_frames, clip_frames
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            own = sequence_dataset(self.root, self.kind, "train", self.min_frames, self.clip_frames)
            self.train_set = own if not self.extra_train and self.train_repeat == 1 else \
                JoinedClips([own] * self.train_repeat + self.extra_train)
            self.val_set = sequence_dataset(self.root, self.kind, "val", self.min_frames, self.clip_frames)

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool, collate: Callable) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, True, self.train_collate)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.val_batch_size, False, self.val_collate)
