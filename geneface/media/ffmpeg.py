"""The ffmpeg binary every media reader and writer runs, and a one-line summary of its errors."""

from __future__ import annotations

import re

__all__ = ["ffmpeg_exe", "ffmpeg_error_summary"]

_NOISE = ("At least one output", "To ignore this", "Error opening input file", "Error opening output")


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped with imageio-ffmpeg (no system ffmpeg needed)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_error_summary(stderr: str, limit: int = 3) -> str:
    """The last few meaningful ffmpeg error lines, without the `[in#0 @ 0x…]` prefixes."""
    lines = [re.sub(r"^\[[^\]]*\]\s*", "", ln).strip() for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(_NOISE)]
    return "; ".join(lines[-limit:]) or "ffmpeg failed without a message"
