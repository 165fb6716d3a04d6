"""The landmark-conditioned RAD-NeRF head field (reference §6), with no CUDA extension.

position → 3D grid feature; (feature, condition) → ambient MLP → a 2D "ambient" coordinate in
[−1, 1]² → 2D grid feature (the expression-dependent part); (position feature, ambient feature) →
density + geometry feature; (view SH, geometry, per-frame latent) → colour.

With `condition_radius`, a point reads the condition scaled by how near it is to the parts of the
face that talking moves (brows, eyelids, lower jaw, lips: the speaker's mean landmarks, set by the
stage): g = exp(−d²/2r²), d the distance in head units to the nearest such landmark. Why: most of a
head does not move, and when every point reads the condition the fastest way to fit those points is
to make the ambient coordinate ignore it everywhere. Measured on the synthetic head, its spread across
frames fell from 0.12 at initialisation to 0.004 after 600 steps, and the rendered mouth no longer
responded to its landmarks. Gated, the static head sees no condition and exerts no such pull. The
brows and lids are in the set because they move too (blinks): gated out, the head averages them, and
on the synthetic head at 600 steps lips and jaw alone gave the mouth 0.9 dB over the frozen control
and 27.8 dB on the head box, with the brows and lids 2.1 dB and 28.3 dB.

With `condition_attention` (ER-NeRF's region-aware audio attention, Fictionarry/ER-NeRF
nerf_triplane/network.py `aud_ch_att_net`), a small MLP of the position feature scales each channel of
the condition per point, cond · a(pos): the gate's idea learned rather than set by a radius, so the
mouth can listen to the channels that carry the lips and the brows to those that carry the lids.
With `condition_into_density` the (attended, gated) condition also enters the density MLP beside
the position and ambient features, as in ER-NeRF, whose field has no ambient coordinate at all: a path
from the landmarks to the geometry that no 2D bottleneck can collapse.

With `warp_radius` the landmarks also move the head directly: each sample point x of a frame is read at
x − Δ(x), Δ(x) = Σᵢ kᵢΔᵢ / max(Σᵢ kᵢ, 1), kᵢ = exp(−|x − pᵢ|²/2r²), where pᵢ are the frame's moving
landmarks and Δᵢ their offsets from the speaker's mean expression (head units, nothing learned): the
field is a canonical head at the mean expression, and a frame's lips and jaw carry the points around
them where that frame's landmarks put them (RigNeRF's 3DMM-guided deformation, with landmarks). Why:
every other path has to learn from the photometric loss alone that the mouth depends on the condition,
and at CPU sizes none did reliably (docs/results.md, radnerf); a warp opens and closes the mouth from the
first step, for audio-driven landmarks too, and leaves the learned paths only what moves without geometry
(teeth, the mouth's inside). The condition then carries the frame's normalised landmarks of the
moving points after its encoded feature (`encode`).

A backward warp can only move what its canonical head has. Around the mean expression (a nearly closed
mouth) it has no mouth inside to carry into an open frame: a point in the gap between parted lips
averages the upper lip's offset and the lower lip's, about zero, and reads the canonical lip line. So
the canonical can be an open mouth (`warp_canonical`, normalised landmarks; the stage sets it from the
speaker's most open frames): Δᵢ are then the offsets from it. Closing that mouth needs the other half:
with the average, a point on the lips of a closed frame is again read midway, now inside the canonical
mouth (on the synthetic head the rendered aperture ran against the truth, r −0.58). With
`warp_nearest_radius` τ a point moves with the landmarks nearest it, Δ(x) = Σᵢ sᵢΔᵢ · min(Σᵢ kᵢ, 1), s the
softmax of −|x − pᵢ|²/2τ²: each lip carries its own side of the gap (`min` fades it out where no landmark
is in reach, as the average does).
"""

from __future__ import annotations

import torch
from torch import nn

from geneface.data.landmarks import EXPRESSION_MOVED
from geneface.nerf.condition import LandmarkCondition
from geneface.nerf.encodings import GridEncoding, SHEncoding
from geneface.nerf.fields import FieldOutput
from geneface.nerf.mlp import layer_dims, mlp, mlp_with_gated_input, mlp_with_shared_input


# The density logit's ceiling: exp(15) ≈ 3.3e6 per head unit, so one sample of any spacing over 1e-5 head
# units is already opaque below it. Without a ceiling Adam (eps 1e-15) turns the tiny, always-positive
# pull of the entropy and distortion losses on opaque samples into a steady climb of the logit: on
# cnn2 the cached mean density grew from 2e3 at step 5000 to 3e5 at 10000, and every run resumed
# past 10000 collapsed into an opaque blob, then NaN, within 240-550 steps.
MAX_DENSITY_LOGIT = 15.0


class _BoundedExp(torch.autograd.Function):
    """exp(min(x, MAX_DENSITY_LOGIT)); above the ceiling the gradient may only lower x, so an opaque
    sample stops climbing but a wrongly opaque one can still be cleared."""

    @staticmethod
    def forward(ctx, x):
        y = torch.exp(x.clamp(max=MAX_DENSITY_LOGIT))
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        # a positive dL/dy lowers x under gradient descent: the only push let through above the ceiling
        return (grad * y).masked_fill((x > MAX_DENSITY_LOGIT) & (grad < 0), 0.0)


def bounded_exp(x: torch.Tensor) -> torch.Tensor:
    return _BoundedExp.apply(x.float())


def _zero_missing_canonical(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """A warped head saved before `warp_canonical` existed was trained around the mean expression: 0."""
    state_dict.setdefault(prefix + "warp_canonical", torch.zeros_like(module.warp_canonical))


def read_condition(net: nn.Sequential, varying: torch.Tensor, cond: torch.Tensor,
                   gate: torch.Tensor | None) -> torch.Tensor:
    """net(cat([varying, gate · cond], -1)), varying [M, V], cond [1 or M, C], gate [M, 1] or None (1),
    without building the concatenation (nerf/mlp.py)."""
    if gate is None:
        return mlp_with_shared_input(net, varying, cond)
    if cond.shape[0] == 1:
        return mlp_with_gated_input(net, varying, cond, gate)
    return mlp_with_shared_input(net, varying, cond * gate)


class RadNerfField(nn.Module):
    """Density and colour at normalised positions in [−1, 1]³, given a per-frame condition."""

    def __init__(self, condition: LandmarkCondition, position_encoding: GridEncoding,
                 ambient_encoding: GridEncoding, direction_encoding: SHEncoding,
                 hidden: int = 128, ambient_layers: int = 3, sigma_layers: int = 3, geo_dim: int = 128,
                 color_layers: int = 2, num_latents: int = 13000, latent_dim: int = 4,
                 condition_radius: float | None = None, condition_attention: bool = False,
                 attention_hidden: int = 64, condition_into_density: bool = False,
                 warp_radius: float | None = None, warp_nearest_radius: float | None = None):
        super().__init__()
        if warp_nearest_radius is not None and warp_radius is None:
            raise ValueError(f"warp_nearest_radius={warp_nearest_radius} shapes the landmark warp, which is off: set "
                             "stage.model.field.warp_radius too (0.1 in preset=cpu), or leave warp_nearest_radius null")
        self.condition_radius, self.warp_radius = condition_radius, warp_radius
        self.warp_nearest_radius = warp_nearest_radius
        if condition_radius is not None or warp_radius is not None:
            # the moving landmarks at the mean expression in normalised box coordinates and the box's half
            # extents (head units per normalised unit), set by set_moving_points before training;
            # carried in checkpoints
            self.register_buffer("moving_points", torch.zeros(len(EXPRESSION_MOVED), 3))
            self.register_buffer("box_half", torch.ones(3))
        if warp_radius is not None:
            # normalised landmark → offset in normalised box coordinates, per moving point and axis
            self.register_buffer("warp_scale", torch.zeros(len(EXPRESSION_MOVED), 3))
            # the canonical expression's moving landmarks, normalised (0: the mean expression); checkpoints
            # from before it existed read as 0 (_zero_missing_canonical)
            self.register_buffer("warp_canonical", torch.zeros(len(EXPRESSION_MOVED), 3))
            self.register_load_state_dict_pre_hook(_zero_missing_canonical)
        self.condition = condition
        self.position_encoding, self.ambient_encoding = position_encoding, ambient_encoding
        self.direction_encoding = direction_encoding
        # He init on the ambient branch, or its 2D coordinate starts collapsed for every condition
        # ER-NeRF's channel attention: position feature → one scale per condition channel, 1 + MLP(pos):
        # the grid features start at ~1e-4, so a bare MLP would start by multiplying the condition by ~0
        # and neither the attention nor the encoder would get a gradient to leave that saddle
        self.attention_net = (mlp(layer_dims(position_encoding.output_dim, condition.out_dim, attention_hidden, 2),
                                  he_init="hidden") if condition_attention else None)
        self.ambient_net = mlp(layer_dims(position_encoding.output_dim + condition.out_dim, 2, hidden, ambient_layers),
                               bias=False, he_init="hidden")
        self.condition_into_density = condition_into_density
        sigma_in = position_encoding.output_dim + ambient_encoding.output_dim
        sigma_in += condition.out_dim if condition_into_density else 0
        self.sigma_net = mlp(layer_dims(sigma_in, 1 + geo_dim, hidden, sigma_layers))
        self.color_net = mlp(layer_dims(direction_encoding.output_dim + geo_dim + latent_dim, 3, hidden, color_layers))
        # per-training-frame appearance codes; index 0 at test time (the original's)
        self.latents = nn.Parameter(torch.randn(num_latents, latent_dim) * 0.1)

    def set_moving_points(self, points: torch.Tensor, box_half: torch.Tensor,
                          offset_scale: torch.Tensor | None = None, canonical: torch.Tensor | None = None) -> None:
        """The speaker's landmarks at the mean expression [68, 3] in normalised box coordinates, the
        box's half extents [3] in head units (for distances in head units), and (for the warp) the
        offset in normalised box coordinates of one unit of normalised landmark [68, 3] and the
        canonical expression as normalised landmarks [68, 3] (None: the mean expression); nothing
        without condition_radius or warp_radius."""
        if self.condition_radius is None and self.warp_radius is None:
            return
        moved = list(EXPRESSION_MOVED)
        self.moving_points.copy_(points[moved])
        self.box_half.copy_(box_half)
        if self.warp_radius is not None:
            if offset_scale is None:
                raise ValueError("warp_radius needs the landmarks' offset scale (set_moving_points(offset_scale=...))")
            self.warp_scale.copy_(offset_scale[moved])
            self.warp_canonical.copy_(canonical[moved] if canonical is not None else torch.zeros_like(self.warp_canonical))

    @property
    def condition_dim(self) -> int:
        """The width of `encode`'s output: the encoded feature, then (warp) the moving landmarks."""
        return self.condition.out_dim + (3 * len(EXPRESSION_MOVED) if self.warp_radius is not None else 0)

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """Landmark windows [B, window, 204] (normalised) → the frames' condition [B, condition_dim]."""
        cond = self.condition(windows)
        if self.warp_radius is None:
            return cond
        centre = windows[:, self.condition.window // 2].reshape(len(windows), 68, 3)[:, list(EXPRESSION_MOVED)]
        return torch.cat([cond, centre.flatten(1).to(cond.dtype)], -1)

    def warp(self, x: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """x [M, 3] normalised, the frames' moving landmarks [1 or M, K·3] normalised → x − Δ(x) [M, 3]."""
        landmarks = landmarks.reshape(len(landmarks), -1, 3).to(x.dtype)                                # [B, K, 3]
        warp_scale = self.warp_scale.to(x.dtype)
        points = self.moving_points.to(x.dtype) + landmarks * warp_scale                                # [B, K, 3]
        offsets = (landmarks - self.warp_canonical.to(x.dtype)) * warp_scale                            # [B, K, 3]
        scale = self.box_half.to(x.dtype)
        if len(landmarks) == 1:
            d2 = torch.cdist(x * scale, points[0] * scale).square()                                     # [M, K]
        else:
            d2 = ((x[:, None] - points) * scale).square().sum(-1)                                       # [M, K]
        k = torch.exp(-d2 / (2.0 * self.warp_radius ** 2))
        if self.warp_nearest_radius is None:
            weights = k / k.sum(-1, keepdim=True).clamp(min=1.0)                                     # [M, K]
        else:   # the nearest landmarks' offsets, faded out as the wide kernel's total falls below 1
            nearest = torch.softmax(-d2 / (2.0 * self.warp_nearest_radius ** 2), -1)
            weights = nearest * k.sum(-1, keepdim=True).clamp(max=1.0)
        moved = weights @ offsets[0] if len(landmarks) == 1 else torch.einsum("mk,mkc->mc", weights, offsets)
        return x - moved                                                                              # [M, 3]

    def condition_gate(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, 3] normalised → [M, 1] in (0, 1]: how much of the condition a point reads."""
        scale = self.box_half.to(x.dtype)
        d2 = torch.cdist(x * scale, self.moving_points.to(x.dtype) * scale).amin(-1, keepdim=True).square()
        return torch.exp(-d2 / (2.0 * self.condition_radius ** 2))

    def geometry(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # x [M, 3] normalised, cond [1, condition_dim] (one frame's, or [M, ·]) → density [M], geometry [M, G],
        # ambient [M, 2]
        if self.warp_radius is not None:
            cond, landmarks = cond[:, :self.condition.out_dim], cond[:, self.condition.out_dim:]
            x = self.warp(x, landmarks)
        pos = self.position_encoding(x)
        gate = self.condition_gate(x) if self.condition_radius is not None else None     # [M, 1]
        if self.attention_net is not None:
            cond = cond * (1.0 + self.attention_net(pos))                 # [M, C]: per point, per channel
        ambient = torch.tanh(read_condition(self.ambient_net, pos, cond, gate))
        amb = self.ambient_encoding(ambient)
        if self.condition_into_density:
            h = read_condition(self.sigma_net, torch.cat([pos, amb], -1), cond, gate)
        else:
            h = self.sigma_net(torch.cat([pos, amb], -1))
        return bounded_exp(h[:, 0]), h[:, 1:], ambient

    def density(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.geometry(x, cond)[0]

    def forward(self, x: torch.Tensor, directions: torch.Tensor, cond: torch.Tensor,
                latent: torch.Tensor) -> dict[str, torch.Tensor]:
        # x, directions [M, 3]; cond [1, condition_dim]; latent [1, latent_dim] (one frame's; or [M, ·] each)
        sigma, geo, ambient = self.geometry(x, cond)
        view = self.direction_encoding(directions)
        rgb = torch.sigmoid(mlp_with_shared_input(self.color_net, torch.cat([view, geo], -1), latent))
        return {FieldOutput.DENSITY: sigma, FieldOutput.RGB: rgb.float(), FieldOutput.AMBIENT: ambient.float()}

    def param_groups(self, lr: float, grid_lr_scale: float = 10.0, smoother_lr_scale: float = 5.0) -> list[dict]:
        """The reference's three learning rates: grids ×10, the attention smoother ×5, the rest ×1."""
        grids = list(self.position_encoding.parameters()) + list(self.ambient_encoding.parameters())
        smoother = list(self.condition.smoother.parameters()) if self.condition.smoother is not None else []
        special = {id(p) for p in grids + smoother}
        rest = [p for p in self.parameters() if id(p) not in special]
        groups = [{"params": rest, "lr": lr, "name": "mlp"},
                  {"params": grids, "lr": lr * grid_lr_scale, "name": "grid"}]
        if smoother:
            groups.append({"params": smoother, "lr": lr * smoother_lr_scale, "name": "smoother"})
        return groups
