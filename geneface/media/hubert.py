"""Optional HuBERT features at 50 Hz from weights in a local directory (never downloaded).

GeneFace uses `facebook/hubert-large-ls960-ft`'s last hidden state; point `hubert_dir` at a local copy
(a directory with config.json and the weights, as written by `save_pretrained`). The wave is padded so
that the conv front end (receptive field 400, hop 320) yields exactly 2 frames per video frame, and
long audio runs in chunks with context on both sides so memory stays bounded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from geneface.data.contract import HOP_LENGTH

_RECEPTIVE_FIELD = 400
_PAD = (_RECEPTIVE_FIELD - HOP_LENGTH) // 2  # 40 samples each side centres frame k on its 20 ms slot


def load_hubert(hubert_dir: str | Path, device: str = "cpu"):
    from transformers import HubertModel

    path = Path(hubert_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path} holds no HuBERT model (no config.json). Put a local copy there, e.g. from a machine "
            f"with internet: HubertModel.from_pretrained('facebook/hubert-large-ls960-ft').save_pretrained('{path}')")
    return HubertModel.from_pretrained(str(path), local_files_only=True).to(device).eval()


@torch.no_grad()
def hubert_features(model, wave: np.ndarray, num_frames: int, chunk_frames: int = 1000,
                    context_frames: int = 25) -> np.ndarray:
    """16 kHz mono wave → [2T, D] float32 last hidden state, exactly 2 per video frame."""
    num_out = 2 * num_frames
    total = num_out * HOP_LENGTH + 2 * _PAD
    x = np.zeros(total, dtype=np.float32)
    body = np.asarray(wave, dtype=np.float32)[: total - _PAD]
    x[_PAD : _PAD + len(body)] = body
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, num_out, chunk_frames):
        stop = min(start + chunk_frames, num_out)
        lo, hi = max(0, start - context_frames), min(num_out, stop + context_frames)
        segment = torch.from_numpy(x[lo * HOP_LENGTH : hi * HOP_LENGTH + 2 * _PAD]).to(device)[None]
        hidden = model(segment).last_hidden_state[0]          # [hi - lo, D]
        outputs.append(hidden[start - lo : stop - lo].float().cpu().numpy())
    features = np.concatenate(outputs)
    assert features.shape[0] == num_out, (features.shape, num_out)
    return features
