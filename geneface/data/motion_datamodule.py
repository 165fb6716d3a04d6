"""SequenceDataModule with length-bucketed batches (by frames), for the audio→motion stage."""

from __future__ import annotations

from typing import Callable

from torch.utils.data import DataLoader, Dataset

from geneface.data.datamodules import SequenceDataModule
from geneface.data.motion_batches import bucketed_loader
from geneface.models.audio2motion import TIME_STRIDE


class BucketedSequenceDataModule(SequenceDataModule):
    """Like SequenceDataModule, but each batch holds clips of similar length and at most
    `max_frames_per_batch` padded frames / `max_clips` clips (see motion_batches). Train batches are
    shuffled per epoch from `seed`; val batches are fixed. `batch_size` is unused."""

    def __init__(self, root: str, kind: str, train_collate: Callable, val_collate: Callable,
                 max_frames_per_batch: int = 4000, max_clips: int = 512, val_max_frames_per_batch: int | None = None,
                 seed: int = 0, num_workers: int = 0, min_frames: int = 8, clip_frames: int = 100,
                 multiple: int = TIME_STRIDE, extra_train: list[Dataset] | None = None, train_repeat: int = 1):
        super().__init__(root, kind, train_collate, val_collate, batch_size=1, num_workers=num_workers,
                         min_frames=min_frames, clip_frames=clip_frames, extra_train=extra_train,
                         train_repeat=train_repeat)
        self.max_frames_per_batch, self.max_clips, self.seed, self.multiple = max_frames_per_batch, max_clips, seed, multiple
        self.val_max_frames_per_batch = val_max_frames_per_batch or max_frames_per_batch

    def _bucketed(self, dataset: Dataset, max_frames: int, shuffle: bool, collate: Callable) -> DataLoader:
        return bucketed_loader(dataset, max_frames, self.max_clips, shuffle, self.seed, self.multiple, collate,
                               self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._bucketed(self.train_set, self.max_frames_per_batch, True, self.train_collate)

    def val_dataloader(self) -> DataLoader:
        return self._bucketed(self.val_set, self.val_max_frames_per_batch, False, self.val_collate)
