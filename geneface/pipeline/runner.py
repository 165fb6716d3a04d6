"""Runs a pipeline's steps (geneface.pipeline.steps) one after another as child processes, skipping
those already complete, with one progress display for the whole run.

State lives in outputs/<speaker>/pipeline/: state.json (each step's command, whether it finished,
its wall time), logs/<step>.log (the child's own output), and a lock so that two pipelines never
train the same speaker at once. A kill of the pipeline takes its child down with it (Linux: the
child's parent-death signal); the next run skips finished steps and the interrupted one resumes by
its own rules (training from last.ckpt, processing from its work directory).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from geneface.pipeline.steps import PipelineError, Step, write_val_audio
from geneface.utils.io import process_alive, save_json
from geneface.utils.progress import PROGRESS_ENV, read_progress

POLL_S = 0.5
PLAIN_EVERY_S = 30.0          # without a terminal: a status line this often
LOG_TAIL_LINES = 25


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the pipeline dies (even by kill -9), so a second
    pipeline never finds an orphan still training the same stage."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass                                               # not Linux: Ctrl-C still stops both


class Lock:
    """pipeline/.lock holding the running pipeline's pid; a lock whose pid is gone is stale."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> "Lock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            pid = int(self.path.read_text().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and pid != os.getpid() and process_alive(pid):
            raise PipelineError(f"another pipeline for this speaker is running (pid {pid}; {self.path}): "
                                f"wait for it, or stop it first")
        self.path.write_text(str(os.getpid()))
        return self

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)


def _format_s(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The log's last lines as a terminal would show them (progress bars' \\r updates collapsed)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    shown = [line.split("\r")[-1] for line in text.splitlines()]
    return "\n".join(line for line in shown[-lines:])


class Display:
    """One display for the run: `[k/n] step — what done/total unit, elapsed, ~left` and the run's
    elapsed time; a live bar on a terminal (rich), a line every PLAIN_EVERY_S otherwise."""

    def __init__(self, num_steps: int, enabled: bool = True, stream=None):
        self.num_steps, self.enabled = num_steps, enabled
        self.stream = stream or sys.stdout
        self.live = enabled and self.stream.isatty()
        self.run_start = time.monotonic()
        self._progress = None
        self._last_plain = 0.0

    def say(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def start_step(self, index: int, step: Step) -> None:
        self.index, self.step, self.step_start = index, step, time.monotonic()
        self._first: tuple[float, int] | None = None
        self._last_plain = self.step_start
        self.say(f"[{index}/{self.num_steps}] {step.name}: {step.describe}\n    {step.command_line()}")
        if self.live:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[unit]}"), TimeElapsedColumn(), TextColumn("<"),
                                      TimeRemainingColumn(), TextColumn("{task.fields[run]}"), transient=True)
            self._task = self._progress.add_task(f"[{index}/{self.num_steps}] {step.name}", total=None,
                                                 unit="", run="")
            self._progress.start()

    def _eta(self, done: int, total: int | None) -> float | None:
        now = time.monotonic()
        if self._first is None or done < self._first[1]:
            self._first = (now, done)
            return None
        t0, d0 = self._first
        if not total or done <= d0:
            return None
        return (total - done) * (now - t0) / (done - d0)

    def update(self, record: dict | None) -> None:
        run = f"run {_format_s(time.monotonic() - self.run_start)}"
        what = record.get("what", "") if record else ""
        done, total = (record.get("done", 0), record.get("total")) if record else (0, None)
        eta = self._eta(done, total) if record else None
        if self._progress is not None:
            self._progress.update(self._task, description=f"[{self.index}/{self.num_steps}] {self.step.name} {what}",
                                  completed=done, total=total, unit=record.get("unit", "") if record else "",
                                  run=run)
            return
        if not self.enabled or time.monotonic() - self._last_plain < PLAIN_EVERY_S:
            return
        self._last_plain = time.monotonic()
        amount = f" {what} {done}/{total or '?'} {record.get('unit', '')}," if record else ""
        self.say(f"    [{self.index}/{self.num_steps}] {self.step.name}:{amount} step "
                 f"{_format_s(time.monotonic() - self.step_start)}, ~{_format_s(eta)} left; {run}")

    def end_step(self, message: str) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self.say(message)


def _stale(step: Step, upstream_finished: float) -> bool:
    """A checkpoint trained before an upstream step last finished was trained on something else."""
    return bool(step.checkpoint and step.checkpoint.is_file() and step.checkpoint.stat().st_mtime < upstream_finished)


def _complete(step: Step, record: dict) -> bool:
    outputs = all(p.exists() for p in step.outputs)
    return outputs and (step.outputs_suffice or (bool(record.get("done")) and record.get("argv") == step.argv))


def run_steps(steps: list[Step], pipeline_dir: Path, *, progress: bool = True,
              after: Callable[[dict], None] | None = None, env: dict | None = None) -> dict:
    """Run `steps` in order, skipping complete ones; returns the state ({step: record}). Raises
    PipelineError when a step fails, naming its log and the command that continues."""
    state_path, logs = pipeline_dir / "state.json", pipeline_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    state = _read_state(state_path)
    display = Display(len(steps), progress)
    upstream_finished, upstream_ran = 0.0, False
    with Lock(pipeline_dir / ".lock"):
        for index, step in enumerate(steps, 1):
            record = state.get(step.name, {})
            if not upstream_ran and _complete(step, record):
                took = f"took {_format_s(record['wall_s'])}; " if record.get("wall_s") else ""
                display.say(f"[{index}/{len(steps)}] {step.name}: done, skipped ({took}{step.outputs[0]})")
                upstream_finished = max(upstream_finished, record.get("finished", 0.0))
                continue
            argv = list(step.argv)
            if _stale(step, upstream_finished):
                argv.append("resume=false")
                display.say(f"    {step.checkpoint} predates the step before it: {step.name} starts over")
            if step.extra.get("val_audio"):
                write_val_audio(*step.extra["val_audio"])          # (dataset, wav) the sample speaks
            _run_one(step, argv, index, display, logs, pipeline_dir, env)
            finished = time.time()
            wall = time.monotonic() - display.step_start
            state[step.name] = {"argv": step.argv, "done": True, "finished": finished, "wall_s": wall,
                                "log": str(logs / f"{step.name}.log")}
            save_json(state_path, state)
            upstream_finished, upstream_ran = finished, True
            display.end_step(f"[{index}/{len(steps)}] {step.name}: done in {_format_s(wall)}")
            if after is not None:
                after(state)
    return state


def _read_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _run_one(step: Step, argv: list[str], index: int, display: Display, logs: Path, pipeline_dir: Path,
             env: dict | None) -> None:
    log = logs / f"{step.name}.log"
    progress_file = pipeline_dir / f".progress.{step.name}.json"
    progress_file.unlink(missing_ok=True)
    child_env = {**os.environ, **(env or {}), PROGRESS_ENV: str(progress_file)}
    display.start_step(index, step)
    with open(log, "a") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')}  python {' '.join(argv)}\n")
        out.flush()
        child = subprocess.Popen([sys.executable, *argv], stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=child_env, preexec_fn=_die_with_parent)
        try:
            while child.poll() is None:
                display.update(read_progress(progress_file))
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
            display.end_step(f"stopped during {step.name}; run the same command again to continue")
            raise
    progress_file.unlink(missing_ok=True)
    if child.returncode != 0:
        display.end_step(f"[{index}/{display.num_steps}] {step.name} failed (exit {child.returncode}). "
                         f"The end of its log, {log}:\n{log_tail(log)}")
        raise PipelineError(f"step {step.name} failed (exit {child.returncode}); its whole log: {log}. Fix what "
                            f"it says, then run the same command again: finished steps are skipped and "
                            f"{step.name} continues where it stopped. To run it alone: {step.command_line()}")
