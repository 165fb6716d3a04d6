"""`python -m geneface.process` and `geneface.process.corpus` end to end: real clips meet the stated
accuracy and pass the validator; bad input raises the documented error and leaves no dataset."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geneface.data import contract
from geneface.data.corpus import read_index
from geneface.data.validate import validate
from geneface.processing.corpus import process_corpus
from geneface.media.errors import FaceTooSmallError, NoAudioError, NoFaceError, NotAVideoError, VideoTooShortError
from geneface.processing.speaker import SpeakerProcessConfig, process_speaker
from geneface.media.ffmpeg import ffmpeg_exe

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
MAY = SHARED / "speakers" / "May_5s.mp4"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared media not found at {SHARED}")


def quick(**kw) -> SpeakerProcessConfig:
    return SpeakerProcessConfig(progress=False, **{"min_seconds": 3.0, **kw})


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def may(tmp_path_factory) -> Path:
    return process_speaker(MAY, "May", tmp_path_factory.mktemp("data"), quick())


@pytest.mark.realdata
@needs_shared
def test_may_passes_the_validator_and_meets_the_accuracy_bars(may):
    report = validate(may)
    assert report.kind == "speaker" and report.num_frames == 125
    meta = contract_meta = __import__("json").loads((may / "meta.json").read_text())
    quality = meta["quality"]
    assert quality["face_detection_rate"] >= 0.99
    scale = 512 / max(meta["width"], meta["height"])
    assert quality["reprojection_error_px_median"] * scale <= 2.0, quality
    assert contract_meta["num_train"] == contract.num_train_frames(125)
    for name in ("contact_sheet.png", "pose.png", "stats.json"):
        assert (may / "report" / name).is_file()
    assert not (may.parent / ".work" / "May").exists()  # the work directory is cleaned up


@pytest.mark.realdata
@needs_shared
def test_may_labels_cover_face_with_head_and_lower_centre_with_torso(may):
    import cv2

    rects = np.load(may / "face_rect.npy")
    lm68 = np.load(may / "landmarks68.npy")
    for i in (0, 60, 124):
        labels = cv2.imread(str(may / "labels" / f"{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        # the inner face box: outer eye corners across, brows down to the lower lip
        x0, x1 = int(lm68[i, 36, 0]), int(lm68[i, 45, 0])
        y0, y1 = int(lm68[i, 17:27, 1].min()), int(lm68[i, 57, 1])
        face = labels[y0:y1, x0:x1]
        assert (face == contract.Label.HEAD).mean() >= 0.95
        h, w = labels.shape
        lower_centre = labels[int(0.9 * h):, int(0.4 * w):int(0.6 * w)]
        assert (lower_centre == contract.Label.TORSO).mean() >= 0.8
        assert rects[i, 2] > 0 and rects[i, 3] > 0


@pytest.mark.realdata
@pytest.mark.slow
@needs_shared
def test_processing_twice_gives_identical_arrays(may, tmp_path):
    again = process_speaker(MAY, "May", tmp_path, quick())
    for spec in contract.SPEAKER_ARRAYS:
        if (may / f"{spec.name}.npy").exists():
            assert np.array_equal(np.load(may / f"{spec.name}.npy"), np.load(again / f"{spec.name}.npy")), spec.name


def test_bad_inputs_raise_the_documented_errors_and_leave_nothing(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(NotAVideoError, match="notes.mp4"):
        process_speaker(text, "x", tmp_path / "data", quick())
    silent = tmp_path / "silent.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=25", "-t", "4", "-pix_fmt", "yuv420p", str(silent))
    with pytest.raises(NoAudioError, match="no audio"):
        process_speaker(silent, "x", tmp_path / "data", quick())
    noface = tmp_path / "noface.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=128x128:rate=25", "-f", "lavfi", "-i", "sine=frequency=300",
           "-t", "4", "-pix_fmt", "yuv420p", "-shortest", str(noface))
    with pytest.raises(VideoTooShortError, match="at least 10 s"):
        process_speaker(noface, "x", tmp_path / "data", quick(min_seconds=10))
    with pytest.raises(NoFaceError, match=r"no face found in 100 of 100 frames[\s\S]*frames 0.99"):
        process_speaker(noface, "x", tmp_path / "data", quick())
    assert not (tmp_path / "data" / "x").exists()


@pytest.mark.realdata
@needs_shared
def test_a_work_directory_left_by_another_video_is_not_resumed(tmp_path):
    """Issue 17 #1: the work directory was keyed by the name only, so after a video rejected for no face
    a good video under the same name was rejected with the old video's 'no face found in 100 of 100'."""
    noface = tmp_path / "noface.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=128x128:rate=25", "-f", "lavfi", "-i", "sine=frequency=300",
           "-t", "4", "-pix_fmt", "yuv420p", "-shortest", str(noface))
    with pytest.raises(NoFaceError):
        process_speaker(noface, "x", tmp_path / "data", quick())
    assert (tmp_path / "data" / ".work" / "x" / "frames.done").is_file()      # its steps, kept to resume
    out = process_speaker(MAY, "x", tmp_path / "data", quick())
    assert validate(out).num_frames == 125                                    # May_5s's frames, not the 100


@pytest.mark.realdata
@needs_shared
def test_face_too_small_is_reported(tmp_path):
    with pytest.raises(FaceTooSmallError, match="px wide"):
        process_speaker(MAY, "May", tmp_path, quick(min_face_px=2000))
    assert not (tmp_path / "May").exists()


@pytest.mark.realdata
@pytest.mark.slow
@needs_shared
def test_corpus_clips_shards_resume_and_failures(tmp_path):
    src = tmp_path / "src"
    for speaker in ("obama", "chan"):  # 25 and 29.97/30 fps sources
        shutil.copytree(SHARED / "corpus" / speaker, src / speaker)
    clips = sorted(src.glob("*/*.mp4"))[:4]
    for extra in sorted(src.glob("*/*.mp4"))[4:]:
        extra.unlink()
    (src / "broken").mkdir()
    (src / "broken" / "clip.mp4").write_text("not a video")
    root = tmp_path / "corpus"
    first = process_corpus(src, root, "test", shard=0, num_shards=2, workers=1, val_every=3, progress=False)
    second = process_corpus(src, root, "test", shard=1, num_shards=2, workers=2, val_every=3, progress=False)
    assert first.written + second.written == len(clips) and first.failed + second.failed == 1
    failures = "".join(p.read_text() for p in root.glob("failures.*.tsv"))
    assert "broken/clip" in failures
    again = process_corpus(src, root, "test", shard=0, num_shards=2, workers=1, val_every=3, progress=False)
    assert again.written == 0 and again.skipped_done == first.written
    report = validate(root)
    assert report.num_clips == len(clips)
    assert {e.split for e in read_index(root)} == {"train", "val"}


@pytest.mark.realdata
@needs_shared
def test_cli_writes_the_dataset_and_a_speaker_config(tmp_path):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run([sys.executable, "-m", "geneface.process", "speaker=May", f"video={MAY}",
                           f"data_dir={tmp_path}", f"configs_dir={tmp_path / 'configs'}",
                           "options.min_seconds=3", "options.progress=false"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "May" / "meta.json").is_file()
    assert "kind: speaker" in (tmp_path / "configs" / "speaker" / "May.yaml").read_text()
    bad = subprocess.run([sys.executable, "-m", "geneface.process", "speaker=X", f"video={tmp_path}/missing.mp4",
                          f"data_dir={tmp_path}"], cwd=REPO, env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and "missing.mp4" in bad.stderr
