"""`python -m geneface.pipeline`: every step on a tiny synthetic speaker, a re-run that skips them, a
killed run that continues where it stopped, a missing corpus that stops before anything runs; and the
runner's rules on stand-in steps (plain python commands)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_utils import REPO, SAMPLE_SECONDS, TINY, env_for, run_module

from geneface.media.video import probe_video
from geneface.pipeline.runner import run_steps
from geneface.pipeline.steps import STEP_NAMES, PipelineError, Step


def _step(name: str, tmp_path: Path, code: str, **kwargs) -> Step:
    out = tmp_path / f"{name}.out"
    return Step(name, ["-c", code.replace("OUT", repr(str(out)))], [out], describe=name, **kwargs)


def test_finished_steps_are_skipped_and_a_changed_or_downstream_step_runs_again(tmp_path):
    write = "import pathlib, time; pathlib.Path(OUT).write_text(str(time.time()))"
    steps = [_step("a", tmp_path, write), _step("b", tmp_path, write)]
    run_steps(steps, tmp_path / "pipe", progress=False)
    first = {s.name: s.outputs[0].read_text() for s in steps}
    run_steps(steps, tmp_path / "pipe", progress=False)                      # nothing to do
    assert {s.name: s.outputs[0].read_text() for s in steps} == first
    changed = [_step("a", tmp_path, write + "  # changed"), steps[1]]          # a's command changed …
    run_steps(changed, tmp_path / "pipe", progress=False)
    assert all(s.outputs[0].read_text() != first[s.name] for s in changed)    # … so a and b after it run


def test_a_failing_step_names_its_log_and_the_command_that_continues(tmp_path, capsys):
    steps = [_step("a", tmp_path, "import sys; print('the disk is full'); sys.exit(3)")]
    with pytest.raises(PipelineError, match=r"step a failed \(exit 3\); its whole log: .*a\.log.*run the same command again"):
        run_steps(steps, tmp_path / "pipe", progress=True)
    assert "the disk is full" in capsys.readouterr().out                     # the log's tail is shown
    assert not (tmp_path / "pipe" / "state.json").exists()                   # nothing recorded as done


def test_a_second_pipeline_for_the_same_speaker_is_refused(tmp_path):
    (tmp_path / "pipe").mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "pipe" / ".lock").write_text(str(sleeper.pid))
        with pytest.raises(PipelineError, match="another pipeline for this speaker is running"):
            run_steps([_step("a", tmp_path, "pass")], tmp_path / "pipe", progress=False)
    finally:
        sleeper.kill()
        sleeper.wait()
    run_steps([_step("a", tmp_path, "import pathlib; pathlib.Path(OUT).write_text('x')")], tmp_path / "pipe",
              progress=False)                                                 # its pid gone: stale, taken


def test_a_missing_corpus_stops_before_anything_runs(tmp_path):
    from geneface.synthetic.speaker import write_synthetic_speaker

    write_synthetic_speaker(tmp_path / "data", seconds=1.0, size=32, progress=False)
    named = run_module(tmp_path, "geneface.pipeline", "speaker=demo", "preset=cpu", "corpus=lrs3")
    assert named.returncode == 1
    assert "python -m geneface.train stage=syncnet speaker=lrs3 preset=cpu" in named.stderr
    assert "python -m geneface.train stage=audio2motion speaker=lrs3 preset=cpu" in named.stderr
    auto = run_module(tmp_path, "geneface.pipeline", "speaker=demo", "preset=cpu")
    assert auto.returncode == 1 and "none is trained" in auto.stderr
    assert not (tmp_path / "demo" / "pipeline" / "logs").exists()            # no step started


@pytest.mark.slow
def test_the_pipeline_makes_a_report_and_a_sample_video_then_skips_every_step(tiny_pipeline):
    root = tiny_pipeline
    first = (root / "pipeline_stdout.txt").read_text()
    steps = [s for s in STEP_NAMES if s != "radnerf_torso"]                  # the head alone, pasted back
    assert "[1/6] process: done, skipped" in first                           # geneface.synthetic wrote it
    for k, name in enumerate(steps[1:], 2):
        assert f"[{k}/6] {name}: done in" in first
    video = root / "demo" / "infer" / "demo_val_audio_radnerf.mp4"
    info = probe_video(video)
    assert info.has_audio and abs(info.duration_s - SAMPLE_SECONDS) < 0.1
    report = (root / "demo" / "report.html").read_text()
    for section in ("Sample video", "Evaluation", "Val renders beside the truth", "Stages", "Processing"):
        assert f"<h2>{section}</h2>" in report
    assert 'src="infer/demo_val_audio_radnerf.mp4"' in report and "reconstruction" in report
    assert report.count("data:image/png;base64,") >= 3                       # renders + strip, embedded
    again = run_module(root, "geneface.pipeline", *TINY)
    assert again.returncode == 0, again.stderr[-2000:]
    assert all(f"[{k}/6] {name}: done, skipped" in again.stdout for k, name in enumerate(steps, 1))


def _processes_of(root: Path) -> list[int]:
    """Live processes started with GENEFACE_OUTPUT_DIR=root (the pipeline's children)."""
    pids, marker = [], f"GENEFACE_OUTPUT_DIR={root}\0".encode()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "environ").read_bytes() and \
                    (proc / "stat").read_text().split()[2] != "Z":
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_a_killed_pipeline_continues_where_it_stopped(tiny_pipeline, tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    for name in ("data", "synthetic_corpus"):                                  # the inputs, not the outputs
        shutil.copytree(tiny_pipeline / name, root / name)
    longer = [a.replace("stage.max_steps=6 stage.val_check_interval=3", "stage.max_steps=30 stage.val_check_interval=5")
              if a.startswith("overrides.radnerf=") else a for a in TINY] + ["steps=[process,audio2motion,postnet,radnerf]"]
    pipeline = subprocess.Popen([sys.executable, "-m", "geneface.pipeline", *longer], cwd=REPO, env=env_for(root),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = root / "demo" / "radnerf" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and time.monotonic() < deadline and pipeline.poll() is None:
        time.sleep(0.5)
    assert last.exists(), pipeline.communicate()[0][-3000:]
    os.kill(pipeline.pid, signal.SIGKILL)                                    # no chance to clean up
    pipeline.wait()
    deadline = time.monotonic() + 60
    while _processes_of(root) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_of(root), "the training child outlived the killed pipeline"

    resumed = run_module(root, "geneface.pipeline", *longer)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "[1/4] process: done, skipped" in resumed.stdout and "[3/4] postnet: done, skipped" in resumed.stdout
    assert "[4/4] radnerf: done in" in resumed.stdout
    log = (root / "demo" / "pipeline" / "logs" / "radnerf.log").read_text()
    assert f"Resuming from {last}" in log
    assert (root / "demo" / "report.html").is_file()                         # a partial run's report


def test_the_torso_stage_is_trained_only_for_the_torso_renderer(tmp_path):
    from geneface.pipeline.steps import Paths, plan
    from geneface.synthetic.speaker import write_synthetic_speaker

    write_synthetic_speaker(tmp_path / "data", seconds=1.0, size=32, progress=False)
    paths = Paths(tmp_path, tmp_path / "data", tmp_path / "configs", "demo")
    common = dict(video=None, preset="cpu", corpus="c", wav=None, evaluate_frames=None, sample_seconds=None,
                  device="cpu", overrides={}, steps=list(STEP_NAMES))
    head = plan(paths, **common)
    assert [s.name for s in head] == ["process", "audio2motion", "postnet", "radnerf", "evaluate", "sample"]
    vae = tmp_path / "demo" / "audio2motion" / "best.ckpt"                   # the speaker's own VAE …
    assert "experiment=speaker_audio2motion" in head[1].argv and head[1].outputs[0] == vae
    assert f"stage.model.vae_ckpt={vae}" in head[2].argv                     # … under the postnet
    assert "renderer=radnerf" in head[-1].argv and head[-1].outputs[0].name == "demo_val_audio_radnerf.mp4"
    torso = plan(paths, **common, renderer="radnerf_torso")
    assert [s.name for s in torso] == list(STEP_NAMES)
    assert "renderer=radnerf_torso" in torso[-2].argv and torso[-2].outputs[0].name == "radnerf_torso.json"
    with pytest.raises(PipelineError, match="renderer='nerf'"):
        plan(paths, **common, renderer="nerf")
