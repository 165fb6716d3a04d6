"""Stages nerf and nerf_torso (the legacy MLP NeRF, reference §8): importance sampling, face-rect
ray sampling, the delayed smoother, the torso's upstream head, and learning the synthetic head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geneface.data.nerf_rays import RandomRays, SpeakerImages
from geneface.nerf.condition import LandmarkCondition
from geneface.nerf.mlp_nerf import MlpNerfHead, NerfMLP, mel_windows
from geneface.nerf.rays import SceneBox
from geneface.nerf.renderer import composite
from geneface.nerf.sampling import render_hierarchical, sample_pdf
from geneface.train import train
from geneface.utils.checkpoints import MissingCheckpointError, load_stage
from hydra_utils import compose_train


def test_sample_pdf_puts_samples_where_the_weights_are():
    torch.manual_seed(0)
    bins = torch.linspace(0, 1, 11).expand(2, 11)                     # 10 bins on [0, 1]
    weights = torch.zeros(2, 10)
    weights[0, 3], weights[1, 7:9] = 1.0, 1.0
    for deterministic in (True, False):
        t = sample_pdf(bins, weights, 256, deterministic)
        assert t.shape == (2, 256)
        assert ((t[0] >= 0.3) & (t[0] <= 0.4)).float().mean() > 0.95
        assert ((t[1] >= 0.7) & (t[1] <= 0.9)).float().mean() > 0.95
    assert bool((sample_pdf(bins, weights, 16, True).diff(dim=-1) >= 0).all())    # quantiles: sorted


def test_hierarchical_render_of_an_opaque_slab_and_the_shared_compositing():
    # an opaque slab z ∈ [−0.2, 0.2] (normalised) in red: every ray through the box ends red there
    def slab(x, d, ray):
        inside = (x[:, 2].abs() < 0.2).float()
        return {"density": 200.0 * inside, "rgb": torch.tensor([1.0, 0, 0]).expand(len(x), 3)}

    box = SceneBox([-1, -1, -1, 1, 1, 1])
    origins = torch.tensor([[0.0, 0, -3], [5.0, 5, -3]])               # the second misses the box
    directions = torch.tensor([[0.0, 0, 1], [0.0, 0, 1]])
    coarse, fine = render_hierarchical(slab, slab, box, origins, directions, torch.tensor([0.0, 0, 1]), 32, 64)
    torch.testing.assert_close(fine.rgb, torch.tensor([[1.0, 0, 0], [0, 0, 1]]), atol=1e-3, rtol=0)
    assert abs(float(fine.depth[0]) - 2.8) < 0.05 and float(fine.opacity[1]) == 0
    # composite: one opaque sample in front of the background wins, an empty ray shows the background
    out = composite(torch.tensor([[0.0, 1e4]]), torch.ones(1, 2, 3) * 0.5, torch.tensor([[1.0, 2.0]]),
                    torch.ones(1, 2), torch.zeros(1, 3))
    torch.testing.assert_close(out.rgb, torch.full((1, 3), 0.5))
    torch.testing.assert_close(out.opacity, torch.ones(1))


def test_smoother_switches_on_after_the_configured_step_with_its_own_lr():
    torch.manual_seed(0)
    mlp = dict(hidden=16, layers=4, skip=2, color_hidden=8)
    head = MlpNerfHead(LandmarkCondition(), NerfMLP(**mlp), NerfMLP(**mlp), smooth_after_steps=100)
    windows = torch.randn(2, 5, 204)
    assert not head.smoothing(99) and head.smoothing(100)
    torch.testing.assert_close(head.condition_at(windows, 99), head.condition.encoder(windows[:, 2]))
    torch.testing.assert_close(head.condition_at(windows, 100), head.condition(windows, smooth=True))
    groups = {g["name"]: g for g in head.param_groups(1e-3, 5.0)}
    assert groups["smoother"]["lr"] == 5e-3 and groups["mlp"]["lr"] == 1e-3
    assert sum(p.numel() for g in groups.values() for p in g["params"]) == sum(p.numel() for p in head.parameters())
    # a per-sample condition and the shared one give the same field
    x, d = torch.rand(7, 3), torch.nn.functional.normalize(torch.randn(7, 3), dim=-1)
    cond = head.condition_at(windows[:1], 0)
    torch.testing.assert_close(head.fine(x, d, cond)["rgb"], head.fine(x, d, cond.expand(7, -1))["rgb"])


@pytest.fixture(scope="module")
def speaker(tmp_path_factory):
    from geneface.synthetic.speaker import write_synthetic_speaker

    tmp = tmp_path_factory.mktemp("nerf")
    return tmp, write_synthetic_speaker(tmp / "data", seconds=8, size=64, progress=False)


def test_face_fraction_draws_rays_inside_the_face_rect_and_audio_windows(speaker):
    _, root = speaker
    images = SpeakerImages(root)
    item = RandomRays(images, range(images.num_train), num_rays=1000, face_fraction=0.95, audio=True)[4]
    assert item["pixels"].shape == (1000, 2) and 0.95 <= float(item["in_face"].float().mean()) < 1.0
    assert item["audio"].shape == (8, 16, 80)
    plain = RandomRays(images, range(images.num_train), num_rays=1000)[4]
    assert "audio" not in plain and float(plain["in_face"].float().mean()) < 0.5
    # frame i's window is centred on mel row 2i, edge-padded at the ends
    mel = torch.arange(20, dtype=torch.float32)[:, None].repeat(1, 80)
    w = mel_windows(mel, torch.tensor([5, 0]))
    assert w.shape == (2, 8, 16, 80) and w[0, 4, :, 0].tolist() == list(range(2, 18))
    assert w[1, 0, 0, 0] == 0 and w[1, 4, 8, 0] == 0


def test_nerf_torso_without_a_head_names_the_stage_to_train(speaker, tmp_path):
    _, root = speaker
    cfg = compose_train(["experiment=nerf_torso_cpu", f"speaker.root={root}", f"paths.output_dir={tmp_path}",
                         "logger=csv"], tmp_path / "run")
    with pytest.raises(MissingCheckpointError, match="stage=nerf "):
        train(cfg)


def _head_overrides(tmp, root) -> list[str]:
    return ["experiment=nerf_cpu", f"speaker.root={root}", f"paths.output_dir={tmp}", "logger=csv"]


@pytest.mark.slow
def test_nerf_learns_the_synthetic_head_and_the_torso_renders_under_it(speaker):
    tmp, root = speaker
    # ~3 min on 2 busy cores (0.8 steps/s); measured 22.7 dB at step 100 on the head box
    cfg = compose_train(_head_overrides(tmp, root) + ["stage.max_steps=200", "stage.val_check_interval=100",
                                                      "stage.data.num_rays=256", "stage.model.coarse_samples=16",
                                                      "stage.model.fine_samples=16"], tmp / "run")
    metrics = train(cfg)
    assert float(metrics["val/psnr"]) >= 22.0, metrics                  # head box of held-out frames
    assert list((tmp / "run").rglob("val_renders/*.png"))
    head = load_stage(tmp / "demo" / "nerf" / "best.ckpt")
    images = SpeakerImages(root)
    frames = list(head.render_frames(images.c2w[:2].numpy(), images.landmarks[:2].reshape(2, 68, 3).numpy(),
                                     images.plate))
    assert len(frames) == 2 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8

    # the torso: a few steps under that head, then whole frames from its checkpoint alone
    cfg = compose_train(["experiment=nerf_torso_cpu", f"speaker.root={root}", f"paths.output_dir={tmp}",
                         "logger=csv", "stage.max_steps=4", "stage.val_check_interval=4",
                         "stage.data.num_rays=128", "stage.data.val_frames=1"], tmp / "torso_run")
    train(cfg)
    torso = load_stage(tmp / "demo" / "nerf_torso" / "last.ckpt")
    lm = images.landmarks[:3].reshape(3, 68, 3).numpy()
    with pytest.raises(ValueError, match="audio_features"):
        next(torso.render_frames(images.c2w[:3].numpy(), lm, images.plate))
    frames = list(torso.render_frames(images.c2w[:3].numpy(), lm, images.plate, audio_features=images.mel[:6].numpy()))
    assert len(frames) == 3 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
