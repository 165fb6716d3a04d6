"""Video input through the bundled ffmpeg (imageio-ffmpeg): probe, and stream frames resampled to 25 fps.

Why ffmpeg's CLI and not cv2.VideoCapture: one decoder for every container and codec, exact
timestamp-based frame-rate conversion (cv2 only counts frames), and the same binary decodes audio.

Frame-rate conversion is ffmpeg's `fps=25:start_time=0:round=near` filter. Output frame k stands for
time k/25 s (the file's own timeline, which ffmpeg starts at 0) and shows the latest source frame whose
timestamp, rounded to the nearest 1/25 s slot, is ≤ k: 30 fps drops every 6th frame, 29.97 fps drops
one in ~6, gaps in variable-rate video repeat the previous frame, and a video that starts late repeats
its first frame from 0. The last slot is round(end·25), end = last frame's timestamp + duration, so

    num_frames_25fps = round_half_up(25 · end)          e.g. N frames at 30 fps → round(N·5/6)

which probe_video computes from packet timestamps without decoding, and iter_frames yields exactly.
Audio (media.audio.load_audio) uses the same time origin, so sample k·640 lines up with frame k.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from geneface.data.contract import FPS
from geneface.media.errors import NoAudioError, NotAVideoError, UnreadableMediaError, VideoTooShortError
from geneface.media.ffmpeg import ffmpeg_error_summary, ffmpeg_exe

__all__ = ["VideoInfo", "probe_video", "iter_frames", "count_frames", "require_audio", "require_frames"]

_IMAGE_DEMUXERS = re.compile(r"^(image2|.*_pipe|gif|apng|webp)$")  # a still image is not a talking video
_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "quad": 4, "4.0": 4, "4.1": 5, "5.0": 5,
             "5.1": 6, "6.0": 6, "6.1": 7, "7.0": 7, "7.1": 8, "downmix": 2}
_STANDARD_RATES = [Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
                   Fraction(50), Fraction(60000, 1001), Fraction(60)]
_NOPTS = -(2 ** 63)                                    # AV_NOPTS_VALUE as framecrc prints it
_FIX_VIDEO = "pass a video file (mp4, mov, mkv, webm …) with one person talking; check that it plays"


@dataclass(frozen=True)
class VideoInfo:
    """What processing needs to know about a video before decoding it (see probe_video)."""

    path: Path
    width: int                  # of the frames iter_frames yields (after any rotation; square pixels)
    height: int
    fps: float                  # source rate from timestamps, snapped to 30000/1001 etc.; VFR: the median
    duration_s: float           # end of the last video frame on the file's timeline (starts at 0)
    num_frames_25fps: int       # exactly how many frames iter_frames(path, 25) yields
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None
    codec: str | None           # video codec, e.g. "h264"
    num_source_frames: int = 0  # video packets in the file
    rotation: int = 0           # display rotation in degrees, applied by the decoder
    variable_frame_rate: bool = False
    start_s: float = 0.0        # first video frame's time; frames before it repeat the first frame
    sample_aspect: Fraction = Fraction(1)   # the stream's pixel width/height (SAR); ≠ 1: iter_frames
                                            # resamples to square pixels, the size a player shows
    storage_size: tuple[int, int] | None = None   # (width, height) as stored, when that differs


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise NotAVideoError(path, "file not found", fix="check the path (relative paths are from the "
                             f"working directory {os.getcwd()})")
    if path.is_dir():
        raise NotAVideoError(path, "is a directory, not a video file", fix=_FIX_VIDEO)


def _scan(path: Path) -> tuple[str, list[tuple[int, int]], Fraction]:
    """One ffmpeg run, no decoding: (stderr header, [(pts, duration)] of video packets, time base)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:V:0", "-c", "copy",
           "-f", "framecrc", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    packets, time_base = [], Fraction(1, 1)
    for line in proc.stdout.splitlines():
        if line.startswith("#tb 0:"):
            time_base = Fraction(line.split(":", 1)[1].strip())
        elif line and not line.startswith("#"):
            fields = line.split(",")
            packets.append((int(fields[2]), int(fields[3])))      # stream, dts, pts, duration, size, crc
    if any(p == _NOPTS for p, _ in packets):   # raw streams (.h264): assume constant rate from time 0
        step = int(np.median([d for _, d in packets])) or 1
        packets = [(i * step, step) for i in range(len(packets))]
    if proc.returncode != 0 and "Input #0" not in proc.stderr:
        raise NotAVideoError(path, f"ffmpeg cannot read it ({ffmpeg_error_summary(proc.stderr)})",
                             fix=_FIX_VIDEO)
    return proc.stderr, packets, time_base


def _stream_lines(header: str, kind: str) -> list[str]:
    """Header lines of streams of one kind, each followed by its indented side-data lines."""
    blocks, current = [], None
    for line in header.splitlines():
        if re.match(r"\s*Stream #\d+:\d+", line):
            current = [line] if f": {kind}: " in line else None
            if current is not None:
                blocks.append(current)
        elif current is not None and line.startswith("      "):
            current.append(line)
        elif not line.startswith("    "):
            current = None
    return ["\n".join(b) for b in blocks]


def _audio_fields(header: str) -> tuple[bool, int | None, int | None]:
    audio = _stream_lines(header, "Audio")
    if not audio:
        return False, None, None
    first = audio[0].splitlines()[0]
    rate = re.search(r"(\d+) Hz", first)
    layout = re.search(r"\d+ Hz, ([^,]+)", first)
    channels = None
    if layout:
        name = layout.group(1).strip()
        count = re.match(r"(\d+) channels", name)
        channels = int(count.group(1)) if count else _CHANNELS.get(name.split("(")[0])
    return True, int(rate.group(1)) if rate else None, channels


def _slots(seconds: Fraction, fps: int) -> int:
    """Round-half-up to whole output slots, as the fps filter's round=near does for times ≥ 0."""
    return max(0, math.floor(seconds * fps + Fraction(1, 2)))


def _frame_count(packets: list[tuple[int, int]], time_base: Fraction, fps: int,
                 header_fps: float | None = None) -> tuple[int, dict]:
    pts = sorted(p for p, _ in packets)
    diffs = np.diff(pts) if len(pts) > 1 else np.array([], dtype=np.int64)
    diffs = diffs[diffs > 0]
    median = int(np.median(diffs)) if len(diffs) else 0
    last_pts, last_dur = max(packets, key=lambda p: p[0])
    step = last_dur if last_dur > 0 else (median or 1)
    end = (last_pts + step) * time_base
    vfr = bool(len(diffs) and (diffs.max() > 1.1 * median or diffs.min() < 0.9 * median))
    if not len(diffs):                          # a single frame: trust the header
        rate = header_fps or float(fps)
    elif vfr:                                   # the dominant rate, e.g. 30 for a 15/30 fps mix
        rate = float(1 / (median * time_base))
    else:                                       # the mean, so 33/34 ms steps (mkv, 1/1000) read as 30
        rate = float((len(pts) - 1) / ((pts[-1] - pts[0]) * time_base))
    nearest = min(_STANDARD_RATES, key=lambda r: abs(rate / r - 1))
    rate = float(nearest) if abs(rate / nearest - 1) < 2e-4 else rate
    stats = {"start": max(Fraction(0), pts[0] * time_base), "end": end, "fps": rate, "vfr": vfr}
    return _slots(end, fps), stats


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Size, rates, duration, audio stream and the exact 25 fps frame count, without decoding frames.

    Raises NotAVideoError for a missing, unreadable or audio-only file, or a still image.
    """
    return _probe(Path(path))[0]


def count_frames(path: str | os.PathLike, fps: int = FPS) -> int:
    """Frames iter_frames(path, fps) yields, from packet timestamps (no decoding; ~0.05 s a minute)."""
    _, packets, time_base = _probe(Path(path))
    return _frame_count(packets, time_base, fps)[0]


def _probe(path: Path) -> tuple[VideoInfo, list[tuple[int, int]], Fraction]:
    _check_exists(path)
    header, packets, time_base = _scan(path)
    demuxer = re.search(r"Input #0, ([^,]+)", header)
    if demuxer and _IMAGE_DEMUXERS.match(demuxer.group(1)):
        raise NotAVideoError(path, f"is a still image ({demuxer.group(1)}), not a video", fix=_FIX_VIDEO)
    video = [v for v in _stream_lines(header, "Video") if "(attached pic)" not in v]
    has_audio, rate, channels = _audio_fields(header)
    if not video:
        what = "audio only" if has_audio else "no video or audio stream"
        raise NotAVideoError(path, f"has no video stream ({what})", fix=_FIX_VIDEO)
    if not packets:
        raise NotAVideoError(path, "its video stream has no frames", fix=_FIX_VIDEO)
    if "partial file" in header:                # the index lists data past the end of the file
        raise NotAVideoError(path, f"is truncated: its video data ends after {len(packets)} frames",
                             fix="re-download or re-copy it; ffmpeg -i in.mp4 -c:v libx264 -c:a aac "
                                 "fixed.mp4 salvages the part that is there")
    first = video[0].splitlines()[0]
    size = re.search(r", (\d+)x(\d+)", first)
    codec = re.search(r": Video: (\w+)", first)
    if not size:
        raise NotAVideoError(path, "ffmpeg reports no frame size for its video stream", fix=_FIX_VIDEO)
    width, height = int(size.group(1)), int(size.group(2))
    storage_size = (width, height)
    sar = re.search(r"\[SAR (\d+):(\d+) DAR", first)
    sample_aspect = Fraction(int(sar.group(1)), int(sar.group(2))) if sar and int(sar.group(1)) > 0 else Fraction(1)
    if sample_aspect != 1:                    # non-square pixels: the display width, even for the encoders
        width = max(2, 2 * round(width * sample_aspect / 2))
    rot = re.search(r"rotation of (-?[\d.]+) degrees", video[0], re.IGNORECASE)
    rotation = int(round(float(rot.group(1)))) % 360 if rot else 0
    if rotation in (90, 270):                 # ffmpeg autorotates on decode: frames come out transposed
        width, height = height, width
    header_fps = re.search(r"([\d.]+) (?:fps|tbr)", first)
    count, stats = _frame_count(packets, time_base, FPS, float(header_fps.group(1)) if header_fps else None)
    info = VideoInfo(
        path=path, width=width, height=height, fps=stats["fps"], duration_s=float(stats["end"]),
        num_frames_25fps=count, has_audio=has_audio, audio_sample_rate=rate, audio_channels=channels,
        codec=codec.group(1) if codec else None, num_source_frames=len(packets), rotation=rotation,
        variable_frame_rate=stats["vfr"], start_s=float(stats["start"]), sample_aspect=sample_aspect,
        storage_size=storage_size if sample_aspect != 1 else None)
    return info, packets, time_base


def _read_exact(stream, view: memoryview) -> int:
    got = 0
    while got < len(view):           # a pipe read may return less than asked
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def iter_frames(path: str | os.PathLike, fps: int = FPS, max_frames: int | None = None,
                decode_threads: int | None = None) -> Iterator[np.ndarray]:
    """Yield RGB uint8 [H, W, 3] frames resampled to `fps` (module docstring), one at a time.

    Yields exactly count_frames(path, fps) frames (or max_frames, if fewer), each a new writable array.
    Streamed through a pipe: memory stays at a few frames whatever the length; closing the generator
    early stops ffmpeg. A stream whose last frame or two will not decode (a damaged tail) is padded
    with its last frame; more missing raises UnreadableMediaError. decode_threads=None: ffmpeg picks.
    """
    info, packets, time_base = _probe(Path(path))
    path, height, width = info.path, info.height, info.width
    expected = info.num_frames_25fps if fps == FPS else _frame_count(packets, time_base, fps)[0]
    limit = expected if max_frames is None else min(expected, max(0, int(max_frames)))
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error"]
    if decode_threads:
        cmd += ["-threads", str(decode_threads)]
    # A stream that changes size mid-way: keep one filter graph (a rebuilt one would restart the fps
    # filter's count at 0) and scale to the first size, so frames stay [H, W, 3]; a no-op otherwise.
    cmd += ["-reinit_filter", "0", "-i", str(path), "-map", "0:V:0", "-an", "-sn", "-dn",
            "-vf", f"fps=fps={fps}:start_time=0:round=near:eof_action=round,scale={width}:{height}",
            "-fps_mode", "passthrough", "-frames:v", str(limit), "-pix_fmt", "rgb24", "-f", "rawvideo", "-"]
    frame_bytes, index, frame = height * width * 3, 0, None
    with tempfile.TemporaryFile() as err:      # a file, not a pipe: ffmpeg never blocks on stderr
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, bufsize=0)
        try:
            _grow_pipe(proc.stdout)
            while index < limit:
                buffer = np.empty((height, width, 3), dtype=np.uint8)     # [H, W, 3]
                if _read_exact(proc.stdout, memoryview(buffer).cast("B")) < frame_bytes:
                    break
                frame = buffer
                yield frame
                index += 1
            failed = proc.wait() != 0
            if index < limit:
                err.seek(0)
                message = ffmpeg_error_summary(err.read().decode(errors="replace")) if failed else ""
                if failed or frame is None or limit - index > 2:
                    raise UnreadableMediaError(
                        path, f"decoding stopped after {index} of {expected} frames"
                              + (f" ({message})" if message else ""),
                        fix="the file may be truncated or damaged: re-download it, or re-encode it with "
                            "ffmpeg -i in.mp4 -c:v libx264 -c:a aac fixed.mp4", frames=range(index, limit))
                for _ in range(limit - index):
                    yield frame.copy()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()


def _grow_pipe(stream) -> None:
    """Ask for a 1 MiB pipe (Linux default 64 KiB): fewer wake-ups per ~0.8 MB 512² frame."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


def require_audio(info: VideoInfo) -> None:
    """Raise NoAudioError unless the video has a sound track (training needs its speech)."""
    if not info.has_audio:
        raise NoAudioError(info.path, "has no audio stream",
                           fix="use the video with its sound track, or mux one in: ffmpeg -i video.mp4 "
                               "-i speech.wav -map 0:v -map 1:a -c:v copy -shortest out.mp4")


def require_frames(info: VideoInfo, min_frames: int, purpose: str = "a speaker model") -> None:
    """Raise VideoTooShortError if the video gives fewer than min_frames frames at 25 fps."""
    if info.num_frames_25fps < min_frames:
        raise VideoTooShortError(
            info.path, f"is too short for {purpose}: {info.num_frames_25fps} frames at {FPS} fps "
                       f"({info.duration_s:.1f} s), needs at least {min_frames} ({min_frames / FPS:.1f} s)",
            fix="use a longer recording of the same person (GeneFace uses 3–5 minutes)")
