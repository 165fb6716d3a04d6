"""Regularisers of the renderer fields."""

from __future__ import annotations

import torch


def opacity_entropy(opacity: torch.Tensor) -> torch.Tensor:
    """Mean binary entropy (bits) of accumulated opacities (RAD-NeRF, Tang et al. 2022, its
    `lambda_entropy` term): pushes each ray or torso pixel to fully opaque or fully empty, so the head
    and torso do not become a translucent haze over the background."""
    o = opacity.clamp(1e-5, 1 - 1e-5)
    return -(o * torch.log2(o) + (1 - o) * torch.log2(1 - o)).mean()


def ray_distortion(weights: torch.Tensor, u: torch.Tensor, du: torch.Tensor) -> torch.Tensor:
    """Mip-NeRF 360's distortion loss per ray (Barron et al. 2022, eq. 15), in O(S) with prefix sums.

    weights [N, S] compositing weights, u [N, S] sample positions sorted along each ray and du [N, S]
    their lengths, both as fractions of the ray's span through the box → [N]. It is small when a ray's
    weight sits in one short stretch (a surface) and large when spread along it (a cloud): a head that
    fits its frames as a translucent volume renders as well from the training cameras, but marches
    every sample of every ray (no early termination) and floats in novel poses.
    """
    wu = weights * u
    before_w = torch.cumsum(weights, -1) - weights                          # Σ_{j<i} w_j
    before_wu = torch.cumsum(wu, -1) - wu                                   # Σ_{j<i} w_j u_j
    between = 2.0 * (weights * (u * before_w - before_wu)).sum(-1)         # Σ_{i,j} w_i w_j |u_i − u_j|
    within = (weights.square() * du).sum(-1) / 3.0
    return between + within
