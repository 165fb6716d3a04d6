"""Inference speed per step of `geneface.infer` on a trained speaker: audio features, landmarks
(VAE + postnet), head render, head + torso render, mp4 encoding, and the whole chain, in frames/s,
for each renderer path side by side with its ratio to the reference.

    python scripts/bench_infer.py --speaker cnn2 --wav ../shared/data/audio/zozo.wav [--device cuda]
        [--frames 8] [--runs 3] [--output-dir outputs] [--paths fast reference]

Paths: fast = the checkpoint as configured (marched rays with early termination, the C++ grid on the
CPU); reference = the same weights through the torch grid and every kept sample (min_transmittance 0).

The audio and landmark steps run on the whole wav; the render steps on its first --frames frames
(rendering dominates and scales linearly with the frame count). Each figure is the median of --runs
timed runs after one warm-up; peak memory is CUDA's max allocated, or the process's peak RSS on CPU.
Needs the project installed (checkpoints are rebuilt through their stored Hydra configs).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without install

from geneface.data.frames import SpeakerFrames, arrays  # noqa: E402
from geneface.inference.camera_path import driving_cameras  # noqa: E402
from geneface.inference.landmarks import clamp_and_smooth, load_driving_audio, predict_idexp  # noqa: E402
from geneface.inference.renderer import load_renderer  # noqa: E402
from geneface.nerf.encodings import GridEncoding  # noqa: E402
from geneface.utils.checkpoints import load_stage, upstream_checkpoint  # noqa: E402
from geneface.media.mp4 import write_mp4  # noqa: E402
from geneface.utils.timing import timed  # noqa: E402


def median_seconds(fn, runs: int, device: str) -> float:
    fn()                                             # warm-up
    return statistics.median(timed(fn, runs, device))


def use_reference_path(renderer) -> None:
    """Switch a loaded renderer (and the head a torso stage carries) to the torch reference path."""
    nets = [renderer] + list(getattr(renderer, "frozen", {}).values())
    for net in nets:
        if hasattr(net, "min_transmittance"):
            net.min_transmittance = 0.0
        for module in net.modules():
            if isinstance(module, GridEncoding):
                module.implementation = "torch"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speaker", required=True)
    parser.add_argument("--wav", required=True)
    parser.add_argument("--output-dir", default="outputs", help="where outputs/<speaker>/<stage>/ live")
    parser.add_argument("--data-dir", default=None, help="processed speakers (default <output-dir>/data)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=8, help="frames rendered per timed run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--paths", nargs="+", default=["fast", "reference"], choices=["fast", "reference"])
    args = parser.parse_args()
    out = Path(args.output_dir)
    root = Path(args.data_dir or out / "data") / args.speaker
    device = args.device
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)

    rows = []                                        # (step, path, frames, seconds, part of the whole chain)
    wave, mel, num_frames = load_driving_audio(args.wav)
    rows.append(("audio → mel + f0", "–", num_frames,
                 median_seconds(lambda: load_driving_audio(args.wav), args.runs, "cpu"), True))

    postnet = load_stage(upstream_checkpoint(out / args.speaker / "postnet" / "selected.ckpt")).to(device)
    mean, std = np.load(root / "idexp_lm3d_mean.npy"), np.load(root / "idexp_lm3d_std.npy")

    def landmarks():
        raw = predict_idexp(postnet, mel, num_frames)
        return clamp_and_smooth(raw, mean, std)[0]
    normalised = landmarks()
    rows.append(("landmarks (VAE + postnet)", "–", num_frames, median_seconds(landmarks, args.runs, device), True))

    frames = SpeakerFrames(root)
    plate = frames.background()
    cameras = driving_cameras(np.asarray(arrays(root)["c2w"], np.float32), num_frames)
    n = min(args.frames, num_frames)
    rendered = {}
    with torch.inference_mode():
        for stage in ("radnerf", "radnerf_torso"):
            ckpt = out / args.speaker / stage / "best.ckpt"
            if not ckpt.is_file():
                print(f"{ckpt}: missing, {stage} skipped", file=sys.stderr)
                continue
            for path in args.paths:
                renderer = load_renderer(ckpt, device)
                if path == "reference":
                    use_reference_path(renderer)

                def render(renderer=renderer, stage=stage):
                    rendered[stage] = list(renderer.render_frames(cameras[:n], normalised[:n], plate))
                label = "render head" if stage == "radnerf" else "render head + torso"
                rows.append((f"{label} {renderer.width}×{renderer.height}", path, n,
                             median_seconds(render, args.runs, device), stage == "radnerf_torso" and path == args.paths[0]))
    if rendered:
        images = next(iter(rendered.values()))
        repeat = max(1, 100 // len(images))           # encode ≥ 100 frames: ffmpeg's start-up amortised
        stream = images * repeat
        with tempfile.TemporaryDirectory() as tmp:
            def encode():
                write_mp4(iter(stream), Path(tmp) / "bench.mp4", width=frames.width, height=frames.height,
                          audio=None)
            rows.append(("mp4 encode (h264)", "–", len(stream), median_seconds(encode, args.runs, "cpu"), True))

    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\ngeneface.infer steps on {args.speaker} ({frames.width}×{frames.height}), {Path(args.wav).name} "
          f"({num_frames} frames); device: {name}; torch {torch.__version__}; median of {args.runs} runs; "
          f"peak memory {peak / 2**20:,.0f} MB\n")
    print("| step | path | frames | seconds | frames/s | ms/frame | ×reference |")
    print("|---|---|---|---|---|---|---|")
    reference = {step: seconds / count for step, path, count, seconds, _ in rows if path == "reference"}
    for step, path, count, seconds, _ in rows:
        ratio = f"{reference[step] / (seconds / count):.2f}" if step in reference else "–"
        print(f"| {step} | {path} | {count} | {seconds:.2f} | {count / seconds:,.2f} | {1000 * seconds / count:.1f} | "
              f"{ratio} |")
    chain = [seconds / count for _, _, count, seconds, in_chain in rows if in_chain]
    if len(chain) == 4:                              # audio, landmarks, head + torso, encoding
        print(f"| **whole chain** (audio → mp4, head + torso) | {args.paths[0]} | – | – | {1 / sum(chain):,.2f} | "
              f"{1000 * sum(chain):.1f} | – |")


if __name__ == "__main__":
    main()
