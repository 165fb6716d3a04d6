"""How many CPU threads a job gives torch.

torch's default is one per core. Two such jobs on a small machine oversubscribe it: measured on 2 cores,
rendering the demo speaker beside one other job fell from 5.4 to 0.27 frames/s with the default and held
2.7 with one thread each. So `auto` counts only the cores other work is not using when the job starts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                      # not Linux
        return os.cpu_count() or 1


def busy_cores(window_s: float = 0.25) -> float | None:
    """How many cores other processes keep busy now: non-idle CPU time over a short window from
    /proc/stat (this process sleeps meanwhile). None where /proc/stat is missing (not Linux). Not the
    load average: it still counts a job that just finished, e.g. the previous step of `make demo`."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)       # idle + iowait
        return sum(fields) - idle, sum(fields)
    try:
        busy0, total0 = sample()
        time.sleep(window_s)
        busy1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (os.cpu_count() or 1) * (busy1 - busy0) / max(total1 - total0, 1)


def auto_threads() -> tuple[int, str]:
    """(threads, why): $OMP_NUM_THREADS when set, else the cores other work is not using, at least 1."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"])), "OMP_NUM_THREADS"
    cores, busy = available_cores(), busy_cores()
    if busy is None:
        return cores, f"{cores} cores"
    return max(1, min(cores, round(cores - busy))), f"{cores} cores, {busy:.1f} busy with other work"


def set_threads(setting: int | str | None) -> int:
    """Apply runtime.threads ('auto' or None: auto_threads; an integer ≥ 1: that many) and say so once."""
    if setting in (None, "auto"):
        threads, why = auto_threads()
    else:
        threads, why = int(setting), "runtime.threads"
        if threads < 1:
            raise ValueError(f"runtime.threads must be 'auto' or an integer ≥ 1, got {setting!r}")
    torch.set_num_threads(threads)
    print(f"torch uses {threads} CPU thread{'s' if threads > 1 else ''} ({why}; runtime.threads=N sets it)")
    return threads
