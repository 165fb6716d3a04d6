"""Reliability: bad inputs and interruptions, as a new user meets them (issue 17's list).

Each case states the documented error type and checks that the message names the file and the fix;
interruptions resume to the same result; nothing half-written is left looking complete.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from geneface.media.audio import write_wav
from geneface.train import train
from geneface.utils.checkpoints import (DamagedCheckpointError, MissingCheckpointError, OutdatedCheckpointError,
                                        WrongStageCheckpointError, load_stage, upstream_checkpoint)
from hydra_utils import CONFIG_DIR, REPO_ROOT, compose_train

SMALL_SYNCNET = [  # a SyncNet small enough for 2 CPU cores (as tests/test_train.py)
    "stage.model.net.width=0.25", "stage.data.batch_size=16", "stage.data.num_workers=0",
    "stage.data.train_collate.num_pairs=256", "stage.data.val_collate.num_pairs=1024",
    "trainer.accelerator=cpu",
]


def _syncnet_checkpoint(output_dir: Path) -> Path:
    """A real (untrained) syncnet checkpoint as geneface.train writes it: <output_dir>/lrs3/syncnet/best.ckpt."""
    cfg = compose_train(["stage=syncnet", f"paths.output_dir={output_dir}", *SMALL_SYNCNET], output_dir / "run")
    module = instantiate(cfg.stage.model)
    path = output_dir / "lrs3" / "syncnet" / "best.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"geneface_config": OmegaConf.to_container(cfg, resolve=True), "state_dict": module.state_dict()}, path)
    return path


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# --- checkpoints (issue 17 #4, #5) ----------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "empty", "text"])
def test_a_damaged_checkpoint_names_the_file_and_the_fix(tmp_path, damage):
    path = _syncnet_checkpoint(tmp_path)
    if damage == "truncated":
        _truncate(path)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.write_text("not a checkpoint\n")
    with pytest.raises(DamagedCheckpointError, match="Train its stage again") as err:
        load_stage(path)
    assert str(path) in str(err.value) and "damaged" in str(err.value)


@pytest.mark.parametrize("change", ["class", "argument"])
def test_a_checkpoint_from_another_version_names_the_key_and_the_fix(tmp_path, change):
    """A checkpoint whose saved config names a class this code lacks, or passes an argument its class no
    longer takes (old code: Hydra's bare "Error locating target ..." / InstantiationException)."""
    path = _syncnet_checkpoint(tmp_path)
    checkpoint = torch.load(path, weights_only=False)
    model = checkpoint["geneface_config"]["stage"]["model"]
    if change == "class":
        model["pose_helper"] = {"_target_": "geneface.nerf.gone.PoseHelper"}     # a sub-module since removed
    else:
        model["window_gizmo"] = 3
    torch.save(checkpoint, path)
    with pytest.raises(OutdatedCheckpointError, match="another version of geneface") as err:
        load_stage(path)
    message = str(err.value)
    assert str(path) in message and "stage=syncnet" in message and "resume=false" in message
    if change == "class":
        assert "geneface.nerf.gone.PoseHelper (at stage.model.pose_helper)" in message
    else:
        assert "'window_gizmo'" in message


def _compose_infer(output_dir: Path, *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("infer", overrides=["speaker=demo", f"paths.output_dir={output_dir}",
                                           f"paths.data_dir={output_dir / 'data'}", *overrides])


def test_a_checkpoint_of_another_stage_is_refused_naming_both(tmp_path):
    """A syncnet checkpoint passed as postnet_ckpt (old code: AttributeError: 'SyncNetStage' object
    has no attribute 'predict', after loading)."""
    from geneface.infer import infer

    ckpt = _syncnet_checkpoint(tmp_path)
    wav = tmp_path / "speech.wav"
    write_wav(wav, torch.zeros(16000).numpy())
    cfg = _compose_infer(tmp_path, f"wav={wav}", f"postnet_ckpt={ckpt}", "render=false")
    with pytest.raises(WrongStageCheckpointError, match="holds a 'syncnet' checkpoint, but postnet_ckpt needs"):
        infer(cfg)


def test_a_mistyped_checkpoint_path_is_not_read_as_an_untrained_stage(tmp_path):
    """`postnet_ckpt=/some/dir/x.ckpt` (old code: "stage 'dir' has not been trained for 'some'")."""
    with pytest.raises(MissingCheckpointError, match="check the path") as err:
        upstream_checkpoint(tmp_path / "some" / "dir" / "x.ckpt")
    assert "stage 'dir'" not in str(err.value) and "Run first" not in str(err.value)
    # a standard stage layout still names the command that trains it
    with pytest.raises(MissingCheckpointError, match="python -m geneface.train stage=postnet speaker=May"):
        upstream_checkpoint(tmp_path / "May" / "postnet" / "selected.ckpt")


@pytest.mark.slow
def test_a_resume_that_finds_a_damaged_last_checkpoint_falls_back_to_best(synthetic_corpus, tmp_path):
    """A truncated last.ckpt (old code: a torch traceback, 'PytorchStreamReader failed reading zip
    archive'): the run warns, resumes from best.ckpt and finishes."""
    common = ["stage=syncnet", "speaker=synthetic_corpus", f"speaker.root={synthetic_corpus}",
              f"paths.output_dir={tmp_path}", "logger=csv", *SMALL_SYNCNET, "stage.val_check_interval=2",
              "stage.limit_val_batches=1"]
    train(compose_train([*common, "stage.max_steps=4"], tmp_path / "run1"))
    stage_dir = tmp_path / "synthetic_corpus" / "syncnet"
    best_step = torch.load(stage_dir / "best.ckpt", weights_only=False)["global_step"]
    _truncate(stage_dir / "last.ckpt")
    with pytest.warns(UserWarning, match="Resuming from .*best.ckpt instead") as record:
        train(compose_train([*common, "stage.max_steps=6"], tmp_path / "run2"))
    assert any(str(stage_dir / "last.ckpt") in str(w.message) for w in record)
    assert best_step in (2, 4)
    assert torch.load(stage_dir / "last.ckpt", weights_only=False)["global_step"] == 6

    # neither readable: a clear error, not a traceback from torch
    _truncate(stage_dir / "last.ckpt")
    _truncate(stage_dir / "best.ckpt")
    with pytest.raises(DamagedCheckpointError, match="resume=false"):
        train(compose_train([*common, "stage.max_steps=8"], tmp_path / "run3"))


# --- the command line (issue 17 #5) ---------------------------------------------------------------

def test_an_unknown_speaker_lists_the_speakers_and_how_to_make_one():
    """`speaker=nobody` (old code: Hydra's config-search dump, exit 1)."""
    proc = subprocess.run([sys.executable, "-m", "geneface.train", "stage=radnerf", "speaker=nobody"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "configs/speaker/nobody.yaml does not exist" in proc.stderr
    assert "demo" in proc.stderr and "python -m geneface.process speaker=nobody video=" in proc.stderr
    assert "Config search path" not in proc.stderr


def test_inference_on_a_corpus_says_it_is_a_corpus(tmp_path):
    """`infer speaker=lrs3` (old code: 'stage postnet has not been trained for lrs3. Run first: …')."""
    from geneface.infer import infer

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("infer", overrides=["speaker=lrs3", f"paths.output_dir={tmp_path}", "wav=zozo.wav"])
    with pytest.raises(ValueError, match="'lrs3' is a clip corpus .* not a speaker: infer renders one person"):
        infer(cfg)


@pytest.mark.parametrize(("command", "missing"), [(["geneface.infer", "wav={tmp}/a.wav"], "postnet/selected.ckpt"),
                                                  (["geneface.evaluate"], "radnerf/best.ckpt")])
def test_an_entry_point_missing_a_checkpoint_prints_one_error_line(tmp_path, command, missing):
    """A speaker with nothing trained: exit status 1, one `error:` naming the file and the command that
    makes it, no traceback (geneface.utils.cli.errors_as_exit)."""
    write_wav(tmp_path / "a.wav", np.zeros(16000))
    command = [arg.format(tmp=tmp_path) for arg in command]
    proc = subprocess.run([sys.executable, "-m", *command, "speaker=demo", f"paths.output_dir={tmp_path}"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1, proc.stderr
    assert f"error: {tmp_path}/demo/{missing} does not exist" in proc.stderr
    assert "python -m geneface.train stage=" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unexpected_error_in_an_entry_point_keeps_its_traceback():
    from geneface.utils.cli import errors_as_exit

    with pytest.raises(SystemExit) as exited, errors_as_exit():
        raise ValueError("bad input")
    assert exited.value.code == 1
    with pytest.raises(KeyError), errors_as_exit():
        raise KeyError("a bug")


# --- threads (issue 17 #6) ------------------------------------------------------------------------

def test_auto_threads_leave_busy_cores_to_the_other_job(monkeypatch):
    from geneface.utils import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setattr(threads, "busy_cores", lambda: 5.6)
    assert threads.auto_threads()[0] == 2
    monkeypatch.setattr(threads, "busy_cores", lambda: 9.0)        # a crowded machine: still one
    assert threads.auto_threads()[0] == 1
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.1)
    assert threads.auto_threads()[0] == 8
    monkeypatch.setenv("OMP_NUM_THREADS", "3")                     # the user's word wins
    assert threads.auto_threads() == (3, "OMP_NUM_THREADS")
    before = torch.get_num_threads()
    try:
        assert threads.set_threads(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="runtime.threads must be"):
        threads.set_threads(0)


def test_busy_cores_sees_another_process_spinning():
    from geneface.utils.threads import busy_cores

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_cores(0.5) >= 0.6
    finally:
        spinner.kill()
        spinner.wait()


# --- processing interrupted (issue 17 #2) ---------------------------------------------------------

SHARED = REPO_ROOT.parent / "shared" / "data"
MAY = SHARED / "speakers" / "May_5s.mp4"
needs_shared = pytest.mark.skipif(not MAY.is_file(), reason=f"shared media not found at {SHARED}")


@pytest.mark.realdata
@needs_shared
@pytest.mark.parametrize("salvage", [True, False])
def test_processing_killed_while_assembling_resumes(tmp_path, salvage):
    """`kill -9` during the assemble step, once the frames and labels were moved into the hidden
    `.<name>.*.partial` dataset (old code: every re-run failed with cv2.error '!_src.empty()' until
    the work directory was deleted by hand). Reproduced by putting the run's files where the kill
    leaves them; with salvage=False the partial lost its frames too (the frames step runs again)."""
    from geneface.data.validate import validate
    from geneface.processing.speaker import SpeakerProcessConfig, process_speaker

    data = tmp_path / "data"
    options = dict(progress=False, min_seconds=3.0)
    out = process_speaker(MAY, "x", data, SpeakerProcessConfig(keep_work=True, **options))
    partial = data / ".x.k9kill.partial"
    partial.mkdir()
    for sub in ("frames", "labels"):
        if salvage:
            os.replace(out / sub, partial / sub)
    shutil.rmtree(out)
    again = process_speaker(MAY, "x", data, SpeakerProcessConfig(**options))
    assert validate(again).num_frames == 125
    assert not list(data.glob(".x.*.partial")) and not (data / ".work" / "x").exists()


# --- non-square pixels (issue 17 #7) --------------------------------------------------------------

def test_non_square_pixels_are_decoded_at_the_size_a_player_shows(tmp_path):
    """A 160×90 stream with a 9:16 sample aspect ratio plays as 90×90 (old code: frames came out
    160×90, the face squashed, with no warning)."""
    from geneface.media.ffmpeg import ffmpeg_exe
    from geneface.media.video import iter_frames, probe_video

    def make(name: str, sar: str) -> Path:
        path = tmp_path / name
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=25",
                        "-t", "1", "-vf", f"setsar={sar}", "-pix_fmt", "yuv420p", str(path)], check=True)
        return path

    info = probe_video(make("anamorphic.mp4", "9/16"))
    assert (info.width, info.height, info.storage_size) == (90, 90, (160, 90))
    frames = list(iter_frames(info.path))
    assert len(frames) == 25 and frames[0].shape == (90, 90, 3)
    square = probe_video(make("square.mp4", "1"))
    assert (square.width, square.height, square.storage_size) == (160, 90, None)


# --- two faces (issue 17 #3) ----------------------------------------------------------------------

@pytest.mark.realdata
@needs_shared
def test_two_faces_of_one_size_keep_one_tracked_face(tmp_path):
    """May beside her mirror image: two faces of the same size (old code kept 'the largest' per frame,
    which flipped left↔right dozens of times: landmark jitter ~500 px, and data.check passed)."""
    from geneface.data.validate import validate
    from geneface.media.ffmpeg import ffmpeg_exe
    from geneface.processing.speaker import SpeakerProcessConfig, process_speaker

    video = tmp_path / "two.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(MAY), "-filter_complex",
                    "[0:v]split[a][b];[b]hflip[m];[a][m]hstack", "-c:a", "copy", str(video)], check=True)
    out = process_speaker(video, "two", tmp_path / "data", SpeakerProcessConfig(progress=False, min_seconds=3.0))
    assert validate(out).num_frames == 125
    centres = np.load(out / "landmarks68.npy")[..., 0].mean(1)             # [T] x of the face kept
    assert (centres < centres[0] + 100).all() and (centres > centres[0] - 100).all(), "the track changed person"
    assert json.loads((out / "meta.json").read_text())["quality"]["landmark_jitter_px"] < 5


def test_a_face_track_that_jumps_is_an_error_listing_the_frames():
    from geneface.processing.speaker import _face_jumps

    t = np.arange(40, dtype=np.float32)
    face = np.random.default_rng(0).uniform(0, 100, (478, 3)).astype(np.float32)   # 100 px wide
    landmarks = np.repeat(face[None], len(t), 0)
    landmarks[:, :, 0] += t[:, None]                                        # 1 px a frame: a moving head
    landmarks[20:23, :, 0] += 300                                           # another face, frames 20–22
    valid = np.ones(len(t), bool)
    valid[5] = False
    assert _face_jumps(landmarks, valid) == [20, 23]


# --- smaller ones (issue 17 #8) -------------------------------------------------------------------

def test_a_killed_writers_temporaries_are_removed_by_the_next_writer(tmp_path):
    """`kill -9` during inference left `.<out>.<random>` directories beside the output for good."""
    from geneface.utils.io import save_json

    out = tmp_path / "result.json"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale_dir, stale_file = tmp_path / f".result.json.{dead.pid}.abc", tmp_path / f".result.json.{dead.pid}.x.tmp"
    stale_dir.mkdir()
    (stale_dir / "video.mp4").write_bytes(b"half")
    stale_file.write_bytes(b"half")
    running = tmp_path / f".result.json.{os.getppid()}.def"               # a writer that still runs
    running.mkdir()
    save_json(out, {"ok": True})
    assert json.loads(out.read_text()) == {"ok": True}
    assert not stale_dir.exists() and not stale_file.exists() and running.exists()


def test_a_processing_error_is_printed_once(tmp_path):
    """Old code printed it twice: through the log and on stderr."""
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is a text file\n")
    proc = subprocess.run([sys.executable, "-m", "geneface.process", "speaker=x", f"video={bad}",
                           f"data_dir={tmp_path / 'data'}"], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1
    both = proc.stdout + proc.stderr
    assert both.count(f"{bad}:") == 1, both
    assert "fix:" in proc.stderr


@pytest.mark.realdata
@needs_shared
def test_a_face_too_small_in_a_tiny_video_does_not_suggest_cropping(tmp_path):
    """A 96×96 source (old code: 'crop the video around the head', which cannot help, and no word of
    options.min_face_px)."""
    from geneface.media.errors import FaceTooSmallError
    from geneface.media.ffmpeg import ffmpeg_exe
    from geneface.processing.speaker import SpeakerProcessConfig, process_speaker

    tiny = tmp_path / "tiny.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(MAY), "-vf", "scale=96:96", str(tiny)], check=True)
    with pytest.raises(FaceTooSmallError, match="only 96x96: use a higher-resolution recording") as err:
        process_speaker(tiny, "tiny", tmp_path / "data", SpeakerProcessConfig(progress=False, min_seconds=3.0))
    assert "options.min_face_px=" in str(err.value) and "crop" not in str(err.value)


# --- atomic checkpoints ---------------------------------------------------------------------------

class _FailsMidway:
    """Pickling it raises after the checkpoint's tensors are partly written: a kill during a save."""

    def __reduce__(self):
        raise KeyboardInterrupt


def test_a_checkpoint_save_that_dies_midway_leaves_the_previous_one_whole(tmp_path):
    from geneface.callbacks.atomic_checkpoint_io import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "weights": torch.arange(10.0)}, path)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2, "weights": torch.zeros(1 << 20), "later": _FailsMidway()}, path)
    assert torch.load(path, weights_only=False)["global_step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
