"""Volume rendering with occupancy-based sample skipping (pure torch, CPU and CUDA).

Sampling trade-off vs torch-ngp: torch-ngp marches each ray adaptively through its density
bitfield with a CUDA kernel (step size growing with distance, empty cells jumped over, per-ray
early termination), so the number of field evaluations adapts per ray and the sample layout is
ragged. Here every ray gets a fixed number of uniform (or stratified) samples between its box
entry and exit, laid out densely as [N, S]; the occupancy grid then only masks samples out. This
is plain vectorised torch (no custom kernel, predictable shapes, simple exact compositing), and the
field — the expensive part — is still evaluated only on the kept samples (gather → packed [M] →
scatter back). The cost: the resolution along a ray is the box depth / S wherever it crosses the
head, not a fine step concentrated on occupied cells, so S must be large enough for the thinnest
structure; the [N, S] bookkeeping is cheap next to the field.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from geneface.nerf.fields import FieldOutput
from geneface.nerf.occupancy import OccupancyGrid
from geneface.nerf.rays import SceneBox

# (positions_normalised [M,3], directions [M,3], ray_indices [M] long) →
# {DENSITY: [M] ≥0, RGB: [M,3] in [0,1], optional extra per-sample outputs e.g. AMBIENT [M,2]} (FieldOutput keys)
FieldFn = Callable[[Tensor, Tensor, Tensor], dict[str, Tensor]]


@dataclass
class RenderOutput:
    rgb: Tensor  # [N,3]
    opacity: Tensor  # [N] Σ w
    depth: Tensor  # [N] Σ w·t (head units along the unit direction)
    samples_per_ray: float  # mean number of evaluated samples per ray (logging)
    extras: dict[FieldOutput, Tensor] = field(default_factory=dict)  # K → [N] Σ_evaluated |value|.sum(-1)
    weights: Tensor | None = None  # [N,S] w_i, for importance sampling (dropped by chunked render_rays)


def render_rays(field_fn: FieldFn, box: SceneBox, origins: Tensor, directions: Tensor,
                background: Tensor, occupancy: OccupancyGrid | None, num_samples: int = 64,
                perturb: bool = False, min_near: float = 0.05, chunk: int | None = None,
                min_transmittance: float = 0.0) -> RenderOutput:
    """Render N rays through field_fn inside the box; rays that miss it get the background, opacity 0.

    origins, directions [N,3] (unit), background [N,3] (or broadcastable, e.g. [3]). perturb
    stratifies one sample uniformly within each of the num_samples bins (training); otherwise bin
    midpoints. chunk renders rays chunk at a time and concatenates (inference: bounds memory; wrap
    the call in torch.no_grad() there).

    min_transmittance > 0, without perturb and without grad (rendering whole frames): the same samples
    marched front to back a segment at a time, skipping rays that cross no occupied cell and stopping a
    ray once its transmittance falls below min_transmittance (early ray termination). What it leaves out
    weighs less than min_transmittance per ray, so the frame matches the dense path to well within
    1/255; the per-ray extras then sum only the evaluated samples. 0 is the dense reference path.
    """
    n = origins.shape[0]
    background = background.to(origins).expand(n, 3)
    render = _render
    if min_transmittance > 0 and not perturb and not torch.is_grad_enabled():
        render = functools.partial(_march, min_transmittance=min_transmittance)
    if chunk is None or n <= chunk:
        return render(field_fn, box, origins, directions, background, occupancy, num_samples, perturb, min_near)
    parts = [render(field_fn, box, origins[s:s + chunk], directions[s:s + chunk],
                    background[s:s + chunk], occupancy, num_samples, perturb, min_near)
             for s in range(0, n, chunk)]
    keys = set().union(*(p.extras for p in parts))          # a marched chunk may evaluate nothing
    return RenderOutput(
        rgb=torch.cat([p.rgb for p in parts]),
        opacity=torch.cat([p.opacity for p in parts]),
        depth=torch.cat([p.depth for p in parts]),
        samples_per_ray=sum(p.samples_per_ray * p.rgb.shape[0] for p in parts) / max(n, 1),
        extras={k: torch.cat([p.extras.get(k, p.opacity.new_zeros(len(p.opacity))) for p in parts]) for k in keys},
    )


def _render(field_fn: FieldFn, box: SceneBox, origins: Tensor, directions: Tensor, background: Tensor,
            occupancy: OccupancyGrid | None, num_samples: int, perturb: bool,
            min_near: float) -> RenderOutput:
    n, s = origins.shape[0], num_samples
    near, far, hit = box.intersect(origins, directions, min_near)  # [N] ×3
    span = far - near  # [N], 0 for misses
    offsets = torch.arange(s, device=origins.device, dtype=origins.dtype)  # [S]
    if perturb:
        u = (offsets + torch.rand(n, s, device=origins.device, dtype=origins.dtype)) / s  # [N,S]
    else:
        u = ((offsets + 0.5) / s).expand(n, s)  # [N,S]
    t = near[:, None] + span[:, None] * u  # [N,S]
    spacing = (span / s)[:, None]  # [N,1]
    # δ_i = t_{i+1} - t_i, the last one the bin spacing (all equal to the spacing for midpoints).
    delta = torch.cat([t[:, 1:] - t[:, :-1], spacing], dim=-1)  # [N,S]

    x_n = box.normalize(origins[:, None] + t[..., None] * directions[:, None])  # [N,S,3]
    keep = hit[:, None] & (x_n.abs() <= 1.0).all(dim=-1)  # [N,S]
    if occupancy is not None:
        keep = keep & occupancy.occupied_at(x_n.reshape(-1, 3)).view(n, s)

    # Gather kept samples into a packed batch: the field never sees skipped samples.
    idx = keep.reshape(-1).nonzero().squeeze(-1)  # [M] into the flat [N*S]
    ray_idx = idx // s  # [M]
    out = field_fn(x_n.reshape(-1, 3)[idx], directions[ray_idx], ray_idx)
    sigma_p = out[FieldOutput.DENSITY].reshape(-1)  # [M]
    rgb_p = out[FieldOutput.RGB].reshape(-1, 3)  # [M,3]

    # Scatter back to the dense layout; skipped samples have density 0 (alpha 0).
    sigma = sigma_p.new_zeros(n * s).index_put((idx,), sigma_p).view(n, s)  # [N,S]
    rgb = rgb_p.new_zeros(n * s, 3).index_put((idx,), rgb_p).view(n, s, 3)  # [N,S,3]

    result = composite(sigma, rgb, t, delta, background)

    extras: dict[FieldOutput, Tensor] = {}
    _add_extras(extras, out, ray_idx, n)
    result.samples_per_ray, result.extras = idx.shape[0] / max(n, 1), extras
    return result


MARCH_SEGMENT = 8    # samples per ray evaluated per pass by _march: small enough to stop soon after a
                     # ray turns opaque, large enough that a pass keeps the field's batches big


def _march(field_fn: FieldFn, box: SceneBox, origins: Tensor, directions: Tensor, background: Tensor,
           occupancy: OccupancyGrid | None, num_samples: int, perturb: bool, min_near: float,
           min_transmittance: float) -> RenderOutput:
    """The midpoint samples of _render, evaluated front to back MARCH_SEGMENT at a time for the rays
    still transparent (no grad; see render_rays). Each segment is composited from its own start and
    attenuated by the transmittance the ray has left."""
    n, s = origins.shape[0], num_samples
    near, far, hit = box.intersect(origins, directions, min_near)          # [N] ×3
    span = far - near
    u = (torch.arange(s, device=origins.device, dtype=origins.dtype) + 0.5) / s   # [S]
    rays = hit.nonzero().squeeze(-1)                                         # [A] rays that cross the box
    t_all = near[rays, None] + span[rays, None] * u                         # [A, S]
    delta_all = (span[rays] / s)[:, None].expand(-1, MARCH_SEGMENT)          # [A, k] all δ equal at midpoints
    x_all = box.normalize(origins[rays, None] + t_all[..., None] * directions[rays, None])   # [A, S, 3]
    keep_all = (x_all.abs() <= 1.0).all(-1)                                 # [A, S]
    if occupancy is not None:
        keep_all &= occupancy.occupied_at(x_all.reshape(-1, 3)).view(len(rays), s)
    rows = keep_all.any(-1).nonzero().squeeze(-1)    # rows of the rays that meet an occupied cell: [R]

    rgb, depth = origins.new_zeros(n, 3), origins.new_zeros(n)
    trans = origins.new_ones(n)                                              # [N] transmittance left
    extras: dict[FieldOutput, Tensor] = {}
    evaluated = 0
    for lo in range(0, s, MARCH_SEGMENT):
        if len(rows) == 0:
            break
        hi = min(lo + MARCH_SEGMENT, s)
        k, ids = hi - lo, rays[rows]                                         # ids: [R] into the N rays
        idx = keep_all[rows, lo:hi].reshape(-1).nonzero().squeeze(-1)        # [M] into [R·k]
        if len(idx):
            local = idx // k                                                 # [M] row of rows
            t = t_all[rows, lo:hi]                                           # [R, k]
            out = field_fn(x_all[rows, lo:hi].reshape(-1, 3)[idx], directions[ids[local]], ids[local])
            evaluated += len(idx)
            sigma = out[FieldOutput.DENSITY].reshape(-1).to(t)
            sigma = sigma.new_zeros(len(rows) * k).index_put((idx,), sigma).view(-1, k)        # [R, k]
            colour = out[FieldOutput.RGB].reshape(-1, 3).to(t)
            colour = colour.new_zeros(len(rows) * k, 3).index_put((idx,), colour).view(-1, k, 3)
            part = composite(sigma, colour, t, delta_all[rows, :k], t.new_zeros(len(rows), 3))
            left = trans[ids]
            rgb[ids] += left[:, None] * part.rgb
            depth[ids] += left * part.depth
            trans[ids] = left * (1.0 - part.opacity)
            _add_extras(extras, out, ids[local], n)
        rows = rows[trans[rays[rows]] > min_transmittance]
    return RenderOutput(rgb=rgb + trans[:, None] * background, opacity=1.0 - trans, depth=depth,
                        samples_per_ray=evaluated / max(n, 1), extras=extras)


def _add_extras(extras: dict, out: dict, ray_idx: Tensor, n: int) -> None:
    """Add each extra field output (not density or rgb) as Σ |value| per ray over the evaluated samples."""
    for key, value in out.items():
        if key in (FieldOutput.DENSITY, FieldOutput.RGB):
            continue
        v = value.abs()
        per_sample = v.flatten(1).sum(-1) if v.dim() > 1 else v            # [M]
        extras[key] = extras.get(key, per_sample.new_zeros(n)).index_add(0, ray_idx, per_sample)   # [N]


def composite(density: Tensor, rgb: Tensor, t: Tensor, deltas: Tensor, background: Tensor) -> RenderOutput:
    """Alpha-composite dense samples front to back over a background.

    density [N,S] ≥0, rgb [N,S,3], t [N,S] sample depths, deltas [N,S] their lengths, background
    [N,3] → RenderOutput with weights [N,S]. The background fills what the samples leave, which is
    the original NeRF's "last sample's colour is the background pixel" without a 1e10-long last bin.
    """
    tau = density * deltas  # [N,S] optical depth per sample
    alpha = 1.0 - torch.exp(-tau)  # [N,S]
    # Exclusive transmittance T_i = Π_{j<i}(1-α_j) = exp(-Σ_{j<i} τ_j): cumsum form, no cumprod-of-zero grads.
    trans = torch.exp(-(torch.cumsum(tau, dim=-1) - tau))  # [N,S]
    w = alpha * trans  # [N,S]
    opacity = w.sum(dim=-1)  # [N]
    rgb_out = (w[..., None] * rgb).sum(dim=1) + (1.0 - opacity)[:, None] * background  # [N,3]
    depth = (w * t).sum(dim=-1)  # [N]
    return RenderOutput(rgb=rgb_out, opacity=opacity, depth=depth, samples_per_ray=float(t.shape[-1]),
                        weights=w)
