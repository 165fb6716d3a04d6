"""Errors for bad input media: each names the file, what is wrong with it and how to fix it.

ProcessingError is the base for every bad-input error (media readers, processing, the visualizer), so
it lives here, below all of them.

Processing runs for minutes on real videos, often in worker processes; an error has to say which
input failed and what to do, and survive pickling back to the parent (`__reduce__` below).
They subclass ValueError because the input, not the code, is at fault.
"""

from __future__ import annotations

import os
from typing import Iterable

_MAX_RANGES = 12  # beyond this a frame list is cut: "… and 7 more ranges"


def format_frame_ranges(frames: Iterable[int]) -> str:
    """[0, 1, 2, 40, 97, 98] → "0–2, 40, 97–98": sorted, duplicates dropped, runs as ranges."""
    values = sorted({int(f) for f in frames})
    ranges: list[tuple[int, int]] = []
    for f in values:
        if ranges and f == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], f)
        else:
            ranges.append((f, f))
    parts = [str(a) if a == b else f"{a}–{b}" for a, b in ranges[:_MAX_RANGES]]
    if len(ranges) > _MAX_RANGES:
        parts.append(f"… and {len(ranges) - _MAX_RANGES} more ranges")
    return ", ".join(parts)


class ProcessingError(ValueError):
    """An input that processing cannot use. str(): "<path>: <problem> (frames …)\\n  fix: <fix>"."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str | None = None,
                 frames: list[int] | None = None):
        self.path = path
        self.problem = problem
        self.fix = fix
        self.frames = None if frames is None else [int(f) for f in frames]
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.path}: {self.problem}"
        if self.frames:
            label = "frame" if len(set(self.frames)) == 1 else "frames"
            text += f" ({label} {format_frame_ranges(self.frames)})"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self):
        # Exception pickling re-calls cls(*self.args); args holds the message, so rebuild from fields.
        return (self.__class__, (self.path, self.problem, self.fix, self.frames))


class UnreadableMediaError(ProcessingError):
    """ffmpeg cannot open or decode the file at all (missing, empty, truncated, not media)."""


class NotAVideoError(UnreadableMediaError):
    """The file is missing, unreadable, or has no video stream (e.g. a wav or a text file)."""


class NoAudioError(ProcessingError):
    """The media has no audio stream, so there is nothing to drive or supervise the lips with."""


class VideoTooShortError(ProcessingError):
    """Fewer 25 fps frames than the pipeline needs (it sets the minimum; see video.require_frames)."""


class NoFaceError(ProcessingError):
    """The face detector found no face on some frames (raised by the landmark stage; lists frames)."""


class FaceTrackLostError(ProcessingError):
    """The face kept from frame to frame jumps (another person's face, or lost tracking; lists frames)."""


class FaceTooSmallError(ProcessingError):
    """The face is too small for reliable landmarks (raised by the landmark stage; lists frames)."""
