"""Speed and memory of the RAD-NeRF head: training rays/s and 512² render frames/s for each path (the
dense torch reference, marched, the C++ or Triton grid kernel, torch.compile) side by side with its
ratio to eager torch, on CPU and (when present) CUDA. Needs torch only (no Hydra, no Lightning, no data).

    python scripts/bench_nerf.py [--devices cpu cuda] [--paths eager marched cpp] [--runs 5] [--rays 2048]
    python scripts/bench_nerf.py --profile [--devices cpu]     # where the time goes (torch.profiler)

The scene is the stage's default field (configs/stage/radnerf.yaml sizes) seen from a 512² camera
with focal 2048 px, with the occupancy grid filled from a head-sized ellipsoid and that ellipsoid's
density added to the field's, so the number of samples per ray, and where a ray turns opaque, are
what a trained head gives (a fresh grid would evaluate every sample, a fresh field is a thin haze). Each figure
is the median of --runs timed runs after warm-up; peak memory is CUDA's max allocated, or the
process's peak RSS on CPU (which includes everything before it).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without install

from geneface.nerf.condition import LandmarkCondition  # noqa: E402
from geneface.nerf.encodings import GridEncoding, SHEncoding  # noqa: E402
from geneface.nerf.fields import FieldOutput  # noqa: E402
from geneface.nerf.occupancy import OccupancyGrid  # noqa: E402
from geneface.nerf.radnerf import RadNerfField  # noqa: E402
from geneface.nerf.rays import SceneBox, image_pixels, pixel_rays  # noqa: E402
from geneface.nerf.renderer import render_rays  # noqa: E402
from geneface.utils.timing import timed  # noqa: E402

AABB = [-1.6, -2.2, -1.7, 1.6, 1.8, 1.6]        # the stage's default box, head units
SIZE, FOCAL, DISTANCE = 512, 2048.0, 20.0       # cnn2-like framing: the head spans ~250 px
KERNELS = {"cpp": "cpu", "triton": "cuda"}      # grid-kernel paths and the device each runs on
DEFAULT_PATHS = {"cpu": ["eager", "marched", "cpp", "compiled"], "cuda": ["eager", "marched", "triton", "compiled"]}


def build(device: str, resolution: int = 128, implementation: str = "torch"):
    grids = [GridEncoding(d, implementation=implementation) for d in (3, 2)]
    field = RadNerfField(LandmarkCondition(), *grids, SHEncoding(degree=4)).to(device)
    box = SceneBox(torch.tensor(AABB, device=device))
    occupancy = OccupancyGrid(resolution=resolution).to(device)
    radii = torch.tensor([0.9, 1.4, 1.0], device=device)

    def head_density(x_n):                     # a solid ellipsoid: what a trained grid looks like
        x = box.centre + x_n * box.half_size
        return ((x / radii).square().sum(-1) < 1).float() * 50.0

    occupancy.update(head_density)
    c2w = torch.eye(4, device=device)
    c2w[2, 3] = -DISTANCE                      # OpenCV camera looking +z at the face (which looks −z)
    return field, box, occupancy, c2w, head_density


def profiled(fn, calls: int, device: str):
    """torch.profiler over `calls` calls of fn → its key_averages (per op, self time)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities, profile_memory=True) as prof:
        for _ in range(calls):
            fn()
    return prof.key_averages()


def print_profile(name: str, averages, device: str, top: int = 18) -> None:
    key = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    total = sum(getattr(e, key) for e in averages)
    print(f"\n{name} ({device}): {total / 1e3:,.0f} ms of self time in all, the top {top} ops\n")
    print("| op | calls | self ms | share | self alloc MB |")
    print("|---|---|---|---|---|")
    for e in sorted(averages, key=lambda e: getattr(e, key), reverse=True)[:top]:
        mem = getattr(e, "self_cpu_memory_usage", 0) if device != "cuda" else getattr(e, "self_device_memory_usage", 0)
        print(f"| {e.key} | {e.count} | {getattr(e, key) / 1e3:,.1f} | {getattr(e, key) / max(total, 1):.1%} | "
              f"{max(mem, 0) / 2**20:,.0f} |")


def bench(device: str, path: str, runs: int, num_rays: int, num_samples: int, profile: bool = False,
          size: int = SIZE) -> dict:
    torch.manual_seed(0)
    field, box, occupancy, c2w, head_density = build(device, implementation=path if path in KERNELS else "torch")
    forward = torch.compile(field, dynamic=True) if path == "compiled" else field
    min_transmittance = 1e-4 if path != "eager" else 0.0     # early ray termination (training and frames)
    torch.set_flush_denormal(path != "eager")       # as geneface.train does now; eager is the old reference
    optimizer = torch.optim.Adam(field.param_groups(5e-4), betas=(0.9, 0.999), eps=1e-15, fused=path != "eager")
    window = torch.randn(1, 5, 204, device=device)
    amp = torch.autocast("cuda", dtype=torch.float16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    scaler = torch.amp.GradScaler("cuda") if device == "cuda" else None
    focal, c = FOCAL * size / SIZE, size / 2          # the same framing at any size
    stats = {}

    def field_fn_for(cond, latent):
        def field_fn(x, d, idx):                # the untrained field, made as opaque as a trained head
            out = forward(x, d, cond, latent)
            return {**out, FieldOutput.DENSITY: out[FieldOutput.DENSITY] + head_density(x).to(out[FieldOutput.DENSITY])}
        return field_fn

    def train_step():
        pixels = torch.randint(0, size, (num_rays, 2), device=device)
        origins, directions = pixel_rays(c2w, focal, c, c, pixels)
        target = torch.rand(num_rays, 3, device=device)
        with amp:
            cond = field.encode(window)
            out = render_rays(field_fn_for(cond, field.latents[:1]), box, origins, directions,
                              torch.zeros(num_rays, 3, device=device), occupancy, num_samples, perturb=True,
                              min_transmittance=min_transmittance)
            loss = torch.nn.functional.mse_loss(out.rgb.float(), target)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        stats["samples_per_ray"] = out.samples_per_ray

    @torch.no_grad()
    def render_frame():
        origins, directions = pixel_rays(c2w, focal, c, c, image_pixels(size, size, device))
        with amp:
            cond = field.encode(window)
            out = render_rays(field_fn_for(cond, field.latents[:1]), box, origins, directions,
                              torch.zeros(3, device=device), occupancy, num_samples, chunk=65536,
                              min_transmittance=min_transmittance)
        stats["render_samples_per_ray"] = out.samples_per_ray

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(2):                         # warm-up (and compilation)
        train_step()
    if profile:
        return {"train": profiled(train_step, 3, device), "render": profiled(render_frame, 1, device)}
    train = statistics.median(timed(train_step, runs, device))
    render_frame()
    render = statistics.median(timed(render_frame, max(2, runs // 2), device))
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"device": device, "path": path, "train_rays_s": num_rays / train, "step_ms": 1000 * train,
            "render_fps": 1 / render, "samples_per_ray": stats["samples_per_ray"],
            "render_samples_per_ray": stats["render_samples_per_ray"], "peak_mb": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    parser.add_argument("--paths", nargs="+", default=None, choices=["eager", "marched", "cpp", "triton", "compiled"],
                        help="eager: the dense torch reference (every kept sample, foreach Adam); marched: early "
                             "ray termination in training and frames, fused Adam, subnormals flushed (as geneface.train); "
                             "cpp / triton: marched with the C++ (CPU) or Triton (CUDA) grid kernel; compiled: marched "
                             "with torch.compile. Default: eager marched cpp compiled on CPU, eager marched triton "
                             "compiled on CUDA")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rays", type=int, default=None, help="rays per training step (default 65536 on "
                        "CUDA as the reference, 8192 on CPU)")
    parser.add_argument("--samples", type=int, default=64, help="samples per ray before skipping")
    parser.add_argument("--size", type=int, default=SIZE, help="frame side in pixels (the same framing; "
                        "smaller only for smoke tests)")
    parser.add_argument("--profile", action="store_true", help="instead of timing: torch.profiler tables of "
                        "3 training steps and one 512² render, per device, of the first of --paths")
    args = parser.parse_args()
    if args.profile:
        for device in args.devices:
            if device == "cuda" and not torch.cuda.is_available():
                continue
            rays = args.rays or (65536 if device == "cuda" else 8192)
            tables = bench(device, (args.paths or DEFAULT_PATHS[device])[0], args.runs, rays, args.samples,
                           profile=True, size=args.size)
            print_profile(f"training step, {rays} rays, 3 steps", tables["train"], device)
            print_profile(f"render, one {args.size}² frame", tables["render"], device)
        return
    rows = []
    for device in args.devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("cuda: not available, skipped", file=sys.stderr)
            continue
        for path in args.paths or DEFAULT_PATHS[device]:
            if KERNELS.get(path, device) != device:
                print(f"{device}/{path}: a {KERNELS[path]} kernel, skipped", file=sys.stderr)
                continue
            rays = args.rays or (65536 if device == "cuda" else 8192)
            try:
                rows.append(bench(device, path, args.runs, rays, args.samples, size=args.size))
            except Exception as err:            # e.g. no C++ compiler for inductor: report, go on
                print(f"{device}/{path}: failed: {type(err).__name__}: {err}", file=sys.stderr)
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA"
    print(f"\nRAD-NeRF head, {args.size}² camera, {args.samples} samples/ray before skipping; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, GPU: {name}; median of {args.runs} runs\n")
    print(f"| device | path | train rays/s | train ×eager | train step ms | render {args.size}² frames/s | render ×eager | "
          "samples/ray train | samples/ray render | peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    eager = {r["device"]: r for r in rows if r["path"] == "eager"}
    for r in rows:
        base = eager.get(r["device"])
        ratio = f"{r['render_fps'] / base['render_fps']:.2f}" if base else "–"
        train_ratio = f"{r['train_rays_s'] / base['train_rays_s']:.2f}" if base else "–"
        print(f"| {r['device']} | {r['path']} | {r['train_rays_s']:,.0f} | {train_ratio} | {r['step_ms']:.0f} | "
              f"{r['render_fps']:.3f} | {ratio} | {r['samples_per_ray']:.1f} | {r['render_samples_per_ray']:.1f} | "
              f"{r['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
