"""Builds SyncNet training pairs from a batch of clips: aligned (positive) and misaligned windows.

GeneFace §3 draws half positives and, for negatives, 25% "other clip" audio, else 50% a random other
start in the same clip, else a small offset of 2–5 frames. **[quirk fixed]** the original re-read the
audio of the current clip afterwards, so its "other clip" negatives were same-clip ones; here they
really come from another clip of the batch (another speaker when the batch has one).
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from geneface.data.landmarks import MOUTH
from geneface.models.syncnet import AUDIO_PER_FRAME, WINDOW_FRAMES


def mouth_sequence(idexp_lm3d: torch.Tensor) -> torch.Tensor:
    """[..., T, 68, 3] or [..., T, 204] → [..., T, 60] (points 48–67)."""
    if idexp_lm3d.shape[-1] == 204:
        idexp_lm3d = idexp_lm3d.unflatten(-1, (68, 3))
    return idexp_lm3d[..., MOUTH[0] : MOUTH[-1] + 1, :].flatten(-2)


class SyncPairCollator:
    """Collate clips into `num_pairs` (mouth [N,5,60], audio [N,10,F], label [N]) pairs.

    With `seed` set the pairs depend only on the seed and the clips' ids (reproducible validation);
    without it they follow torch's RNG, which Lightning seeds per worker.
    """

    def __init__(self, num_pairs: int = 1024, audio_key: str = "mel", p_other_clip: float = 0.25,
                 p_random_start: float = 0.5, min_offset: int = 2, max_offset: int = 5, seed: int | None = None):
        self.num_pairs, self.audio_key, self.seed = num_pairs, audio_key, seed
        self.p_other_clip, self.p_random_start = p_other_clip, p_random_start
        self.min_offset, self.max_offset = min_offset, max_offset

    def _rng(self, items: list[dict]) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))
        ids = "|".join(str(it["item_id"]) for it in items)
        return np.random.default_rng([self.seed, zlib.crc32(ids.encode())])

    def _negative_audio(self, rng, items, c: int, start: int) -> tuple[int, int]:
        """(clip, start) of audio that does not match the mouth window (c, start)."""
        num_frames = items[c]["mouth"].shape[0]
        others = [j for j in range(len(items)) if j != c]
        other_speaker = [j for j in others if items[j]["speaker_id"] != items[c]["speaker_id"]]
        if others and rng.random() < self.p_other_clip:
            j = int(rng.choice(other_speaker or others))
            return j, int(rng.integers(0, items[j]["mouth"].shape[0] - WINDOW_FRAMES + 1))
        last = num_frames - WINDOW_FRAMES
        if rng.random() < self.p_random_start:
            starts = np.arange(last + 1)
        else:
            starts = start + np.arange(-self.max_offset, self.max_offset + 1)
            starts = starts[(starts >= 0) & (starts <= last)]
        candidates = starts[np.abs(starts - start) >= self.min_offset]
        if len(candidates) == 0:  # clip too short for this kind of negative
            candidates = np.flatnonzero(np.arange(last + 1) != start)
        if len(candidates) == 0:
            return c, start
        return c, int(rng.choice(candidates))

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        rng = self._rng(items)
        items = [{**it, "mouth": mouth_sequence(it["idexp_lm3d"])} for it in items]
        mouths, audios, labels = [], [], []
        for k in range(self.num_pairs):
            c = k % len(items)
            start = int(rng.integers(0, items[c]["mouth"].shape[0] - WINDOW_FRAMES + 1))
            positive = rng.random() < 0.5
            a_clip, a_start = (c, start) if positive else self._negative_audio(rng, items, c, start)
            mouths.append(items[c]["mouth"][start : start + WINDOW_FRAMES])
            a0 = AUDIO_PER_FRAME * a_start
            audios.append(items[a_clip][self.audio_key][a0 : a0 + AUDIO_PER_FRAME * WINDOW_FRAMES])
            labels.append(float(positive))
        return {"mouth": torch.stack(mouths).float(), "audio": torch.stack(audios).float(),
                "label": torch.tensor(labels)}
