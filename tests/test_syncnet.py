"""SyncNet pieces: shapes, the pair sampler (negatives really from other clips), sync scoring."""

from __future__ import annotations

import torch

from geneface.data.sync_pairs import SyncPairCollator, mouth_sequence
from geneface.metrics.sync import sync_loss, sync_score
from geneface.models.syncnet import SyncNet


def _clip(i: int, speaker: int, num_frames: int = 40) -> dict:
    # every value of clip i's audio is i, so the source clip of an audio window is readable
    return {"item_id": f"s{speaker}/c{i}", "speaker_id": speaker,
            "mel": torch.full((2 * num_frames, 80), float(i)), "f0": torch.zeros(2 * num_frames),
            "idexp_lm3d": torch.full((num_frames, 68, 3), float(i))}


def test_syncnet_scores_in_unit_interval():
    net = SyncNet(width=0.25).eval()
    score = net(torch.randn(6, 5, 60), torch.randn(6, 10, 80))
    assert score.shape == (6,) and (score >= 0).all() and (score <= 1).all()


def test_other_clip_negatives_come_from_another_clip_and_speaker():
    clips = [_clip(i, speaker=i // 2) for i in range(6)]
    batch = SyncPairCollator(num_pairs=2000, p_other_clip=1.0, seed=0)(clips)
    assert batch["mouth"].shape == (2000, 5, 60) and batch["audio"].shape == (2000, 10, 80)
    neg = batch["label"] == 0
    assert 800 < int(neg.sum()) < 1200
    mouth_clip, audio_clip = batch["mouth"][:, 0, 0], batch["audio"][:, 0, 0]
    assert (mouth_clip[~neg] == audio_clip[~neg]).all()
    assert (mouth_clip[neg] != audio_clip[neg]).all()
    assert (mouth_clip[neg] // 2 != audio_clip[neg] // 2).all()  # another speaker, when there is one


def test_in_clip_negatives_are_offset_by_at_least_two_frames():
    num_frames = 40
    ramp = torch.arange(num_frames, dtype=torch.float32)
    clip = {"item_id": "a/b", "speaker_id": 0, "f0": torch.zeros(2 * num_frames),
            "mel": ramp.repeat_interleave(2)[:, None].expand(-1, 80).clone(),
            "idexp_lm3d": ramp[:, None, None].expand(-1, 68, 3).clone()}
    batch = SyncPairCollator(num_pairs=1000, p_other_clip=0.0, seed=1)(
        [clip, {**clip, "item_id": "a/c"}])
    offset = batch["audio"][:, 0, 0] - batch["mouth"][:, 0, 0]
    assert (offset[batch["label"] == 1] == 0).all()
    assert (offset[batch["label"] == 0].abs() >= 2).all()


def test_validation_pairs_are_reproducible():
    clips = [_clip(i, speaker=i) for i in range(4)]
    a = SyncPairCollator(num_pairs=64, seed=3)(clips)
    b = SyncPairCollator(num_pairs=64, seed=3)(clips)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mouth_sequence_takes_points_48_to_67():
    lm = torch.arange(68, dtype=torch.float32)[None, :, None].expand(3, 68, 3)
    mouth = mouth_sequence(lm)
    assert mouth.shape == (3, 60) and mouth[0, 0] == 48 and mouth[0, -1] == 67
    assert torch.equal(mouth_sequence(lm.flatten(-2)), mouth)


def test_sync_score_and_loss_run_on_sequences():
    net = SyncNet(width=0.25)
    lm, mel = torch.randn(30, 68, 3), torch.randn(60, 80)
    score = sync_score(net, lm, mel)
    assert 0.0 <= score <= 1.0 and net.training  # restores the mode it found
    shifted = sync_score(net, lm, mel, offset=5)
    assert 0.0 <= shifted <= 1.0
    lm_batch = torch.randn(2, 30, 204, requires_grad=True)
    mask = torch.ones(2, 30)
    mask[1, 20:] = 0
    loss = sync_loss(net.eval(), lm_batch, torch.randn(2, 60, 80), mask, num_windows=64)
    loss.backward()
    assert loss > 0 and lm_batch.grad is not None and lm_batch.grad[1, 20:].abs().sum() == 0
