"""Regularisers of the renderer fields."""

from __future__ import annotations

import torch


def opacity_entropy(opacity: torch.Tensor) -> torch.Tensor:
    """Mean binary entropy (bits) of accumulated opacities (RAD-NeRF, Tang et al. 2022, its
    `lambda_entropy` term): pushes each ray or torso pixel to fully opaque or fully empty, so the head
    and torso do not become a translucent haze over the background."""
    o = opacity.clamp(1e-5, 1 - 1e-5)
    return -(o * torch.log2(o) + (1 - o) * torch.log2(1 - o)).mean()
