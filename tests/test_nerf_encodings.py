"""geneface.nerf.encodings: grid layout/interpolation/gradients, SH closed forms and orthonormality,
frequency encoding, implementation validation."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from geneface.nerf.encodings import (FrequencyEncoding, GridEncoding, SHEncoding, available_implementations,
                                     grid_level_resolutions, grid_level_sizes)


def _expected_sizes(input_dim, num_levels, base, desired, log2_size):
    """The spec's formula, written independently of the module."""
    s = math.exp((math.log(desired) - math.log(base)) / (num_levels - 1))
    sizes = []
    for level in range(num_levels):
        r = math.ceil(round(base * s ** level, 6))
        n = min(2 ** log2_size, (r + 1) ** input_dim)
        sizes.append((n + 7) // 8 * 8)
    return sizes


@pytest.mark.parametrize("input_dim", [2, 3])
def test_grid_shapes_and_leading_dims(input_dim):
    enc = GridEncoding(input_dim, num_levels=4, level_dim=2, base_resolution=4, desired_resolution=32,
                       log2_hashmap_size=10)
    assert enc.output_dim == 8
    x = torch.rand(3, 5, input_dim) * 2 - 1
    y = enc(x)
    assert y.shape == (3, 5, 8) and y.dtype == torch.float32
    assert torch.allclose(enc(x.reshape(15, input_dim)), y.reshape(15, 8))
    assert enc.offsets.shape == (5,) and enc.embeddings.shape == (int(enc.offsets[-1]), 2)
    assert enc.embeddings.abs().max() <= 1e-4


@pytest.mark.parametrize("grid_type", ["tiled", "hash"])
def test_parameter_counts_follow_formula(grid_type):
    enc = GridEncoding(3, 16, 2, 16, 2048, 16, grid_type)
    sizes = _expected_sizes(3, 16, 16, 2048, 16)
    assert enc.resolutions[0] == 16 and enc.resolutions[-1] == 2048
    assert enc.sizes == sizes == grid_level_sizes(enc.resolutions, 3, 16)
    assert enc.offsets.tolist() == [0] + list(torch.tensor(sizes).cumsum(0).tolist())
    assert enc.embeddings.shape == (sum(sizes), 2)
    assert grid_level_resolutions(1, 8, 999) == [8]
    enc2 = GridEncoding(2, 3, 1, 4, 16, 6, grid_type)                 # (R+1)^2 = 25, 81, 289 vs 64
    assert enc2.sizes == [32, 64, 64]


def test_hash_and_tiled_share_coarse_levels_and_differ_on_fine_ones():
    torch.manual_seed(0)
    kw = dict(input_dim=3, num_levels=4, level_dim=1, base_resolution=4, desired_resolution=32,
              log2_hashmap_size=9, init_scale=1.0)
    tiled, hashed = GridEncoding(grid_type="tiled", **kw), GridEncoding(grid_type="hash", **kw)
    hashed.embeddings.data.copy_(tiled.embeddings.data)
    fits = [(r + 1) ** 3 <= 2 ** 9 for r in tiled.resolutions]
    assert fits == [True, False, False, False]
    x = torch.rand(500, 3) * 2 - 1
    a, b = tiled(x), hashed(x)
    assert torch.allclose(a[:, 0], b[:, 0])
    assert not torch.allclose(a[:, 1:], b[:, 1:])


@pytest.mark.parametrize("interpolation", ["linear", "smoothstep"])
@pytest.mark.parametrize("input_dim", [2, 3])
def test_exact_at_vertices_and_continuous(interpolation, input_dim):
    torch.manual_seed(1)
    R = 5
    enc = GridEncoding(input_dim, num_levels=1, level_dim=3, base_resolution=R, desired_resolution=R,
                       interpolation=interpolation, init_scale=1.0).double()
    # every lattice vertex → its own table row (dense, first coordinate fastest)
    grids = torch.meshgrid(*[torch.arange(R + 1)] * input_dim, indexing="ij")
    c = torch.stack(grids, -1).reshape(-1, input_dim)                          # [(R+1)^D, D]
    x = c.double() / R * 2 - 1
    row = sum(c[:, d] * (R + 1) ** d for d in range(input_dim))
    assert torch.allclose(enc(x), enc.embeddings[row])
    # across a cell face (coordinate 0 crosses k/R, the others generic) the output does not jump
    pts = torch.rand(200, input_dim, dtype=torch.float64)
    pts[:, 0] = torch.randint(1, R, (200,)).double() / R
    eps = 1e-9
    lo, hi = pts.clone(), pts.clone()
    lo[:, 0] -= eps
    hi[:, 0] += eps
    assert (enc(lo * 2 - 1) - enc(hi * 2 - 1)).abs().max() < 1e-6
    # outside [-1, 1] is clamped to the boundary
    assert torch.allclose(enc(torch.full((1, input_dim), 3.0, dtype=torch.float64)),
                          enc(torch.ones(1, input_dim, dtype=torch.float64)))


@pytest.mark.parametrize("grid_type,interpolation", [("tiled", "linear"), ("hash", "smoothstep")])
def test_gradcheck_embeddings_and_inputs(grid_type, interpolation):
    torch.manual_seed(2)
    enc = GridEncoding(3, num_levels=2, level_dim=2, base_resolution=2, desired_resolution=5,
                       log2_hashmap_size=5, grid_type=grid_type, interpolation=interpolation,
                       init_scale=1.0).double()
    assert enc._hashed == ([False, True] if grid_type == "hash" else [False, False])
    x = (torch.rand(6, 3, dtype=torch.float64) * 1.8 - 0.9).requires_grad_(True)

    emb = enc.embeddings.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda inp, e: _forward_with(enc, inp, e), (x, emb), eps=1e-6, atol=1e-5)


def _forward_with(enc: GridEncoding, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """enc(x) with the table replaced by `emb` (a leaf gradcheck can perturb)."""
    saved = enc.embeddings
    try:
        del enc.embeddings
        enc.embeddings = emb
        return enc(x)
    finally:
        del enc.embeddings
        enc.embeddings = saved


def test_grid_gradients_reach_embeddings_and_inputs():
    enc = GridEncoding(3, 4, 2, 4, 32, 12)
    x = (torch.rand(64, 3) * 2 - 1).requires_grad_(True)
    enc(x).square().sum().backward()
    assert enc.embeddings.grad is not None and enc.embeddings.grad.abs().sum() > 0
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("input_dim", [2, 3])
def test_tiled_grid_fits_smooth_function(input_dim):
    """A real learning check: grid + linear readout regress a smooth field with Adam."""
    torch.manual_seed(3)
    enc = GridEncoding(input_dim, num_levels=4, level_dim=2, base_resolution=4, desired_resolution=16,
                       log2_hashmap_size=14)
    head = torch.nn.Linear(enc.output_dim, 1)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=3e-2)

    def target(p):
        return torch.sin(2.5 * p[:, 0]) * torch.cos(2.0 * p[:, 1]) + 0.5 * p[:, -1] ** 2

    for _ in range(200):
        p = torch.rand(1024, input_dim) * 2 - 1
        loss = (head(enc(p))[:, 0] - target(p)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    p = torch.rand(4096, input_dim) * 2 - 1
    with torch.no_grad():
        mse = (head(enc(p))[:, 0] - target(p)).square().mean().item()
        var = target(p).var().item()
    assert mse < 1e-3 * var, (mse, var)


def test_bad_implementation_and_options_raise():
    assert available_implementations() == ("torch", "cpp", "triton", "auto")
    with pytest.raises(ValueError, match="torch"):
        GridEncoding(implementation="tcnn")
    with pytest.raises(ValueError):
        GridEncoding(grid_type="dense")
    with pytest.raises(ValueError):
        GridEncoding(interpolation="cubic")
    with pytest.raises(ValueError):
        SHEncoding(degree=6)


def test_sh_closed_form_values():
    enc = SHEncoding(degree=4)
    assert enc.output_dim == 16
    d = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    y = enc(d)
    assert y.shape == (3, 16)
    c = lambda l: math.sqrt((2 * l + 1) / (4 * math.pi))                         # Y_l0 at the pole
    expected_z = torch.zeros(16, dtype=torch.float64)
    expected_z[[0, 2, 6, 12]] = torch.tensor([c(0), c(1), c(2), c(3)], dtype=torch.float64)
    assert torch.allclose(y[0], expected_z, atol=1e-7)
    assert y[0, 0].item() == pytest.approx(0.28209479, abs=1e-8)
    assert y[1, 3].item() == pytest.approx(-0.48860251, abs=1e-8)              # −√(3/4π)·x
    assert y[1, 8].item() == pytest.approx(0.54627422, abs=1e-8)               # √(15/16π)(x²−y²)
    assert y[2, 1].item() == pytest.approx(-0.48860251, abs=1e-8)              # −√(3/4π)·y
    assert y[2, 9].item() == pytest.approx(0.59004359, abs=1e-8)               # √(35/32π)·y(y²−3x²)
    # degree nesting and leading dims
    y5 = SHEncoding(degree=5)(d.reshape(3, 1, 3))
    assert y5.shape == (3, 1, 25) and torch.allclose(y5[:, 0, :16], y)
    assert SHEncoding(degree=1)(d).shape == (3, 1)


def test_sh_orthonormal_monte_carlo():
    """For uniform unit directions, E[Y_i Y_j] = (1/4π)∫Y_i Y_j dΩ = δ_ij/(4π), so 4π·mean ≈ I."""
    g = torch.Generator().manual_seed(4)
    d = torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    d = d / d.norm(dim=-1, keepdim=True)
    y = SHEncoding(degree=5)(d)                                                # [N, 25]
    gram = 4 * math.pi * (y.T @ y) / d.shape[0]
    assert (gram - torch.eye(25, dtype=torch.float64)).abs().max() < 0.05


def test_frequency_encoding():
    enc = FrequencyEncoding(3, 4)
    assert enc.output_dim == 3 * (1 + 8)
    x = torch.randn(2, 5, 3)
    y = enc(x)
    assert y.shape == (2, 5, 27)
    assert torch.equal(y[..., :3], x)
    for k in range(4):                                # [x, sin(2^0 x), cos(2^0 x), sin(2^1 x), ...]
        base = 3 + 6 * k
        assert torch.allclose(y[..., base:base + 3], torch.sin(2.0 ** k * x), atol=1e-6)
        assert torch.allclose(y[..., base + 3:base + 6], torch.cos(2.0 ** k * x), atol=1e-6)
    no_in = FrequencyEncoding(2, 3, include_input=False)
    assert no_in.output_dim == 12 and no_in(torch.zeros(4, 2)).shape == (4, 12)
    lin = FrequencyEncoding(1, 3, log_sampling=False)
    assert lin.freqs.tolist() == [1.0, 2.5, 4.0]


@pytest.mark.slow
def test_grid_under_torch_compile():
    enc = GridEncoding(3, 4, 2, 4, 32, 10, grid_type="hash")
    x = torch.rand(256, 3) * 2 - 1
    try:
        compiled = torch.compile(enc)
        y = compiled(x)
    except Exception as exc:                                                     # no compiler toolchain
        pytest.skip(f"torch.compile unavailable here: {type(exc).__name__}: {exc}"[:300])
    assert torch.allclose(y, enc(x), atol=1e-6)
    xg = x.clone().requires_grad_(True)
    compiled(xg).sum().backward()
    assert xg.grad is not None and enc.embeddings.grad is not None


@pytest.mark.parametrize("grid_type", ["tiled", "hash"])
def test_all_levels_pass_matches_per_level_pass(grid_type):
    """CPU loops over levels, other devices batch them: both paths must agree."""
    enc = GridEncoding(3, 5, 2, 4, 40, 9, grid_type, init_scale=1.0)
    x = torch.rand(300, 3) * 2 - 1
    batched = enc._levels((x + 1) * 0.5, 0, enc.num_levels).reshape(300, -1)
    assert torch.allclose(batched, enc(x))


CPP_CASES = [dict(input_dim=3), dict(input_dim=2), dict(input_dim=3, grid_type="hash", log2_hashmap_size=12),
             dict(input_dim=2, grid_type="hash", log2_hashmap_size=10, interpolation="smoothstep"),
             dict(input_dim=3, interpolation="smoothstep")]


@pytest.mark.parametrize("case", CPP_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_cpp_backend_matches_the_torch_reference(case):
    """The C++ kernel (built on first use) against the torch path: outputs, table and input gradients."""
    from geneface.nerf.cpp.backend import extension

    if extension() is None:
        pytest.skip("the C++ extension could not be built here (the warning says why)")
    torch.manual_seed(0)
    ref = GridEncoding(**case, num_levels=8, desired_resolution=256)
    fast = GridEncoding(**case, num_levels=8, desired_resolution=256, implementation="cpp")
    with torch.no_grad():
        ref.embeddings.normal_()
        fast.embeddings.copy_(ref.embeddings)
    x = (torch.rand(3000, case["input_dim"]) * 2.2 - 1.1).requires_grad_(True)    # some outside [-1, 1]
    x_fast = x.detach().clone().requires_grad_(True)
    out, out_fast = ref(x), fast(x_fast)
    torch.testing.assert_close(out_fast, out, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    (out * grad).sum().backward()
    (out_fast * grad).sum().backward()
    torch.testing.assert_close(fast.embeddings.grad, ref.embeddings.grad, rtol=1e-5, atol=1e-5)
    scale = x.grad.abs().max()
    torch.testing.assert_close(x_fast.grad / scale, x.grad / scale, rtol=1e-4, atol=1e-5)
    with torch.no_grad():                                             # float64 positions: the torch path
        torch.testing.assert_close(fast(x.detach().double()), ref(x.detach().double()))


def test_cpp_backend_kill_switch_falls_back_with_one_warning(monkeypatch):
    from geneface.nerf.cpp import backend

    monkeypatch.setenv("GENEFACE_NO_CPP", "1")
    monkeypatch.setattr(backend, "_state", {})
    enc = GridEncoding(3, num_levels=4, desired_resolution=64, implementation="cpp")
    ref = GridEncoding(3, num_levels=4, desired_resolution=64)
    ref.load_state_dict(enc.state_dict())
    x = torch.rand(100, 3) * 2 - 1
    with pytest.warns(RuntimeWarning, match="GENEFACE_NO_CPP"):
        out = enc(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                 # once, not per call
        torch.testing.assert_close(enc(x), ref(x))
    torch.testing.assert_close(out, ref(x))
