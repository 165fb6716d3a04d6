"""Camera rays and the axis-aligned scene box (OpenCV camera: x right, y down, looks along +z)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def image_pixels(height: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """All pixels of an image as (row, col), row-major: [H*W, 2] long."""
    rows = torch.arange(height, device=device).repeat_interleave(width)  # [H*W]
    cols = torch.arange(width, device=device).repeat(height)  # [H*W]
    return torch.stack([rows, cols], dim=-1)


def pixel_rays(c2w: Tensor, focal: float, cx: float, cy: float, pixels: Tensor) -> tuple[Tensor, Tensor]:
    """Rays through pixel centres.

    c2w [4,4] (one camera for all pixels) or [N,4,4] (one per pixel); pixels [N,2] (row, col), the
    +0.5 to reach the pixel centre is added here. Returns origins [N,3] and unit directions [N,3].
    """
    dtype = c2w.dtype if c2w.is_floating_point() else torch.float32
    c2w = c2w.to(dtype)
    pix = pixels.to(device=c2w.device, dtype=dtype)  # [N,2]
    row, col = pix[:, 0] + 0.5, pix[:, 1] + 0.5
    d_cam = torch.stack([(col - cx) / focal, (row - cy) / focal, torch.ones_like(row)], dim=-1)  # [N,3]
    if c2w.dim() == 2:
        dirs = d_cam @ c2w[:3, :3].T  # [N,3]
        origins = c2w[:3, 3].expand(dirs.shape[0], 3)
    else:
        dirs = torch.einsum("nij,nj->ni", c2w[:, :3, :3], d_cam)  # [N,3]
        origins = c2w[:, :3, 3]
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    return origins.contiguous(), dirs


class SceneBox:
    """Axis-aligned box [xmin, ymin, zmin, xmax, ymax, zmax] in head units.

    Fields and the occupancy grid see normalised coordinates (box → [-1,1]^3) so their resolution
    does not depend on the head's size in world units.
    """

    def __init__(self, aabb: Tensor | Sequence[float]):
        self.aabb = torch.as_tensor(aabb, dtype=torch.float32).reshape(6)
        self.centre = (self.aabb[:3] + self.aabb[3:]) / 2  # [3]
        self.half_size = (self.aabb[3:] - self.aabb[:3]) / 2  # [3]

    def __repr__(self) -> str:
        return f"SceneBox(aabb={self.aabb.tolist()})"

    def to(self, device: torch.device | str) -> "SceneBox":
        return SceneBox(self.aabb.to(device))

    def normalize(self, x: Tensor) -> Tensor:
        """[...,3] head units → [...,3], inside the box in [-1,1]."""
        return (x - self.centre.to(x)) / self.half_size.to(x)

    def denormalize(self, x_n: Tensor) -> Tensor:
        """[...,3] normalised → head units (inverse of normalize)."""
        return x_n * self.half_size.to(x_n) + self.centre.to(x_n)

    def intersect(self, origins: Tensor, directions: Tensor,
                  min_near: float = 0.05) -> tuple[Tensor, Tensor, Tensor]:
        """Slab test. origins, directions [N,3] → near [N], far [N], hit [N] bool.

        near is clamped to ≥ min_near (a camera inside the box starts just in front of itself);
        for misses hit is False and far = near (an empty interval).
        """
        lo, hi = self.aabb[:3].to(origins), self.aabb[3:].to(origins)
        d = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
        inv = 1.0 / d  # [N,3]
        t1, t2 = (lo - origins) * inv, (hi - origins) * inv  # [N,3]
        t_enter = torch.minimum(t1, t2).amax(dim=-1)  # [N]
        t_exit = torch.maximum(t1, t2).amin(dim=-1)  # [N]
        near = t_enter.clamp(min=min_near)
        hit = t_exit > near
        far = torch.where(hit, t_exit, near)
        return near, far, hit
