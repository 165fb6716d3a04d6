"""HuBERT features from a local directory, with a tiny randomly initialised model (nothing downloaded)."""

from __future__ import annotations

import numpy as np
import pytest

from geneface.media.hubert import hubert_features, load_hubert


@pytest.fixture(scope="module")
def tiny_hubert_dir(tmp_path_factory):
    from transformers import HubertConfig, HubertModel

    config = HubertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                          conv_dim=(8,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)
    path = tmp_path_factory.mktemp("hubert")
    HubertModel(config).save_pretrained(path)
    return path


def test_two_features_per_video_frame_and_chunking_is_seamless(tiny_hubert_dir):
    model = load_hubert(tiny_hubert_dir)
    rng = np.random.default_rng(0)
    num_frames = 60
    wave = rng.normal(scale=0.1, size=num_frames * 640).astype(np.float32)
    whole = hubert_features(model, wave, num_frames, chunk_frames=10_000)
    chunked = hubert_features(model, wave, num_frames, chunk_frames=40, context_frames=25)
    assert whole.shape == (2 * num_frames, 16) and whole.dtype == np.float32
    # attention sees less context at chunk borders; with 0.5 s of context the difference stays small
    assert np.abs(whole - chunked).mean() < 0.1 * np.abs(whole).mean()


def test_missing_directory_says_how_to_get_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        load_hubert(tmp_path / "nowhere")
