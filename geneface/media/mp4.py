"""One streaming mp4 writer for the whole project: RGB frames (+ an audio file) → H.264/AAC mp4.

Why one writer: the landmark visualizer and the NeRF inference both need the same thing (frames
produced one at a time, never all in memory, muxed with the driving audio), and the same failure rules.

* ffmpeg from imageio-ffmpeg (no system ffmpeg); frames are piped to its stdin as raw rgb24; its stderr
  goes to a temporary file (never a pipe, so ffmpeg cannot block on it).
* Video: libx264, yuv420p, `fps` (25) frames per second, crf 18 (or a fixed bitrate), +faststart.
  yuv420p needs even width and height: an odd size is padded by one black column on the right and/or
  one black row at the bottom (the frame's pixels are kept as they are, never scaled).
* Audio (optional): the file's first audio stream (any format ffmpeg reads), encoded as AAC 128k.
  **The frames define the duration**: audio that is shorter is padded with silence, audio that is
  longer is cut at the last frame's end. Callers that want the video to follow the audio pass exactly
  as many frames as the audio lasts. No `-shortest` (GeneFace's mux): it can cut the video, and on short
  clips it overshoots by its interleaving buffer. Instead the video is encoded first (streamed, to a
  temporary file) and then muxed with the audio, video stream-copied, cut with `-t frames/fps`.
* The file is written under a temporary sibling name and renamed when complete: on any error or
  KeyboardInterrupt ffmpeg is killed and nothing is left behind.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from geneface.media.ffmpeg import ffmpeg_error_summary, ffmpeg_exe
from geneface.utils.io import atomic_path, temporary_dir_beside

__all__ = ["write_mp4", "even_size"]


def even_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) of the written video: each rounded up to even (yuv420p)."""
    return int(width) + int(width) % 2, int(height) + int(height) % 2


def _checked(frames: Iterator[np.ndarray], width: int, height: int) -> Iterator[bytes]:
    """Each frame as contiguous rgb24 bytes, after checking its shape and dtype (clear error, not a
    garbled video)."""
    for index, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.shape != (height, width, 3):
            raise ValueError(f"frame {index} has shape {list(frame.shape)}; write_mp4 was told "
                             f"width={width}, height={height}, so every frame must be [{height}, {width}, 3] RGB")
        if frame.dtype != np.uint8:
            raise ValueError(f"frame {index} has dtype {frame.dtype}; frames must be uint8 RGB "
                             "(convert floats in [0, 1] with (x * 255).round().clip(0, 255).astype(np.uint8))")
        yield np.ascontiguousarray(frame).tobytes()


def _video_command(out: Path, width: int, height: int, fps: int, crf: int, bitrate: str | None) -> list[str]:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0"]
    if width % 2 or height % 2:
        cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2:0:0:black"]
    rate = ["-b:v", str(bitrate)] if bitrate else ["-crf", str(int(crf))]
    return cmd + ["-c:v", "libx264", "-preset", "veryfast", *rate, "-pix_fmt", "yuv420p", "-r", str(fps),
                  "-movflags", "+faststart", "-f", "mp4", str(out)]


def _check_audio(audio: Path) -> None:
    """Fail before any frame is rendered (frames may be expensive) if `audio` has no readable sound."""
    if not audio.is_file():
        raise FileNotFoundError(f"audio file {audio} not found (pass audio=None for a silent video)")
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(audio)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, errors="replace")
    if "Input #0" not in proc.stderr:
        raise ValueError(f"cannot read audio file {audio}: {ffmpeg_error_summary(proc.stderr)}; pass a wav/mp3/"
                         "mp4 or any file ffmpeg plays")
    if ": Audio: " not in proc.stderr:
        raise ValueError(f"audio file {audio} has no audio stream; pass a file with sound, or audio=None")


def _mux(video: Path, audio: Path, out: Path, seconds: float, name: Path) -> None:
    """Copy the video stream, add `audio` as AAC padded with silence and cut at exactly `seconds`."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", str(video), "-i", str(audio),
           "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-af", "apad", "-c:a", "aac", "-b:a", "128k",
           "-t", f"{seconds:.6f}", "-movflags", "+faststart", "-f", "mp4", str(out)]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not add the audio of {audio} to {name}: "
                           f"{ffmpeg_error_summary(proc.stderr)}")


def write_mp4(frames: Iterable[np.ndarray], out: str | os.PathLike, *, width: int, height: int,
              audio: str | os.PathLike | None = None, fps: int = 25, crf: int = 18, bitrate: str | None = None,
              total: int | None = None, desc: str = "encode") -> Path:
    """Stream `frames` (each uint8 RGB [height, width, 3]) into the mp4 `out`, muxing `audio` if given.

    One video frame per input frame at `fps`; the duration is len(frames) / fps whatever the audio's
    length (module docstring). `bitrate` (e.g. "2000k", GeneFace's setting) replaces crf when given.
    `total`: the expected frame count, shown as a tqdm progress bar (no bar when None).
    Returns `out`. Raises FileNotFoundError / ValueError for a missing or soundless audio file (checked
    before the first frame is drawn), ValueError for no frames or a frame of the wrong shape/dtype,
    RuntimeError with ffmpeg's own error otherwise; no file is left behind in any case.
    """
    out = Path(out)
    width, height, fps = int(width), int(height), int(fps)
    if width < 1 or height < 1 or fps < 1:
        raise ValueError(f"width, height and fps must be positive; got {width}, {height}, {fps}")
    if out.is_dir():
        raise ValueError(f"{out} is a directory; pass a file path ending in .mp4")
    if audio is not None:
        audio = Path(audio)
        _check_audio(audio)
    stream = _checked(iter(frames), width, height)
    try:
        first = next(stream)                       # checked before ffmpeg starts: no frames → no file
    except StopIteration:
        raise ValueError(f"no frames to write to {out}") from None
    bar = None
    if total is not None:
        from geneface.utils.progress import progress_bar

        bar = progress_bar(total=int(total), desc=desc, unit="frame")
    try:
        with atomic_path(out) as tmp:
            if audio is None:
                _encode(chain([first], stream), out, _video_command(tmp, width, height, fps, crf, bitrate), bar)
            else:                                  # two passes: only then is the cut exact (module docstring)
                with temporary_dir_beside(out) as work:
                    video = Path(work) / "video.mp4"
                    count = _encode(chain([first], stream), out,
                                    _video_command(video, width, height, fps, crf, bitrate), bar)
                    _mux(video, audio, tmp, count / fps, out)
    finally:
        if bar is not None:
            bar.close()
    return out


def _encode(chunks: Iterator[bytes], out: Path, cmd: list[str], bar) -> int:
    """Run ffmpeg (writing a temporary name; `out` names errors), feed it every chunk, and raise RuntimeError with its error if it fails."""
    written, broken = 0, False
    with tempfile.TemporaryFile() as err:            # a file, not a pipe: ffmpeg never blocks on stderr
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        try:
            for chunk in chunks:
                try:
                    proc.stdin.write(chunk)
                except BrokenPipeError:              # ffmpeg died: its exit code and stderr say why
                    broken = True
                    break
                written += 1
                if bar is not None:
                    bar.update(1)
            try:
                proc.stdin.close()
            except BrokenPipeError:
                broken = True
            code = proc.wait()
        finally:
            if proc.poll() is None:                  # an exception (bad frame, KeyboardInterrupt): stop ffmpeg
                proc.kill()
                proc.wait()
        if code != 0 or broken:
            err.seek(0)
            message = ffmpeg_error_summary(err.read().decode(errors="replace"))
            if code == 0:
                message = f"ffmpeg stopped reading after {written} frames ({message})"
            raise RuntimeError(f"ffmpeg could not encode {out}: {message}")
    return written
