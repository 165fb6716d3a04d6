"""The renderer's GPU check: bench, a timed training of the full-size head on real frames, and a scored
render of val frames, written as one markdown report. Run it through scripts/gpu_check.sh (which sets
PYTHONPATH to the pack); see there. Every step's log goes next to the report; a failing step is
reported as failed and the next still runs, so one run always gives a report.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_step(name: str, cmd: list[str], out: Path, timeout: float) -> tuple[bool, float, str]:
    """Run cmd with its output in out/<name>.log → (succeeded, seconds, stdout)."""
    start = time.perf_counter()
    log = out / f"{name}.log"
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        log.write_text(f"$ {' '.join(cmd)}\n\n{done.stdout}\n--- stderr ---\n{done.stderr}")
        ok = done.returncode == 0
        stdout = done.stdout
    except subprocess.TimeoutExpired as err:
        log.write_text(f"$ {' '.join(cmd)}\n\ntimed out after {timeout:.0f} s\n{err.stdout or ''}")
        ok, stdout = False, ""
    seconds = time.perf_counter() - start
    print(f"[gpu_check] {name}: {'ok' if ok else 'FAILED'} in {seconds:.0f} s (log: {log})", flush=True)
    return ok, seconds, stdout


def table_of(stdout: str) -> str:
    """The markdown table lines of a script's output."""
    return "\n".join(line for line in stdout.splitlines() if line.startswith("|"))


def training_summary(stage_dir: Path, num_rays: int, seconds: float) -> str:
    """Steps, rays/s over the step's wall time (start-up and validations included, so a lower bound),
    and the last logged train/val figures, from the run's metrics.csv."""
    files = sorted(stage_dir.glob("runs/*/csv/metrics.csv"))
    if not files:
        return "no metrics.csv written"
    rows = list(csv.DictReader(files[-1].open()))
    last_ckpt = stage_dir / "last.ckpt"
    steps = (int(torch.load(last_ckpt, map_location="cpu", weights_only=False)["global_step"]) if last_ckpt.is_file()
             else max((int(r["step"]) for r in rows if r.get("step")), default=0) + 1)

    def last(key: str) -> str:
        values = [r[key] for r in rows if r.get(key)]
        return f"{float(values[-1]):.2f}" if values else "–"

    return ("| steps | rays/step | rays/s (wall, incl. start-up + val) | train/psnr | val/psnr (head box) | "
            "val/psnr_full | samples/ray |\n|---|---|---|---|---|---|---|\n"
            f"| {steps} | {num_rays} | {steps * num_rays / seconds:,.0f} | {last('train/psnr')} | "
            f"{last('val/psnr')} | {last('val/psnr_full')} | {last('train/samples_per_ray')} |")


def score_val_frames(ckpt: Path, speaker_root: Path, frames: int, device: str) -> str:
    """Render the first val frames with their real landmarks and score them (no face mesh here)."""
    from geneface.inference.evaluation import load_val_split, score_renderer
    from geneface.inference.renderer import load_renderer

    split = load_val_split(speaker_root, frames)
    renderer = load_renderer(ckpt, device)
    row = score_renderer(renderer, split, split.landmarks, None, None, device, "val frames", False, faces=False)
    return ("| frames | size | render frames/s | PSNR head box | SSIM head box | PSNR full | SSIM full |\n"
            "|---|---|---|---|---|---|---|\n"
            f"| {row['frames']} | {renderer.width}×{renderer.height} | {row['fps']:.2f} | {row['psnr_head']:.2f} | "
            f"{row['ssim_head']:.4f} | {row['psnr_full']:.2f} | {row['ssim_full']:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="toy sizes on the CPU: checks the script, not the GPU")
    parser.add_argument("--speaker", default="cnn2_gpu", help="a speaker config in <pack>/configs/speaker/")
    parser.add_argument("--train-minutes", type=float, default=3.0)
    parser.add_argument("--eval-frames", type=int, default=8)
    args = parser.parse_args()
    pack = Path(os.environ.get("GENEFACE_GPU_CHECK_PACK", ".gpu_check")).resolve()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here (use --tiny for the CPU smoke test)")
    started = time.perf_counter()
    py = sys.executable
    report = [f"# GPU check ({'tiny, CPU' if args.tiny else 'CUDA'})\n",
              f"device: {torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}; torch {torch.__version__}; "
              f"CUDA {torch.version.cuda}; {os.cpu_count()} CPU cores\n"]

    # 1. the renderer bench, every path on this device
    bench = [py, "scripts/bench_nerf.py", "--devices", device]
    bench += ["--paths", "eager", "marched", "--runs", "1", "--rays", "256", "--size", "32"] if args.tiny else ["--runs", "5"]
    ok, seconds, stdout = run_step("bench_nerf", bench, out, 120 if args.tiny else 240)
    report += ["## bench_nerf.py\n", table_of(stdout) if ok else f"failed (see bench_nerf.log)", ""]

    # 2. train the head for a fixed time from the packed dataset
    work = out / "work"
    num_rays = 256 if args.tiny else 65536
    train = [py, "-m", "geneface.train", "stage=radnerf", f"speaker={args.speaker}",
             f"hydra.searchpath=[file://{pack / 'configs'}]", f"paths.output_dir={work}", "logger=csv",
             f"+trainer.max_time=00:00:{int(args.train_minutes):02d}:{int(args.train_minutes % 1 * 60):02d}",
             "stage.data.cache_images=true", f"stage.data.num_rays={num_rays}"]
    if args.tiny:                                       # a few steps of a small field: checks the plumbing
        train += ["trainer=cpu", "stage.max_steps=4", "stage.val_check_interval=2", "trainer.num_sanity_val_steps=0",
                  "stage.data.num_workers=0", "stage.data.val_frames=1", "stage.model.num_samples=16",
                  "stage.model.field.position_encoding.num_levels=4", "stage.model.field.ambient_encoding.num_levels=4",
                  "stage.model.occupancy.resolution=16"]
    else:                                               # the stage's defaults (16-mixed on the GPU); time-bound
        train += ["trainer=gpu", "stage.max_steps=1000000", "stage.val_check_interval=500", "stage.data.val_frames=2",
                  "stage.data.num_workers=4"]
    ok, seconds, _ = run_step("train_radnerf", train, out, args.train_minutes * 60 + (120 if args.tiny else 180))
    stage_dir = work / args.speaker / "radnerf"
    report += [f"## radnerf head, {args.train_minutes:g} min of training on {args.speaker}\n",
               training_summary(stage_dir, num_rays, seconds) + ("" if ok else "\n\n(training FAILED: train_radnerf.log)"), ""]

    # 3. render and score val frames with the trained head
    ckpt = stage_dir / "best.ckpt"
    speaker_root = pack / "data" / args.speaker
    try:
        frames = 1 if args.tiny else args.eval_frames
        report += [f"## {frames} val frames rendered and scored (real landmarks)\n",
                   score_val_frames(ckpt if ckpt.is_file() else stage_dir / "last.ckpt", speaker_root, frames, device), ""]
    except Exception as err:                            # the report still gets written
        report += ["## val frames\n", f"failed: {type(err).__name__}: {err}", ""]
    report.append(f"total wall time {time.perf_counter() - started:.0f} s")
    (out / "gpu_check.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
