"""Facts the configs state once and every reader gets: the VAE's time stride, the NeRF scene box."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from geneface.inference.landmarks import predict_idexp
from geneface.models.audio2motion import TIME_STRIDE, Audio2MotionVAE
from hydra_utils import compose_train


@pytest.mark.parametrize("stage, speaker", [("audio2motion", "lrs3"), ("postnet", "demo")])
def test_the_time_stride_reaches_collates_sampler_and_model(stage, speaker, tmp_path):
    cfg = compose_train([f"stage={stage}", f"speaker={speaker}", f"paths.output_dir={tmp_path}"], tmp_path)
    data = instantiate(cfg.stage.data)
    assert data.multiple == TIME_STRIDE
    assert data.train_collate.multiple == data.val_collate.multiple == TIME_STRIDE
    if stage == "audio2motion":
        assert instantiate(cfg.stage.model.net).stride == TIME_STRIDE


def test_predict_idexp_pads_to_the_time_stride():
    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def predict(self, audio, mask, temperature=1.0):
            self.seen = audio.shape[1] // 2, mask.shape[1]
            return torch.zeros(1, mask.shape[1], 204)

    model = Recorder()
    predict_idexp(model, np.zeros((2 * 9, 80), np.float32), 9, context_frames=0)
    padded = -(-9 // TIME_STRIDE) * TIME_STRIDE
    assert model.seen == (padded, padded) and Audio2MotionVAE().stride == TIME_STRIDE


@pytest.mark.parametrize("stage", ["radnerf", "nerf"])
def test_the_default_scene_box_is_stated_once(stage, tmp_path):
    cfg = compose_train([f"stage={stage}", "speaker=lrs3", f"paths.output_dir={tmp_path}"], tmp_path)
    assert list(cfg.stage.aabb) == list(cfg.default_nerf_aabb) == list(cfg.stage.model.aabb)
    demo = compose_train([f"stage={stage}", "speaker=demo", f"paths.output_dir={tmp_path}"], tmp_path)
    assert list(demo.stage.aabb) == list(demo.speaker.nerf_aabb)      # a speaker's own box wins
    moved = compose_train([f"stage={stage}", "speaker=lrs3", "default_nerf_aabb=[-2,-2,-2,2,2,2]",
                           f"paths.output_dir={tmp_path}"], tmp_path)
    assert list(moved.stage.model.aabb) == [-2, -2, -2, 2, 2, 2]
