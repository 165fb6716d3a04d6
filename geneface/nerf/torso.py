"""The torso of RAD-NeRF (reference §7): a 2D deformable canonical image, not a 3D field.

The neck and shoulders barely move in the image and have no view-dependent appearance worth a
volume, so the torso is an image-plane field: pixel position (+ head pose + per-frame code) → Δxy
warp → a 2D grid at the warped position → (α, rgb). An `AlphaGrid` caches where α is non-zero so
the field is evaluated only there (the torso's counterpart of the head's occupancy grid).

Pixel coordinates: pixel (row i, col j) of an H×W image → (u, v) = ((i+0.5)/H·2−1, (j+0.5)/W·2−1),
ROW FIRST, as the reference's bg_coords (which uses i/(H−1); pixel centres keep the same cell for
any resolution). The field multiplies them by `shrink` (0.8) inside, so warps stay inside the grid.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geneface.data.landmarks import JAW
from geneface.nerf.encodings import FrequencyEncoding, GridEncoding
from geneface.nerf.fields import FieldOutput
from geneface.nerf.mlp import layer_dims, mlp, mlp_with_shared_input


def normalized_pixels(pixels: Tensor, height: int, width: int) -> Tensor:
    """pixels [N, 2] (row, col) → [N, 2] (row, col) pixel centres in (−1, 1)."""
    size = torch.tensor([height, width], device=pixels.device, dtype=torch.float32)
    return (pixels.float() + 0.5) / size * 2.0 - 1.0


def pose_features(c2w: Tensor) -> Tensor:
    """Head pose as 6 numbers: c2w [B, 4, 4] → [B, 6] = euler 'XYZ' (radians) + translation.

    Euler 'XYZ' as pytorch3d's matrix_to_euler_angles (the reference's): R = R_x(a)·R_y(b)·R_z(c),
    so b = asin(R02), a = atan2(−R12, R22), c = atan2(−R01, R00). The reference takes them from its
    NGP-axes pose; ours come from the contract's OpenCV-axes c2w directly — a fixed axis permutation
    that the frequency encoding and MLP absorb.
    """
    r = c2w[:, :3, :3].float()
    b = torch.asin(r[:, 0, 2].clamp(-1.0, 1.0))
    a = torch.atan2(-r[:, 1, 2], r[:, 2, 2])
    c = torch.atan2(-r[:, 0, 1], r[:, 0, 0])
    return torch.cat([torch.stack([a, b, c], -1), c2w[:, :3, 3].float()], -1)


class TorsoField(nn.Module):
    """α and colour of the torso at normalised pixel positions, given the head pose and a frame code.

    `head_aware` (GeneFace++'s torso): each pixel's rendered head colour and opacity (premultiplied rgb,
    opacity; 4 numbers) are encoded to `head_features` and read by both nets, so the torso sees where
    the chin and jaw are in this frame and draws the neck that shows under them, rather than one neck
    for every mouth. A pixel without a head reading (None: the alpha cache's probe) reads zeros, which
    training shows it half the time (the stage's `head_dropout`).

    `jaw_condition`: the frame's normalised jaw landmarks (points 0–16, 51 numbers) join the pose as a
    per-frame input, so the neck under the chin can follow the jaw (an open mouth drops the chin and
    its shadow) for pixels the head does not cover — which a per-pixel head reading cannot tell."""

    def __init__(self, grid_encoding: GridEncoding, position_frequencies: int = 10, pose_frequencies: int = 4,
                 num_latents: int = 13000, latent_dim: int = 8, deform_hidden: int = 64, deform_layers: int = 3,
                 hidden: int = 32, layers: int = 3, shrink: float = 0.8, head_aware: bool = False,
                 head_features: int = 16, jaw_condition: bool = False):
        super().__init__()
        if grid_encoding.input_dim != 2:
            raise ValueError(f"the torso grid is 2D (image plane), got input_dim={grid_encoding.input_dim}")
        self.shrink = shrink
        self.position_encoding = FrequencyEncoding(2, position_frequencies)      # 2·(1+2·10) = 42
        self.pose_encoding = FrequencyEncoding(6, pose_frequencies)               # 6·(1+2·4) = 54
        self.grid_encoding = grid_encoding                                        # 16 × 2 = 32
        self.head_features = int(head_features) if head_aware else 0
        # per pixel: rgb + opacity of the head → [N, head_features]
        self.head_encoder = (mlp([4, 16, 32, self.head_features], activation="leaky_relu")
                             if head_aware else None)
        self.jaw_dim = 3 * len(JAW) if jaw_condition else 0
        self.condition_dim = (self.position_encoding.output_dim + self.pose_encoding.output_dim + latent_dim
                              + self.jaw_dim)
        in_dim = self.condition_dim + self.head_features
        self.deform_net = mlp(layer_dims(in_dim, 2, deform_hidden, deform_layers))                     # 104 (+16) → Δxy
        self.canonical_net = mlp(layer_dims(grid_encoding.output_dim + in_dim, 4, hidden, layers))     # → α, rgb
        # per-training-frame codes (appearance drift, shirt folds); index 0 at test, as the reference
        self.latents = nn.Parameter(torch.randn(num_latents, latent_dim) * 0.1)

    @property
    def head_aware(self) -> bool:
        return self.head_encoder is not None

    def jaw(self, window: Tensor) -> Tensor | None:
        """A landmark window [W, 204] (normalised; or one frame's [204]) → what this field reads of it: its
        centre frame's jaw [1, 51] (None unless jaw_condition)."""
        if not self.jaw_dim:
            return None
        frames = window.reshape(-1, 68, 3)
        return frames[len(frames) // 2, list(JAW)].reshape(1, -1)

    def forward(self, coords: Tensor, pose: Tensor, latent: Tensor, head: Tensor | None = None,
                jaw: Tensor | None = None) -> dict[str, Tensor]:
        # coords [N, 2] normalised (row, col); pose [1, 6] (pose_features); latent [1, latent_dim];
        # head [N, 4] the head's premultiplied rgb and opacity at these pixels (head_aware only; None: zeros);
        # jaw [1, 51] (self.jaw of the frame's landmark window; jaw_condition only)
        x = coords * self.shrink
        position = self.position_encoding(x)                                    # [N, 42]
        if self.head_encoder is not None:
            head = head if head is not None else x.new_zeros(len(x), 4)
            position = torch.cat([position, self.head_encoder(head.to(x.dtype))], -1)   # [N, 42 + 16]
        frame = [self.pose_encoding(pose).to(x.dtype), latent.to(x.dtype)]
        if self.jaw_dim:
            if jaw is None:
                raise ValueError("this torso field reads the jaw (jaw_condition): pass the frame's jaw landmarks")
            frame.append(jaw.to(x.dtype).reshape(1, self.jaw_dim))
        frame = torch.cat(frame, -1)                                            # [1, 62 (+51)] one frame's
        deform = mlp_with_shared_input(self.deform_net, position, frame)        # [N, 2]
        warped = (x + deform.float()).clamp(-1.0, 1.0)
        feature = self.grid_encoding(warped)                                    # [N, 32]
        out = mlp_with_shared_input(self.canonical_net, torch.cat([feature, position.to(feature.dtype)], -1),
                                    frame).float()                              # [N, 4]
        return {FieldOutput.ALPHA: torch.sigmoid(out[:, 0]), FieldOutput.RGB: torch.sigmoid(out[:, 1:]),
                FieldOutput.DEFORM: deform.float()}

    def param_groups(self, lr: float, grid_lr_scale: float = 10.0) -> list[dict]:
        """The reference's two learning rates: the grid ×10, MLPs and codes ×1."""
        grid = list(self.grid_encoding.parameters())
        special = {id(p) for p in grid}
        rest = [p for p in self.parameters() if id(p) not in special]
        return [{"params": rest, "lr": lr, "name": "mlp"},
                {"params": grid, "lr": lr * grid_lr_scale, "name": "grid"}]


class AlphaGrid(nn.Module):
    """Max-EMA cache of the torso's α on a res² grid over the normalised image plane.

    Cell (i, j) covers u ∈ [−1 + 2i/R, −1 + 2(i+1)/R) (rows) and likewise v (cols). An update
    evaluates α at every cell centre (one pose and code), dilates it with a 5×5 max-pool (so a torso
    moving by a few cells is not cut off) and keeps grid = max(decay·grid, new). Pixels whose cell
    holds more than min(threshold, mean) are evaluated; the rest get α = 0. Before the first update
    every pixel is evaluated.
    """

    alpha: Tensor
    updates: Tensor

    def __init__(self, resolution: int = 128, decay: float = 0.95, threshold: float = 0.01,
                 dilation_kernel: int = 5):
        super().__init__()
        if dilation_kernel % 2 != 1:
            raise ValueError(f"dilation_kernel must be odd (a centred max-pool), got {dilation_kernel}")
        self.resolution, self.decay, self.threshold = int(resolution), float(decay), float(threshold)
        self.dilation_kernel = int(dilation_kernel)
        self.register_buffer("alpha", torch.zeros(self.resolution, self.resolution))   # [R, R]
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def cell_centres(self) -> Tensor:
        """Normalised (row, col) centres of all cells, row-major: [R², 2]."""
        r = self.resolution
        ax = (torch.arange(r, device=self.alpha.device, dtype=torch.float32) + 0.5) * (2.0 / r) - 1.0
        gu, gv = torch.meshgrid(ax, ax, indexing="ij")
        return torch.stack([gu, gv], -1).reshape(-1, 2)

    @torch.no_grad()
    def update(self, alpha_fn: Callable[[Tensor], Tensor], chunk: int = 65536) -> None:
        """alpha_fn: normalised coords [M, 2] → α [M] in [0, 1], for one pose and code."""
        centres = self.cell_centres()
        new = torch.cat([alpha_fn(centres[s:s + chunk]).reshape(-1).float()
                         for s in range(0, len(centres), chunk)])                    # [R²]
        self.apply_update(new.view(self.resolution, self.resolution))

    @torch.no_grad()
    def apply_update(self, new: Tensor) -> None:
        """new [R, R] α at the cell centres → dilate, then grid = max(decay·grid, dilated)."""
        k = self.dilation_kernel
        dilated = F.max_pool2d(new.to(self.alpha)[None, None], kernel_size=k, stride=1, padding=k // 2)[0, 0]
        self.alpha.copy_(torch.maximum(self.alpha * self.decay, dilated))
        self.updates += 1

    def current_threshold(self) -> float:
        return min(self.threshold, self.alpha.mean().item())

    def occupied_at(self, coords: Tensor) -> Tensor:
        """coords [N, 2] normalised (row, col) → [N] bool: evaluate the field there."""
        if int(self.updates) == 0:
            return torch.ones(len(coords), dtype=torch.bool, device=coords.device)
        r = self.resolution
        ij = ((coords.to(self.alpha.device) + 1.0) * (r / 2.0)).floor().long().clamp(0, r - 1)   # [N, 2]
        return (self.alpha[ij[:, 0], ij[:, 1]] > self.current_threshold()).to(coords.device)

    def stats(self) -> dict[str, float]:
        """For logging: fraction of cells evaluated and the mean cached α."""
        occupied = (self.alpha > self.current_threshold()).float().mean().item() if int(self.updates) else 1.0
        return {"occupancy": occupied, "mean_alpha": self.alpha.mean().item()}


def torso_alpha_rgb(field: TorsoField, grid: AlphaGrid | None, coords: Tensor, pose: Tensor, latent: Tensor,
                    chunk: int | None = None, head: Tensor | None = None,
                    jaw: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """α [N] and rgb [N, 3] at coords [N, 2]; the field runs only where the alpha grid allows
    (α = 0, rgb = 0 elsewhere), in chunks of `chunk` pixels if given (inference). head [N, 4]: the
    head's rgb and opacity there, for a head-aware field; jaw [1, 51] for one with jaw_condition (TorsoField)."""
    keep = grid.occupied_at(coords) if grid is not None else torch.ones(len(coords), dtype=torch.bool,
                                                                        device=coords.device)
    idx = keep.nonzero().squeeze(-1)                                            # [M]
    alpha = coords.new_zeros(len(coords))
    rgb = coords.new_zeros(len(coords), 3)
    step = chunk or max(len(idx), 1)
    for s in range(0, len(idx), step):
        part = idx[s:s + step]
        out = field(coords[part], pose, latent, None if head is None else head[part], jaw)
        alpha = alpha.index_put((part,), out[FieldOutput.ALPHA])
        rgb = rgb.index_put((part,), out[FieldOutput.RGB])
    return alpha, rgb


def composite(head_rgb: Tensor, head_opacity: Tensor, torso_alpha: Tensor, torso_rgb: Tensor,
              plate: Tensor) -> tuple[Tensor, Tensor]:
    """The reference's compositing: C_tb = α·c + (1−α)·plate (torso over plate, the torso's training
    target) and C = head_rgb + (1 − head_opacity)·C_tb, with head_rgb premultiplied (rendered over
    black). head_rgb, torso_rgb, plate [..., 3]; head_opacity, torso_alpha [...] → (C, C_tb)."""
    a = torso_alpha[..., None]
    torso_over_plate = a * torso_rgb + (1 - a) * plate
    return head_rgb + (1 - head_opacity[..., None]) * torso_over_plate, torso_over_plate
