"""Autograd glue of the C++ grid encoding: forward and backward both run in the extension."""

from __future__ import annotations

import torch
from torch import Tensor


class GridEncodingFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x01: Tensor, table: Tensor, ext, layout: tuple[Tensor, ...], smoothstep: bool) -> Tensor:
        # x01 [N, D] float32 in [0, 1], table [rows, C] → [N, L, C]
        x01, table = x01.contiguous(), table.contiguous()
        ctx.save_for_backward(x01, table)
        ctx.ext, ctx.layout, ctx.smoothstep = ext, layout, smoothstep
        return ext.forward(x01, table, *layout, smoothstep)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x01, table = ctx.saved_tensors
        need_x = ctx.needs_input_grad[0]
        grad_table, grad_x = ctx.ext.backward(grad.contiguous(), x01, table, *ctx.layout, ctx.smoothstep, need_x)
        return (grad_x if need_x else None), grad_table, None, None, None
