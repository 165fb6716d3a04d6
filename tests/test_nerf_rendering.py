"""Rays, scene box, occupancy grid and volume rendering (geneface.nerf.rays/occupancy/renderer)."""

from __future__ import annotations

import math

import pytest
import torch

from geneface.nerf.losses import ray_distortion
from geneface.nerf.occupancy import OccupancyGrid
from geneface.nerf.rays import SceneBox, image_pixels, pixel_rays
from geneface.nerf.renderer import RenderOutput, render_rays

SIGMA, RADIUS, COLOUR = 2.0, 0.5, (0.9, 0.2, 0.1)
BG = torch.tensor([0.0, 0.3, 1.0])


def _rot_y(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _c2w(rot: torch.Tensor, origin) -> torch.Tensor:
    m = torch.eye(4)
    m[:3, :3], m[:3, 3] = rot, torch.as_tensor(origin, dtype=torch.float32)
    return m


class SphereField:
    """Constant density and colour inside a sphere of radius RADIUS at the origin; counts evaluated points."""

    def __init__(self, colour=COLOUR):
        self.points = 0
        self.colour = torch.as_tensor(colour)

    def density(self, x: torch.Tensor) -> torch.Tensor:  # [M,3] → [M]
        return SIGMA * (x.norm(dim=-1) < RADIUS).float()

    def __call__(self, x, d, ray_idx):
        self.points += x.shape[0]
        return {"density": self.density(x), "rgb": self.colour.to(x).expand(x.shape[0], 3),
                "ambient": torch.ones(x.shape[0], 2)}


def _camera_rays(h: int = 24, w: int = 24, focal: float = 24.0):
    """A camera at z=-3 looking +z at the unit box [-1,1]^3 (normalised = head units)."""
    c2w = _c2w(torch.eye(3), [0.0, 0.0, -3.0])
    return pixel_rays(c2w, focal, w / 2, h / 2, image_pixels(h, w))


def _chord(origins: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Length of each ray's path through the sphere (0 when it misses)."""
    b = origins - (origins * dirs).sum(-1, keepdim=True) * dirs  # closest point to the centre
    return 2 * (RADIUS**2 - (b * b).sum(-1)).clamp(min=0).sqrt()


def test_image_pixels_and_ray_directions():
    pix = image_pixels(2, 3)
    assert pix.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    h, w, f = 5, 7, 10.0
    rot = _rot_y(0.7)
    c2w = _c2w(rot, [1.0, 2.0, 3.0])
    pix = torch.tensor([[2, 3], [0, 0], [4, 6]])  # centre, top-left, bottom-right
    o, d = pixel_rays(c2w, f, w / 2, h / 2, pix)
    assert torch.allclose(o, torch.tensor([1.0, 2.0, 3.0]).expand(3, 3))
    assert torch.allclose(d.norm(dim=-1), torch.ones(3), atol=1e-6)
    assert torch.allclose(d[0], rot[:, 2], atol=1e-6)  # centre pixel looks along the camera axis
    cam = d @ rot  # back to camera coordinates
    expect_tl = torch.tensor([(0.5 - w / 2) / f, (0.5 - h / 2) / f, 1.0])
    expect_br = torch.tensor([(6.5 - w / 2) / f, (4.5 - h / 2) / f, 1.0])
    assert torch.allclose(cam[1], expect_tl / expect_tl.norm(), atol=1e-6)
    assert torch.allclose(cam[2], expect_br / expect_br.norm(), atol=1e-6)
    assert cam[1, 0] < 0 and cam[1, 1] < 0  # OpenCV: top-left is -x (left), -y (up)
    o2, d2 = pixel_rays(c2w.expand(3, 4, 4), f, w / 2, h / 2, pix.float())  # per-ray cameras
    assert torch.allclose(o2, o) and torch.allclose(d2, d, atol=1e-6)


def test_scene_box_intersect_and_normalize():
    box = SceneBox([0.0, 0.0, 0.0, 1.0, 2.0, 3.0])
    assert torch.allclose(box.normalize(torch.tensor([[0.0, 0.0, 0.0], [0.5, 1.0, 1.5], [1.0, 2.0, 3.0]])),
                          torch.tensor([[-1.0] * 3, [0.0] * 3, [1.0] * 3]))
    s = 1 / math.sqrt(2)
    o = torch.tensor([[-1.0, 0.5, 0.5], [-1.0, 5.0, 0.5], [0.5, 0.5, 0.5], [-1.0, 0.5, 0.5], [-1.0, -1.0, 1.0]])
    d = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0], [-1.0, 0, 0], [s, s, 0]])
    near, far, hit = box.intersect(o, d, min_near=0.05)
    assert hit.tolist() == [True, False, True, False, True]
    # slab x: t∈[1,2]; inside the box: near clamped to min_near, exit at z=3; diagonal: x∈[1,2]·√2, y∈[1,3]·√2
    assert torch.allclose(near[[0, 2, 4]], torch.tensor([1.0, 0.05, math.sqrt(2)]), atol=1e-5)
    assert torch.allclose(far[[0, 2, 4]], torch.tensor([2.0, 2.5, 2 * math.sqrt(2)]), atol=1e-5)
    assert torch.equal(far[~hit], near[~hit])


def test_render_sphere_matches_closed_form():
    o, d = _camera_rays()
    field = SphereField()
    box = SceneBox([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    out = render_rays(field, box, o, d, BG.expand(len(o), 3), None, num_samples=128)
    assert isinstance(out, RenderOutput)
    chord = _chord(o, d)
    expect = 1 - torch.exp(-SIGMA * chord)
    assert (out.opacity - expect).abs().max() < 0.03
    assert (out.opacity - expect).abs().mean() < 0.005
    rgb_expect = expect[:, None] * torch.tensor(COLOUR) + (1 - expect[:, None]) * BG
    assert (out.rgb - rgb_expect).abs().max() < 0.03
    outside = chord == 0
    assert outside.sum() > 50 and torch.allclose(out.rgb[outside], BG.expand(int(outside.sum()), 3))
    hit = chord > 0.5  # depth lies within the sphere along the ray (camera-to-centre distance ≈ 3)
    assert ((out.depth[hit] / out.opacity[hit] - 3).abs() < RADIUS).all()
    # every in-box sample is evaluated without a grid; the ambient extra sums |1|+|1| per evaluated sample
    _, _, in_box = box.intersect(o, d)
    assert field.points == int(in_box.sum()) * 128
    assert out.samples_per_ray == pytest.approx(field.points / len(o))
    assert torch.allclose(out.extras["ambient"], in_box.float() * 256)
    # rays that miss the box entirely: background, opacity 0
    miss = torch.tensor([[0.0, 5.0, -3.0]]), torch.tensor([[0.0, 0.0, 1.0]])
    m = render_rays(field, box, *miss, BG[None], None)
    assert m.opacity.item() == 0 and torch.allclose(m.rgb, BG[None]) and m.samples_per_ray == 0
    # chunked rendering is the same image
    c = render_rays(SphereField(), box, o, d, BG, None, num_samples=128, chunk=100)
    assert torch.allclose(c.rgb, out.rgb, atol=1e-6) and c.samples_per_ray == pytest.approx(out.samples_per_ray)


def test_occupancy_skips_empty_space():
    o, d = _camera_rays()
    box = SceneBox([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    dense_field, sparse_field = SphereField(), SphereField()
    dense = render_rays(dense_field, box, o, d, BG, None, num_samples=128)
    grid = OccupancyGrid(resolution=32, dilation=1)
    grid.mark_unseen(box, _c2w(torch.eye(3), [0.0, 0.0, -3.0])[None], 24.0, 12.0, 12.0, 24, 24)
    assert grid.stats()["occupancy"] > 0.2  # before the first update every seen cell is occupied
    grid.update(SphereField().density)
    assert grid.stats()["occupancy"] < 0.15
    sparse = render_rays(sparse_field, box, o, d, BG, grid, num_samples=128, perturb=False)
    assert sparse_field.points < 0.4 * dense_field.points
    assert sparse.samples_per_ray < 0.4 * dense.samples_per_ray
    assert (sparse.rgb - dense.rgb).abs().max() < 0.02
    state = grid.state_dict()
    assert {"density", "occupied", "updates"} <= set(state) and state["updates"].item() == 1


def test_mark_unseen_outside_frustum_never_occupied():
    box = SceneBox([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    grid = OccupancyGrid(resolution=16, dilation=2)
    # a narrow camera at the box centre looking +z: cells behind it (z<0) and off-axis are unseen
    grid.mark_unseen(box, _c2w(torch.eye(3), [0.0, 0.0, 0.0])[None], 40.0, 4.0, 4.0, 8, 8)
    centres = grid.cell_centres().view(16, 16, 16, 3)
    unseen = grid.density == -1
    assert unseen[centres[..., 2] < 0].all()
    assert unseen[(centres[..., 0].abs() > 0.5) & (centres[..., 2] < 2)].all()
    assert not unseen[(centres[..., 0].abs() < 0.05) & (centres[..., 1].abs() < 0.05) & (centres[..., 2] > 0.5)].any()
    assert not grid.occupied[unseen].any()
    x = torch.rand(1000, 3) * 2 - 1
    for _ in range(2):  # density everywhere except a hole: seen cells become occupied, unseen never
        grid.update(lambda p: 100.0 * (p[:, 0] > -0.9).float())
        assert not grid.occupied[unseen].any() and (grid.density[unseen] == -1).all()
        assert grid.occupied[~unseen].any()
    assert not grid.occupied_at(x)[grid.density.view(-1)[_flat_index(x, 16)] == -1].any()
    assert not grid.occupied_at(torch.tensor([[0.0, 0.0, 1.5], [0.0, -2.0, 0.7]])).any()


def _flat_index(x: torch.Tensor, r: int) -> torch.Tensor:
    ijk = ((x + 1) * r / 2).floor().long().clamp(0, r - 1)
    return (ijk[:, 0] * r + ijk[:, 1]) * r + ijk[:, 2]


def test_update_max_ema_rule():
    grid = OccupancyGrid(resolution=4, decay=0.5, density_threshold=10.0, dilation=0, warmup_updates=0)
    assert grid.occupied.all()
    pos = grid.cell_centres()[:, 0].view(4, 4, 4) > 0  # the x > 0 half
    for value, expect in [(8.0, 8.0), (2.0, 4.0), (3.5, 3.5), (0.0, 1.75)]:
        grid.update(lambda p, v=value: v * (p[:, 0] > 0).float())
        assert torch.allclose(grid.density[pos], torch.tensor(expect)) and (grid.density[~pos] == 0).all()
        assert torch.equal(grid.occupied, pos)  # threshold = min(mean = expect/2, 10)
    grid.density_threshold = 0.1  # the cap wins over the mean; the x > 0 half is still above it
    grid.update(lambda p: torch.zeros(p.shape[0]))
    assert torch.equal(grid.occupied, pos)
    grid.dilation = 1  # one 3³ max-pool spreads occupancy one cell into x < 0
    grid.update(lambda p: torch.zeros(p.shape[0]))
    assert grid.occupied[1:].all() and not grid.occupied[0].any()
    before = grid.density.clone()
    grid.update(lambda p: torch.full((p.shape[0],), 50.0), max_cells=5)  # subset mode
    assert int((grid.density != before).sum()) == 5 and grid.updates.item() == 7


def test_gradients_fit_constant_colour():
    torch.manual_seed(0)
    o, d = _camera_rays(12, 12, 12.0)
    box = SceneBox([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    colour_logit = torch.zeros(3, requires_grad=True)
    log_sigma = torch.tensor(math.log(SIGMA), requires_grad=True)

    def field(x, dirs, ray_idx):
        inside = (x.norm(dim=-1) < RADIUS).float()
        return {"density": log_sigma.exp() * inside,
                "rgb": torch.sigmoid(colour_logit).expand(x.shape[0], 3)}

    target = torch.tensor([0.8, 0.1, 0.5])
    chord = _chord(o, d)
    a = (1 - torch.exp(-SIGMA * 4 * chord))[:, None]  # target rendered with 4× the density
    gt = a * target + (1 - a) * BG
    opt = torch.optim.Adam([colour_logit, log_sigma], lr=0.2)
    losses = []
    for _ in range(40):
        out = render_rays(field, box, o, d, BG, None, num_samples=32, perturb=True)
        loss = ((out.rgb - gt) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        assert colour_logit.grad is not None and log_sigma.grad is not None
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    assert (torch.sigmoid(colour_logit) - target).abs().max() < 0.1
    assert log_sigma.item() > math.log(SIGMA)  # density grew toward the target's


class OpaqueSphere(SphereField):
    """A nearly opaque sphere (σ = 60, so a ray is done after a few samples) whose colour varies with
    position, so the samples a marched ray leaves out would show if they mattered."""

    def density(self, x):
        return 60.0 * (x.norm(dim=-1) < RADIUS).float()

    def __call__(self, x, d, ray_idx):
        self.points += x.shape[0]
        return {"density": self.density(x), "rgb": (x * 0.5 + 0.5).clamp(0, 1), "ambient": torch.ones(len(x), 2)}


def test_marching_with_early_termination_matches_the_dense_path():
    o, d = _camera_rays(32, 32, 32.0)
    box = SceneBox([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    grid = OccupancyGrid(resolution=32, dilation=1)
    grid.update(OpaqueSphere().density)
    dense_field, marched_field = OpaqueSphere(), OpaqueSphere()
    with torch.no_grad():
        dense = render_rays(dense_field, box, o, d, BG, grid, num_samples=128, chunk=300)
        marched = render_rays(marched_field, box, o, d, BG, grid, num_samples=128, chunk=300,
                              min_transmittance=1e-4)
    psnr = -10 * torch.log10(((marched.rgb - dense.rgb) ** 2).mean())
    assert psnr > 60, psnr                                   # what is left out weighs < 1e-4 per ray
    assert (marched.opacity - dense.opacity).abs().max() < 2e-4
    assert torch.allclose(marched.depth, dense.depth, atol=1e-2)
    assert marched_field.points < 0.5 * dense_field.points   # rays stop soon after they enter the sphere
    assert marched.samples_per_ray == pytest.approx(marched_field.points / len(o))
    miss = ~box.intersect(o, d)[2]
    assert torch.equal(marched.rgb[miss], BG.expand(int(miss.sum()), 3))
    assert marched.samples_per_ray < dense.samples_per_ray


class LearnableSphere(OpaqueSphere):
    """OpaqueSphere with a learnable density scale and colour tint, to compare gradients."""

    def __init__(self):
        super().__init__()
        self.scale, self.tint = torch.tensor(1.0, requires_grad=True), torch.zeros(3, requires_grad=True)

    def __call__(self, x, d, ray_idx):
        self.points += x.shape[0] if torch.is_grad_enabled() else 0     # samples that reach the backward
        return {"density": self.scale * self.density(x), "rgb": torch.sigmoid(self.tint + 2 * x),
                "ambient": x[:, :2] * self.scale}


def test_marched_training_matches_the_dense_gradients():
    """Training marches too (with grad): the loss and its gradients match the dense path's, while the
    field sees a fraction of the samples; a stratified (perturbed) march keeps each sample in its bin."""
    o, d = _camera_rays(24, 24, 24.0)
    box = SceneBox([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    grid = OccupancyGrid(resolution=32, dilation=1)
    grid.update(OpaqueSphere().density)
    target = torch.rand(len(o), 3, generator=torch.Generator().manual_seed(0))
    results = {}
    for name, min_transmittance in (("dense", 0.0), ("marched", 1e-4)):
        field = LearnableSphere()
        out = render_rays(field, box, o, d, BG, grid, num_samples=96, min_transmittance=min_transmittance)
        loss = ((out.rgb - target) ** 2).sum() + out.distortion.sum()
        loss.backward()
        results[name] = (loss.item(), field.scale.grad.item(), field.tint.grad.clone(), field.points)
    (dense_loss, dense_scale, dense_tint, dense_points), (loss, scale, tint, points) = results.values()
    assert loss == pytest.approx(dense_loss, rel=1e-4)
    # a density parameter shared by every sample also sees, through T, the rays' left-out tails
    # (weight < 1e-4 each, derivative ~ τ·T): measured 1.3% off
    assert scale == pytest.approx(dense_scale, rel=0.03)
    assert torch.allclose(tint, dense_tint, rtol=1e-3, atol=1e-3), (tint, dense_tint)   # of gradients ~1–4
    assert points < 0.5 * dense_points

    seen = []
    field = LearnableSphere()
    record = lambda x, dirs, r: seen.append(box.denormalize(x)) or field(x, dirs, r)    # noqa: E731
    torch.manual_seed(0)
    out = render_rays(record, box, o, d, BG, grid, num_samples=96, perturb=True, min_transmittance=1e-4)
    out.rgb.sum().backward()
    assert field.tint.grad is not None and float(field.tint.grad.abs().sum()) > 0
    points = torch.cat(seen)
    assert (points.norm(dim=-1) < RADIUS + 4 / 32 * 2).all()        # only the occupied (dilated) cells


def test_ray_distortion_is_the_pairwise_definition_and_is_smaller_for_a_surface():
    torch.manual_seed(0)
    w, du = torch.rand(5, 7), torch.rand(5, 7) * 0.1
    u = torch.sort(torch.rand(5, 7), -1).values
    pairwise = (w[:, :, None] * w[:, None, :] * (u[:, :, None] - u[:, None, :]).abs()).sum((1, 2))
    assert torch.allclose(ray_distortion(w, u, du), pairwise + (w.square() * du).sum(-1) / 3, atol=1e-5)
    u = (torch.arange(8.0) + 0.5) / 8
    cloud, surface = torch.full((1, 8), 1 / 8), torch.zeros(1, 8).index_fill_(1, torch.tensor([2]), 1.0)
    assert ray_distortion(surface, u[None], torch.full((1, 8), 1 / 8)) < 0.2 * ray_distortion(
        cloud, u[None], torch.full((1, 8), 1 / 8))


class DepthTable(torch.nn.Module):
    """A white slab: density exp(logit of the z cell), starting as a translucent cloud."""

    def __init__(self, cells: int = 32):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.full((cells,), -1.0))

    def __call__(self, x, d, ray_idx):
        cell = ((x[:, 2] + 1) / 2 * len(self.logits)).long().clamp(0, len(self.logits) - 1)
        return {"density": torch.exp(self.logits[cell]), "rgb": torch.ones(len(x), 3)}


def test_the_distortion_loss_turns_a_cloud_into_a_surface_that_stops_rays_early():
    """Fitting white over black, colour alone is satisfied by a cloud spread along the whole ray (every
    sample marched); with the distortion term the same fit gathers the density near the front."""
    box = SceneBox([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    origins = torch.cat([torch.rand(64, 2, generator=torch.Generator().manual_seed(0)) - 0.5,
                         torch.full((64, 1), -3.0)], 1)
    directions = torch.tensor([[0.0, 0.0, 1.0]]).expand(64, 3)
    marched, opacity = {}, {}
    for weight in (0.0, 0.01):
        torch.manual_seed(0)
        field = DepthTable()
        optimiser = torch.optim.Adam(field.parameters(), lr=0.1)
        for _ in range(300):
            out = render_rays(field, box, origins, directions, torch.zeros(3), None, num_samples=64, perturb=True,
                              min_transmittance=1e-4)
            loss = ((out.rgb - 1) ** 2).mean() + weight * out.distortion.mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            out = render_rays(field, box, origins, directions, torch.zeros(3), None, num_samples=64,
                              min_transmittance=1e-4)
        assert out.distortion is None                                  # frames (no grad) skip it
        marched[weight], opacity[weight] = out.samples_per_ray, out.opacity.mean().item()
    assert opacity[0.0] > 0.99 and opacity[0.01] > 0.99                # both fit the colour
    assert marched[0.0] == 64                                          # the cloud: no ray ever stops
    assert marched[0.01] < 0.75 * marched[0.0], marched


def test_a_shared_input_is_folded_into_the_first_layer_exactly():
    """mlp_with_shared_input(net, varying, shared) is net(cat([varying, shared])) for one frame's shared
    input [1, S] broadcast over the rows, and for a per-row one; gradients reach the same weights."""
    from geneface.nerf.mlp import layer_dims, mlp, mlp_with_shared_input

    torch.manual_seed(0)
    net = mlp(layer_dims(12 + 5, 3, 16, 3))
    varying, shared = torch.randn(40, 12), torch.randn(1, 5)
    reference = net(torch.cat([varying, shared.expand(40, -1)], -1))
    folded = mlp_with_shared_input(net, varying, shared)
    torch.testing.assert_close(folded, reference, rtol=1e-5, atol=1e-6)
    per_row = torch.randn(40, 5)
    torch.testing.assert_close(mlp_with_shared_input(net, varying, per_row), net(torch.cat([varying, per_row], -1)),
                               rtol=1e-5, atol=1e-6)
    folded.sum().backward()
    grad = net[0].weight.grad.clone()
    net.zero_grad()
    reference.sum().backward()
    torch.testing.assert_close(grad, net[0].weight.grad, rtol=1e-5, atol=1e-5)
