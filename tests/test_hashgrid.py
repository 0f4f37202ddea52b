"""Hash-grid encoding (Instant-NGP): sizes, the paper's hash, interpolation, continuity, gradients, a quick fit."""

import math

import pytest
import torch

from visionlab.models.hashgrid import PRIMES, HashGrid, HashGridEncoding, _Interpolate
from visionlab.models.inr import INR_PRESETS, build_inr

# 4 levels, resolutions 4, 8, 16, 32 (growth 2), T = 2^8 = 256 rows per level
SMALL = {"num_levels": 4, "features_per_level": 2, "log2_table_size": 8, "base_resolution": 4, "max_resolution": 32}


def small_encoding(in_features: int, **overrides) -> HashGridEncoding:
    torch.manual_seed(0)
    enc = HashGridEncoding(in_features=in_features, **{**SMALL, **overrides})
    with torch.no_grad():
        enc.table.normal_()  # features of size ~1 instead of 1e-4, so that differences are measurable
    return enc


def reference_encoding(enc: HashGridEncoding, coords: torch.Tensor) -> torch.Tensor:
    """The encoding of the paper, point by point, level by level, corner by corner, in plain Python numbers."""
    d, T = enc.in_features, enc.table_size
    table = enc.table.detach().double()
    offsets = [sum(enc.level_sizes[:level]) for level in range(enc.num_levels)]
    out = torch.zeros(coords.shape[0], enc.num_levels, enc.features_per_level, dtype=torch.float64)
    for n, point in enumerate(coords.double().tolist()):
        for level, res in enumerate(enc.resolutions):
            pos = [min(max((c + 1) / 2, 0.0), 1.0) * res for c in point]  # x_l = x N_l, x in [0, 1]
            low = [min(math.floor(p), res - 1) for p in pos]
            dense = (res + 1) ** d <= T
            for k in range(2**d):
                vertex = [lo + ((k >> (d - 1 - i)) & 1) for i, lo in enumerate(low)]
                weight = math.prod(1 - abs(p - v) for p, v in zip(pos, vertex))
                if dense:
                    row = sum(v * (res + 1) ** i for i, v in enumerate(vertex))
                else:
                    h = 0
                    for v, prime in zip(vertex, PRIMES):
                        h ^= (v * prime) % 2**32  # the paper's uint32 products
                    row = h % T
                out[n, level] += weight * table[offsets[level] + row]
    return out.reshape(coords.shape[0], -1)  # (N, L * F)


def grid_points(n: int, d: int) -> torch.Tensor:
    """(n^d, d) cell centres of an n^d grid over [-1, 1]^d."""
    axis = (torch.arange(n, dtype=torch.float64) + 0.5) / n * 2 - 1
    return torch.stack(torch.meshgrid(*[axis] * d, indexing="ij"), dim=-1).reshape(-1, d)


# ---------------------------------------------------------------- sizes


def test_small_config_has_the_exact_parameter_count() -> None:
    model = HashGrid(in_features=2, out_features=3, width=16, depth=1, **SMALL)
    enc = model.encoding
    assert enc.resolutions == [4, 8, 16, 32]  # N_l = floor(4 * 2^l), b = (32 / 4)^(1/3) = 2
    # (N_l + 1)^2 = 25, 81 fit in T = 256 (direct); 289 and 1089 do not (hashed, T rows each)
    assert enc.level_sizes == [25, 81, 256, 256]
    table = (25 + 81 + 256 + 256) * 2  # F = 2 features per row
    mlp = (8 * 16 + 16) + (16 * 16 + 16) + (16 * 3 + 3)  # L F = 8 -> 16 -> 16 -> 3
    assert sum(p.numel() for p in model.parameters()) == table + mlp == 1703
    assert enc.table.shape == (618, 2)


def test_default_config_is_the_papers() -> None:
    model = HashGrid(in_features=2, out_features=3)
    enc = model.encoding
    assert enc.num_levels == 16 and enc.features_per_level == 2 and enc.table_size == 2**16
    assert enc.resolutions[0] == 16 and enc.resolutions[-1] == 512
    b = math.exp((math.log(512) - math.log(16)) / 15)  # Eq. 3
    assert enc.growth == pytest.approx(b)
    assert enc.resolutions == [math.floor(16 * b**level + 1e-9) for level in range(16)]  # Eq. 2
    assert [layer.weight.shape for layer in model.net if isinstance(layer, torch.nn.Linear)] == [(64, 32), (64, 64)]
    assert model.head.weight.shape == (3, 64)
    assert enc.table.abs().max() <= 1e-4 and enc.table.abs().max() > 0.9e-4  # uniform in +-1e-4
    assert (model.default_lr, model.adam_betas, model.adam_eps) == (1e-2, (0.9, 0.99), 1e-15)


def test_build_inr_sizes_the_mlp() -> None:
    model = build_inr("hashgrid", in_features=2, out_features=1, **INR_PRESETS["ngp"])
    assert isinstance(model, HashGrid)
    assert [m.weight.shape for m in model.modules() if isinstance(m, torch.nn.Linear)] == [(64, 32), (64, 64), (1, 64)]
    model = build_inr("hashgrid", in_features=3, out_features=3, width=32, depth=0)
    assert [m.weight.shape for m in model.modules() if isinstance(m, torch.nn.Linear)] == [(32, 32), (3, 32)]
    assert model(torch.zeros(4, 3)).shape == (4, 3)


def test_rejects_a_fourth_dimension() -> None:
    with pytest.raises(AssertionError, match="in_features must be 1, 2 or 3"):
        HashGridEncoding(in_features=4)


# ---------------------------------------------------------------- the encoding


@pytest.mark.parametrize("d", [1, 2, 3])
def test_matches_the_papers_encoding_point_by_point(d: int) -> None:
    enc = small_encoding(d, base_resolution=3, max_resolution=24)  # growth 2: 3, 6, 12, 24; some levels hashed
    assert enc._num_dense < enc.num_levels or d == 1
    g = torch.Generator().manual_seed(d)
    coords = torch.cat([torch.rand(40, d, generator=g) * 2 - 1,
                        torch.tensor([[-1.0] * d, [1.0] * d, [0.0] * d])])  # the corners of the domain too
    with torch.no_grad():
        got = enc(coords)
    assert got.shape == (coords.shape[0], 4 * 2)
    assert torch.allclose(got.double(), reference_encoding(enc, coords), atol=1e-5)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_corner_weights_are_a_partition_of_unity(d: int) -> None:
    enc = small_encoding(d)
    coords = torch.rand(500, d, generator=torch.Generator().manual_seed(0)) * 2 - 1
    index, weight = enc.corners(coords)
    assert index.shape == weight.shape == (500, 4, 2**d)
    assert (weight >= 0).all() and torch.allclose(weight.sum(-1), torch.ones(500, 4))
    # at a vertex itself one corner takes all the weight
    _, at_vertex = enc.corners(torch.full((1, d), -1.0))
    assert torch.equal(at_vertex.max(-1).values, torch.ones(1, 4))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_direct_levels_are_collision_free(d: int) -> None:
    enc = small_encoding(d, log2_table_size=12)  # T = 4096: 2-D levels up to 63^2, 3-D up to 15^3 are dense
    offsets = [sum(enc.level_sizes[:level]) for level in range(enc.num_levels)]
    for level, res in enumerate(enc.resolutions):
        if (res + 1) ** d > enc.table_size:
            continue
        coords = grid_points(res, d).float()  # one point per cell: every vertex is a corner of some cell
        index, _ = enc.corners(coords)
        low = ((coords.double() + 1) / 2 * res).floor().long()  # (N, D)
        bits = torch.tensor([[(k >> (d - 1 - i)) & 1 for i in range(d)] for k in range(2**d)])  # (K, D)
        vertices = (low[:, None, :] + bits[None]).reshape(-1, d)  # (N K, D)
        rows = index[:, level].reshape(-1)  # (N K,)
        seen: dict[tuple, int] = {}
        for vertex, row in zip(map(tuple, vertices.tolist()), rows.tolist()):
            assert seen.setdefault(vertex, row) == row  # a vertex always reads the same row
        assert len(seen) == (res + 1) ** d == enc.level_sizes[level]  # every vertex of the level is reached ...
        assert len(set(seen.values())) == len(seen)  # ... and no two share a row
        assert min(seen.values()) == offsets[level] and max(seen.values()) == offsets[level] + (res + 1) ** d - 1
    assert enc._num_dense >= 1


def test_hashed_level_uses_the_papers_primes() -> None:
    enc = small_encoding(3)  # 3-D: (N_l + 1)^3 > 256 from N_l = 8 on
    level = enc.num_levels - 1
    res, T = enc.resolutions[level], enc.table_size
    assert (res + 1) ** 3 > T
    coords = torch.tensor([[-0.3, 0.55, 0.9]])
    index, _ = enc.corners(coords)
    low = [min(math.floor((c + 1) / 2 * res), res - 1) for c in coords[0].tolist()]
    h = ((low[0] * 1) ^ (low[1] * 2654435761) ^ (low[2] * 805459861)) % 2**32 % T  # corner (0, 0, 0)
    assert index[0, level, 0].item() == sum(enc.level_sizes[:level]) + h


def test_points_outside_the_domain_stick_to_its_border() -> None:
    enc = small_encoding(2)
    with torch.no_grad():
        outside, clamped = torch.tensor([[-3.0, 0.2], [1.5, 7.0]]), torch.tensor([[-1.0, 0.2], [1.0, 1.0]])
        assert torch.allclose(enc(outside), enc(clamped))


def test_encoding_is_continuous_across_cell_borders() -> None:
    enc = small_encoding(2)
    # points on the vertex lines of every level (multiples of 1/32 cover all of them), approached from both sides
    edges = torch.linspace(-1, 1, 33)[1:-1]
    other = torch.rand(edges.shape[0], generator=torch.Generator().manual_seed(0)) * 2 - 1
    at = torch.stack([edges, other], dim=-1).double()
    eps = 1e-7
    with torch.no_grad():
        enc.double()
        left = enc(at - torch.tensor([eps, 0.0], dtype=torch.float64))
        right = enc(at + torch.tensor([eps, 0.0], dtype=torch.float64))
        far = enc(at + torch.tensor([0.1, 0.0], dtype=torch.float64))
    # Lipschitz: a level moves by at most N_l / 2 per unit of the [-1, 1] coordinate times its feature differences
    assert (left - right).abs().max() < 1e-4
    assert (far - left).abs().max() > 0.1  # not a constant: the same points 0.1 apart differ by much more


# ---------------------------------------------------------------- gradients


def test_gradients_reach_the_table_and_the_mlp() -> None:
    torch.manual_seed(0)
    model = HashGrid(in_features=2, out_features=3, width=16, depth=1, **SMALL)
    coords = torch.rand(7, 2) * 2 - 1
    model(coords).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    # only the rows read by some corner get a gradient
    index, weight = model.encoding.corners(coords)
    used = torch.zeros(model.encoding.table.shape[0], dtype=torch.bool)
    used[index[weight > 0]] = True
    touched = model.encoding.table.grad.abs().sum(-1) > 0
    assert (touched <= used).all() and touched.sum() > 0


def test_interpolation_backward_matches_finite_differences() -> None:
    g = torch.Generator().manual_seed(0)
    table = torch.randn(30, 2, dtype=torch.float64, generator=g, requires_grad=True)
    index = torch.randint(0, 30, (5, 3, 4), generator=g)  # (N, L, K), with repeats: the scatter must add them
    weight = torch.rand(5, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, w: _Interpolate.apply(t, index, w), (table, weight))


def test_gradient_with_respect_to_coordinates() -> None:
    enc = small_encoding(2).double()
    coords = (torch.tensor([[0.123, -0.456], [0.71, 0.33]], dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(enc, (coords,))


# ---------------------------------------------------------------- learning


def test_fits_a_16x16_image_to_high_psnr_in_few_steps() -> None:
    torch.manual_seed(0)
    lin = torch.linspace(-1, 1, 16)
    coords = torch.stack(torch.meshgrid(lin, lin, indexing="ij"), -1).reshape(-1, 2)  # (256, 2)
    target = torch.rand(256, 3) * 2 - 1  # noise: no smooth structure to lean on, every pixel must be stored
    model = HashGrid(in_features=2, out_features=3, num_levels=16, log2_table_size=12, base_resolution=2,
                     max_resolution=32)
    opt = torch.optim.Adam(model.parameters(), lr=model.default_lr, betas=model.adam_betas, eps=model.adam_eps)
    psnr = []
    for _ in range(100):
        loss = (model(coords) - target).square().mean()
        psnr.append(10 * math.log10(4 / loss.item()))  # peak-to-peak 2 in [-1, 1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert psnr[0] < 12 and psnr[-1] > 40, psnr[::10]  # measured: 10.5 -> 54.7 dB
