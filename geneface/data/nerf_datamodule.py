"""LightningDataModule of the renderer stages: one frame's random rays per training step, whole val
frames for validation (items are already batched, so the loaders do no collation)."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from geneface.data.frames import train_indices, val_indices
from geneface.data.nerf_rays import RandomRays, SpeakerImages, WholeFrames
from geneface.nerf.condition import WINDOW


class SpeakerRaysDataModule(L.LightningDataModule):
    def __init__(self, root: str, num_rays: int = 65536, patch_size: int = 1, val_frames: int | None = 8,
                 cache_images: bool = False, num_workers: int = 2, seed: int = 0, face_fraction: float = 0.0,
                 audio: bool = False, lip_fraction: float = 0.0, window: int = WINDOW,
                 lip_patch: int = 0):
        """face_fraction / lip_fraction: shares of training rays inside the face rect / around the lips
        (see RandomRays); audio: items carry the frame's mel windows (legacy NeRF torso). window: frames
        per landmark window; a renderer stage sets it to its own condition's at fit start, so the
        renderer's `condition.window` is the one value to change. lip_patch: side of the lip patch each
        training item carries (RandomRays; 0: none), for the head stage's lip phase."""
        super().__init__()
        self.window, self.lip_patch = window, lip_patch
        self.face_fraction, self.lip_fraction, self.audio = face_fraction, lip_fraction, audio
        self.root, self.num_rays, self.patch_size = str(root), num_rays, patch_size
        self.val_frames, self.cache_images = val_frames, cache_images
        self.num_workers, self.seed = num_workers, seed
        self.images: SpeakerImages | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.images is None:
            self.images = SpeakerImages(self.root, cache_images=self.cache_images)

    def train_cameras(self) -> dict:
        """c2w [T_train, 4, 4] and the intrinsics, for the occupancy grid's visibility mask."""
        self.setup()
        return self.images.cameras(train_indices(self.images.frames.meta))

    def train_dataloader(self) -> DataLoader:
        dataset = RandomRays(self.images, train_indices(self.images.frames.meta), self.num_rays,
                             self.patch_size, self.seed, face_fraction=self.face_fraction, audio=self.audio,
                             lip_fraction=self.lip_fraction, window=self.window,
                             lip_patch=self.lip_patch)
        return DataLoader(dataset, batch_size=None, shuffle=True, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        dataset = WholeFrames(self.images, val_indices(self.images.frames.meta), self.val_frames,
                              audio=self.audio, window=self.window)
        return DataLoader(dataset, batch_size=None, shuffle=False, num_workers=min(self.num_workers, 1))
