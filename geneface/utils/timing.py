"""Wall-clock timing for the bench scripts (torch only, so they run on a bare GPU machine)."""

from __future__ import annotations

import time
from typing import Callable

import torch


def timed(fn: Callable[[], object], runs: int, device: str) -> list[float]:
    """Seconds of each of `runs` calls of fn; CUDA is synchronised around each call."""
    times = []
    for _ in range(runs):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times
