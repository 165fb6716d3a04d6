"""The one MLP builder of the NeRF fields and the landmark condition."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def layer_dims(in_dim: int, out_dim: int, hidden: int, layers: int) -> list[int]:
    """`layers` linear layers of width `hidden` from in_dim to out_dim: [in, hidden, …, hidden, out]."""
    return [in_dim] + [hidden] * (layers - 1) + [out_dim]


def mlp(dims: Sequence[int], activation: str = "relu", negative_slope: float = 0.02, bias: bool = True,
        he_init: str | None = None, last_activation: bool = False) -> nn.Sequential:
    """Linear layers through `dims`, `activation` ("relu" or "leaky_relu") between them (and after
    the last one with `last_activation`).

    he_init keeps the signal's variance through the layers (He et al. 2015, normal, zero biases):
    PyTorch's default shrinks it ~√3× a layer, so a deep branch would start blind to its input (two
    frames' conditions differing by a few percent of their inputs' difference; RAD-NeRF's ambient
    coordinate collapsed at the origin for every condition). "hidden": the last layer gets gain 1 (a
    linear output); "all": it gets the activation's gain too, as if another such layer followed (the
    landmark encoder, whose features feed the attention smoother and the ambient branch). None:
    PyTorch's default initialisation.
    """
    if activation not in ("relu", "leaky_relu"):
        raise ValueError(f"activation must be 'relu' or 'leaky_relu', got {activation!r}")
    if he_init not in (None, "hidden", "all"):
        raise ValueError(f"he_init must be None, 'hidden' or 'all', got {he_init!r}")
    slope = negative_slope if activation == "leaky_relu" else 0.0
    modules: list[nn.Module] = []
    count = len(dims) - 1
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layer = nn.Linear(a, b, bias=bias)
        last = i == count - 1
        if he_init is not None:
            gain = "linear" if last and he_init == "hidden" else activation
            nn.init.kaiming_normal_(layer.weight, a=slope, nonlinearity=gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        modules.append(layer)
        if not last or last_activation:
            modules.append(nn.ReLU(inplace=True) if activation == "relu" else nn.LeakyReLU(negative_slope))
    return nn.Sequential(*modules)


def mlp_with_shared_input(net: nn.Sequential, varying: Tensor, shared: Tensor) -> Tensor:
    """net(cat([varying, shared], -1)) where shared [1, S] is the same for every row of varying [M, V]
    (one frame's condition or appearance code): its share of the first layer is computed once, not
    M times, and the [M, V+S] concatenation is never built. shared may also be [M, S]."""
    first, v = net[0], varying.shape[-1]
    shared_part = F.linear(shared.to(varying.dtype), first.weight[:, v:], first.bias)      # [1 or M, H]
    if shared_part.shape[0] == 1 and varying.shape[0] != 1:      # one frame's: it becomes the bias
        hidden = F.linear(varying, first.weight[:, :v], shared_part[0])
    else:
        hidden = F.linear(varying, first.weight[:, :v]) + shared_part
    return net[1:](hidden)


def mlp_with_gated_input(net: nn.Sequential, varying: Tensor, shared: Tensor, gate: Tensor) -> Tensor:
    """net(cat([varying, gate · shared], -1)) for shared [1, S] (one frame's condition) and gate [M, 1]:
    the first layer is linear, so gate · (W_s · shared) is the same, computed once and scaled per row."""
    first, v = net[0], varying.shape[-1]
    shared_part = F.linear(shared.to(varying.dtype), first.weight[:, v:])               # [1, H]
    hidden = torch.addcmul(F.linear(varying, first.weight[:, :v], first.bias), gate.to(varying.dtype), shared_part)
    return net[1:](hidden)
