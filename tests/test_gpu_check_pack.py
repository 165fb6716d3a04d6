"""scripts/pack_gpu_check.py: the speaker cut that travels to the GPU machine keeps the data contract and
the frames it keeps (scripts/gpu_check.sh itself needs CUDA or its --tiny run; see its header)."""

from __future__ import annotations

import importlib.util
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from geneface.data.validate import validate
from geneface.synthetic.speaker import write_synthetic_speaker

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pack_gpu_check.py"


def _pack_module():
    spec = importlib.util.spec_from_file_location("pack_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _samples(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as reader:
        return np.frombuffer(reader.readframes(reader.getnframes()), np.int16)


def test_the_cut_keeps_the_contract_and_its_frames(tmp_path):
    src = write_synthetic_speaker(tmp_path / "data", seconds=2, size=48, progress=False)    # 50 frames, 45 train
    pack = _pack_module()
    dst = pack.cut_speaker(src, tmp_path / "cut", train_frames=40, val_frames=4, name="demo_gpu")
    validate(dst)                                                   # raises DatasetError if not
    meta = json.loads((dst / "meta.json").read_text())
    assert (meta["num_frames"], meta["num_train"], meta["name"]) == (44, 40, "demo_gpu")
    kept = list(range(40)) + list(range(45, 49))                    # the first val frames follow the train ones
    for new, old in ((0, 0), (39, 39), (40, 45), (43, 48)):
        assert (dst / "frames" / f"{new:06d}.jpg").read_bytes() == (src / "frames" / f"{old:06d}.jpg").read_bytes()
    np.testing.assert_array_equal(np.load(dst / "c2w.npy"), np.load(src / "c2w.npy")[kept])
    mel = np.load(src / "mel.npy")
    np.testing.assert_array_equal(np.load(dst / "mel.npy")[80:82], mel[90:92])           # 2 features a frame
    np.testing.assert_array_equal(np.load(dst / "mean_shape.npy"), np.load(src / "mean_shape.npy"))
    audio, cut_audio = _samples(src / "audio.wav"), _samples(dst / "audio.wav")
    assert len(cut_audio) == 44 * 640
    np.testing.assert_array_equal(cut_audio[40 * 640:41 * 640], audio[45 * 640:46 * 640])


def test_a_cut_off_the_ten_to_one_split_is_refused(tmp_path):
    src = write_synthetic_speaker(tmp_path / "data", seconds=2, size=48, progress=False)
    with pytest.raises(ValueError, match="10:1 split"):
        _pack_module().cut_speaker(src, tmp_path / "cut", train_frames=40, val_frames=3, name="x")
    with pytest.raises(ValueError, match="has 45 train and 5 val frames"):
        _pack_module().cut_speaker(src, tmp_path / "cut", train_frames=44, val_frames=6, name="x")
    assert not (tmp_path / "cut").exists()
