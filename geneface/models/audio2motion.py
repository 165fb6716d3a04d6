"""Audio → landmark motion: GeneFace's conditional VAE with a flow prior (GeneFace §4, `lm3d_vae_sync`,
after `modules/audio2motion/vae.py`, whose WN/coupling layers follow VITS, Kim et al. 2021).

Motion is the raw idexp_lm3d, 68×3 = 204-d per frame at 25 fps; the condition is 50 Hz audio features
(log-mel by default, `audio_dim` for HuBERT etc.) taken every other frame to 25 Hz. The posterior
encoder and the flow prior work at a quarter of the frame rate (TIME_STRIDE = 4, 6.25 Hz latents), so
the padded length T must be a multiple of it (geneface.data.motion_batches pads it).

Every layer's output is multiplied by the mask, so the content of padded frames never reaches a real
frame (the original masks the same way); the decoder's output is zero on padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

LOG_2PI = math.log(2 * math.pi)

TIME_STRIDE = 4   # motion frames per latent step (6.25 Hz latents): padded lengths are multiples of it


class WN(nn.Module):
    """WaveNet-style stack (VITS `WN`): dilated convs with gated tanh·sigmoid units, residual and skip
    1×1 convs, all weight-normed; an optional per-frame condition g is added to every layer's gates
    through one 1×1 conv to 2·hidden·n_layers channels."""

    def __init__(self, hidden: int, kernel: int, n_layers: int, cond_channels: int = 0, dilation_rate: int = 1):
        super().__init__()
        self.hidden, self.n_layers = hidden, n_layers
        self.in_layers, self.res_skip_layers = nn.ModuleList(), nn.ModuleList()
        self.cond_layer = weight_norm(nn.Conv1d(cond_channels, 2 * hidden * n_layers, 1)) if cond_channels else None
        for i in range(n_layers):
            dilation = dilation_rate ** i
            padding = (kernel * dilation - dilation) // 2
            self.in_layers.append(weight_norm(nn.Conv1d(hidden, 2 * hidden, kernel, dilation=dilation, padding=padding)))
            out = 2 * hidden if i < n_layers - 1 else hidden          # the last layer only feeds the skip sum
            self.res_skip_layers.append(weight_norm(nn.Conv1d(hidden, out, 1)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, H, T], mask [B, 1, T], g [B, C, T] → [B, H, T] (masked)."""
        h = self.hidden
        output = torch.zeros_like(x)
        g = self.cond_layer(g) if (g is not None and self.cond_layer is not None) else None   # [B, 2·H·L, T]
        for i, (in_layer, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            x_in = in_layer(x)
            if g is not None:
                x_in = x_in + g[:, 2 * h * i : 2 * h * (i + 1)]
            acts = torch.tanh(x_in[:, :h]) * torch.sigmoid(x_in[:, h:])
            rs = res_skip(acts)
            if i < self.n_layers - 1:
                x = (x + rs[:, :h]) * mask
                output = output + rs[:, h:]
            else:
                output = output + rs
        return output * mask


class ConditionEncoder(nn.Module):
    """The original's "mel encoder": 50 Hz features nearest-downsampled ×0.5 to 25 Hz, then
    Conv1d(F→C, k3, no bias) → BatchNorm → GELU → Conv1d(C→C, k3). audio [B, 2T, F] → g [B, C, T]."""

    def __init__(self, audio_dim: int = 80, channels: int = 64):
        super().__init__()
        self.conv1 = nn.Conv1d(audio_dim, channels, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1)

    def forward(self, audio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """audio [B, 2T, F], mask [B, 1, T] → [B, C, T] (masked)."""
        x = audio[:, ::2].transpose(1, 2) * mask                              # [B, F, T]
        x = F.gelu(self.norm(self.conv1(x))) * mask
        return self.conv2(x) * mask


class CouplingLayer(nn.Module):
    """Mean-only affine coupling (VITS ResidualCouplingLayer, mean_only=True): the second half of the
    channels is shifted by a function of the first half and the condition; log-det is 0."""

    def __init__(self, channels: int, hidden: int, kernel: int, n_layers: int, cond_channels: int):
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WN(hidden, kernel, n_layers, cond_channels)
        self.post = nn.Conv1d(hidden, channels - self.half, 1)
        nn.init.zeros_(self.post.weight)       # starts as the identity
        nn.init.zeros_(self.post.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        x0, x1 = x[:, : self.half], x[:, self.half :]
        shift = self.post(self.enc(self.pre(x0) * mask, mask, g)) * mask
        x1 = (x1 - shift) * mask if reverse else (x1 + shift) * mask
        return torch.cat([x0, x1], dim=1)


class FlowPrior(nn.Module):
    """Conditional normalizing flow (ResidualCouplingBlock): `num_flows` × (coupling → channel flip).
    forward maps a posterior sample z to the N(0, I) space; reverse maps prior noise to z."""

    def __init__(self, channels: int = 16, hidden: int = 64, kernel: int = 3, n_layers: int = 4,
                 cond_channels: int = 64, num_flows: int = 4):
        super().__init__()
        self.flows = nn.ModuleList(CouplingLayer(channels, hidden, kernel, n_layers, cond_channels)
                                   for _ in range(num_flows))

    def forward(self, z: torch.Tensor, mask: torch.Tensor, g: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """z [B, Z, T'], mask [B, 1, T'], g [B, C, T'] → [B, Z, T']."""
        if not reverse:
            for flow in self.flows:
                z = torch.flip(flow(z, mask, g), dims=[1])
        else:
            for flow in reversed(self.flows):
                z = flow(torch.flip(z, dims=[1]), mask, g, reverse=True)
        return z


class FVAE(nn.Module):
    """Posterior encoder (strided conv + WN) → z at T/stride, flow prior, decoder (transposed conv + WN).

    Defaults are the original's: in/out 204, hidden 256, latent 16, kernel 5, 8 encoder and 4 decoder
    WN layers, stride 4, flow hidden 64 / kernel 3 / 4 layers / 4 flows, condition 64-d.
    """

    def __init__(self, motion_dim: int = 204, hidden: int = 256, latent: int = 16, kernel: int = 5,
                 enc_layers: int = 8, dec_layers: int = 4, stride: int = TIME_STRIDE, cond_channels: int = 64,
                 flow_hidden: int = 64, flow_kernel: int = 3, flow_layers: int = 4, num_flows: int = 4):
        super().__init__()
        self.stride, self.latent = stride, latent
        self.g_pre_net = nn.Conv1d(cond_channels, cond_channels, 2 * stride, stride, stride // 2)
        self.enc_pre = nn.Conv1d(motion_dim, hidden, 2 * stride, stride, stride // 2)
        self.enc_wn = WN(hidden, kernel, enc_layers, cond_channels)
        self.enc_out = nn.Conv1d(hidden, 2 * latent, 1)
        self.prior = FlowPrior(latent, flow_hidden, flow_kernel, flow_layers, cond_channels, num_flows)
        self.dec_pre = nn.ConvTranspose1d(latent, hidden, stride, stride)
        self.dec_wn = WN(hidden, kernel, dec_layers, cond_channels)
        self.dec_out = nn.Conv1d(hidden, motion_dim, 1)

    def squeeze(self, g: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """g [B, C, T], mask [B, 1, T] → g_sqz [B, C, T/s], mask_sqz [B, 1, T/s] (latent i ↔ frame s·i)."""
        if g.shape[-1] % self.stride:
            raise ValueError(f"padded length {g.shape[-1]} must be a multiple of the stride {self.stride}")
        mask_sqz = mask[:, :, :: self.stride]
        return self.g_pre_net(g * mask) * mask_sqz, mask_sqz

    def decode(self, z: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """z [B, Z, T/s], mask [B, 1, T], g [B, C, T] → motion [B, D, T] (zero on padding)."""
        x = self.dec_pre(z) * mask
        return self.dec_out(self.dec_wn(x, mask, g)) * mask

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor,
                noise_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction through the posterior. x [B, D, T], mask [B, 1, T], g [B, C, T] →
        (x̂ [B, D, T], KL estimate: masked mean over latent frames × channels of log q(z|x) − log N(flow(z)))."""
        g_sqz, mask_sqz = self.squeeze(g, mask)
        h = self.enc_pre(x * mask) * mask_sqz                                   # [B, H, T/s]
        stats = self.enc_out(self.enc_wn(h, mask_sqz, g_sqz)) * mask_sqz
        m, logs = stats.split(self.latent, dim=1)                               # [B, Z, T/s] each
        eps = torch.randn_like(m) * noise_scale
        z = (m + eps * torch.exp(logs)) * mask_sqz
        z_p = self.prior(z, mask_sqz, g_sqz)                                    # mean-only: log-det 0
        log_q = -0.5 * LOG_2PI - logs - 0.5 * eps ** 2
        log_p = -0.5 * LOG_2PI - 0.5 * z_p ** 2
        kl = ((log_q - log_p) * mask_sqz).sum() / (mask_sqz.sum() * self.latent).clamp(min=1)
        return self.decode(z, mask, g), kl

    @torch.no_grad()
    def sample(self, mask: torch.Tensor, g: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """z ~ N(0, I)·temperature at T/s, the flow in reverse, decode. → [B, D, T]."""
        g_sqz, mask_sqz = self.squeeze(g, mask)
        z_p = torch.randn(g.shape[0], self.latent, g_sqz.shape[-1], device=g.device, dtype=g.dtype)
        z = self.prior(z_p * temperature * mask_sqz, mask_sqz, g_sqz, reverse=True)
        return self.decode(z, mask, g)


AUDIO_NORMS = ("none", "utterance")
NORM_FLOOR = 1e-3      # a feature bin that is constant over an utterance (silence at the floor) stays finite


def utterance_normalise(audio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """audio [B, 2T, F], frame mask [B, T] → each sequence's features at zero mean and unit std per bin
    over its real audio frames (zero on padding). Removes what differs between recordings rather than
    between sounds — level, microphone colour, room — so a corpus of a few dozen recordings does not
    have to learn it from the data."""
    m = mask.repeat_interleave(audio.shape[1] // mask.shape[1], dim=1)[..., None].to(audio.dtype)   # [B, 2T, 1]
    count = m.sum(1, keepdim=True).clamp(min=1)
    mean = (audio * m).sum(1, keepdim=True) / count                                              # [B, 1, F]
    std = (((audio - mean) ** 2 * m).sum(1, keepdim=True) / count).sqrt().clamp(min=NORM_FLOOR)
    return (audio - mean) / std * m


class Audio2MotionVAE(nn.Module):
    """Condition encoder + FVAE. Tensors are batch-first in time: motion [B, T, 204], audio [B, 2T, F],
    mask [B, T] (1 = real frame); T a multiple of `stride`. `audio_norm="utterance"` normalises each
    sequence's features first (utterance_normalise), in training and inference alike."""

    def __init__(self, audio_dim: int = 80, cond_channels: int = 64, motion_dim: int = 204, hidden: int = 256,
                 latent: int = 16, kernel: int = 5, enc_layers: int = 8, dec_layers: int = 4,
                 stride: int = TIME_STRIDE,
                 flow_hidden: int = 64, flow_kernel: int = 3, flow_layers: int = 4, num_flows: int = 4,
                 audio_norm: str = "none"):
        super().__init__()
        if audio_norm not in AUDIO_NORMS:
            raise ValueError(f"audio_norm must be one of {AUDIO_NORMS}, got {audio_norm!r}")
        self.audio_dim, self.motion_dim, self.stride, self.audio_norm = audio_dim, motion_dim, stride, audio_norm
        self.cond = ConditionEncoder(audio_dim, cond_channels)
        self.vae = FVAE(motion_dim, hidden, latent, kernel, enc_layers, dec_layers, stride, cond_channels,
                        flow_hidden, flow_kernel, flow_layers, num_flows)

    def forward(self, motion: torch.Tensor, audio: torch.Tensor, mask: torch.Tensor,
                noise_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """→ (prediction [B, T, 204], zero on padding; KL scalar). `noise_scale` 0 decodes the posterior mean."""
        m = mask[:, None].to(motion.dtype)                                      # [B, 1, T]
        g = self.cond(self._features(audio, mask), m)                           # [B, C, T]
        pred, kl = self.vae(motion.flatten(2).transpose(1, 2), m, g, noise_scale)
        return pred.transpose(1, 2), kl

    @torch.no_grad()
    def sample(self, audio: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Inference: audio [B, 2T, F], mask [B, T] → motion [B, T, 204]; a new draw on every call."""
        m = mask[:, None].to(audio.dtype)
        return self.vae.sample(m, self.cond(self._features(audio, mask), m), temperature).transpose(1, 2)

    def _features(self, audio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return utterance_normalise(audio, mask) if self.audio_norm == "utterance" else audio
