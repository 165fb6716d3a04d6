"""What the renderer stages read from a speaker dataset: random rays of one frame for training,
whole frames for validation.

The head model learns only the head: its background is the frame's own neck and torso pixels laid
over the background plate (the reference's `bg_torso_img`), so everything that is not head is given.
Images are decoded per item (in DataLoader workers) unless `cache_images` keeps them in RAM, which is
worth it only for small speakers: 512² × 8000 frames would be 6 GB.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from geneface.data import contract
from geneface.data.boxes import LIP_BOX_GROW, grown_box
from geneface.data.frames import SpeakerFrames, arrays
from geneface.data.landmarks import normalize_idexp
from geneface.nerf.condition import WINDOW, condition_windows

# the labels where the head must be transparent: its rays see the frame's own neck or torso
BODY_LABELS = (contract.Label.NECK, contract.Label.TORSO)


class SpeakerImages:
    """Frames, labels, plate, cameras and normalised landmarks of one speaker, shared by the datasets."""

    def __init__(self, root: str | os.PathLike, cache_images: bool = False):
        self.root = Path(root)
        self.frames = SpeakerFrames(self.root)
        meta = self.frames.meta
        self.height, self.width = int(meta["height"]), int(meta["width"])
        self.focal, self.cx, self.cy = float(meta["focal"]), float(meta["cx"]), float(meta["cy"])
        self.num_frames, self.num_train = int(meta["num_frames"]), int(meta["num_train"])
        data = arrays(self.root)
        self.c2w = torch.from_numpy(np.array(data["c2w"], dtype=np.float32))                # [T, 4, 4]
        self.landmarks = normalized_landmarks(data["idexp_lm3d"], data["idexp_lm3d_mean"],
                                              data["idexp_lm3d_std"])                   # [T, 204]
        self.face_rect = np.array(data["face_rect"])                                    # [T, 4] x y w h
        self.lip_rect = np.array(data["lip_rect"])
        self.plate = self.frames.background()                                           # [H, W, 3] uint8
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache_images else None
        self._mel: torch.Tensor | None = None

    @property
    def mel(self) -> torch.Tensor:
        """The speaker's log-mel [A, 80] (2 rows per frame), read on first use (the MLP torso's input)."""
        if self._mel is None:
            self._mel = torch.from_numpy(np.array(arrays(self.root)["mel"], dtype=np.float32))
        return self._mel

    def audio_window(self, i: int) -> torch.Tensor:
        """Frame i's mel windows for the MLP torso: [8, 16, 80] (geneface.nerf.mlp_nerf.mel_windows)."""
        from geneface.nerf.mlp_nerf import mel_windows

        return mel_windows(self.mel, torch.tensor([i]))[0]

    def image_and_labels(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        item = (self.frames.image(i), self.frames.labels(i))
        if self._cache is not None:
            self._cache[i] = item
        return item

    def head_background(self, image: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The frame's non-head pixels over the plate where labels say background: [H, W, 3] uint8."""
        return np.where(np.isin(labels, BODY_LABELS)[..., None], image, self.plate)

    def cameras(self, frames: range | None = None) -> dict:
        frames = frames if frames is not None else range(self.num_frames)
        return {"c2w": self.c2w[list(frames)], "focal": self.focal, "cx": self.cx, "cy": self.cy,
                "height": self.height, "width": self.width}


def normalized_landmarks(idexp: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """[T, 68, 3] idexp → [T, 204] normalised (geneface.data.landmarks.normalize_idexp), the renderers'
    condition input."""
    out = normalize_idexp(idexp, mean, std)
    return torch.from_numpy(out.reshape(len(out), -1))


def _to_float(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).float().div_(255.0)


class RandomRays(Dataset):
    """Item k: `num_rays` random pixels of training frame k (one image per step, as the reference),
    or `num_rays // patch_size²` random square patches when patch_size > 1.

    face_fraction: that fraction of single-pixel rays is drawn inside the frame's face_rect, the rest
    anywhere (the legacy NeRF's in_rect_percent, 0.95). lip_fraction: that fraction inside the lip box
    grown by half its size each side — the mouth is ~1% of a frame yet what the condition must drive
    (the reference only trains on lip boxes in its late lip-finetuning phase). audio: add the frame's
    mel windows ("audio"). lip_patch P > 0: also a P×P grid of pixels spread evenly over that grown lip
    box ("patch_pixels", "patch_rgb", "patch_background", row-major), rendered as one image by the head
    stage's lip phase so a structure loss (SSIM) sees the whole mouth (RAD-NeRF's --finetune_lips).
    """

    def __init__(self, images: SpeakerImages, frames: range, num_rays: int = 65536, patch_size: int = 1,
                 seed: int = 0, face_fraction: float = 0.0, audio: bool = False, lip_fraction: float = 0.0,
                 window: int = WINDOW, lip_patch: int = 0):
        if face_fraction < 0 or lip_fraction < 0 or face_fraction + lip_fraction > 1:
            raise ValueError(f"face_fraction ({face_fraction}) and lip_fraction ({lip_fraction}) must be ≥ 0 "
                             f"and sum to at most 1")
        self.images, self.frames = images, list(frames)
        self.num_rays, self.patch_size, self.seed = num_rays, patch_size, seed
        self.face_fraction, self.lip_fraction, self.audio = face_fraction, lip_fraction, audio
        self.window, self.lip_patch = window, lip_patch
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.frames)

    def _box_pixels(self, rect, count: int, generator: torch.Generator, grow: float = 0.0) -> torch.Tensor:
        """count pixels uniform inside a box (x, y, w, h), grown by `grow`·size on each side and clipped
        to the image: [count, 2]."""
        rows, cols = grown_box(rect, grow, self.images.width, self.images.height)
        return torch.stack([torch.randint(rows.start, rows.stop, (count,), generator=generator),
                            torch.randint(cols.start, cols.stop, (count,), generator=generator)], -1)

    def _lip_patch_pixels(self, i: int, generator: torch.Generator) -> torch.Tensor:
        """[P², 2] (row, col): a P×P grid over frame i's grown lip box, shifted by a random fraction of
        its stride so the patches of successive steps cover every pixel; a box under P pixels wide
        repeats pixels (the patch is then that box upsampled)."""
        p = self.lip_patch
        rows, cols = grown_box(self.images.lip_rect[i], LIP_BOX_GROW, self.images.width, self.images.height)
        shift = torch.rand(2, generator=generator)

        def axis(span: slice, offset: torch.Tensor) -> torch.Tensor:
            stride = (span.stop - span.start) / p
            return (span.start + (torch.arange(p) + offset) * stride).long().clamp(span.start, span.stop - 1)

        r, c = axis(rows, shift[0]), axis(cols, shift[1])
        return torch.stack(torch.meshgrid(r, c, indexing="ij"), -1).reshape(-1, 2)

    def _pixels(self, generator: torch.Generator, i: int | None = None) -> torch.Tensor:
        h, w, p = self.images.height, self.images.width, self.patch_size
        if p <= 1:
            in_face = int(round(self.num_rays * self.face_fraction)) if i is not None else 0
            in_lips = int(round(self.num_rays * self.lip_fraction)) if i is not None else 0
            rest = self.num_rays - in_face - in_lips
            parts = [torch.stack([torch.randint(0, h, (rest,), generator=generator),
                                  torch.randint(0, w, (rest,), generator=generator)], -1)]
            if in_face:
                parts.append(self._box_pixels(self.images.face_rect[i], in_face, generator))
            if in_lips:
                parts.append(self._box_pixels(self.images.lip_rect[i], in_lips, generator, grow=LIP_BOX_GROW))
            return torch.cat(parts) if len(parts) > 1 else parts[0]
        count = max(1, self.num_rays // (p * p))
        corners = torch.stack([torch.randint(0, h - p + 1, (count,), generator=generator),
                               torch.randint(0, w - p + 1, (count,), generator=generator)], -1)
        grid = torch.stack(torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij"), -1).reshape(-1, 2)
        return (corners[:, None] + grid[None]).reshape(-1, 2)                            # [count·p², 2]

    def __getitem__(self, k: int) -> dict:
        i = self.frames[k]
        generator = torch.Generator().manual_seed(torch.randint(0, 2**62, ()).item())
        image, labels = self.images.image_and_labels(i)
        background = self.images.head_background(image, labels)
        pixels = self._pixels(generator, i)                                             # [N, 2] row, col
        rows, cols = pixels[:, 0].numpy(), pixels[:, 1].numpy()
        x, y, w, h = self.images.face_rect[i]
        in_face = (cols >= x) & (cols < x + w) & (rows >= y) & (rows < y + h)           # [quirk fixed]
        item = {
            "frame": i,
            "pixels": pixels,
            "rgb": _to_float(image[rows, cols]),                                         # [N, 3]
            "background": _to_float(background[rows, cols]),                             # [N, 3]
            "in_face": torch.from_numpy(in_face),                                        # [N]
            "on_body": torch.from_numpy(np.isin(labels[rows, cols], BODY_LABELS)),       # [N] neck or torso
            "on_head": torch.from_numpy(labels[rows, cols] == contract.Label.HEAD),        # [N]
            "c2w": self.images.c2w[i],                                                   # [4, 4]
            "window": condition_windows(self.images.landmarks, torch.tensor([i]), self.window, "zero")[0],
        }
        if self.lip_patch > 0:
            patch = self._lip_patch_pixels(i, generator)                                 # [P², 2]
            prow, pcol = patch[:, 0].numpy(), patch[:, 1].numpy()
            item.update({"patch_pixels": patch, "patch_rgb": _to_float(image[prow, pcol]),
                         "patch_background": _to_float(background[prow, pcol])})
        if self.audio:
            item["audio"] = self.images.audio_window(i)                                  # [8, 16, 80]
        return item


class WholeFrames(Dataset):
    """Full frames for validation, at most `max_frames` of them spread evenly over `frames`
    (with `audio`, also the frame's mel windows, as RandomRays)."""

    def __init__(self, images: SpeakerImages, frames: range, max_frames: int | None = None, audio: bool = False,
                 window: int = WINDOW):
        self.images, self.audio, self.window = images, audio, window
        frames = list(frames)
        if max_frames is not None and len(frames) > max_frames:
            frames = [frames[int(k)] for k in np.linspace(0, len(frames) - 1, max_frames).round()]
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, k: int) -> dict:
        i = self.frames[k]
        image, labels = self.images.image_and_labels(i)
        item = {
            "frame": i,
            "rgb": _to_float(image),                                                     # [H, W, 3]
            "background": _to_float(self.images.head_background(image, labels)),         # [H, W, 3]
            "plate": _to_float(self.images.plate),                                       # [H, W, 3]
            "head_mask": torch.from_numpy(labels == contract.Label.HEAD),                # [H, W]
            "lip_rect": torch.from_numpy(self.images.lip_rect[i].astype(np.int64)),      # [4] x y w h
            "c2w": self.images.c2w[i],
            "window": condition_windows(self.images.landmarks, torch.tensor([i]), self.window, "edge")[0],
        }
        if self.audio:
            item["audio"] = self.images.audio_window(i)                                  # [8, 16, 80]
        return item
