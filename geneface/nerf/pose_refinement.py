"""Per-frame head-pose corrections learnt with the head (a NeRF camera optimiser).

Why: the processed poses come from fitting a rigid shape to MediaPipe landmarks of the face, and its
errors grow with the distance from the face: on cnn2 the top of the hair sits 3.4 px (std) off a fixed
point of the posed head, most of it pitch that follows the expression (raised brows, a pushed-up chin).
A head trained on those poses averages every frame's misplacement into a blur, and draws the plate's
blue into the top of the hair. Each training frame gets a small rigid motion of the head frame,
G = [exp(ω) | τ], applied as c2w' = G·c2w (a rotation about the head origin, near the skull's centre),
learnt from the photometric loss of that frame's rays.

The corrections are kept at zero mean over the training frames: their common part is a motion of the
whole head that the field itself could absorb, and frames without a correction (val, inference) keep
the processed poses, so a drift in the mean would misplace them all.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def rotation_matrix(rotvec: Tensor) -> Tensor:
    """Rodrigues: rotation vectors [..., 3] (radians) → [..., 3, 3], differentiable at 0."""
    theta2 = (rotvec * rotvec).sum(-1)[..., None, None]                       # [..., 1, 1]
    x, y, z = rotvec.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*rotvec.shape[:-1], 3, 3)  # [ω]×
    theta = theta2.clamp(min=1e-12).sqrt()
    # sin θ/θ and (1 − cos θ)/θ², by their series near 0 (the corrections are a degree or two)
    small = theta2 < 1e-6
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp(min=1e-12))
    return torch.eye(3, dtype=rotvec.dtype, device=rotvec.device) + a * k + b * (k @ k)


def rigid_transform(offset: Tensor) -> Tensor:
    """(rotation vector, translation) [..., 6] → [..., 4, 4]."""
    g = torch.eye(4, dtype=offset.dtype, device=offset.device).expand(*offset.shape[:-1], 4, 4).clone()
    g[..., :3, :3] = rotation_matrix(offset[..., :3])
    g[..., :3, 3] = offset[..., 3:]
    return g


class PoseRefinement(nn.Module):
    """offsets [num_frames, 6]: per frame (rotation vector in radians, translation in head units)."""

    num_train: Tensor

    def __init__(self, num_frames: int = 13000):
        super().__init__()
        self.offsets = nn.Parameter(torch.zeros(num_frames, 6))
        self.register_buffer("num_train", torch.zeros((), dtype=torch.long))   # set when training starts

    def set_training_frames(self, num_train: int) -> None:
        if num_train > len(self.offsets):
            raise ValueError(f"the speaker has {num_train} training frames but the pose refinement holds "
                             f"{len(self.offsets)}: raise stage.model.pose_refinement.num_frames")
        self.num_train.fill_(num_train)

    def offset(self, frame: int | Tensor) -> Tensor:
        """Frame's correction [6] at zero mean over the training frames (zeros past them)."""
        n = int(self.num_train)
        if int(frame) >= n:
            return self.offsets.new_zeros(6)
        return self.offsets[int(frame)] - self.offsets[:n].mean(0)

    def correction(self, frame: int | Tensor) -> Tensor:
        """Frame's rigid correction G [4, 4] (identity past the training frames)."""
        return rigid_transform(self.offset(frame))

    def forward(self, c2w: Tensor) -> Tensor:
        """The cameras c2w [T, 4, 4] of frames 0 … T − 1 (a speaker's c2w.npy) → corrected [T, 4, 4]."""
        n = min(int(self.num_train), len(c2w))
        offsets = self.offsets[:n] - self.offsets[:int(self.num_train)].mean(0)        # [n, 6]
        return torch.cat([rigid_transform(offsets).to(c2w) @ c2w[:n], c2w[n:]])
