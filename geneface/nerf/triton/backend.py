"""The one place Triton is imported: lazily, on the first call of `kernels()`, never at geneface import
(importing triton costs about a second and pulls in its compiler).

The kernels apply to float32 CUDA tensors, and to CPU tensors when TRITON_INTERPRET=1 (Triton's
interpreter runs them with numpy: slow, but the tests check the kernels on machines without a GPU).
Triton reads TRITON_INTERPRET when a function is decorated with @triton.jit, and triton.language's own
helpers (tl.zeros, tl.sum) are decorated when triton is imported: the variable must be set before the
process first imports triton (the tests start a subprocess for that). A mismatch is detected and
reported here rather than failing inside a kernel.

Triton missing, switched off (GENEFACE_NO_TRITON=1), failing to import or to compile a probe kernel:
`kernels()` returns None after one RuntimeWarning saying why, and callers run the torch reference.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import warnings

_KERNELS = "geneface.nerf.triton.grid_kernels"
_lock = threading.Lock()
_state: dict = {}


def interpret_requested() -> bool:
    """Whether TRITON_INTERPRET=1 asks for the interpreter (the kernels then take CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def kernels():
    """The grid_kernels module (forward/backward launchers), or None when Triton cannot be had."""
    if "module" in _state:                           # the hot path: every grid forward on CUDA asks
        return _state["module"]
    with _lock:
        if "module" not in _state:
            _state["module"] = _load()
        return _state["module"]


def _load():
    if os.environ.get("GENEFACE_NO_TRITON", "") not in ("", "0"):
        _warn("GENEFACE_NO_TRITON is set")
        return None
    try:
        import triton.language as tl                 # the optional dependency; grid_kernels needs it
        from triton.runtime.jit import JITFunction
    except Exception as err:                         # not installed, or a broken install
        _warn(f"triton cannot be imported: {type(err).__name__}: {err}")
        return None
    interpret = interpret_requested()
    if isinstance(tl.zeros, JITFunction) == interpret:   # triton was imported under the other value
        _warn(f"TRITON_INTERPRET={'1' if interpret else 'unset'} now, but triton was imported before it "
              "changed; set it before the process imports triton")
        return None
    try:
        module = importlib.import_module(_KERNELS)
        if module.INTERPRETED != interpret:          # executed under the other TRITON_INTERPRET value
            module = importlib.reload(module)
        if not interpret:
            import torch

            if not torch.cuda.is_available():
                _warn("no CUDA device, and TRITON_INTERPRET=1 is not set")
                return None
        _probe(module, "cpu" if interpret else "cuda")
    except Exception as err:                         # no driver, no C compiler for the launcher, ptxas...
        sys.modules.pop(_KERNELS, None)
        msg = str(err).strip()
        _warn(f"{type(err).__name__}: {msg.splitlines()[-1] if msg else ''}")
        return None
    return module


def _probe(module, device: str) -> None:
    """Compile and run one small forward: a level of one cell whose table holds row numbers, so the
    trilinear interpolation of that linear function is exact: x·(1, 2, 4) summed."""
    import torch

    x = torch.tensor([[0.25, 0.5, 0.75]], device=device)
    table = torch.arange(8, dtype=torch.float32, device=device)[:, None].repeat(1, 2)   # [8, 2]
    layout = tuple(torch.tensor(v, device=device) for v in ([0, 8], [1], [8], [False]))
    out = module.forward(x, table, layout, False, False)                                 # [1, 1, 2]
    expected = 0.25 + 0.5 * 2 + 0.75 * 4
    if not torch.allclose(out.cpu(), torch.full((1, 1, 2), expected)):
        raise RuntimeError(f"probe kernel returned {out.flatten().tolist()}, expected {expected}")


def _warn(why: str) -> None:
    warnings.warn(f"the Triton grid encoding is not available ({why}); using the torch implementation. "
                  "Set implementation: torch in the encoding's config to silence this.", RuntimeWarning,
                  stacklevel=4)
