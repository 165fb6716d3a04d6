"""Stage audio2motion: the conditional VAE with a flow prior, its losses, batches and training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geneface.data.corpus import CorpusDataset
from geneface.data.motion_batches import LengthBucketBatchSampler, MotionCollator, padded_frames
from geneface.models.audio2motion import Audio2MotionVAE, FlowPrior
from geneface.models.motion_losses import continuity_loss, masked_mse
from geneface.models.syncnet import SyncNet
from geneface.stages.audio2motion import Audio2MotionStage, WarmupExpDecay
from geneface.train import train
from geneface.utils.checkpoints import MissingCheckpointError, load_stage
from hydra.utils import instantiate
from hydra_utils import compose_train

SMALL_NET = dict(hidden=32, cond_channels=16, enc_layers=2, dec_layers=2, flow_hidden=16, flow_layers=2)


def _items(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"item_id": f"c{i}", "speaker_id": 0, "mel": torch.randn(2 * n, 80, generator=g),
             "idexp_lm3d": torch.randn(n, 68, 3, generator=g)} for i, n in enumerate(lengths)]


def _stage(**kw) -> Audio2MotionStage:
    return Audio2MotionStage(Audio2MotionVAE(**SMALL_NET), optimizer=lambda params: torch.optim.Adam(params), **kw)


def test_collate_pads_to_stride_with_masks():
    batch = MotionCollator()(_items([10, 23]))
    assert batch["motion"].shape == (2, 24, 204) and batch["audio"].shape == (2, 48, 80)
    assert batch["mask"].sum(1).tolist() == [10, 23] and batch["audio_mask"].sum(1).tolist() == [20, 46]
    assert batch["motion"][0, 10:].abs().sum() == 0 and batch["audio"][0, 20:].abs().sum() == 0


def test_time_stretch_and_tempo_perturbation_keep_audio_and_motion_paired():
    from geneface.data.motion_batches import time_stretch

    ramp = torch.arange(11.0)[:, None].expand(11, 3)                        # value = time
    fast = time_stretch(ramp, 6)
    assert fast.shape == (6, 3) and fast[:, 0].tolist() == pytest.approx([0, 2, 4, 6, 8, 10])
    assert time_stretch(ramp, 11) is ramp
    items = _items([40])
    items[0]["mel"] = torch.arange(80.0)[:, None].expand(80, 80).clone()     # audio frame k holds k
    items[0]["idexp_lm3d"] = torch.arange(40.0)[:, None, None].expand(40, 68, 3).clone()   # frame t holds t
    torch.manual_seed(0)
    batch = MotionCollator(tempo=(0.8, 0.8))(items)                           # slower: 40 → 50 frames
    assert batch["lengths"].tolist() == [50] and batch["mask"].sum() == 50
    frames = batch["motion"][0, :50, 0]
    audio = batch["audio"][0, :100, 0]
    # still paired: video frame t and audio frames 2t, 2t+1 show the same moment of the clip
    assert torch.allclose(audio[::2] / 2, frames, atol=0.6)
    with pytest.raises(ValueError, match="tempo"):
        MotionCollator(tempo=(1.2, 0.9))


def test_shapes_and_padding_does_not_matter():
    torch.manual_seed(0)
    net = Audio2MotionVAE(**SMALL_NET).eval()
    items = _items([10, 23])
    batch = MotionCollator()(items)
    pred, kl = net(batch["motion"], batch["audio"], batch["mask"], noise_scale=0.0)
    assert pred.shape == (2, 24, 204) and kl.ndim == 0
    assert pred[0, 10:].abs().max() == 0                         # output zero on padding
    assert net.sample(batch["audio"], batch["mask"])[0, 10:].abs().max() == 0

    # the short clip alone, and with garbage in 12 more padded frames: same prediction and losses
    alone = MotionCollator()(items[:1])
    garbage = {k: v.clone() for k, v in MotionCollator(multiple=12)(items[:1]).items() if torch.is_tensor(v)}
    garbage["motion"] = torch.cat([garbage["motion"], 5 * torch.randn(1, 12, 204)], 1)
    garbage["audio"] = torch.cat([garbage["audio"], 5 * torch.randn(1, 24, 80)], 1)
    garbage["mask"] = torch.cat([garbage["mask"], torch.zeros(1, 12)], 1)
    for b in (alone, garbage):
        p, _ = net(b["motion"], b["audio"], b["mask"], noise_scale=0.0)
        torch.testing.assert_close(p[0, :10], pred[0, :10], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(masked_mse(p, b["motion"], b["mask"]),
                                   masked_mse(pred[:1, :12], batch["motion"][:1, :12], batch["mask"][:1, :12]))


def test_losses_ignore_padding_and_match_definitions():
    pred, target = torch.randn(2, 8, 204), torch.randn(2, 8, 204)
    mask = torch.ones(2, 8)
    mask[1, 5:] = 0
    garbage = pred.clone()
    garbage[1, 5:] = 100.0
    assert torch.allclose(masked_mse(pred, target, mask), masked_mse(garbage, target, mask))
    assert torch.allclose(continuity_loss(pred, target, mask), continuity_loss(garbage, target, mask))
    flat = torch.cat([(pred[0] - target[0]) ** 2, (pred[1, :5] - target[1, :5]) ** 2])
    assert torch.allclose(masked_mse(pred, target, mask), flat.mean())
    assert continuity_loss(target, target, mask) == 0
    shifted = target + 1.0                                        # constant offset: only the first frame errs
    assert torch.allclose(continuity_loss(shifted, target, mask), torch.tensor(1.0))


def test_flow_is_invertible():
    torch.manual_seed(0)
    flow = FlowPrior(channels=16, hidden=16, n_layers=2, cond_channels=8)
    for p in flow.parameters():                                   # leave the zero-init identity behind
        torch.nn.init.normal_(p, std=0.3)
    z, g = torch.randn(3, 16, 7), torch.randn(3, 8, 7)
    mask = torch.ones(3, 1, 7)
    z_p = flow(z, mask, g)
    assert (z_p - z).abs().max() > 1e-2
    torch.testing.assert_close(flow(z_p, mask, g, reverse=True), z, atol=1e-5, rtol=1e-5)


def test_kl_is_nonnegative_on_average():
    torch.manual_seed(0)
    net = Audio2MotionVAE(**SMALL_NET)
    for p in net.vae.prior.parameters():
        torch.nn.init.normal_(p, std=0.1)
    batch = MotionCollator()(_items([40, 33]))
    with torch.no_grad():
        kls = torch.stack([net(batch["motion"], batch["audio"], batch["mask"])[1] for _ in range(20)])
    assert kls.mean() > -0.05, kls


def test_bucket_sampler_budget_coverage_and_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 200, size=300).tolist()
    sampler = LengthBucketBatchSampler(lengths, max_frames_per_batch=1000, max_clips=16, seed=3)
    epochs = [list(sampler) for _ in range(2)]
    for batches in epochs:
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(300))                           # every clip once per epoch
        for b in batches:
            longest = max(padded_frames(lengths[i]) for i in b)
            assert len(b) * longest <= 1000 and len(b) <= 16
            assert longest - min(lengths[i] for i in b) <= 40     # sorted buckets: similar lengths
    assert epochs[0] != epochs[1]                                 # reshuffled per epoch
    again = LengthBucketBatchSampler(lengths, max_frames_per_batch=1000, max_clips=16, seed=3)
    again.set_epoch(1)
    assert list(again) == epochs[1]                               # deterministic per (seed, epoch)
    assert len(sampler) == len(epochs[0])
    # the original's quirk (size = 80 mel bins) gave equal sizes: here only the clip cap splits
    assert all(len(b) == 16 for b in LengthBucketBatchSampler([80] * 64, 10**9, 16))


def test_lr_schedule_warms_up_then_decays():
    f = WarmupExpDecay(warmup_steps=1000, decay_steps=250_000, gamma=0.1)
    assert f(0) == pytest.approx(1e-3) and f(999) == pytest.approx(1.0)
    assert f(250_000) == pytest.approx(0.1)


def test_sync_flag_is_sticky_and_syncnet_stays_in_eval():
    stage = _stage(sync_threshold=0.75)
    stage.attach_frozen(syncnet=SyncNet(width=0.125).train())
    assert not stage.syncnet.training and not stage.update_sync_flag(0.9)
    assert stage.update_sync_flag(0.7) and stage.update_sync_flag(2.0)         # sticky
    stage.train()
    assert stage.net.training and not stage.syncnet.training
    assert not any(k.startswith("_frozen") or "syncnet" in k for k in stage.state_dict())
    assert all(not p.requires_grad for p in stage.syncnet.parameters())
    assert "sync_enabled" in stage.state_dict()


def test_the_sync_rule_can_be_relative_to_the_syncnets_own_real_pairs():
    stage = _stage(sync_threshold=0.75, sync_threshold_factor=1.5)
    assert not stage.update_sync_flag(1.3, val_sync_real=0.8)                  # 1.3 > 1.5 × 0.8 = 1.2
    assert stage.update_sync_flag(1.1, val_sync_real=0.8)                      # on, though 1.1 > 0.75
    fixed = _stage(sync_threshold=0.75)
    assert not fixed.update_sync_flag(1.1, val_sync_real=0.8)                  # no factor: the fixed rule


def test_kl_free_bits_stop_the_kl_gradient_below_them_and_warmup_ramps_it():
    torch.manual_seed(0)
    batch = MotionCollator()(_items([16, 12]))

    def kl_grad(**kw) -> float:
        torch.manual_seed(1)                              # the same net and the same posterior draw
        stage = _stage(lambda_mse=0.0, lambda_cont=0.0, **kw)
        stage.log = lambda *a, **k: None
        stage.training_step(batch, 0).backward()
        return float(sum(p.grad.abs().sum() for p in stage.net.parameters() if p.grad is not None))

    assert kl_grad() > 0
    assert kl_grad(kl_free_bits=1e6) == 0.0                                   # KL below the free bits: no pull
    assert kl_grad(kl_warmup_steps=10) == pytest.approx(kl_grad() / 10, rel=1e-4)   # step 0: weight λ/10


def test_utterance_normalisation_ignores_level_and_padding():
    from geneface.models.audio2motion import utterance_normalise

    torch.manual_seed(0)
    audio, mask = torch.randn(2, 40, 80), torch.ones(2, 20)
    mask[1, 15:] = 0
    out = utterance_normalise(audio, mask)
    assert out[0].mean(0).abs().max() < 1e-5 and (out[0].std(0, unbiased=False) - 1).abs().max() < 1e-4
    assert out[1, 30:].abs().max() == 0 and out[1, :30].mean(0).abs().max() < 1e-5
    louder = audio + 2.0                                                       # +20 dB on log10 power
    louder[1, 30:] = 99.0                                                      # garbage on padding
    torch.testing.assert_close(utterance_normalise(louder, mask), out, atol=1e-4, rtol=1e-4)
    net = Audio2MotionVAE(**SMALL_NET, audio_norm="utterance").eval()
    torch.manual_seed(3)
    a = net.sample(audio[:, :32], mask[:, :16])
    torch.manual_seed(3)
    torch.testing.assert_close(net.sample(audio[:, :32] + 2.0, mask[:, :16]), a, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="audio_norm"):
        Audio2MotionVAE(audio_norm="global")


def test_missing_syncnet_names_the_command(tmp_path):
    cfg = compose_train(["stage=audio2motion", "speaker=synthetic_corpus", f"paths.output_dir={tmp_path}"], tmp_path)
    module = instantiate(cfg.stage.model)                         # construction does not need it
    with pytest.raises(MissingCheckpointError, match="python -m geneface.train stage=syncnet speaker=synthetic_corpus"):
        module.setup("fit")
    no_sync = _stage(syncnet_ckpt=None)
    no_sync.setup("fit")
    assert no_sync.syncnet is None


def _mean_motion_baseline(root) -> float:
    """Val mse of predicting the per-dimension mean of the train motion, masked like the stage's."""
    train_set, val_set = CorpusDataset(root, "train", min_frames=32), CorpusDataset(root, "val", min_frames=32)
    mean = torch.cat([train_set[i]["idexp_lm3d"].float().reshape(-1, 204) for i in range(len(train_set))]).mean(0)
    batch = MotionCollator()([val_set[i] for i in range(len(val_set))])
    return float(masked_mse(mean.expand_as(batch["motion"]), batch["motion"], batch["mask"]))


@pytest.mark.slow
def test_audio2motion_learns_on_synthetic_corpus(synthetic_corpus, tmp_path):
    """A small SyncNet first, then the VAE: val mse < 0.5 × the mean-motion baseline; the SyncNet
    stays in eval mode through fit; the sync loss is on once val/sync passed the threshold."""
    syncnet = ["stage=syncnet", "speaker=synthetic_corpus", f"speaker.root={synthetic_corpus}",
               f"paths.output_dir={tmp_path}", "logger=csv", "trainer.accelerator=cpu",
               "stage.model.net.width=0.25", "stage.data.batch_size=16", "stage.data.num_workers=0",
               "stage.data.train_collate.num_pairs=256", "stage.data.val_collate.num_pairs=1024",
               "stage.model.optimizer.lr=1e-3", "stage.max_steps=150", "stage.val_check_interval=150",
               "stage.limit_val_batches=2"]
    train(compose_train(syncnet, tmp_path / "run_syncnet"))

    cfg = compose_train(["experiment=audio2motion_cpu", f"speaker.root={synthetic_corpus}",
                         f"paths.output_dir={tmp_path}", "logger=csv", "stage.data.num_workers=0",
                         "stage.max_steps=300"], tmp_path / "run_a2m")
    captured = {}
    original_setup = Audio2MotionStage.setup

    def spy(self, stage):
        original_setup(self, stage)
        captured["module"] = self

    Audio2MotionStage.setup = spy
    try:
        metrics = train(cfg)
    finally:
        Audio2MotionStage.setup = original_setup
    baseline = _mean_motion_baseline(synthetic_corpus)
    print(f"val/mse {metrics['val/mse']:.5f}, val/mse_sample {metrics['val/mse_sample']:.5f}, "
          f"mean-motion baseline {baseline:.5f}, val/sync {metrics['val/sync']:.3f}")
    assert metrics["val/mse"] < 0.5 * baseline, (metrics, baseline)
    assert metrics["val/mse_sample"] < baseline, (metrics, baseline)   # audio alone beats the mean

    module = captured["module"]
    assert module.syncnet is not None and not module.syncnet.training
    if metrics["val/sync"] <= 0.75:
        assert bool(module.sync_enabled) and "train/sync" in metrics

    stage_dir = tmp_path / "synthetic_corpus" / "audio2motion"
    rebuilt = load_stage(stage_dir / "best.ckpt")
    assert rebuilt.syncnet is None and not rebuilt.training        # the SyncNet is not in the checkpoint
    batch = MotionCollator()(_items([30]))
    assert rebuilt.sample(batch["audio"], batch["mask"], temperature=0.5).shape == (1, 32, 204)


def test_bucket_sampler_shards_disjointly_across_ddp_ranks(monkeypatch):
    from geneface.data.motion_batches import LengthBucketBatchSampler

    lengths = list(np.random.default_rng(0).integers(20, 200, size=57))
    shards = []
    for rank in range(2):
        sampler = LengthBucketBatchSampler(lengths, max_frames_per_batch=600, max_clips=8, seed=3)
        monkeypatch.setattr(LengthBucketBatchSampler, "_world", staticmethod(lambda r=rank: (2, r)))
        shards.append(list(iter(sampler)))
    assert len(shards[0]) == len(shards[1]) > 0                  # equal counts: no rank waits forever
    seen = [i for shard in shards for batch in shard for i in batch]
    assert len(seen) == len(set(seen))                           # disjoint


def test_frequency_warp_moves_the_spectrum_and_leaves_the_motion():
    from geneface.data.motion_batches import frequency_warp

    mel = torch.zeros(6, 80)
    mel[:, 20] = 1.0                                                 # one formant at bin 20
    torch.testing.assert_close(frequency_warp(mel, 1.0), mel)
    assert int(frequency_warp(mel, 0.5).argmax(-1)[0]) == 40         # bin k reads k·0.5: the peak moves up
    assert int(frequency_warp(mel, 2.0).argmax(-1)[0]) == 10
    items = _items([16])
    batch = MotionCollator(frequency_warp=(0.8, 0.8))(items)
    torch.testing.assert_close(batch["motion"][0, :16], items[0]["idexp_lm3d"].reshape(16, 204))
    torch.testing.assert_close(batch["audio"][0, :32], frequency_warp(items[0]["mel"], 0.8))
    with pytest.raises(ValueError, match="frequency_warp"):
        MotionCollator(frequency_warp=(1.2, 0.9))


def test_spec_augment_masks_bands_with_the_clip_mean_and_leaves_the_motion():
    from geneface.data.motion_batches import mask_bands

    torch.manual_seed(0)
    mel = torch.randn(40, 80)
    mean = mel.mean(0)
    masked = mask_bands(mel, bands=1, max_width=10, axis=1, generator=torch.Generator().manual_seed(1))
    changed = (masked != mel).any(0)                                  # [80] bins that were masked
    assert 0 < changed.sum() <= 10
    bins = changed.nonzero().squeeze(-1)
    assert bins.max() - bins.min() + 1 == len(bins)                   # one contiguous band
    torch.testing.assert_close(masked[:, bins], mean[bins].expand(40, -1))   # the clip's mean, every frame
    frames = mask_bands(mel, bands=2, max_width=5, axis=0, generator=torch.Generator().manual_seed(2))
    rows = (frames != mel).any(1)
    assert 0 < rows.sum() <= 10
    torch.testing.assert_close(frames[rows], mean.expand(int(rows.sum()), -1))
    torch.testing.assert_close(mask_bands(mel, 0, 10, axis=1), mel)
    items = _items([16])
    batch = MotionCollator(freq_masks=2, freq_mask_bins=8, time_masks=1, time_mask_frames=4)(items)
    torch.testing.assert_close(batch["motion"][0, :16], items[0]["idexp_lm3d"].reshape(16, 204))
    assert not torch.equal(batch["audio"][0, :32], items[0]["mel"].float())
    with pytest.raises(ValueError, match="freq_masks"):
        MotionCollator(freq_masks=-1)


def test_the_mouth_term_is_the_lip_points_mse():
    stage = _stage(syncnet_ckpt=None, lambda_mouth=3.0)
    batch = MotionCollator()(_items([16, 24]))
    losses, pred = stage.model_step(batch)
    lips = slice(48 * 3, 68 * 3)                                     # points 48–67 of the flat [B, T, 204]
    expected = masked_mse(pred[..., lips], batch["motion"][..., lips], batch["mask"])
    torch.testing.assert_close(losses["mouth_mse"], expected)
    assert "mouth_mse" not in _stage(syncnet_ckpt=None).model_step(batch)[0]


def test_a_fine_tune_starts_from_the_init_checkpoints_vae_and_refuses_another_network(tmp_path, vae_checkpoint):
    source = vae_checkpoint(tmp_path / "corpus.ckpt", seed=1, **SMALL_NET)
    fine_tune = _stage(syncnet_ckpt=None, init_ckpt=str(tmp_path / "corpus.ckpt"))
    assert not torch.equal(fine_tune.net.cond.conv1.weight, source.net.cond.conv1.weight)
    fine_tune.on_fit_start()
    for key, value in source.net.state_dict().items():
        torch.testing.assert_close(fine_tune.net.state_dict()[key], value)

    wider = Audio2MotionStage(Audio2MotionVAE(**{**SMALL_NET, "hidden": 48}), optimizer=None,
                              init_ckpt=str(tmp_path / "corpus.ckpt"))
    with pytest.raises(ValueError, match="init_ckpt=.*holds another VAE.*tensors differ"):
        wider.on_fit_start()
    vae_checkpoint(tmp_path / "normed.ckpt", audio_norm="utterance", **SMALL_NET)
    with pytest.raises(ValueError, match="audio_norm 'utterance' there, 'none' here"):
        _stage(syncnet_ckpt=None, init_ckpt=str(tmp_path / "normed.ckpt")).on_fit_start()
    with pytest.raises(MissingCheckpointError):
        _stage(syncnet_ckpt=None, init_ckpt=str(tmp_path / "none.ckpt")).on_fit_start()
    resumed = _stage(syncnet_ckpt=None, init_ckpt=str(tmp_path / "none.ckpt"))
    resumed.on_load_checkpoint({})                      # a resume keeps its own weights: init_ckpt is not read
    resumed.on_fit_start()


def test_extra_train_clips_join_the_train_split_and_validation_stays_its_own(synthetic_corpus, tmp_path):
    from geneface.data.datamodules import sequence_dataset

    root = str(synthetic_corpus)
    own, held_out = (sequence_dataset(root, "corpus", split, min_frames=32) for split in ("train", "val"))
    # as the README writes it: another dataset's clips (here the val split, to tell them apart) beside ×2 own
    cfg = compose_train(["stage=audio2motion", "speaker=synthetic_corpus", f"speaker.root={root}",
                         f"paths.output_dir={tmp_path}", "stage.data.num_workers=0", "stage.data.train_repeat=2",
                         "stage.data.extra_train=[{_target_:geneface.data.datamodules.sequence_dataset,"
                         f"root:{root},kind:corpus,split:val,min_frames:32}}]"], tmp_path)
    data = instantiate(cfg.stage.data)
    data.setup("fit")
    assert data.train_set.lengths() == own.lengths() * 2 + held_out.lengths()
    assert sorted(data.train_set[len(data.train_set) - 1].keys()) == sorted(own[0].keys())
    assert len(data.val_set) == len(held_out)
    seen = sum(len(batch["item_id"]) for batch in data.train_dataloader())
    assert seen == 2 * len(own) + len(held_out)
    with pytest.raises(ValueError, match="train_repeat"):
        type(data)(root, "corpus", MotionCollator(), MotionCollator(), train_repeat=0)
