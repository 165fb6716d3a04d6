"""Hierarchical (coarse → fine) volume sampling of the original NeRF, for the legacy MLP renderers.

The RAD-NeRF path (renderer.render_rays) skips empty space with an occupancy grid; an MLP NeRF
instead spends a second, importance-sampled pass where the coarse pass found density. Both share
renderer.composite, so the compositing maths lives in one place.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geneface.nerf.fields import FieldOutput
from geneface.nerf.rays import SceneBox
from geneface.nerf.renderer import FieldFn, RenderOutput, composite


def sample_pdf(bins: Tensor, weights: Tensor, num_samples: int, deterministic: bool = False) -> Tensor:
    """Inverse-CDF sampling of the piecewise-constant pdf `weights` over `bins` (NeRF's sample_pdf).

    bins [N, B+1] sorted edges, weights [N, B] ≥ 0 → [N, num_samples] depths (unsorted when random).
    deterministic: evenly spaced CDF quantiles (inference), otherwise uniform random ones (training).
    """
    weights = weights.detach() + 1e-5                                    # no gradient, no empty pdf
    pdf = weights / weights.sum(-1, keepdim=True)                        # [N, B]
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)   # [N, B+1]
    n = bins.shape[0]
    if deterministic:
        u = torch.linspace(0.0, 1.0, num_samples, device=bins.device, dtype=bins.dtype).expand(n, num_samples)
    else:
        u = torch.rand(n, num_samples, device=bins.device, dtype=bins.dtype)
    u = u.contiguous()
    above = torch.searchsorted(cdf.contiguous(), u, right=True).clamp(1, cdf.shape[-1] - 1)   # [N, K]
    below = above - 1
    cdf_lo, cdf_hi = cdf.gather(-1, below), cdf.gather(-1, above)
    bin_lo, bin_hi = bins.gather(-1, below), bins.gather(-1, above)
    denom = torch.where(cdf_hi - cdf_lo < 1e-5, torch.ones_like(cdf_hi), cdf_hi - cdf_lo)
    return bin_lo + (u - cdf_lo) / denom * (bin_hi - bin_lo)


def _evaluate(field_fn: FieldFn, box: SceneBox, origins: Tensor, directions: Tensor, t: Tensor,
              far: Tensor, background: Tensor) -> RenderOutput:
    """Dense evaluation of every sample t [N, S] (sorted) and compositing over background [N, 3]."""
    n, s = t.shape
    x_n = box.normalize(origins[:, None] + t[..., None] * directions[:, None])       # [N, S, 3]
    ray_idx = torch.arange(n, device=t.device).repeat_interleave(s)                   # [N·S]
    out = field_fn(x_n.reshape(-1, 3), directions[ray_idx], ray_idx)
    density, rgb = out[FieldOutput.DENSITY].reshape(n, s), out[FieldOutput.RGB].reshape(n, s, 3)
    deltas = torch.cat([t[:, 1:] - t[:, :-1], (far[:, None] - t[:, -1:]).clamp(min=0)], -1)  # [N, S]
    return composite(density, rgb, t, deltas, background)


def render_hierarchical(coarse_fn: FieldFn, fine_fn: FieldFn, box: SceneBox, origins: Tensor,
                        directions: Tensor, background: Tensor, num_coarse: int = 64, num_fine: int = 128,
                        perturb: bool = False, min_near: float = 0.05,
                        chunk: int | None = None) -> tuple[RenderOutput, RenderOutput]:
    """Coarse pass with num_coarse stratified samples between the box entry and exit, then the fine
    field on those plus num_fine samples drawn from the coarse weights: (coarse, fine) RenderOutputs.

    origins, directions [N, 3], background [N, 3] (or broadcastable). Rays missing the box are not
    evaluated: they get the background and opacity 0. ray_indices passed to the fields index the N
    rays, so a field may look up per-ray inputs (the torso's head colour). chunk: rays per pass.
    """
    n = origins.shape[0]
    background = background.to(origins).expand(n, 3)
    if chunk is not None and n > chunk:
        def sub(fn: FieldFn, start: int) -> FieldFn:      # the field sees ray indices of the full batch
            return lambda x, d, r: fn(x, d, r + start)
        parts = [render_hierarchical(sub(coarse_fn, s), sub(fine_fn, s), box, origins[s:s + chunk],
                                     directions[s:s + chunk], background[s:s + chunk], num_coarse, num_fine,
                                     perturb, min_near) for s in range(0, n, chunk)]
        return tuple(_cat([p[k] for p in parts]) for k in (0, 1))            # type: ignore[return-value]

    near, far, hit = box.intersect(origins, directions, min_near)           # [N] ×3
    rays = hit.nonzero().squeeze(-1)                                        # [H] rays that cross the box
    o, d, near, far, bg = origins[rays], directions[rays], near[rays], far[rays], background[rays]

    def on_hit(fn: FieldFn) -> FieldFn:
        return lambda x, dirs, r: fn(x, dirs, rays[r])

    steps = torch.arange(num_coarse, device=o.device, dtype=o.dtype)        # [S]
    jitter = torch.rand(len(rays), num_coarse, device=o.device, dtype=o.dtype) if perturb else 0.5
    t_coarse = near[:, None] + (far - near)[:, None] * (steps + jitter) / num_coarse     # [H, Sc]
    coarse = _evaluate(on_hit(coarse_fn), box, o, d, t_coarse, far, bg)
    mids = 0.5 * (t_coarse[:, 1:] + t_coarse[:, :-1])                      # [H, Sc-1]
    t_new = sample_pdf(mids, coarse.weights[:, 1:-1], num_fine, deterministic=not perturb)
    t_fine, _ = torch.sort(torch.cat([t_coarse, t_new], -1), -1)            # [H, Sc+Sf]
    fine = _evaluate(on_hit(fine_fn), box, o, d, t_fine, far, bg)
    return _scatter(coarse, rays, background), _scatter(fine, rays, background)


def _scatter(out: RenderOutput, rays: Tensor, background: Tensor) -> RenderOutput:
    """Results of the rays that hit the box back into all N rays (the others: background)."""
    n = background.shape[0]
    rgb = background.clone().index_put((rays,), out.rgb)
    opacity = out.opacity.new_zeros(n).index_put((rays,), out.opacity)
    depth = out.depth.new_zeros(n).index_put((rays,), out.depth)
    return RenderOutput(rgb=rgb, opacity=opacity, depth=depth,
                        samples_per_ray=out.samples_per_ray * len(rays) / max(n, 1))


def _cat(parts: list[RenderOutput]) -> RenderOutput:
    n = sum(p.rgb.shape[0] for p in parts)
    return RenderOutput(rgb=torch.cat([p.rgb for p in parts]), opacity=torch.cat([p.opacity for p in parts]),
                        depth=torch.cat([p.depth for p in parts]),
                        samples_per_ray=sum(p.samples_per_ray * p.rgb.shape[0] for p in parts) / max(n, 1))
