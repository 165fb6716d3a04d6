"""Triton kernels of the multiresolution grid encoding: forward and backward of
geneface.nerf.encodings.GridEncoding (its torch path is the reference; the lattice, the row of each
corner and the float32 arithmetic are the same, in the same order where it matters).

One program handles a block of points at one level (grid = (point blocks, levels)): the level's
metadata is a handful of scalar loads, and the 2^D corners are unrolled (D is a constexpr). Levels own
disjoint table rows, but the points of a level share rows, so the backward scatters into the table with
atomic adds (order-dependent on a GPU: table gradients are not bit-reproducible there).

Imported only by backend.py: `@triton.jit` reads TRITON_INTERPRET when this module is executed (and
triton.language's own helpers when triton is imported, which backend.py checks), so INTERPRETED
records which kind of kernels it holds (interpreted ones run on CPU tensors).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton.runtime.jit import JITFunction

BLOCK = 128         # points per program: 4 warps × 32 lanes, one point per lane


@triton.jit
def _axis(x_ptr, pts, mask, d: tl.constexpr, D: tl.constexpr, res, SMOOTH: tl.constexpr):
    """Axis d of a block of points at one level: the lower cell corner, the weight of the upper
    corner (w, the lower one is 1 − w) and dw/dfrac. x = 1 falls in the last cell with fraction 1."""
    x = tl.load(x_ptr + pts * D + d, mask=mask, other=0.0)                       # [BLOCK]
    pos = x * res.to(tl.float32)
    cell = tl.minimum(tl.floor(pos).to(tl.int64), res - 1)
    f = pos - cell.to(tl.float32)
    if SMOOTH:
        w = f * f * (3.0 - 2.0 * f)
        dw = 6.0 * f * (1.0 - f)
    else:
        w = f
        dw = tl.full(f.shape, 1.0, tl.float32)
    return cell, w, dw


@triton.jit
def _side(w, bit: tl.constexpr):
    """The weight of the upper (bit 1) or lower (bit 0) corner along one axis."""
    s = w
    if bit == 0:                                     # static; one return keeps the compiler happy
        s = 1.0 - w
    return s


@triton.jit
def _dside(dw, bit: tl.constexpr):
    """d(weight)/dfrac of that corner along the axis: +dw for the upper corner, −dw for the lower one."""
    s = dw
    if bit == 0:
        s = -dw
    return s


@triton.jit
def _row(k: tl.constexpr, D: tl.constexpr, c0, c1, c2, res, size, offset, hashed, HASH: tl.constexpr):
    """Table row of corner k (bit d of k ↔ upper corner along axis d), as the torch path computes it:
    tiled Σ c_d·(R+1)^d, hash XOR_d (c_d·π_d mod 2^32); then mod size, plus the level's offset."""
    v0 = c0 + (k & 1)
    v1 = c1 + ((k >> 1) & 1)
    v2 = c2 + ((k >> 2) & 1)                         # unused (and dropped by the compiler) when D = 2
    stride = res + 1
    index = v0 + v1 * stride
    lattice = stride * stride                        # vertices of the level's lattice, (R+1)^D
    if D == 3:
        index += v2 * stride * stride
        lattice = lattice * stride
    if HASH:
        h = v0.to(tl.uint32) ^ (v1.to(tl.uint32) * 2654435761)               # uint32 arithmetic wraps
        if D == 3:
            h = h ^ (v2.to(tl.uint32) * tl.full(v2.shape, 805459861, tl.uint32))
        index = tl.where(hashed, h.to(tl.int64), index)
    # a uniform branch per program: levels whose lattice fits need no wrap, and the others have a power
    # of two size (grid_level_sizes), so the int64 division (slow on a GPU) is a fallback only
    if lattice > size:
        if (size & (size - 1)) == 0:
            index = index & (size - 1)
        else:
            index = index % size
    return index + offset


@triton.jit
def _level(offsets_ptr, res_ptr, size_ptr, hash_ptr, lvl):
    return (tl.load(offsets_ptr + lvl), tl.load(res_ptr + lvl), tl.load(size_ptr + lvl),
            tl.load(hash_ptr + lvl) != 0)


@triton.jit
def grid_forward_kernel(x_ptr, table_ptr, out_ptr, offsets_ptr, res_ptr, size_ptr, hash_ptr, n, num_levels,
                        D: tl.constexpr, C: tl.constexpr, C_PAD: tl.constexpr, SMOOTH: tl.constexpr,
                        HASH: tl.constexpr, BLOCK_N: tl.constexpr):
    # x [n, D] in [0,1], table [rows, C] → out [n, L, C]
    lvl = tl.program_id(1)
    pts = (tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)    # [BLOCK]
    mask = pts < n
    offset, res, size, hashed = _level(offsets_ptr, res_ptr, size_ptr, hash_ptr, lvl)
    ch = tl.arange(0, C_PAD)                                                     # [C_PAD]
    m2 = mask[:, None] & (ch < C)[None, :]                                       # [BLOCK, C_PAD]
    c0, w0, _ = _axis(x_ptr, pts, mask, 0, D, res, SMOOTH)
    c1, w1, _ = _axis(x_ptr, pts, mask, 1, D, res, SMOOTH)
    if D == 3:
        c2, w2, _ = _axis(x_ptr, pts, mask, 2, D, res, SMOOTH)
    else:
        c2 = c1
        w2 = w1
    acc = tl.zeros((BLOCK_N, C_PAD), tl.float32)
    for k in tl.static_range(2 ** D):
        row = _row(k, D, c0, c1, c2, res, size, offset, hashed, HASH)           # [BLOCK]
        w = _side(w0, k & 1) * _side(w1, (k >> 1) & 1)
        if D == 3:
            w = w * _side(w2, (k >> 2) & 1)
        feat = tl.load(table_ptr + row[:, None] * C + ch[None, :], mask=m2, other=0.0)
        acc += w[:, None] * feat
    tl.store(out_ptr + (pts[:, None] * num_levels + lvl) * C + ch[None, :], acc, mask=m2)


@triton.jit
def grid_backward_kernel(grad_ptr, x_ptr, table_ptr, gtable_ptr, gx_ptr, offsets_ptr, res_ptr, size_ptr,
                         hash_ptr, n, num_levels, D: tl.constexpr, C: tl.constexpr, C_PAD: tl.constexpr,
                         SMOOTH: tl.constexpr, HASH: tl.constexpr, NEED_TABLE: tl.constexpr,
                         NEED_X: tl.constexpr, BLOCK_N: tl.constexpr):
    # grad [n, L, C] → gtable [rows, C] (accumulated), gx [L, n, D] (this level's share; the caller sums)
    lvl = tl.program_id(1)
    pts = (tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    mask = pts < n
    offset, res, size, hashed = _level(offsets_ptr, res_ptr, size_ptr, hash_ptr, lvl)
    ch = tl.arange(0, C_PAD)
    m2 = mask[:, None] & (ch < C)[None, :]
    g = tl.load(grad_ptr + (pts[:, None] * num_levels + lvl) * C + ch[None, :], mask=m2, other=0.0)
    c0, w0, dw0 = _axis(x_ptr, pts, mask, 0, D, res, SMOOTH)
    c1, w1, dw1 = _axis(x_ptr, pts, mask, 1, D, res, SMOOTH)
    if D == 3:
        c2, w2, dw2 = _axis(x_ptr, pts, mask, 2, D, res, SMOOTH)
    else:
        c2 = c1
        w2 = w1
        dw2 = dw1
    d0 = tl.zeros((BLOCK_N,), tl.float32)                                        # dL/dfrac per axis
    d1 = tl.zeros((BLOCK_N,), tl.float32)
    d2 = tl.zeros((BLOCK_N,), tl.float32)
    for k in tl.static_range(2 ** D):
        row = _row(k, D, c0, c1, c2, res, size, offset, hashed, HASH)
        s0 = _side(w0, k & 1)
        s1 = _side(w1, (k >> 1) & 1)
        s2 = _side(w2, (k >> 2) & 1)
        if NEED_TABLE:
            w = s0 * s1
            if D == 3:
                w = w * s2
            tl.atomic_add(gtable_ptr + row[:, None] * C + ch[None, :], w[:, None] * g, mask=m2, sem="relaxed")
        if NEED_X:
            feat = tl.load(table_ptr + row[:, None] * C + ch[None, :], mask=m2, other=0.0)
            dot = tl.sum(g * feat, axis=1)                                       # [BLOCK]
            e0 = _dside(dw0, k & 1)
            e1 = _dside(dw1, (k >> 1) & 1)
            if D == 3:
                e2 = _dside(dw2, (k >> 2) & 1)
                d0 += dot * e0 * s1 * s2
                d1 += dot * s0 * e1 * s2
                d2 += dot * s0 * s1 * e2
            else:
                d0 += dot * e0 * s1
                d1 += dot * s0 * e1
    if NEED_X:
        rf = res.to(tl.float32)                                                   # dfrac/dx = R
        base = gx_ptr + (lvl * n + pts) * D
        tl.store(base, d0 * rf, mask=mask)
        tl.store(base + 1, d1 * rf, mask=mask)
        if D == 3:
            tl.store(base + 2, d2 * rf, mask=mask)


INTERPRETED: bool = not isinstance(grid_forward_kernel, JITFunction)


def _common(x01: Tensor, table: Tensor, layout: tuple[Tensor, ...]) -> tuple:
    n, D = x01.shape
    C = table.shape[1]
    grid = (triton.cdiv(n, BLOCK), layout[1].shape[0])
    return n, D, C, triton.next_power_of_2(C), grid


def forward(x01: Tensor, table: Tensor, layout: tuple[Tensor, ...], smoothstep: bool,
            any_hash: bool) -> Tensor:
    """x01 [N, D] float32 contiguous in [0,1], table [rows, C] → [N, L, C]; layout = (offsets [L+1],
    resolutions [L], sizes [L], use_hash [L]) on the tensors' device."""
    n, D, C, C_PAD, grid = _common(x01, table, layout)
    out = torch.empty(n, grid[1], C, dtype=torch.float32, device=x01.device)
    if n:
        grid_forward_kernel[grid](x01, table, out, *layout, n, grid[1], D=D, C=C, C_PAD=C_PAD,
                                  SMOOTH=smoothstep, HASH=any_hash, BLOCK_N=BLOCK)
    return out


def backward(grad: Tensor, x01: Tensor, table: Tensor, layout: tuple[Tensor, ...], smoothstep: bool,
             any_hash: bool, need_table: bool, need_x: bool) -> tuple[Tensor | None, Tensor | None]:
    """grad [N, L, C] → (grad of table [rows, C] or None, grad of x01 [N, D] or None)."""
    n, D, C, C_PAD, grid = _common(x01, table, layout)
    grad_table = torch.zeros_like(table) if need_table else None
    grad_x = torch.empty(grid[1], n, D, dtype=torch.float32, device=x01.device) if need_x else None
    if n and (need_table or need_x):
        grid_backward_kernel[grid](grad, x01, table, grad_table if need_table else table,
                                   grad_x if need_x else x01, *layout, n, grid[1], D=D, C=C, C_PAD=C_PAD,
                                   SMOOTH=smoothstep, HASH=any_hash, NEED_TABLE=need_table, NEED_X=need_x,
                                   BLOCK_N=BLOCK)
    # per-level shares summed here, not with atomics: the x gradients stay deterministic
    return grad_table, (grad_x.sum(0) if need_x else None)
