"""geneface.nerf.triton: the Triton grid kernels against the torch reference, run on the CPU through
Triton's interpreter (TRITON_INTERPRET=1), plus the backend's routing, kill switch and lazy import.

TRITON_INTERPRET must be set before the process imports triton: triton.language's own @triton.jit helpers
(tl.zeros, tl.sum) are decorated at import, and an interpreted kernel cannot call compiled ones. So the
kernels run in one subprocess started with the variable (`_interpreted_worker`), on inputs this process
writes; the torch reference runs here, and the comparisons are the tests below.

Tolerances (float32 throughout): outputs 1e-5 abs/rel; table gradients 1e-5 abs + 1e-4 rel (atomic adds
sum in another order); input gradients divided by their largest magnitude, then 1e-5 abs + 1e-4 rel.
The interpreter is slow, so the grids are small: 200 points, 5 levels of resolution 4..32.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from geneface.nerf import encodings
from geneface.nerf.encodings import GridEncoding
from geneface.nerf.triton import backend

SMALL = dict(num_levels=5, base_resolution=4, desired_resolution=32)
CASES = [
    dict(input_dim=3, log2_hashmap_size=12),                                  # tiled; finest levels alias
    dict(input_dim=3, grid_type="hash", log2_hashmap_size=8),
    dict(input_dim=2, log2_hashmap_size=14, level_dim=3),                     # the ambient grid: x grads
    dict(input_dim=2, grid_type="hash", log2_hashmap_size=6, interpolation="smoothstep", level_dim=1),
    dict(input_dim=3, grid_type="hash", log2_hashmap_size=10, interpolation="smoothstep"),
]
HAS_TRITON = importlib.util.find_spec("triton") is not None
NO_TRITON = "triton is not installed (pip install 'triton>=3.2')"
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason=NO_TRITON)


def _case_id(case: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in case.items())


def _boundary_points(D: int) -> torch.Tensor:
    """Points exactly at 0 and 1 (x = ±1, and beyond: clamped), on vertices and on cell faces."""
    values = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
    grid = torch.stack(torch.meshgrid(*[values] * D, indexing="ij"), -1).reshape(-1, D)   # [7^D, D]
    mixed = torch.rand(64, D) * 2 - 1
    mixed[:, 0] = torch.where(torch.rand(64) < 0.5, -1.0, 1.0)
    return torch.cat([grid, mixed])


@functools.cache
def _items() -> dict[str, dict]:
    """What the interpreted kernels are run on: config, table, points, output gradient, grads wanted."""
    torch.manual_seed(0)
    specs = [(f"random-{_case_id(c)}", c, torch.rand(200, c["input_dim"]) * 2.2 - 1.1, True, True)
             for c in CASES]                                                  # some points outside [-1, 1]
    specs += [(f"boundary-{_case_id(c)}", c, _boundary_points(c["input_dim"]), True, True)
              for c in (CASES[0], CASES[1], CASES[3])]
    specs += [("x-grad-only", CASES[2], torch.rand(100, 2) * 2 - 1, False, True),     # a frozen ambient grid
              ("table-grad-only", CASES[1], torch.rand(100, 3) * 2 - 1, True, False),
              ("no-points", CASES[0], torch.rand(0, 3), True, True)]
    items = {}
    for key, case, x, need_table, need_x in specs:
        rows = GridEncoding(**case, **SMALL).embeddings.shape[0]
        table = torch.randn(rows, case.get("level_dim", 2))
        grad = torch.randn(x.shape[0], SMALL["num_levels"], case.get("level_dim", 2))
        items[key] = dict(case=case, table=table, x=x, grad=grad, need_table=need_table, need_x=need_x)
    return items


def _run(implementation: str, item: dict) -> dict:
    """Output and gradients of one item; `implementation` decides which kernel runs."""
    enc = GridEncoding(**item["case"], **SMALL, implementation=implementation)
    with torch.no_grad():
        enc.embeddings.copy_(item["table"])
    enc.embeddings.requires_grad_(item["need_table"])
    x = item["x"].clone().requires_grad_(item["need_x"])
    out = enc(x)                                                              # [N, L·C]
    if out.requires_grad:
        (out * item["grad"].reshape(out.shape)).sum().backward()
    return dict(out=out.detach(), table_grad=enc.embeddings.grad, x_grad=x.grad)


def _counting(function, calls: list):
    """A stand-in for an autograd Function class: records each apply in `calls`, then delegates."""

    class Counting:
        @staticmethod
        def apply(*args):
            calls.append(1)
            return function.apply(*args)

    return Counting


def _interpreted_worker(in_path: str, out_path: str) -> None:
    """The subprocess: every item through the interpreted Triton kernels (the Function counts runs)."""
    kernels = backend.kernels()
    if kernels is None or not kernels.INTERPRETED:
        raise SystemExit("the interpreted Triton kernels are not available (see the warning)")
    calls = []
    encodings.TritonGridFunction = _counting(encodings.TritonGridFunction, calls)
    results = {}
    for key, item in torch.load(in_path).items():
        before = len(calls)
        results[key] = _run("triton", item)
        results[key]["kernel_calls"] = len(calls) - before
    torch.save(results, out_path)


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory) -> dict:
    """Results of the interpreted kernels for every item (one subprocess for the module, ~5 s)."""
    if not HAS_TRITON:
        pytest.skip(NO_TRITON)
    tmp = tmp_path_factory.mktemp("triton")
    torch.save(_items(), tmp / "in.pt")
    root = Path(__file__).resolve().parents[1]                                # this checkout's geneface
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    env.pop("GENEFACE_NO_TRITON", None)
    proc = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", __file__, str(tmp / "in.pt"),
                           str(tmp / "out.pt")], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"the interpreted kernels failed:\n{proc.stdout}\n{proc.stderr[-4000:]}")
    return torch.load(tmp / "out.pt")


def _compare(got: dict, ref: dict) -> None:
    torch.testing.assert_close(got["out"], ref["out"], rtol=1e-5, atol=1e-5)
    for name in ("table_grad", "x_grad"):
        assert (got[name] is None) == (ref[name] is None), name
    if ref["table_grad"] is not None:
        torch.testing.assert_close(got["table_grad"], ref["table_grad"], rtol=1e-4, atol=1e-5)
    if ref["x_grad"] is not None and ref["x_grad"].numel():
        scale = ref["x_grad"].abs().max()
        assert scale > 0
        torch.testing.assert_close(got["x_grad"] / scale, ref["x_grad"] / scale, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("key", list(_items()))
def test_triton_kernels_match_the_torch_reference(interpreted, key):
    """Outputs and gradients (table and x) of the interpreted kernels against the torch path."""
    item, got = _items()[key], interpreted[key]
    assert got["kernel_calls"] == 1                                           # it was the kernel that ran
    if key.startswith("random"):
        assert any(GridEncoding(**item["case"], **SMALL)._hashed) == (item["case"].get("grid_type") == "hash")
    _compare(got, _run("torch", item))


@needs_triton
def test_flag_set_after_triton_was_imported_falls_back_with_one_warning(monkeypatch):
    """This process imported triton without TRITON_INTERPRET: asking for interpreted kernels now says so."""
    import triton  # noqa: F401

    if backend.interpret_requested():
        pytest.skip("this session started with TRITON_INTERPRET=1")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.delenv("GENEFACE_NO_TRITON", raising=False)
    monkeypatch.setattr(backend, "_state", {})
    item = _items()["random-" + _case_id(CASES[0])]
    with pytest.warns(RuntimeWarning, match="before the process imports triton") as record:
        got = _run("triton", item)
    assert len(record) == 1
    _compare(got, _run("torch", item))


def test_kill_switch_falls_back_with_one_warning(monkeypatch):
    monkeypatch.setenv("GENEFACE_NO_TRITON", "1")
    monkeypatch.setenv("TRITON_INTERPRET", "1")                               # would apply to the CPU
    monkeypatch.setattr(backend, "_state", {})
    enc = GridEncoding(3, **SMALL, implementation="triton")
    ref = GridEncoding(3, **SMALL)
    ref.load_state_dict(enc.state_dict())
    x = torch.rand(100, 3) * 2 - 1
    with pytest.warns(RuntimeWarning, match="GENEFACE_NO_TRITON") as record:
        out = enc(x)
    assert len(record) == 1 and "implementation: torch" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                        # once, not per call
        torch.testing.assert_close(enc(x), ref(x))
    torch.testing.assert_close(out, ref(x))


def test_auto_on_cpu_float32_picks_cpp(monkeypatch):
    """"auto": the C++ kernel for float32 CPU tensors (even under TRITON_INTERPRET=1: the interpreter is
    for tests), torch if it cannot be built and for float64; Triton is not asked on the CPU."""
    from geneface.nerf.cpp.backend import extension

    calls = []
    monkeypatch.setattr(encodings, "CppGridFunction", _counting(encodings.CppGridFunction, calls))
    monkeypatch.setattr(backend, "kernels", lambda: pytest.fail("auto asked Triton for a CPU tensor"))
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    enc = GridEncoding(3, **SMALL, implementation="auto")
    ref = GridEncoding(3, **SMALL)
    ref.load_state_dict(enc.state_dict())
    x = torch.rand(100, 3) * 2 - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)                      # a C++ build that fails warns
        has_cpp = extension() is not None
    torch.testing.assert_close(enc(x), ref(x), rtol=1e-5, atol=1e-5)
    assert len(calls) == int(has_cpp)
    torch.testing.assert_close(enc(x.double()), ref(x.double()))             # float64: the torch path
    assert len(calls) == int(has_cpp)


def test_triton_on_cpu_without_the_interpreter_runs_torch_silently(monkeypatch):
    """Like "cpp" on CUDA: the kernel does not apply there, so no warning and no triton import."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(backend, "kernels", lambda: pytest.fail("Triton asked for a CPU tensor"))
    enc = GridEncoding(3, **SMALL, grid_type="hash", implementation="triton")
    ref = GridEncoding(3, **SMALL, grid_type="hash")
    ref.load_state_dict(enc.state_dict())
    x = torch.rand(50, 3) * 2 - 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(enc(x), ref(x))


def test_importing_geneface_does_not_import_triton():
    code = ("import sys, torch; import geneface.nerf.radnerf, geneface.nerf.encodings as e; "
            "e.GridEncoding(3, 2, implementation='auto')(torch.rand(4, 3, dtype=torch.float64)); "
            "print('triton' in sys.modules)")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False", out.stderr


@needs_triton
@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION")           # triton 3.9: a default will change
def test_kernels_compile_for_a_gpu_without_one():
    """The compiled (not interpreted) path down to a cubin for sm_90 with triton's bundled ptxas: catches
    what the interpreter forgives (types, static branches, atomics). One variant of each kernel, ~6 s."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if backend.interpret_requested():
        pytest.skip("TRITON_INTERPRET=1: grid_kernels holds interpreted kernels")
    from geneface.nerf.triton import grid_kernels

    grid_kernels = importlib.reload(grid_kernels) if grid_kernels.INTERPRETED else grid_kernels
    meta = dict(offsets_ptr="*i64", res_ptr="*i64", size_ptr="*i64", hash_ptr="*i1", n="i32",
                num_levels="i32")
    const = ("D", "C", "C_PAD", "SMOOTH", "HASH", "NEED_TABLE", "NEED_X", "BLOCK_N")
    fwd = dict(x_ptr="*fp32", table_ptr="*fp32", out_ptr="*fp32", **meta)
    bwd = dict(grad_ptr="*fp32", x_ptr="*fp32", table_ptr="*fp32", gtable_ptr="*fp32", gx_ptr="*fp32", **meta)
    variants = [(grid_kernels.grid_forward_kernel, fwd, dict(D=3, C=2, C_PAD=2, SMOOTH=True, HASH=True)),
                (grid_kernels.grid_backward_kernel, bwd,
                 dict(D=2, C=3, C_PAD=4, SMOOTH=False, HASH=True, NEED_TABLE=True, NEED_X=True))]
    for kernel, signature, constexprs in variants:
        constexprs = {**constexprs, "BLOCK_N": grid_kernels.BLOCK}
        signature = {**signature, **{k: "constexpr" for k in const if k in constexprs}}
        try:
            source = ASTSource(kernel, signature, constexprs)
        except (TypeError, ValueError, AssertionError) as err:     # the AOT API moves between versions
            pytest.skip(f"triton {triton.__version__}'s ASTSource differs: {err}")
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32))
        assert compiled.asm["cubin"]
        if "NEED_TABLE" in constexprs:                              # the scatter is a relaxed float reduction
            assert "red.global.gpu.relaxed.add.f32" in compiled.asm["ptx"]


@pytest.mark.gpu
@needs_triton
@pytest.mark.parametrize("case", [dict(input_dim=3, grid_type="hash", log2_hashmap_size=19),
                                  dict(input_dim=2, log2_hashmap_size=14, interpolation="smoothstep")],
                         ids=_case_id)
@pytest.mark.parametrize("implementation", ["triton", "auto"])
def test_triton_on_cuda_matches_the_reference(monkeypatch, case, implementation):
    """Compiled GPU kernels at a training-like size: 2^18 points, 16 levels of resolution 16..2048."""
    if backend.interpret_requested():
        pytest.skip("TRITON_INTERPRET=1: this test is for the compiled kernels")
    monkeypatch.delenv("GENEFACE_NO_TRITON", raising=False)
    monkeypatch.setattr(backend, "_state", {})
    kernels = backend.kernels()
    assert kernels is not None and not kernels.INTERPRETED
    calls = []
    monkeypatch.setattr(encodings, "TritonGridFunction", _counting(encodings.TritonGridFunction, calls))
    torch.manual_seed(0)
    sizes = dict(num_levels=16, base_resolution=16, desired_resolution=2048)
    ref = GridEncoding(**case, **sizes).cuda()
    fast = GridEncoding(**case, **sizes, implementation=implementation).cuda()
    with torch.no_grad():
        ref.embeddings.normal_()
        fast.embeddings.copy_(ref.embeddings)
    x = torch.rand(2 ** 18, case["input_dim"], device="cuda") * 2.2 - 1.1
    x_ref, x_fast = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out, out_fast = ref(x_ref), fast(x_fast)
    assert len(calls) == 1
    torch.testing.assert_close(out_fast, out, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    (out * grad).sum().backward()
    (out_fast * grad).sum().backward()
    # coarse rows sum thousands of atomic adds, in an order that changes from run to run
    scale = ref.embeddings.grad.abs().max()
    torch.testing.assert_close(fast.embeddings.grad / scale, ref.embeddings.grad / scale, rtol=1e-4,
                               atol=1e-5)
    scale = x_ref.grad.abs().max()
    torch.testing.assert_close(x_fast.grad / scale, x_ref.grad / scale, rtol=1e-4, atol=1e-5)


if __name__ == "__main__":                                                    # the interpreted subprocess
    _interpreted_worker(sys.argv[1], sys.argv[2])
