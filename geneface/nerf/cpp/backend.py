"""The one place the C++ extension is built and loaded: `torch.utils.cpp_extension.load` with ninja on
first use (cached by torch under ~/.cache/torch_extensions, so later processes only load it).

A build that is switched off (GENEFACE_NO_CPP=1) or fails leaves `extension()` returning None after one
warning that says why; callers then run the torch reference. Flags live here only.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

_SOURCES = [Path(__file__).with_name("grid_encoding.cpp")]
_FLAGS = ["-O3", "-std=c++17", "-fopenmp"]
_lock = threading.Lock()
_state: dict = {}


def extension():
    """The compiled module (forward/backward of the grid encoding), or None when it cannot be had."""
    if "module" in _state:                           # the hot path: every grid forward asks
        return _state["module"]
    with _lock:
        if "module" not in _state:
            _state["module"] = _build()
        return _state["module"]


def _build():
    if os.environ.get("GENEFACE_NO_CPP", "") not in ("", "0"):
        _warn("GENEFACE_NO_CPP is set")
        return None
    try:
        from torch.utils.cpp_extension import load

        return load(name="geneface_grid_encoding", sources=[str(s) for s in _SOURCES], extra_cflags=_FLAGS,
                    extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as err:                        # no compiler, no ninja, a failed build: fall back
        _warn(f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}")
        return None


def _warn(why: str) -> None:
    warnings.warn(f"the C++ grid encoding is not available ({why}); using the torch implementation. "
                  "Set implementation: torch in the encoding's config to silence this.", RuntimeWarning,
                  stacklevel=3)
