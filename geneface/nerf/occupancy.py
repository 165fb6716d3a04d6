"""Occupancy grid: a max-EMA density cache over the normalised scene box (torch-ngp's density grid).

Rendering asks the grid which samples can be skipped, so the field is only evaluated near the head.
Cells that no training camera sees are marked -1 and never occupied: they get no supervision, and
letting the field put density there only produces floaters in novel poses.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geneface.nerf.rays import SceneBox

# Upper bound on (cameras × cells) projected at once in mark_unseen: bounds memory to ~100 MB.
_PROJECT_BUDGET = 2**22
# Cameras used by mark_unseen. A speaker's head-pose track (thousands of frames) is smooth and
# highly redundant, so ~64 evenly spaced frames cover nearly the same union of frustums at 1/100
# of the cost; a cell seen only by a skipped frame is at most a sliver at the frustum border.
MAX_UNSEEN_CAMERAS = 64
# Updates that evaluate every cell before `max_cells` takes effect (instant-ngp evaluates every cell for its
# first 256 steps, 16 updates): a fresh cache knows nothing, and a cell a partial update skipped would read
# as empty, so no ray would sample it and it could never grow density.
WARMUP_UPDATES = 16


class OccupancyGrid(nn.Module):
    """Max-EMA density cache on a res³ grid over the normalised box; skips empty space when marching.

    Cell (i, j, k) covers x_n ∈ [-1 + 2i/R, -1 + 2(i+1)/R) along x (then y, z). State lives in
    buffers so it is saved in (and restored from) the state_dict.
    """

    density: Tensor
    occupied: Tensor
    updates: Tensor

    def __init__(self, resolution: int = 128, decay: float = 0.95, density_threshold: float = 10.0,
                 dilation: int = 1, warmup_updates: int = WARMUP_UPDATES):
        super().__init__()
        self.warmup_updates = int(warmup_updates)
        self.resolution = int(resolution)
        self.decay = float(decay)
        self.density_threshold = float(density_threshold)
        self.dilation = int(dilation)
        r = self.resolution
        self.register_buffer("density", torch.zeros(r, r, r))  # [R,R,R], -1 = unseen
        # Before the first update every seen cell is occupied (nothing is known about the field yet).
        self.register_buffer("occupied", torch.ones(r, r, r, dtype=torch.bool))  # [R,R,R]
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def cell_centres(self) -> Tensor:
        """Normalised centres of all cells, flattened in (x, y, z) row-major order: [R³,3]."""
        r = self.resolution
        ax = (torch.arange(r, device=self.density.device, dtype=torch.float32) + 0.5) * (2.0 / r) - 1.0
        gx, gy, gz = torch.meshgrid(ax, ax, ax, indexing="ij")
        return torch.stack([gx, gy, gz], dim=-1).reshape(-1, 3)

    @torch.no_grad()
    def mark_unseen(self, box: SceneBox, c2w: Tensor, focal: float, cx: float, cy: float,
                    height: int, width: int) -> None:
        """Cells whose centre projects inside no image (or lies behind every camera) → density -1.

        c2w [T,4,4] camera-to-head-world (OpenCV axes); at most MAX_UNSEEN_CAMERAS evenly spaced
        cameras are used, projected in chunks so memory stays bounded for R=128 (2M cells).
        Projection ignores occlusion: a cell inside the head is "seen" (it is in the frustum).
        """
        dev = self.density.device
        c2w = torch.as_tensor(c2w).to(device=dev, dtype=torch.float32).reshape(-1, 4, 4)
        if c2w.shape[0] > MAX_UNSEEN_CAMERAS:
            pick = torch.linspace(0, c2w.shape[0] - 1, MAX_UNSEEN_CAMERAS, device=dev).round().long()
            c2w = c2w[pick]
        rot = c2w[:, :3, :3].transpose(1, 2)  # [T,3,3] world→camera rotation
        trans = -(rot @ c2w[:, :3, 3:4]).squeeze(-1)  # [T,3]
        pts = box.to(dev).denormalize(self.cell_centres())  # [M,3] head units
        seen = torch.zeros(pts.shape[0], dtype=torch.bool, device=dev)  # [M]
        cams = max(1, _PROJECT_BUDGET // pts.shape[0])
        for s in range(0, c2w.shape[0], cams):
            p = torch.einsum("kij,mj->kmi", rot[s:s + cams], pts) + trans[s:s + cams, None]  # [k,M,3]
            z = p[..., 2]
            zs = z.clamp(min=1e-6)
            u = p[..., 0] / zs * focal + cx
            v = p[..., 1] / zs * focal + cy
            inside = (z > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)  # [k,M]
            seen |= inside.any(dim=0)
        seen = seen.view_as(self.density)
        self.density.masked_fill_(~seen, -1.0)
        self.occupied &= seen

    @torch.no_grad()
    def update(self, density_fn: Callable[[Tensor], Tensor], max_cells: int | None = None,
               chunk: int = 2**18) -> None:
        """One max-EMA step: grid = max(decay·grid, σ(jittered centre)) on the evaluated cells.

        density_fn maps normalised positions [M,3] → density [M] (≥0). All seen cells are evaluated,
        or, once the grid has had warmup_updates updates, a random subset of max_cells of them (a cheap
        refresh). Then
        occupied = dilate(grid > min(mean seen density, density_threshold)) restricted to seen cells.
        """
        r = self.resolution
        flat = self.density.view(-1)  # [R³]
        seen = flat >= 0  # [R³]
        idx = seen.nonzero().squeeze(-1)  # [K]
        if max_cells is not None and max_cells < idx.numel() and int(self.updates) >= self.warmup_updates:
            idx = idx[torch.randperm(idx.numel(), device=idx.device)[:max_cells]]
        if idx.numel() > 0:
            ijk = torch.stack([idx // (r * r), (idx // r) % r, idx % r], dim=-1).float()  # [K,3]
            pos = (ijk + torch.rand_like(ijk)) * (2.0 / r) - 1.0  # [K,3] uniform within the cell
            new = torch.cat([density_fn(pos[s:s + chunk]).reshape(-1).float()
                             for s in range(0, pos.shape[0], chunk)])  # [K]
            flat[idx] = torch.maximum(flat[idx] * self.decay, new.clamp(min=0).to(flat))
        threshold = min(flat[seen].mean().item() if bool(seen.any()) else 0.0, self.density_threshold)
        occ = (self.density > threshold).float()[None, None]  # [1,1,R,R,R]
        for _ in range(self.dilation):
            occ = F.max_pool3d(occ, kernel_size=3, stride=1, padding=1)
        self.occupied.copy_((occ[0, 0] > 0) & seen.view_as(self.density))
        self.updates += 1

    def occupied_at(self, x_normalised: Tensor) -> Tensor:
        """Occupancy of the cells holding normalised positions [M,3] → [M] bool (outside [-1,1] → False)."""
        r = self.resolution
        x = x_normalised.to(self.density.device)
        inside = (x.abs() <= 1.0).all(dim=-1)  # [M]
        ijk = ((x + 1.0) * (r / 2.0)).floor_().clamp_(0, r - 1)  # [M,3] whole numbers, still float
        # the flat index in float32 is exact below 2^24 cells (R ≤ 256) and converts to long once, not ×3
        if r > 256:
            ijk = ijk.long()
        flat = (ijk[..., 0] * r + ijk[..., 1]) * r + ijk[..., 2]  # [M]
        return self.occupied.view(-1)[flat.long()] & inside

    def occupied_bounds(self) -> tuple[Tensor, Tensor] | None:
        """The occupied cells' bounding box in normalised coordinates, (lo [3], hi [3]) cell edges, or
        None when no cell is occupied. Marching lays out samples only inside it."""
        r = self.resolution
        extent = []
        for axis in range(3):
            others = tuple(d for d in range(3) if d != axis)
            cells = self.occupied.any(dim=others).nonzero().squeeze(-1)        # [≤R] occupied slices
            if len(cells) == 0:
                return None
            extent.append((cells[0], cells[-1] + 1))
        lo = torch.stack([e[0] for e in extent]).float() * (2.0 / r) - 1.0
        hi = torch.stack([e[1] for e in extent]).float() * (2.0 / r) - 1.0
        return lo, hi

    def stats(self) -> dict[str, float]:
        """For logging: fraction occupied, mean density over seen cells, fraction seen."""
        seen = self.density >= 0
        mean = self.density[seen].mean().item() if bool(seen.any()) else 0.0
        return {"occupancy": self.occupied.float().mean().item(), "mean_density": mean,
                "seen": seen.float().mean().item()}
