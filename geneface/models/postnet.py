"""PostNet (GeneFace §5, `modules/postnet/models.py`): a residual CNN that refines the generic VAE's
landmarks towards one speaker's landmark domain, and the frame-level MLP discriminator of the
least-squares GAN that drives it.

Both take idexp landmark sequences [B, T, 204] with a frame mask [B, T] (1 = real frame). Without a
mask, padding frames are those whose input is all zero (the original's rule).
"""

from __future__ import annotations

import torch
from torch import nn


def frame_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """[B, T] float mask: the given one, or 1 where a frame of x [B, T, D] is not all zero."""
    if mask is not None:
        return mask.to(x.dtype)
    return (x.abs().sum(-1) > 0).to(x.dtype)


class ConvBlock(nn.Module):
    """Conv1d(k3) + BatchNorm + LeakyReLU(0.2); `residual` adds the input (cin == cout)."""

    def __init__(self, cin: int, cout: int, residual: bool = False):
        super().__init__()
        if residual and cin != cout:
            raise ValueError("a residual block keeps the width")
        self.conv = nn.Conv1d(cin, cout, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm1d(cout)
        self.act = nn.LeakyReLU(0.2)
        self.residual = residual

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, C, T], mask [B, 1, T] → [B, C', T] (masked)."""
        y = self.act(self.norm(self.conv(x))) * mask
        return x + y if self.residual else y


class CNNPostNet(nn.Module):
    """Residual refiner over time: output = input + Δ, Δ zero on padding frames.

    Block 1: 204→128 and 2 residual 128; block 2: 128→256 and 2 residual 256; block 3: 256→128 and
    a 1×1 conv 128→204. `width` scales the 128/256 channels (1.0 = the original). `start_as_identity`
    zeroes that last conv, so training starts from the VAE's landmarks unchanged (Δ = 0) instead of
    from a random Δ the losses must first undo."""

    def __init__(self, motion_dim: int = 204, width: float = 1.0, start_as_identity: bool = False):
        super().__init__()
        c1, c2 = max(8, int(round(128 * width))), max(8, int(round(256 * width)))
        self.motion_dim = motion_dim
        self.blocks = nn.ModuleList([
            ConvBlock(motion_dim, c1), ConvBlock(c1, c1, True), ConvBlock(c1, c1, True),
            ConvBlock(c1, c2), ConvBlock(c2, c2, True), ConvBlock(c2, c2, True),
            ConvBlock(c2, c1),
        ])
        self.out = nn.Conv1d(c1, motion_dim, kernel_size=1)
        if start_as_identity:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, 204], mask [B, T] → refined [B, T, 204]; padding frames are returned unchanged."""
        m = frame_mask(x, mask)[:, None]                        # [B, 1, T]
        h = x.transpose(1, 2) * m                               # [B, 204, T]
        for block in self.blocks:
            h = block(h, m)
        delta = (self.out(h) * m).transpose(1, 2)               # [B, T, 204], zero on padding
        return x + delta


class MLPDiscriminator(nn.Module):
    """Frame-level LSGAN critic: every non-padding frame (204-d) → one score (no sigmoid).

    Linear 204→128, LReLU(0.2), Dropout; 128→256, LReLU(0.25), Dropout; 256→256, LReLU, Dropout;
    256→128, LReLU, Dropout; 128→1 without bias. `width` scales the hidden sizes."""

    def __init__(self, motion_dim: int = 204, width: float = 1.0, dropout: float = 0.25):
        super().__init__()
        h1, h2 = max(8, int(round(128 * width))), max(8, int(round(256 * width)))
        self.net = nn.Sequential(
            nn.Linear(motion_dim, h1), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(h1, h2), nn.LeakyReLU(0.25), nn.Dropout(dropout),
            nn.Linear(h2, h2), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(h2, h1), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(h1, 1, bias=False),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, 204], mask [B, T] → scores [N] of the N non-padding frames (batch-major order)."""
        frames = x[frame_mask(x, mask) > 0]                     # [N, 204]
        return self.net(frames).squeeze(-1)                     # [N]
