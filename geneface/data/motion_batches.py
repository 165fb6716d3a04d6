"""Batches of whole clips for the audio→motion stage: padding with frame masks, and length buckets.

GeneFace §2 sorts clips by "size" and cuts batches of at most 60000 audio frames / 512 clips.
**[quirk fixed]** its size was `mel.shape[-1]`, the 80 mel bins rather than the length, so every
clip had the same size, length sorting did nothing and every batch held 512 clips of any length.
Here a clip's size is its length in frames: `LengthBucketBatchSampler` groups clips of similar
length, and a batch's padded frame count (clips × longest clip, rounded up to the stride)
stays within `max_frames_per_batch`.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from geneface.models.audio2motion import TIME_STRIDE
from geneface.models.syncnet import AUDIO_PER_FRAME


def padded_frames(num_frames: int, multiple: int = TIME_STRIDE) -> int:
    """Length after padding to a multiple of the latent stride."""
    return -(-num_frames // multiple) * multiple


def time_stretch(sequence: torch.Tensor, length: int) -> torch.Tensor:
    """[N, ...] → [length, ...] by linear interpolation along time (frame k of the result sits at
    k·(N − 1)/(length − 1) of the input): the same sequence, played faster or slower."""
    if length == len(sequence):
        return sequence
    flat = sequence.reshape(len(sequence), -1).T[None].float()                        # [1, D, N]
    out = torch.nn.functional.interpolate(flat, size=length, mode="linear", align_corners=True)
    return out[0].T.reshape(length, *sequence.shape[1:]).to(sequence.dtype)


def frequency_warp(features: torch.Tensor, factor: float) -> torch.Tensor:
    """[N, F] log-mel → the same frames with bin k read at k·factor (linear interpolation, the top bin
    repeated past the end): formants and pitch moved up (factor < 1) or down, as in a longer or
    shorter vocal tract — another voice saying the same thing (Jaitly & Hinton 2013, VTLP)."""
    bins = features.shape[-1]
    position = (torch.arange(bins, dtype=torch.float32) * factor).clamp(max=bins - 1)
    low = position.floor().long()
    high = (low + 1).clamp(max=bins - 1)
    frac = (position - low).to(features.dtype)
    return features[..., low] * (1 - frac) + features[..., high] * frac


def mask_bands(features: torch.Tensor, bands: int, max_width: int, axis: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """[N, F] features → a copy with `bands` random stretches of 1 to `max_width` rows (axis 0, time)
    or bins (axis 1, frequency) set to each bin's mean over the clip (SpecAugment, Park et al. 2019).
    The mean, not zero: after the model's per-utterance normalisation a masked stretch reads 0, a
    silence of information rather than a loud or quiet sound."""
    out = features.clone()
    size = out.shape[axis]
    if bands <= 0 or max_width <= 0 or size < 2:
        return out
    mean = features.float().mean(0, keepdim=True).to(features.dtype)                 # [1, F]
    for _ in range(bands):
        width = int(torch.randint(1, min(max_width, size - 1) + 1, (), generator=generator))
        start = int(torch.randint(0, size - width + 1, (), generator=generator))
        if axis == 0:
            out[start:start + width] = mean
        else:
            out[:, start:start + width] = mean[:, start:start + width]
    return out


class MotionCollator:
    """Clips → {"motion" [B, T, 204], "audio" [B, 2T, F], "mask" [B, T], "audio_mask" [B, 2T],
    "lengths" [B], "item_id" list, "speaker_id" [B]}: T is the longest clip padded to a multiple of
    `multiple` (the VAE's TIME_STRIDE), audio is cut/padded to exactly 2T, padding is zero.

    `tempo` (lo, hi), for training: each clip is played at a speed drawn uniformly from [lo, hi] — its
    features and its landmarks resampled together (time_stretch), so the pairing stays exact — a
    speed perturbation of the speech without its change of pitch. `frequency_warp` (lo, hi): each
    clip's mel bins are warped by a factor drawn from [lo, hi] (`frequency_warp`), another voice for
    the same mouth. `freq_masks` × up to `freq_mask_bins` bins and `time_masks` × up to
    `time_mask_frames` audio frames per clip are masked (`mask_bands`, SpecAugment), so no single band
    or instant of one voice can carry the prediction. None / 0: clips as they are."""

    def __init__(self, audio_key: str = "mel", multiple: int = TIME_STRIDE,
                 tempo: tuple[float, float] | list[float] | None = None,
                 frequency_warp: tuple[float, float] | list[float] | None = None,
                 freq_masks: int = 0, freq_mask_bins: int = 0, time_masks: int = 0, time_mask_frames: int = 0):
        self.audio_key, self.multiple = audio_key, multiple
        self.tempo = _range("tempo", tempo)
        self.frequency_warp = _range("frequency_warp", frequency_warp)
        self.freq_masks, self.freq_mask_bins = int(freq_masks), int(freq_mask_bins)
        self.time_masks, self.time_mask_frames = int(time_masks), int(time_mask_frames)
        if min(self.freq_masks, self.freq_mask_bins, self.time_masks, self.time_mask_frames) < 0:
            raise ValueError("freq_masks, freq_mask_bins, time_masks and time_mask_frames must be ≥ 0")

    @property
    def masks_bands(self) -> bool:
        return self.freq_masks * self.freq_mask_bins > 0 or self.time_masks * self.time_mask_frames > 0

    @property
    def perturbs(self) -> bool:
        return self.tempo is not None or self.frequency_warp is not None or self.masks_bands

    def _perturbed(self, item: dict) -> dict:
        if self.masks_bands:
            features = torch.as_tensor(item[self.audio_key])
            features = mask_bands(features, self.freq_masks, self.freq_mask_bins, axis=1)
            features = mask_bands(features, self.time_masks, self.time_mask_frames, axis=0)
            item = {**item, self.audio_key: features}
        if self.frequency_warp is not None:
            factor = float(torch.empty(()).uniform_(*self.frequency_warp))
            item = {**item, self.audio_key: frequency_warp(torch.as_tensor(item[self.audio_key]), factor)}
        if self.tempo is None:
            return item
        n = min(item["idexp_lm3d"].shape[0], item[self.audio_key].shape[0] // AUDIO_PER_FRAME)
        speed = float(torch.empty(()).uniform_(*self.tempo))
        new = max(2, int(round(n / speed)))
        return {**item, "idexp_lm3d": time_stretch(torch.as_tensor(item["idexp_lm3d"][:n]), new),
                self.audio_key: time_stretch(torch.as_tensor(item[self.audio_key][: AUDIO_PER_FRAME * n]),
                                             AUDIO_PER_FRAME * new)}

    def __call__(self, items: list[dict]) -> dict:
        if self.perturbs:
            items = [self._perturbed(it) for it in items]
        lengths = [min(it["idexp_lm3d"].shape[0], it[self.audio_key].shape[0] // AUDIO_PER_FRAME) for it in items]
        T = padded_frames(max(lengths), self.multiple)
        feat_dim = items[0][self.audio_key].shape[-1]
        motion = torch.zeros(len(items), T, 204)
        audio = torch.zeros(len(items), AUDIO_PER_FRAME * T, feat_dim)
        mask = torch.zeros(len(items), T)
        for b, (it, n) in enumerate(zip(items, lengths)):
            motion[b, :n] = torch.as_tensor(it["idexp_lm3d"][:n]).float().reshape(n, -1)
            audio[b, : AUDIO_PER_FRAME * n] = torch.as_tensor(it[self.audio_key][: AUDIO_PER_FRAME * n]).float()
            mask[b, :n] = 1
        return {
            "motion": motion, "audio": audio, "mask": mask,
            "audio_mask": mask.repeat_interleave(AUDIO_PER_FRAME, dim=1),
            "lengths": torch.tensor(lengths),
            "item_id": [it["item_id"] for it in items],
            "speaker_id": torch.tensor([int(it["speaker_id"]) for it in items]),
        }


def _range(name: str, value) -> tuple[float, float] | None:
    if value is None:
        return None
    if not 0 < float(value[0]) <= float(value[1]):
        raise ValueError(f"{name} must be (lo, hi) with 0 < lo ≤ hi, e.g. [0.9, 1.1]; got {value}")
    return float(value[0]), float(value[1])


class LengthBucketBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices with similar lengths (in frames).

    Clips are sorted by length (ties broken at random) and cut greedily into batches whose padded
    size — clips × longest length rounded up to `multiple` — is at most `max_frames_per_batch`, with
    at most `max_clips` clips. A clip longer than the budget gets a batch of its own. With `shuffle`
    the tie-breaking and the order of the batches change every epoch, deterministically from
    (`seed`, epoch); the epoch advances on each pass or is set with `set_epoch`.
    Under DDP (torch.distributed initialised; the stage sets trainer.use_distributed_sampler=false) each rank takes every world-size-th batch of the same
    epoch's list, so ranks see disjoint batches and the same number of them.
    """

    def __init__(self, lengths: Sequence[int], max_frames_per_batch: int, max_clips: int = 512,
                 shuffle: bool = True, seed: int = 0, multiple: int = TIME_STRIDE):
        if max_frames_per_batch < 1 or max_clips < 1:
            raise ValueError("max_frames_per_batch and max_clips must be positive")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_frames, self.max_clips = max_frames_per_batch, max_clips
        self.shuffle, self.seed, self.multiple = shuffle, seed, multiple
        self.epoch = 0
        self._num_batches = len(self._batches(0))

    @staticmethod
    def _world() -> tuple[int, int]:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size(), dist.get_rank()
        return 1, 0

    def _shard(self, batches: list[list[int]]) -> list[list[int]]:
        world, rank = self._world()
        if world == 1:
            return batches
        if len(batches) < world:  # too few batches: repeat so every rank has one
            batches = (batches * world)[:world]
        usable = len(batches) - len(batches) % world  # equal counts, or DDP ranks would wait forever
        return batches[rank:usable:world]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        order = order[np.argsort(self.lengths[order], kind="stable")]
        batches, current, longest = [], [], 0
        for i in order.tolist():
            size = padded_frames(int(self.lengths[i]), self.multiple)
            new_longest = max(longest, size)
            if current and (new_longest * (len(current) + 1) > self.max_frames or len(current) >= self.max_clips):
                batches.append(current)
                current, new_longest = [], size
            current.append(i)
            longest = new_longest
        if current:
            batches.append(current)
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._shard(self._batches(self.epoch))
        self.epoch += 1
        return iter(batches)

    def __len__(self) -> int:
        world, _ = self._world()
        return max(1, self._num_batches // world) if world > 1 else self._num_batches


def bucketed_loader(dataset, max_frames_per_batch: int, max_clips: int, shuffle: bool, seed: int,
                    multiple: int, collate: Callable, num_workers: int = 0) -> DataLoader:
    """A DataLoader over `dataset` (with `lengths()`) in LengthBucketBatchSampler batches."""
    sampler = LengthBucketBatchSampler(dataset.lengths(), max_frames_per_batch, max_clips, shuffle=shuffle,
                                       seed=seed, multiple=multiple)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                      persistent_workers=num_workers > 0)
