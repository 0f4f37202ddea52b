"""Multiresolution hash encoding + a small MLP (Instant-NGP, Müller et al., SIGGRAPH 2022), in plain PyTorch.

SIREN and its peers put all of a signal into the weights of a deep MLP, so every step updates every weight for every
pixel. Instant-NGP instead stores trainable feature vectors at the vertices of L grids of growing resolution and
reads them by interpolation; a tiny MLP then decodes the concatenated features. A step touches only the 2^d vertices
around each point, so the network fits an image in far fewer flops.

For an input x in [0, 1]^d (coordinates in [-1, 1] are mapped to it by (x + 1) / 2) and level l = 0 .. L-1:

    b    = exp((ln N_max - ln N_min) / (L - 1))            growth factor                           (paper Eq. 3)
    N_l  = floor(N_min b^l)                                 grid resolution of level l              (paper Eq. 2)
    x_l  = x N_l,   corners floor(x_l) + {0, 1}^d           the 2^d vertices of x's cell, (N_l + 1)^d in all
    h(v) = (XOR_i v_i pi_i) mod T,  pi = (1, 2654435761, 805459861)   spatial hash of vertex v       (paper Eq. 4)
    f_l  = sum over corners v of w_v theta_l[h(v)],  w_v = prod_i (1 - |x_l,i - v_i|)   d-linear interpolation
    y    = MLP([f_0, ..., f_{L-1}])

A level whose dense grid fits in the table, (N_l + 1)^d <= T, is indexed directly (row-major, one entry per vertex,
no collisions) and allocates only (N_l + 1)^d entries; finer levels hash into T = 2^log2_T entries, and the MLP
learns to tell colliding vertices apart (the paper's Sec. 3). Tables start uniform in +-1e-4. The paper trains with
Adam, betas (0.9, 0.99) and eps 1e-15, tiny so that the small, sparse gradients of table entries still make full-size
steps; the model exposes them as ``adam_betas`` / ``adam_eps`` next to ``default_lr`` = 1e-2. Two details of the
paper are left out: its L2 penalty of 1e-6 on the MLP weights, and skipping the Adam update of entries whose gradient
is exactly 0 (PyTorch's Adam moves them on their momentum).

Everything is vectorised over points and levels; d = 1 (audio), 2 (images) and 3 (video, volumes) are supported.
Shape legend: N points, D input dimensions (d above), L levels, K = 2^D cell corners, F features per level,
C output channels.

Example::

    >>> model = HashGrid(in_features=2, out_features=3)
    >>> model(torch.rand(5, 2) * 2 - 1).shape
    torch.Size([5, 3])
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from visionlab.util.precision import full_precision

# The paper's hash primes, one per input dimension; pi_1 = 1 keeps consecutive x-vertices in consecutive entries.
PRIMES: tuple[int, ...] = (1, 2654435761, 805459861)
# The most memory that precomputed corners (HashGridEncoding.bind) may take: 12 L K bytes a point, so 1 GiB holds
# a 1,024 x 1,024 image at 16 levels (805 MB) and a fit of a larger one hashes its points at every step instead.
BIND_MAX_BYTES = 2**30


class HashGridEncoding(nn.Module):
    """L levels of F trainable features on grids from N_min to N_max, read by d-linear interpolation."""

    def __init__(self, *, in_features: int = 2, num_levels: int = 16, features_per_level: int = 2,
                 log2_table_size: int = 16, base_resolution: int = 16, max_resolution: int = 512,
                 init_scale: float = 1e-4):
        super().__init__()
        assert 1 <= in_features <= len(PRIMES), f"in_features must be 1, 2 or 3, got {in_features}"
        assert num_levels >= 1 and features_per_level >= 1, "num_levels and features_per_level must be >= 1"
        assert 1 <= log2_table_size <= 30, f"log2_table_size must be in [1, 30], got {log2_table_size}"
        assert 1 <= base_resolution <= max_resolution, (
            f"need 1 <= base_resolution <= max_resolution, got {base_resolution} and {max_resolution}")
        self.in_features = in_features
        self.num_levels = num_levels
        self.features_per_level = features_per_level
        self.table_size = 2**log2_table_size  # T, a power of two so that "mod T" is "& (T - 1)"
        self.out_features = num_levels * features_per_level

        # Eq. 3: b = exp((ln N_max - ln N_min) / (L - 1)); Eq. 2: N_l = floor(N_min b^l). One level: N_min only.
        growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / max(num_levels - 1, 1))
        # the small epsilon keeps N_min b^(L-1) = N_max from flooring to N_max - 1 by round-off
        resolutions = [math.floor(base_resolution * growth**level + 1e-9) for level in range(num_levels)]
        vertices = [(n + 1) ** in_features for n in resolutions]  # (N_l + 1)^d vertices on level l
        dense = [v <= self.table_size for v in vertices]  # a dense grid that fits is indexed 1:1
        sizes = [v if d else self.table_size for v, d in zip(vertices, dense)]
        offsets = [0]
        for size in sizes[:-1]:
            offsets.append(offsets[-1] + size)
        self.growth = growth
        self.resolutions = resolutions
        self.level_sizes = sizes

        # All levels share one parameter, level l at rows offsets[l] .. offsets[l] + sizes[l]: one gather per step.
        self.table = nn.Parameter(torch.empty(sum(sizes), features_per_level).uniform_(-init_scale, init_scale))
        self.register_buffer("_resolution", torch.tensor(resolutions, dtype=torch.float32), persistent=False)  # (L,)
        self.register_buffer("_max_corner", torch.tensor(resolutions, dtype=torch.int64) - 1, persistent=False)
        self.register_buffer("_offset", torch.tensor(offsets, dtype=torch.int64), persistent=False)  # (L,)
        self._num_dense = sum(dense)
        # per level and dimension, what a vertex coordinate is multiplied by: the row-major stride (N_l + 1)^i on a
        # dense level, the hash prime pi_i on a hashed one
        factors = [[(n + 1) ** i if d else PRIMES[i] for i in range(in_features)] for n, d in zip(resolutions, dense)]
        self.register_buffer("_factor", torch.tensor(factors, dtype=torch.int64), persistent=False)  # (L, D)
        assert all(dense[: self._num_dense]), "dense levels must come first (resolutions grow with the level)"
        # on a dense level, corner k = low + bits(k) sits sum_i bit_i(k) (N_l + 1)^i rows after the lower vertex
        bits = torch.tensor([[(k >> (in_features - 1 - i)) & 1 for i in range(in_features)]
                             for k in range(2**in_features)])  # (K, D), dimension 0 the most significant bit
        strides = torch.tensor(factors[: self._num_dense], dtype=torch.int64).reshape(-1, in_features)  # (L_d, D)
        shift = strides @ bits.T + torch.tensor(offsets[: self._num_dense], dtype=torch.int64)[:, None]  # (L_d, K)
        self.register_buffer("_corner_shift", shift, persistent=False)
        self.register_buffer("_bit", torch.tensor([0, 1]), persistent=False)  # (2,): the lower / upper vertex
        self._bound: tuple[torch.Tensor, torch.Tensor] | None = None  # bind(): (N, L, K) rows and weights

    def extra_repr(self) -> str:
        hashed = self.num_levels - self._num_dense
        return (f"in_features={self.in_features}, levels={self.num_levels}, features={self.features_per_level}, "
                f"T=2^{int(math.log2(self.table_size))}, resolutions {self.resolutions[0]}..{self.resolutions[-1]} "
                f"(growth {self.growth:.4f}), {hashed} hashed level(s)")

    def corners(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) coordinates in [-1, 1] -> table rows (N, L, K) and interpolation weights (N, L, K).

        Corner k is the vertex floor(x_l) + the bits of k (dimension 0 the most significant bit); a point's K weights
        sum to 1 on every level. The weights are differentiable with respect to ``coords``, the rows are not.
        """
        assert coords.ndim == 2 and coords.shape[1] == self.in_features, (
            f"coords must be (N, {self.in_features}), got {tuple(coords.shape)}")
        unit = ((coords.to(self.table.dtype) + 1) / 2).clamp(0.0, 1.0)  # (N, D) in [0, 1]; outside: to the border
        pos = unit[:, None, :] * self._resolution[None, :, None]  # (N, L, D): x_l = x N_l
        # the cell's lower corner; x = 1 sits in the last cell (at its upper corner), so vertices stay in 0 .. N_l
        low = pos.detach().floor().clamp(max=self._max_corner[None, :, None])  # (N, L, D)
        frac = pos - low  # (N, L, D) in [0, 1]
        low = low.long()
        # Corner k is the vertex low + bits(k). Its weight is the product over dimensions of the 1-D linear weights
        # (1 - t, t), built one dimension at a time: each doubles the list of corners.
        weight = None
        for i in range(self.in_features):
            w = torch.stack([1 - frac[..., i], frac[..., i]], dim=-1)  # (N, L, 2)
            weight = w if weight is None else rearrange(weight[..., :, None] * w[..., None, :],
                                                        "n l k two -> n l (k two)")  # (N, L, 2 K_i)
        n, split = low.shape[0], self._num_dense
        scaled = low * self._factor  # (N, L, D): v_i stride_i on dense levels, v_i pi_i on hashed ones
        index = torch.empty(n, self.num_levels, 2**self.in_features, dtype=torch.int64, device=coords.device)
        # Dense levels (a prefix: resolutions only grow): row = sum_i v_i (N_l + 1)^i is linear in v, so each corner
        # is the lower vertex's row plus a constant shift per (level, corner), which also holds the level's offset.
        torch.add(scaled[:, :split].sum(-1)[..., None], self._corner_shift[None], out=index[:, :split])
        # Hashed levels: h(v) = XOR_i v_i pi_i mod T (Eq. 4), built by doubling as the weights; v_i + 1 gives
        # v_i pi_i + pi_i.
        hashed = None
        for i in range(self.in_features):
            part = scaled[:, split:, i, None] + self._factor[None, split:, i, None] * self._bit  # (N, L_h, 2)
            hashed = part if hashed is None else rearrange(hashed[..., :, None] ^ part[..., None, :],
                                                           "n l k two -> n l (k two)")  # (N, L_h, 2 K_i)
        if hashed is not None and split < self.num_levels:
            # "mod T" as a mask: only the low log2 T bits of the products matter, so int64 arithmetic (no uint32
            # overflow) picks the same entries as the paper's 32-bit hash
            hashed = (hashed & (self.table_size - 1)) + self._offset[None, split:, None]
            index[:, split:] = hashed
        return index, weight  # (N, L, K), (N, L, K)

    def bind_bytes(self, num_points: int) -> int:
        """What :meth:`bind` keeps for ``num_points`` points: 12 L K bytes a point, or 0 above the limit."""
        cost = num_points * self.num_levels * 2**self.in_features * 12
        return cost if cost <= BIND_MAX_BYTES else 0

    def bind(self, coords: torch.Tensor) -> bool:
        """Precompute the corners of a fixed point set (a fit's pixel grid), so that ``forward(rows=...)`` reads them
        instead of hashing every point at every step; the weights are then constants (no coordinate gradient).
        Costs 12 L K bytes a point; above :data:`BIND_MAX_BYTES` nothing is kept and False is returned."""
        if not self.bind_bytes(coords.shape[0]):
            self._bound = None
            return False
        with torch.no_grad():
            parts = [self.corners(part) for part in coords.split(65536)]
        self._bound = (torch.cat([index for index, _ in parts]), torch.cat([weight for _, weight in parts]))
        return True

    def forward(self, coords: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(N, D) coordinates in [-1, 1] -> (N, L * F) features; or, with ``rows`` (N,), the features of those rows
        of the point set given to :meth:`bind` (``coords`` is then not read)."""
        if rows is None:
            index, weight = self.corners(coords)  # (N, L, K), (N, L, K)
        else:
            index, weight = self._bound[0][rows], self._bound[1][rows]  # (N, L, K), (N, L, K)
        mixed = _Interpolate.apply(self.table, index, weight)  # (N, L, F): sum_v w_v theta_l[h(v)]
        return rearrange(mixed, "n l f -> n (l f)")  # (N, L * F)


class _Interpolate(torch.autograd.Function):
    """out[n, l] = sum_k weight[n, l, k] table[index[n, l, k]], with an ``index_add_`` backward.

    PyTorch's own gather backward (embedding, embedding_bag) is several times slower on a CPU than adding the
    weighted gradients into the table's rows with ``index_add_`` (int64 indices: int32 ones are 9x slower there);
    this is what makes the encoding cheap to train there.
    """

    @staticmethod
    def forward(ctx, table: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        n, levels, k = index.shape
        ctx.save_for_backward(table, index, weight)
        # embedding_bag sums the K weighted rows of each (point, level) bag in one pass
        out = nn.functional.embedding_bag(index.reshape(-1, k), table, per_sample_weights=weight.reshape(-1, k),
                                          mode="sum")  # (N * L, F)
        return out.reshape(n, levels, table.shape[1])  # (N, L, F)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        table, index, weight = ctx.saved_tensors
        grad_table = grad_weight = None
        if ctx.needs_input_grad[0]:
            # d out[n, l, f] / d table[index[n, l, k], f] = weight[n, l, k]
            contribution = rearrange(weight[..., None] * grad[..., None, :], "n l k f -> (n l k) f")  # (N L K, F)
            grad_table = grad.new_zeros(table.shape).index_add_(0, index.reshape(-1), contribution)  # (rows, F)
        if ctx.needs_input_grad[2]:
            # d out[n, l, f] / d weight[n, l, k] = table[index[n, l, k], f]
            grad_weight = torch.einsum("nlkf,nlf->nlk", table[index], grad)  # (N, L, K)
        return grad_table, None, grad_weight


class HashGrid(nn.Module):
    """Instant-NGP for a signal: a multiresolution hash encoding, then a small ReLU MLP with a linear output.

    ``width`` and ``depth`` size the MLP as for the other INRs: Linear(L F -> width), ReLU, then ``depth`` times
    Linear(width -> width), ReLU, then Linear(width -> C). The paper's "two hidden layers of 64 neurons" are the
    defaults, width 64 and depth 1. The encoding's defaults: L = 16 levels of F = 2 features, T = 2^16 entries per
    level, resolutions 16 to 512 (one cell per pixel for the papers' 512 x 512 images; raise ``max_resolution`` for
    larger signals). Train it with ``default_lr``, ``adam_betas`` and ``adam_eps``.
    """

    default_lr = 1e-2
    default_chunk = 8192  # points per chunk of a step: the fastest measured (benchmarks/results/fit_step.md)
    # PSNR cost of --precision bf16, the worst of three photos (benchmarks/results/fit_precision.md: 17.3, 2.4 and
    # 9.9 dB after 1,000 steps at 128 px, and no faster: the encoding, fp32 either way, is most of the step)
    bf16_cost_db = 17.31
    adam_betas = (0.9, 0.99)
    adam_eps = 1e-15

    def __init__(self, *, in_features: int = 2, out_features: int = 3, width: int = 64, depth: int = 1,
                 num_levels: int = 16, features_per_level: int = 2, log2_table_size: int = 16,
                 base_resolution: int = 16, max_resolution: int = 512):
        super().__init__()
        assert depth >= 0 and width > 0, f"depth must be >= 0 and width > 0, got depth={depth}, width={width}"
        self.encoding = HashGridEncoding(in_features=in_features, num_levels=num_levels,
                                         features_per_level=features_per_level, log2_table_size=log2_table_size,
                                         base_resolution=base_resolution, max_resolution=max_resolution)
        layers: list[nn.Module] = [nn.Linear(self.encoding.out_features, width), nn.ReLU()]
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_features)

    def bind(self, coords: torch.Tensor) -> bool:
        """Precompute the encoding's corners for a fixed point set: see :meth:`HashGridEncoding.bind`."""
        return self.encoding.bind(coords)

    def bind_bytes(self, num_points: int) -> int:
        return self.encoding.bind_bytes(num_points)

    def forward(self, coords: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(N, D_in) coordinates in [-1, 1] -> (N, C) values; ``rows``: those of the points given to :meth:`bind`."""
        with full_precision(coords.device.type):  # under bf16 autocast: the encoding and the output stay fp32
            features = self.encoding(coords.float(), rows)  # (N, L F)
        x = self.net(features)  # (N, W)
        with full_precision(coords.device.type):
            return self.head(x.float())  # (N, C)
