"""Video and audio input (geneface.media.video, audio, errors) on tiny self-made media,
plus `realdata` checks against the shared media and its MANIFEST.tsv."""

from __future__ import annotations

import csv
import math
import pickle
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from geneface.media.audio import audio_for_frames, load_audio, write_wav
from geneface.media.errors import (FaceTooSmallError, NoAudioError, NoFaceError, NotAVideoError,
                                   ProcessingError, UnreadableMediaError, VideoTooShortError,
                                   format_frame_ranges)
from geneface.media.ffmpeg import ffmpeg_exe
from geneface.media.video import count_frames, iter_frames, probe_video, require_audio, require_frames

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args], check=True)


def make_video(path: Path, rate: str = "30", frames: int = 60, size: str = "64x48", audio: bool = True,
               extra: tuple[str, ...] = ()) -> Path:
    """testsrc video (+ a 440 Hz 44.1 kHz stereo tone lasting as long) with libx264."""
    args = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}"]
    if audio:
        seconds = frames / float(Fraction(rate))
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
                 "-ac", "2", "-c:a", "aac"]
    ffmpeg(*args, *extra, "-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path))
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    text = d / "notes.mp4"
    text.write_text("this is not a video\n")
    return {"av30": make_video(d / "av30.mp4"), "silent": make_video(d / "silent.mp4", audio=False),
            "ntsc": make_video(d / "ntsc.mp4", rate="30000/1001", frames=90, audio=False), "text": text}


def half_up(n: int, rate: str) -> int:
    return math.floor(n * 25 / Fraction(rate) + Fraction(1, 2))


# ---------------------------------------------------------------- probe and frames

def test_probe_fields(media):
    info = probe_video(media["av30"])
    assert (info.width, info.height, info.codec) == (64, 48, "h264")
    assert info.fps == 30.0 and info.duration_s == pytest.approx(2.0, abs=1e-3)
    assert info.has_audio and info.audio_sample_rate == 44100 and info.audio_channels == 2
    assert info.num_frames_25fps == 50 and info.num_source_frames == 60 and not info.variable_frame_rate
    silent = probe_video(media["silent"])
    assert not silent.has_audio and silent.audio_sample_rate is None and silent.audio_channels is None
    assert probe_video(media["ntsc"]).fps == pytest.approx(30000 / 1001)


@pytest.mark.parametrize("rate,frames", [("30", 23), ("30000/1001", 90), ("24", 7), ("50", 13), ("60", 3)])
def test_frame_count_rule(tmp_path, rate, frames):
    """iter_frames yields round_half_up(N·25/rate) frames, which probe and count_frames predict."""
    path = make_video(tmp_path / "v.mp4", rate=rate, frames=frames, size="32x32", audio=False)
    decoded = list(iter_frames(path))
    assert len(decoded) == half_up(frames, rate) == probe_video(path).num_frames_25fps == count_frames(path)
    if rate.isdigit():                       # at its own rate, nothing is dropped or repeated
        assert count_frames(path, fps=int(rate)) == frames


def test_frames_are_rgb_uint8(tmp_path, media):
    frames = list(iter_frames(media["av30"], max_frames=5, decode_threads=1))
    assert len(frames) == 5
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 and f.flags.writeable for f in frames)
    red = tmp_path / "red.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:size=32x24:rate=25", "-frames:v", "2", "-c:v", "libx264",
           "-pix_fmt", "yuv444p", "-qp", "0", str(red))
    assert np.abs(next(iter_frames(red))[12, 16].astype(int) - [255, 0, 0]).max() <= 3   # RGB, not BGR


def test_early_close_stops_ffmpeg(media):
    gen = iter_frames(media["ntsc"])
    next(gen)
    gen.close()            # the finally block kills and reaps ffmpeg; nothing must hang or leak
    assert len(list(iter_frames(media["ntsc"], max_frames=0))) == 0


def test_rotation_and_late_video(tmp_path, media):
    rotated = tmp_path / "rot.mp4"
    ffmpeg("-display_rotation:v", "90", "-i", str(media["silent"]), "-c", "copy", str(rotated))
    info = probe_video(rotated)
    assert (info.rotation, info.width, info.height) == (90, 48, 64)
    assert next(iter_frames(rotated)).shape == (64, 48, 3)
    # Video starting 0.4 s after the audio: its first frame is repeated from time 0.
    late = tmp_path / "late.mkv"
    ffmpeg("-itsoffset", "0.4", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=25:duration=2", "-f", "lavfi",
           "-i", "sine=duration=3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "libmp3lame", str(late))
    info = probe_video(late)
    frames = list(iter_frames(late))
    assert info.start_s == pytest.approx(0.4) and len(frames) == info.num_frames_25fps == 60
    assert np.array_equal(frames[0], frames[9]) and not np.array_equal(frames[0], frames[11])


def test_raw_stream_and_size_change(tmp_path):
    """A raw .h264 (no timestamps) and a TS whose size changes mid-way still match the predicted count."""
    raw = make_video(tmp_path / "raw.h264", frames=47, audio=False)
    assert len(list(iter_frames(raw))) == probe_video(raw).num_frames_25fps == half_up(47, "30")
    make_video(tmp_path / "a.ts", rate="25", frames=20, audio=False)
    make_video(tmp_path / "b.ts", rate="25", frames=20, size="96x96", audio=False,
               extra=("-output_ts_offset", "0.8"))
    joined = tmp_path / "ab.ts"
    joined.write_bytes((tmp_path / "a.ts").read_bytes() + (tmp_path / "b.ts").read_bytes())
    frames = list(iter_frames(joined))
    assert len(frames) == probe_video(joined).num_frames_25fps and {f.shape for f in frames} == {(48, 64, 3)}


def test_truncated_video(tmp_path):
    whole = make_video(tmp_path / "whole.mp4", frames=90, audio=False, extra=("-movflags", "+faststart"))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    with pytest.raises(NotAVideoError, match="is truncated"):
        probe_video(cut)
    with pytest.raises(NotAVideoError, match="is truncated"):
        list(iter_frames(cut))


# ---------------------------------------------------------------- audio

def test_load_audio_tone(media):
    wave = load_audio(media["av30"])
    assert wave.dtype == np.float32 and wave.ndim == 1 and np.abs(wave).max() <= 1.0
    assert abs(len(wave) - 2.0 * 16000) <= 640
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.fft.rfftfreq(len(wave), 1 / 16000)[spectrum.argmax()] == pytest.approx(440, abs=2)
    aligned = audio_for_frames(media["av30"], 50)
    assert aligned.shape == (50 * 640,) and aligned.dtype == np.float32


def test_downmix_and_late_audio(tmp_path):
    import soundfile

    t = np.arange(48000) / 48000
    tone = 0.5 * np.sin(2 * np.pi * 300 * t)
    soundfile.write(tmp_path / "st.wav", np.stack([tone, tone], 1), 48000)
    assert np.abs(load_audio(tmp_path / "st.wav")).max() == pytest.approx(0.5, abs=0.01)   # (L+R)/2
    late = tmp_path / "late.mp4"         # audio starting 0.5 s into the video: silence is padded in
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x32:rate=25:duration=2", "-itsoffset", "0.5", "-f", "lavfi",
           "-i", "sine=frequency=440:duration=1.5", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
           str(late))
    wave = load_audio(late)
    first = np.flatnonzero(np.abs(wave) > 0.01)[0]
    assert abs(first - 8000) <= 640 and abs(len(wave) - 32000) <= 640


def test_write_wav_roundtrip(tmp_path):
    import soundfile

    wave = (0.8 * np.sin(np.linspace(0, 100, 16000))).astype(np.float32)
    write_wav(tmp_path / "a.wav", wave)
    info = soundfile.info(tmp_path / "a.wav")
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 16000)
    assert np.abs(load_audio(tmp_path / "a.wav") - wave).max() < 2 / 32768
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]      # no temporary left behind


# ---------------------------------------------------------------- errors

def test_not_a_video(media, tmp_path):
    with pytest.raises(NotAVideoError) as err:
        probe_video(media["text"])
    assert "notes.mp4" in str(err.value) and "\n  fix: " in str(err.value)
    with pytest.raises(NotAVideoError, match="file not found"):
        probe_video(tmp_path / "missing.mp4")
    with pytest.raises(NotAVideoError, match="file not found"):
        list(iter_frames(tmp_path / "missing.mp4"))
    write_wav(tmp_path / "speech.wav", np.zeros(1600))
    with pytest.raises(NotAVideoError, match="no video stream"):
        probe_video(tmp_path / "speech.wav")
    with pytest.raises(UnreadableMediaError):
        load_audio(media["text"])
    with pytest.raises(UnreadableMediaError, match="file not found"):
        load_audio(tmp_path / "missing.wav")


def test_no_audio_and_too_short(media):
    with pytest.raises(NoAudioError, match="no audio stream"):
        load_audio(media["silent"])
    info = probe_video(media["silent"])
    with pytest.raises(NoAudioError):
        require_audio(info)
    require_frames(info, 50)
    with pytest.raises(VideoTooShortError, match="needs at least 51") as err:
        require_frames(info, 51)
    assert "silent.mp4" in str(err.value) and "fix:" in str(err.value)


def test_error_format_and_pickle():
    assert format_frame_ranges([]) == ""
    assert format_frame_ranges([5]) == "5"
    assert format_frame_ranges([40, *range(13), 97, *range(98, 131), 40]) == "0–12, 40, 97–130"
    assert format_frame_ranges(range(0, 40, 2)).endswith("… and 8 more ranges")
    err = NoFaceError("v.mp4", "no face found", "use a frontal video", frames=[0, 1, 2, 9])
    assert str(err) == "v.mp4: no face found (frames 0–2, 9)\n  fix: use a frontal video"
    assert str(ProcessingError("v.mp4", "bad")) == "v.mp4: bad"
    for cls in (ProcessingError, NotAVideoError, NoAudioError, VideoTooShortError, NoFaceError,
                FaceTooSmallError, UnreadableMediaError):
        original = cls(Path("a.mp4"), "problem", "fix it", frames=[np.int64(3)])
        copy = pickle.loads(pickle.dumps(original))
        assert type(copy) is cls and str(copy) == str(original) and copy.frames == [3]
        assert isinstance(copy, ValueError)


# ---------------------------------------------------------------- shared media (realdata)

def _manifest() -> list[dict[str, str]]:
    if not (SHARED / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared media not found at {SHARED} (MANIFEST.tsv missing)")
    with open(SHARED / "MANIFEST.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.mark.realdata
def test_real_probe_matches_manifest():
    rows = [r for r in _manifest() if r["file"].startswith(("corpus/", "speakers/"))]
    assert len(rows) >= 25
    for row in rows:
        info = probe_video(SHARED / row["file"])
        width, height = map(int, row["video"].split("x"))
        rate, channels = row["audio"].replace("Hz", "").replace("ch", "").split("/")
        assert (info.width, info.height) == (width, height), row["file"]
        assert info.fps == pytest.approx(float(Fraction(row["fps"])), rel=1e-4), row["file"]
        assert info.duration_s == pytest.approx(float(row["duration_s"]), abs=0.1), row["file"]
        assert (info.audio_sample_rate, info.audio_channels) == (int(rate), int(channels)), row["file"]
        assert info.has_audio and info.rotation == 0
        assert abs(info.num_frames_25fps - 25 * info.duration_s) <= 1, row["file"]


@pytest.mark.realdata
@pytest.mark.parametrize("clip", ["corpus/klobuchar/00001.mp4", "corpus/aoc/00002.mp4", "corpus/li/00003.mp4",
                                  "corpus/retalk1/00001.mp4", "corpus/retalk4/00001.mp4"])
def test_real_frame_counts(clip):
    """25, 29.97, 30 and variable (retalk1: 15/30 fps, starts at 33 ms) frame rates."""
    _manifest()
    info = probe_video(SHARED / clip)
    n = 0
    for frame in iter_frames(SHARED / clip):
        n += 1
    assert frame.shape == (info.height, info.width, 3)
    assert n == info.num_frames_25fps


@pytest.mark.realdata
def test_real_load_audio():
    rows = [r for r in _manifest() if r["file"].startswith("audio/")]
    assert rows
    for row in rows:
        wave = load_audio(SHARED / row["file"])
        assert wave.dtype == np.float32 and wave.ndim == 1, row["file"]
        assert abs(len(wave) / 16000 - float(row["duration_s"])) <= 0.04, row["file"]
        assert 0.01 < np.abs(wave).max() <= 1.0, row["file"]
