"""Progress that a parent process can read: `python -m geneface.pipeline` runs each step as a child
command and shows one display for the whole run, so every long loop of a child also reports how far it
is to a small JSON file named by GENEFACE_PROGRESS_FILE (when set; nothing is written otherwise).

`progress_bar` is tqdm, reporting as it draws; the training loop reports through
geneface.callbacks.progress_file. The file holds {"what", "done", "total", "unit", "time"}.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tqdm.auto import tqdm

PROGRESS_ENV = "GENEFACE_PROGRESS_FILE"
MIN_INTERVAL_S = 0.5        # between writes: the parent polls about this often

_last_write = 0.0


def report_progress(what: str, done: int, total: int | None, unit: str = "it") -> None:
    """Write how far the current loop is to $GENEFACE_PROGRESS_FILE (a no-op when it is unset); at
    most every MIN_INTERVAL_S, except the last update of a loop, which always lands."""
    global _last_write
    target = os.environ.get(PROGRESS_ENV)
    if not target:
        return
    now = time.monotonic()
    if now - _last_write < MIN_INTERVAL_S and not (total and done >= total):
        return
    _last_write = now
    record = {"what": what, "done": int(done), "total": int(total) if total else None, "unit": unit,
              "time": time.time()}
    path = Path(target)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)                  # the reader never sees half a record
    except OSError:
        pass                                   # progress is a courtesy: never fail the work for it


def read_progress(path: str | os.PathLike) -> dict | None:
    """The last record a child wrote, or None (none yet, or unreadable)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


_DEVNULL = None


def _devnull():
    global _DEVNULL
    if _DEVNULL is None:
        _DEVNULL = open(os.devnull, "w")       # noqa: SIM115 (one for the process)
    return _DEVNULL


class _ReportingBar(tqdm):
    def update(self, n: float | None = 1) -> bool | None:
        shown = super().update(n)
        if not self.disable:                   # a disabled tqdm keeps no count (nor desc)
            report_progress(str(self.desc), self.n, self.total, str(self.unit))
        return shown

    def close(self) -> None:
        if not self.disable and self.total is not None and self.n >= self.total:
            report_progress(str(self.desc), self.n, self.total, str(self.unit))
        super().close()


def progress_bar(iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 disable: bool = False, **kwargs) -> tqdm:
    """A tqdm bar (same arguments) whose progress also goes to $GENEFACE_PROGRESS_FILE. With
    disable=True it still reports, only without drawing."""
    if disable and os.environ.get(PROGRESS_ENV):
        kwargs["file"] = _devnull()
        disable = False
    return _ReportingBar(iterable, total=total, desc=desc, unit=unit, disable=disable, **kwargs)
