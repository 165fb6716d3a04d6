"""Landmark–audio lip-sync expert (GeneFace §3, after Wav2Lip's SyncNet).

Two 1-D conv encoders map a 5-frame window of the 20 mouth landmarks (60-d, raw idexp scale) and the
aligned 10 audio-feature frames to 512-d vectors; the sync score is their cosine similarity, which lies
in [0, 1] because both embeddings end in a ReLU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WINDOW_FRAMES = 5          # video frames per window (0.2 s)
AUDIO_PER_FRAME = 2        # 50 Hz audio features per 25 fps frame
MOUTH_DIM = 20 * 3         # iBUG points 48–67, xyz


class ConvBlock(nn.Module):
    """Conv1d → BatchNorm → ReLU, optionally residual (x + block(x), then ReLU)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1,
                 residual: bool = False):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(cin, cout, kernel, stride, padding), nn.BatchNorm1d(cout))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.residual:
            out = out + x
        return F.relu(out)


def _encoder(in_dim: int, stem: list[int], widths: tuple[int, int, int], strides: tuple[int, int]) -> nn.Sequential:
    """stem convs, then per width: (strided) conv + 2 residual blocks, then the head that collapses
    the last 3 time steps (k3, no padding) and a 1×1 conv."""
    layers: list[nn.Module] = []
    cin = in_dim
    for c in stem:
        layers.append(ConvBlock(cin, c))
        cin = c
    layers += [ConvBlock(cin, cin, residual=True), ConvBlock(cin, cin, residual=True)]
    for width, stride in zip(widths[1:], strides):
        layers += [ConvBlock(cin, width, stride=stride),
                   ConvBlock(width, width, residual=True), ConvBlock(width, width, residual=True)]
        cin = width
    out = widths[-1]
    layers += [ConvBlock(cin, out), ConvBlock(out, out, kernel=3, padding=0), ConvBlock(out, out, kernel=1, padding=0)]
    return nn.Sequential(*layers)


class SyncNet(nn.Module):
    """Scores how well a mouth-landmark window matches an audio window.

    `width` scales the channel counts (1.0 = the original 128/256/512; tests use ~0.25).
    """

    def __init__(self, audio_dim: int = 80, mouth_dim: int = MOUTH_DIM, width: float = 1.0):
        super().__init__()
        c1, c2, c3 = (max(8, int(round(c * width))) for c in (128, 256, 512))
        self.audio_dim, self.mouth_dim, self.embed_dim = audio_dim, mouth_dim, c3
        # audio time 10 → 5 → 3 → 1; mouth time 5 → 3 → 3 → 1
        self.audio_encoder = _encoder(audio_dim, [c1, c1], (c1, c2, c3), strides=(2, 2))
        self.mouth_encoder = _encoder(mouth_dim, [max(8, int(round(96 * width))), c1], (c1, c2, c3), strides=(2, 1))

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """[N, 10, audio_dim] → [N, E], unit length."""
        return F.normalize(self.audio_encoder(audio.transpose(1, 2)).flatten(1), dim=1)

    def embed_mouth(self, mouth: torch.Tensor) -> torch.Tensor:
        """[N, 5, 60] → [N, E], unit length."""
        return F.normalize(self.mouth_encoder(mouth.transpose(1, 2)).flatten(1), dim=1)

    def forward(self, mouth: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """mouth [N, 5, 60], audio [N, 10, audio_dim] → sync score [N] in [0, 1]."""
        return (self.embed_mouth(mouth) * self.embed_audio(audio)).sum(dim=1).clamp(0.0, 1.0)


def sync_bce(score: torch.Tensor, label: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """BCE of a [0, 1] score; with label 1 it is the critic loss −log(score)."""
    return F.binary_cross_entropy(score.clamp(eps, 1 - eps), label.float())
