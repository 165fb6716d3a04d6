"""Lip-sync measures from the landmark SyncNet, for later stages' losses and for evaluation."""

from __future__ import annotations

import torch

from geneface.data.sync_pairs import mouth_sequence
from geneface.models.syncnet import AUDIO_PER_FRAME, WINDOW_FRAMES, SyncNet, sync_bce


def aligned_windows(landmarks: torch.Tensor, audio_features: torch.Tensor, starts: torch.Tensor,
                    offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut 5-frame mouth windows and their audio windows.

    landmarks [T, 68, 3] or [T, 204] (raw idexp), audio_features [2T, F], starts [N] frame indices;
    `offset` shifts the audio by that many video frames. → mouth [N, 5, 60], audio [N, 10, F].
    """
    mouth = mouth_sequence(landmarks)
    frame_idx = starts[:, None] + torch.arange(WINDOW_FRAMES, device=starts.device)       # [N, 5]
    audio_start = AUDIO_PER_FRAME * (starts + offset)
    audio_idx = audio_start[:, None] + torch.arange(AUDIO_PER_FRAME * WINDOW_FRAMES, device=starts.device)
    return mouth[frame_idx], audio_features[audio_idx]


@torch.no_grad()
def sync_score(syncnet: SyncNet, landmarks: torch.Tensor, audio_features: torch.Tensor,
               offset: int = 0, stride: int = 1, batch_windows: int = 4096) -> float:
    """Mean sync score (cosine in [0, 1], higher = better synced) over every aligned 5-frame window
    of one sequence: landmarks [T, 68, 3] or [T, 204], audio_features [2T, F]. `offset` delays the
    audio by that many frames (to compare with off-sync audio). Runs the net in eval mode."""
    was_training = syncnet.training
    syncnet.eval()
    num_frames = min(landmarks.shape[0], audio_features.shape[0] // AUDIO_PER_FRAME)
    first, last = max(0, -offset), min(num_frames, num_frames - offset) - WINDOW_FRAMES
    if last < first:
        raise ValueError(f"sequence of {num_frames} frames is too short for a {WINDOW_FRAMES}-frame window "
                         f"at offset {offset}")
    device = next(syncnet.parameters()).device
    landmarks, audio_features = landmarks.to(device).float(), audio_features.to(device).float()
    starts = torch.arange(first, last + 1, stride, device=device)
    scores = []
    for chunk in starts.split(batch_windows):
        scores.append(syncnet(*aligned_windows(landmarks, audio_features, chunk, offset)))
    syncnet.train(was_training)
    return float(torch.cat(scores).mean())


def sync_loss(syncnet: SyncNet, landmarks: torch.Tensor, audio_features: torch.Tensor,
              frame_mask: torch.Tensor | None = None, num_windows: int = 1024) -> torch.Tensor:
    """Critic loss −log(score) on `num_windows` random aligned windows of a batch (GeneFace's "sync").

    landmarks [B, T, 68, 3] or [B, T, 204], audio_features [B, 2T, F], frame_mask [B, T] (1 = real
    frame). Gradients flow into the landmarks; keep the SyncNet frozen and in eval mode.
    """
    batch, num_frames = landmarks.shape[:2]
    valid = torch.ones(batch, num_frames, device=landmarks.device) if frame_mask is None else frame_mask.float()
    # a window is usable when all of its 5 frames are real
    usable = valid.unfold(1, WINDOW_FRAMES, 1).min(dim=-1).values > 0              # [B, T-4]
    b_idx, s_idx = usable.nonzero(as_tuple=True)
    if len(b_idx) == 0:
        return landmarks.new_zeros(())
    pick = torch.randint(0, len(b_idx), (num_windows,), device=landmarks.device)
    mouths, audios = [], []
    for b in b_idx[pick].unique():
        sel = pick[b_idx[pick] == b]
        m, a = aligned_windows(landmarks[b], audio_features[b], s_idx[sel])
        mouths.append(m)
        audios.append(a)
    score = syncnet(torch.cat(mouths), torch.cat(audios))
    return sync_bce(score, torch.ones_like(score))
