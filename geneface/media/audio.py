"""Audio input and output: any media file → 16 kHz mono float32, decoded by the bundled ffmpeg.

ffmpeg reads every container and codec (wav, mp3, m4a, mp4, mkv …) at any rate and channel count,
so one path serves training videos and driving audio alike. The wave starts at time 0 of the file's
timeline, the same origin video.iter_frames uses: `aresample=async=1:first_pts=0` pads with silence
when the audio starts late (or trims when it starts early) and fills gaps, so sample k·640 lines up
with 25 fps frame k. Channels are averaged (ffmpeg's `-ac 1` downmix: stereo → (L + R) / 2).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

from geneface.data.contract import SAMPLE_RATE
from geneface.media.errors import NoAudioError, UnreadableMediaError
from geneface.media.features import fit_to_frames
from geneface.media.ffmpeg import ffmpeg_error_summary, ffmpeg_exe
from geneface.utils.io import atomic_path

__all__ = ["load_audio", "write_wav", "audio_for_frames"]

_FIX_MEDIA = "pass an audio or video file that plays (wav, mp3, m4a, flac, mp4 …)"
_FIX_NO_AUDIO = ("use a recording with sound, or mux one in: ffmpeg -i video.mp4 -i speech.wav "
                 "-map 0:v -map 1:a -c:v copy -shortest out.mp4")


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio stream of any media file as float32 [N] mono in [-1, 1] at `sample_rate`.

    Raises NoAudioError when the file has no audio stream (or an empty one) and
    UnreadableMediaError when it is missing or ffmpeg cannot decode it.
    """
    path = Path(path)
    if not path.is_file():
        problem = "is a directory, not a media file" if path.is_dir() else "file not found"
        raise UnreadableMediaError(path, problem, fix=_FIX_MEDIA if path.is_dir() else
                                   f"check the path (relative paths are from {os.getcwd()})")
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path),
           "-map", "0:a:0", "-vn", "-sn", "-dn",
           "-af", f"aresample=osr={sample_rate}:ochl=mono:rematrix_maxval=1:async=1:first_pts=0",
           "-ac", "1", "-ar", str(sample_rate),
           "-f", "f32le", "-"]
    proc = subprocess.run(cmd, capture_output=True)
    stderr = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        if "matches no streams" in stderr:
            raise NoAudioError(path, "has no audio stream", fix=_FIX_NO_AUDIO)
        raise UnreadableMediaError(path, f"ffmpeg cannot decode its audio ({ffmpeg_error_summary(stderr)})",
                                   fix=_FIX_MEDIA)
    wave = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)   # [N], a writable copy
    if wave.size == 0:
        raise NoAudioError(path, "its audio stream has no samples", fix=_FIX_NO_AUDIO)
    return np.clip(wave, -1.0, 1.0, out=wave)   # resampling can overshoot full scale slightly


def write_wav(path: str | os.PathLike, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write [N] (or [N, C]) float audio in [-1, 1] as PCM16 wav, atomically (no half-written files)."""
    import soundfile

    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim not in (1, 2):
        raise ValueError(f"audio must be [N] or [N, channels]; got shape {wave.shape}")
    with atomic_path(path) as tmp:      # tmp ends in .tmp: name the format explicitly
        soundfile.write(tmp, np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")


def audio_for_frames(path: str | os.PathLike, num_frames: int) -> np.ndarray:
    """16 kHz mono audio of a video, cut or zero-padded to its 25 fps frames: [num_frames·640]."""
    return fit_to_frames(load_audio(path, SAMPLE_RATE), num_frames)
