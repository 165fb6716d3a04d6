"""Prepare what scripts/gpu_check.sh needs on a GPU machine that has no network, in one ignored folder
that travels with the working tree (`.gpu_check/`, a few tens of MB):

    python scripts/pack_gpu_check.py --speaker-root outputs/data/cnn2 [--train-frames 600 --val-frames 60]

- `.gpu_check/deps/`: the pure-python packages the GPU machine lacks (hydra-core, omegaconf, antlr4),
  installed with `pip install --target` from this machine's package index, so `python -m geneface.train`
  runs there with PYTHONPATH only (the project itself is not pip-installed: its torch pin is for CPUs).
- `.gpu_check/data/<name>_gpu/`: a cut of the processed speaker that keeps the contract — its first
  --train-frames train frames then its first --val-frames val frames, renumbered, with every per-frame
  array, the audio and its features cut the same way (the full cnn2 is 110 MB; 660 frames are ~40 MB).
  The two parts are not contiguous in time; only the condition window at the seam sees that.
- `.gpu_check/configs/speaker/<name>_gpu.yaml`: its speaker config (Hydra finds it via searchpath).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import wave
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without install

from geneface.data import contract  # noqa: E402

DEPS = ("hydra-core", "omegaconf", "antlr4-python3-runtime")     # at this machine's versions
PER_FRAME_CONSTANT = ("mean_shape", "idexp_lm3d_mean", "idexp_lm3d_std")             # not cut


def cut_speaker(src: Path, dst: Path, train_frames: int, val_frames: int, name: str) -> Path:
    """Write the cut of src (see the module docstring) to dst; meta.json last, as processing does."""
    meta = json.loads((src / contract.META_FILE).read_text())
    num_train, num_frames = int(meta["num_train"]), int(meta["num_frames"])
    if train_frames > num_train or val_frames > num_frames - num_train:
        raise ValueError(f"{src}: has {num_train} train and {num_frames - num_train} val frames; asked for "
                         f"{train_frames} and {val_frames}")
    total = train_frames + val_frames
    if contract.num_train_frames(total) != train_frames:
        raise ValueError(f"{train_frames} train + {val_frames} val frames is not GeneFace's 10:1 split "
                         f"(⌊10·{total}/11⌋ = {contract.num_train_frames(total)}); e.g. 600 + 60")
    frames = list(range(train_frames)) + list(range(num_train, num_train + val_frames))
    if dst.exists():
        shutil.rmtree(dst)
    for folder, ext in ((contract.SPEAKER_FRAMES_DIR, ".jpg"), (contract.SPEAKER_LABELS_DIR, ".png")):
        (dst / folder).mkdir(parents=True)
        for new, old in enumerate(frames):
            shutil.copyfile(src / folder / f"{old:06d}{ext}", dst / folder / f"{new:06d}{ext}")
    shutil.copyfile(src / contract.SPEAKER_BACKGROUND, dst / contract.SPEAKER_BACKGROUND)
    per = contract.FEATURES_PER_FRAME
    features = np.concatenate([np.arange(f * per, (f + 1) * per) for f in frames])       # [2·total]
    for spec in contract.SPEAKER_ARRAYS:
        path = src / f"{spec.name}.npy"
        if not path.exists():
            continue
        array = np.load(path)
        if spec.name not in PER_FRAME_CONSTANT:
            array = array[features] if spec.shape[0] == "A" else array[frames]
        np.save(dst / f"{spec.name}.npy", array)
    with wave.open(str(src / contract.SPEAKER_AUDIO), "rb") as reader:
        params, audio = reader.getparams(), np.frombuffer(reader.readframes(reader.getnframes()), np.int16)
    spf = contract.SAMPLES_PER_FRAME
    audio = np.concatenate([audio[f * spf:(f + 1) * spf] for f in frames])
    with wave.open(str(dst / contract.SPEAKER_AUDIO), "wb") as writer:
        writer.setparams(params)
        writer.writeframes(audio.tobytes())
    meta.update(name=name, num_frames=total, num_train=train_frames,
                note=f"scripts/pack_gpu_check.py: frames 0–{train_frames - 1} and {num_train}–"
                     f"{num_train + val_frames - 1} of {src}")
    meta.get("quality", {}).update(num_frames=total)
    (dst / contract.META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speaker-root", type=Path, required=True, help="a processed speaker dataset")
    parser.add_argument("--train-frames", type=int, default=600)
    parser.add_argument("--val-frames", type=int, default=60)
    parser.add_argument("--pack", type=Path, default=Path(".gpu_check"))
    parser.add_argument("--no-deps", action="store_true", help="data only (deps already packed)")
    args = parser.parse_args()
    name = f"{args.speaker_root.name}_gpu"
    root = cut_speaker(args.speaker_root, args.pack / "data" / name, args.train_frames, args.val_frames, name)
    speaker_dir = args.pack / "configs" / "speaker"
    speaker_dir.mkdir(parents=True, exist_ok=True)
    source_cfg = Path("configs/speaker") / f"{args.speaker_root.name}.yaml"
    aabb = ""
    if source_cfg.is_file():                                  # keep the speaker's scene box if it has one
        aabb = "".join(line for line in source_cfg.read_text().splitlines(keepends=True)
                       if line.startswith("nerf_aabb:"))
    (speaker_dir / f"{name}.yaml").write_text(
        f"# {args.speaker_root.name} cut for the GPU check (scripts/pack_gpu_check.py)\nname: {name}\n"
        f"kind: speaker\nroot: ${{oc.env:GENEFACE_GPU_CHECK_PACK,.gpu_check}}/data/{name}\nfps: 25\n{aabb}")
    if not args.no_deps:
        deps = args.pack / "deps"
        shutil.rmtree(deps, ignore_errors=True)
        pins = [f"{dep}=={version(dep)}" for dep in DEPS]
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(deps),
                        *pins], check=True)
    size = sum(f.stat().st_size for f in args.pack.rglob("*") if f.is_file())
    print(f"{args.pack}: {root} ({args.train_frames} + {args.val_frames} frames) and deps; {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
