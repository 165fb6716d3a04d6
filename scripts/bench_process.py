"""Benchmark speaker processing: wall time, frames/s per step and peak RSS (median of N runs).

    .venv/bin/python scripts/bench_process.py [--video ../shared/data/speakers/cnn2.mp4] [--repeats 3]

Each run is a fresh process (so peak RSS is per run) writing to a temporary data directory.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "speakers" / "cnn2.mp4"

RUNNER = """
import json, resource, sys, time
from geneface.processing.speaker import SpeakerProcessConfig, process_speaker
cfg = SpeakerProcessConfig(progress=False, min_seconds=1.0)
t0 = time.perf_counter()
out = process_speaker(sys.argv[1], "bench", sys.argv[2], cfg)
wall = time.perf_counter() - t0
meta = json.load(open(f"{out}/meta.json"))
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"wall": wall, "timings": cfg.timings, "num_frames": meta["num_frames"],
                  "rss_mb": self_kb / 1024, "child_rss_mb": child_kb / 1024, "quality": meta["quality"]}))
"""


def run_once(video: Path) -> dict:
    with tempfile.TemporaryDirectory() as data_dir:
        proc = subprocess.run([sys.executable, "-c", RUNNER, str(video), data_dir], cwd=REPO,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"processing failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = [run_once(args.video) for _ in range(args.repeats)]
    num_frames = runs[0]["num_frames"]
    steps = list(runs[0]["timings"])
    med = lambda xs: statistics.median(xs)  # noqa: E731
    print(f"\nspeaker processing of {args.video.name}: {num_frames} frames, {args.repeats} runs, "
          f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores, CPU only\n")
    print("| step | median s | frames/s |")
    print("|---|---|---|")
    for step in steps:
        seconds = med([r["timings"][step] for r in runs])
        print(f"| {step} | {seconds:.2f} | {num_frames / seconds:.0f} |")
    wall = med([r["wall"] for r in runs])
    print(f"| **total** | **{wall:.1f}** | **{num_frames / wall:.1f}** |")
    print(f"\npeak RSS: {max(r['rss_mb'] for r in runs):.0f} MB (python), "
          f"{max(r['child_rss_mb'] for r in runs):.0f} MB (ffmpeg); video length {num_frames / 25:.1f} s")
    print("quality:", json.dumps(runs[0]["quality"], indent=None))


if __name__ == "__main__":
    main()
