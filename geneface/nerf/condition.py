"""The landmark condition of the renderers (reference §6): per-frame encoder + temporal attention.

The original runs AD-NeRF's AudioNet with stride 1 on a length-1 sequence, where every k3/pad-1
convolution only ever sees its centre tap, so it is an MLP; we write it as one. The attention
smoother is AD-NeRF's AudioAttNet over the 5-frame window centred on the frame.
"""

from __future__ import annotations

import torch
from torch import nn

from geneface.nerf.mlp import mlp

LANDMARK_DIM = 204      # 68 normalised idexp points × 3
WINDOW = 5              # default frames per condition window, centred (offsets −2 … +2); a config's
                        # condition.window sets it for a renderer, its data and its inference


class LandmarkEncoder(nn.Module):
    """One frame's normalised landmarks [.., 204] → a condition feature [.., out_dim]."""

    def __init__(self, in_dim: int = LANDMARK_DIM, out_dim: int = 64):
        super().__init__()
        self.out_dim = out_dim
        self.net = mlp([in_dim, 32, 32, 64, 64, 64, out_dim], "leaky_relu", 0.02, he_init="all")

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        return self.net(landmarks)


class AttentionSmoother(nn.Module):
    """Weights the frames of a window by a learned softmax over time, so the condition of a frame
    borrows from its neighbours where that lowers the loss (AD-NeRF's AudioAttNet)."""

    def __init__(self, feature_dim: int = 64, window: int = WINDOW):
        super().__init__()
        channels = [feature_dim, 16, 8, 4, 2, 1]
        convs: list[nn.Module] = []
        for a, b in zip(channels[:-1], channels[1:]):
            convs += [nn.Conv1d(a, b, kernel_size=3, padding=1), nn.LeakyReLU(0.02)]
        self.convs = nn.Sequential(*convs)
        self.attention = nn.Linear(window, window)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # features [B, window, C] → [B, C]
        scores = self.convs(features.transpose(1, 2)).squeeze(1)         # [B, window]
        weights = torch.softmax(self.attention(scores), dim=-1)          # [B, window]
        return (weights.unsqueeze(-1) * features).sum(1)


class LandmarkCondition(nn.Module):
    """A window of normalised landmarks [B, window, 204] → the frame's condition [B, out_dim].

    normalize: a layer norm (no learned scale) on the output, so the condition keeps unit size per
    channel. Why: unbounded, its size grew from 0.5–1 to 38–70 in 600 steps on the synthetic head
    once nothing held the ambient coordinate near zero (lambda_ambient 0), until the ambient tanh
    saturated at every point and the render no longer depended on the landmarks at all. Normed, it
    stayed at size 8 but one ambient channel still saturated and the mouth still did not follow
    (docs/results.md, radnerf: open-mouth gain +0.10 dB), so it is off by default."""

    def __init__(self, in_dim: int = LANDMARK_DIM, out_dim: int = 64, window: int = WINDOW,
                 smooth: bool = True, normalize: bool = False):
        super().__init__()
        self.out_dim, self.window = out_dim, window
        self.encoder = LandmarkEncoder(in_dim, out_dim)
        self.smoother = AttentionSmoother(out_dim, window) if smooth else None
        self.norm = nn.LayerNorm(out_dim, elementwise_affine=False) if normalize else nn.Identity()

    def forward(self, windows: torch.Tensor, smooth: bool = True) -> torch.Tensor:
        features = self.encoder(windows)                                 # [B, window, C]
        if self.smoother is None or not smooth:
            return self.norm(features[:, self.window // 2])
        return self.norm(self.smoother(features))


def condition_windows(landmarks: torch.Tensor, frames: torch.Tensor, window: int = WINDOW,
                      padding: str = "edge") -> torch.Tensor:
    """Windows centred on `frames` from a sequence: landmarks [T, 204], frames [B] → [B, window, 204].

    Training pads the sequence ends with zeros (the original's), inference repeats the end frames.
    """
    half = window // 2
    offsets = torch.arange(-half, half + 1, device=frames.device)
    index = frames[:, None] + offsets                                    # [B, window]
    out = landmarks[index.clamp(0, len(landmarks) - 1)]
    if padding == "zero":
        outside = (index < 0) | (index >= len(landmarks))
        out = out.masked_fill(outside[..., None], 0.0)
    elif padding != "edge":
        raise ValueError(f"padding must be 'zero' or 'edge', got {padding!r}")
    return out
