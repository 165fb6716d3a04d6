"""Autograd glue of the Triton grid encoding: forward and backward both run in grid_kernels (handed in
by the caller, so this module imports no triton)."""

from __future__ import annotations

import torch
from torch import Tensor


class GridEncodingFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x01: Tensor, table: Tensor, kernels, layout: tuple[Tensor, ...], smoothstep: bool,
                any_hash: bool) -> Tensor:
        # x01 [N, D] float32 in [0, 1], table [rows, C] → [N, L, C]; any_hash: some level is hashed
        # (static per config, so tiled grids compile without the hash arithmetic)
        x01, table = x01.contiguous(), table.contiguous()
        ctx.save_for_backward(x01, table)
        ctx.kernels, ctx.layout, ctx.flags = kernels, layout, (smoothstep, any_hash)
        return kernels.forward(x01, table, layout, smoothstep, any_hash)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x01, table = ctx.saved_tensors
        need_x, need_table = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_table, grad_x = ctx.kernels.backward(grad.contiguous(), x01, table, ctx.layout, *ctx.flags,
                                                  need_table, need_x)
        return grad_x, grad_table, None, None, None, None
