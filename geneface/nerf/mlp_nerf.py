"""The legacy MLP NeRFs of GeneFace's `lm3d_nerf` (reference §8): AD-NeRF's head and torso.

Head: coarse and fine MLPs over the frequency-encoded NORMALISED position and the 64-d landmark
condition (the same encoder + 5-frame attention smoother as RAD-NeRF; the smoother joins only after
`smooth_after_steps`, since attention over an untrained encoder only blurs it). Torso: the same MLP
in the canonical camera, conditioned on the audio window (mel instead of AD-NeRF's DeepSpeech), the
frequency-encoded head pose and the per-pixel colour of the head behind it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geneface.nerf.condition import AttentionSmoother, LandmarkCondition
from geneface.nerf.encodings import FrequencyEncoding
from geneface.nerf.fields import FieldOutput


class NerfMLP(nn.Module):
    """AD-NeRF's FaceNeRF: `layers` density layers of `hidden` with the input concatenated again
    after layer `skip`, a density head, then feature → [feature, view encoding] → `color_hidden` → rgb.

    Density is softplus(raw) rather than NeRF's relu(raw): a relu stuck below zero on a whole ray
    never recovers, which short (CPU) runs cannot afford.
    """

    def __init__(self, condition_dim: int = 64, hidden: int = 256, layers: int = 8, skip: int = 4,
                 color_hidden: int = 128, position_frequencies: int = 10, view_frequencies: int = 4):
        super().__init__()
        self.position_encoding = FrequencyEncoding(3, position_frequencies)     # 63-d for 10
        self.view_encoding = FrequencyEncoding(3, view_frequencies)             # 27-d for 4
        in_dim = self.position_encoding.output_dim + condition_dim
        self.skip = skip
        # layer skip+1 reads [h, encoded position, condition]; layer 0 reads [encoded position, condition]
        self.density_layers = nn.ModuleList(
            nn.Linear(in_dim if i == 0 else hidden + (in_dim if i == skip + 1 else 0), hidden)
            for i in range(layers))
        self.density_head = nn.Linear(hidden, 1)
        self.feature = nn.Linear(hidden, hidden)
        self.color = nn.Sequential(nn.Linear(hidden + self.view_encoding.output_dim, color_hidden), nn.ReLU(),
                                   nn.Linear(color_hidden, 3))

    def forward(self, x_n: Tensor, directions: Tensor, condition: Tensor) -> dict[str, Tensor]:
        # x_n [M, 3] normalised, directions [M, 3] unit, condition [M, C] or [1, C] (shared by all
        # samples: its share of the input layers is then computed once) → density [M], rgb [M, 3]
        pe = self.position_encoding(x_n)                                     # [M, P]
        h = pe
        for i, layer in enumerate(self.density_layers):
            if i == 0 or i == self.skip + 1:       # [h?, pe, condition] @ W without materialising the concat
                p = pe.shape[-1]
                w_h, w_pe, w_c = layer.weight.split([layer.in_features - p - condition.shape[-1], p,
                                                     condition.shape[-1]], dim=1)
                out = F.linear(pe, w_pe, layer.bias) + F.linear(condition, w_c)
                h = out if i == 0 else out + F.linear(h, w_h)
            else:
                h = layer(h)
            h = F.relu(h)
        density = F.softplus(self.density_head(h).squeeze(-1))
        rgb = torch.sigmoid(self.color(torch.cat([self.feature(h), self.view_encoding(directions)], -1)))
        return {FieldOutput.DENSITY: density, FieldOutput.RGB: rgb}


class MlpNerfHead(nn.Module):
    """The head of §8: one landmark condition shared by a coarse and a fine NerfMLP."""

    def __init__(self, condition: LandmarkCondition, coarse: NerfMLP, fine: NerfMLP,
                 smooth_after_steps: int = 200_000):
        super().__init__()
        self.condition, self.coarse, self.fine = condition, coarse, fine
        self.smooth_after_steps = smooth_after_steps

    def smoothing(self, trained_steps: int) -> bool:
        """Whether the attention smoother is on after `trained_steps` optimiser steps."""
        return self.condition.smoother is not None and trained_steps >= self.smooth_after_steps

    def condition_at(self, windows: Tensor, trained_steps: int) -> Tensor:
        # windows [B, 5, 204] → [B, C]
        return self.condition(windows, smooth=self.smoothing(trained_steps))

    def param_groups(self, lr: float, smoother_lr_scale: float = 5.0) -> list[dict]:
        smoother = list(self.condition.smoother.parameters()) if self.condition.smoother is not None else []
        ids = {id(p) for p in smoother}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"name": "mlp", "params": rest, "lr": lr},
                {"name": "smoother", "params": smoother, "lr": lr * smoother_lr_scale}]


# ------------------------------------------------------------------------------------------ torso
MEL_WIDTH = 16       # mel frames per video frame's window (0.32 s at 50 Hz, centred)
AUDIO_CONTEXT = 8    # video frames the attention smoother weighs (AD-NeRF's smo_size)


def mel_windows(mel: Tensor, frames: Tensor, width: int = MEL_WIDTH, context: int = AUDIO_CONTEXT) -> Tensor:
    """Audio windows of video frames, edge-padded: mel [A, 80] (2 rows per frame), frames [B] →
    [B, context, width, 80]; context frames i−context/2 … i+context/2−1, each the `width` mel rows
    centred on row 2·j (AD-NeRF's DeepSpeech windows with mel in place of DeepSpeech)."""
    num_frames = (len(mel) + 1) // 2
    ctx = frames[:, None] + torch.arange(-(context // 2), context - context // 2, device=frames.device)
    ctx = ctx.clamp(0, num_frames - 1)                                               # [B, context]
    rows = 2 * ctx[..., None] + torch.arange(-(width // 2), width - width // 2, device=frames.device)
    return mel[rows.clamp(0, len(mel) - 1)]                                          # [B, context, width, 80]


class MelWindowEncoder(nn.Module):
    """One frame's mel window [B, 16, 80] → [B, out_dim]: strided convolutions over time (AD-NeRF's
    AudioNet layout, 80 mel bins in place of 29 DeepSpeech logits)."""

    def __init__(self, mel_bins: int = 80, out_dim: int = 64, width: int = 32):
        super().__init__()
        chans = [mel_bins, width, width, 2 * width, 2 * width]
        convs: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            convs += [nn.Conv1d(a, b, kernel_size=3, stride=2, padding=1), nn.LeakyReLU(0.02)]
        self.convs = nn.Sequential(*convs)
        self.fc = nn.Sequential(nn.Linear(2 * width, out_dim), nn.LeakyReLU(0.02), nn.Linear(out_dim, out_dim))

    def forward(self, mel: Tensor) -> Tensor:
        h = self.convs(mel.transpose(1, 2))                  # [B, 2w, width/16]
        return self.fc(h.mean(-1))


class TorsoNerf(nn.Module):
    """The §8 torso: coarse + fine NerfMLPs in the canonical camera; per-ray condition =
    [audio (64), frequency-encoded pose (6·(1+2·pose_frequencies)), head colour (16)]."""

    def __init__(self, audio_dim: int = 64, pose_frequencies: int = 6, color_dim: int = 16, mel_bins: int = 80,
                 context: int = AUDIO_CONTEXT, **mlp_args):
        """mlp_args: NerfMLP's (hidden, layers, skip, color_hidden, position/view frequencies)."""
        super().__init__()
        self.audio_encoder = MelWindowEncoder(mel_bins, audio_dim)
        self.audio_smoother = AttentionSmoother(audio_dim, context)
        self.pose_encoding = FrequencyEncoding(6, pose_frequencies)
        self.color_encoding = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 32), nn.ReLU(),
                                            nn.Linear(32, color_dim))
        condition_dim = audio_dim + self.pose_encoding.output_dim + color_dim
        self.coarse = NerfMLP(condition_dim, **mlp_args)
        self.fine = NerfMLP(condition_dim, **mlp_args)

    def ray_condition(self, audio: Tensor, pose: Tensor, head_rgb: Tensor) -> Tensor:
        """audio [1, context, 16, 80], pose [1, 6] (pose_features), head_rgb [N, 3] → [N, C]."""
        b, c = audio.shape[:2]
        feats = self.audio_encoder(audio.flatten(0, 1)).view(b, c, -1)          # [1, context, 64]
        frame = torch.cat([self.audio_smoother(feats), self.pose_encoding(pose)], -1)   # [1, 64 + P]
        return torch.cat([frame.expand(len(head_rgb), -1), self.color_encoding(head_rgb)], -1)
