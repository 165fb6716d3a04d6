"""Reconstruction losses of the audio→motion VAE (GeneFace, Ye et al. ICLR 2023, §3.2; reference
`tasks/audio2motion/lm3d_vae_sync.py`): per-dimension means over the real frames only."""

from __future__ import annotations

import torch


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over real frames × feature dims. pred/target [B, T, D] (or [B, T, 68, 3]),
    mask [B, T] (1 = real frame). Padded frames contribute nothing."""
    pred, target = pred.flatten(2), target.flatten(2)
    weight = mask.to(pred.dtype)[..., None]                                      # [B, T, 1]
    return ((pred - target) ** 2 * weight).sum() / (weight.sum() * pred.shape[-1]).clamp(min=1)


def continuity_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """GeneFace's "continuity" loss: MSE between the frame-to-frame differences of prediction and
    ground truth (over pairs of real frames), plus the squared error of the first frame.
    pred/target [B, T, D], mask [B, T]."""
    pred, target = pred.flatten(2), target.flatten(2)
    pair_mask = mask[:, 1:] * mask[:, :-1]                                       # [B, T-1]
    diff = masked_mse(pred[:, 1:] - pred[:, :-1], target[:, 1:] - target[:, :-1], pair_mask)
    first = masked_mse(pred[:, :1], target[:, :1], mask[:, :1])
    return diff + first
