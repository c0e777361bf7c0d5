"""Vector quantization of weights against residual codebooks: the one implementation of this math.

The "codebook" codec and :class:`holotensor.nn.CodebookLinear` both call these functions; neither
re-derives a distance, an assignment or a decode.

Conventions (normative for the codebook payload):

* **Rows and groups.** A tensor of shape ``(*lead, K)`` is viewed as ``N = prod(lead)`` rows (output
  channels of a Linear weight) of ``K`` values; a 0-d tensor is one row of one value. Each row is cut
  into ``G = ceil(K / d)`` groups of ``d`` consecutive values. When ``d`` does not divide ``K`` the
  last group of every row is padded with zeros; the padding is dropped again on decode.
* **Scales.** With per-channel scales every row is divided by its stored fp16 scale
  ``s_r = rms(row)`` (raised to fp16's smallest positive value for an all-zero row) before
  quantization, and multiplied back on decode. Without scales ``s_r = 1``.
* **Residual codebooks.** ``M`` stages, each a codebook of ``k`` entries of ``d`` values. Stage 0
  quantizes the (scaled) group vectors, stage ``m`` the residual left by stages ``0..m-1``, so
  decoding any prefix of stages is a coarser approximation::

      w[r, g*d + j] = s_r * sum_{m < M} C_m[codes[m, r, g], j]

* **Assignment** is greedy (each stage picks its nearest entry for the current residual) or a beam
  search of width ``B`` over the joint assignment of all stages, optionally weighted per
  coordinate (e.g. by the mean squared input activation of each input feature).
* **Code packing** (:func:`pack_codes`): a stage's codes of ``b <= 8`` bits are one
  :func:`~holotensor.codecs.quant_math.pack_bits` stream; for ``b > 8`` the low 8 bits of every
  code form a byte plane, followed by the high ``b - 8`` bits packed tightly. Codes are ordered
  row-major over ``(row, group)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from holotensor.codecs import quant_math as qm

__all__ = [
    "MAX_BITS",
    "MAX_DIM",
    "MIN_BITS",
    "MIN_DIM",
    "CodebookTensor",
    "assign",
    "assign_beam",
    "assign_greedy",
    "channel_scales",
    "fit",
    "group_vectors",
    "kmeans_pp_init",
    "lloyd",
    "nearest",
    "pack_codes",
    "packed_codes_size",
    "quantize",
    "reconstruct",
    "refine_codebooks",
    "row_view",
    "ungroup_vectors",
    "unpack_codes",
    "validate_bits",
    "validate_dim",
]

MIN_BITS = 1
MAX_BITS = 16
MIN_DIM = 1
MAX_DIM = 64
# Entries of the (vectors x codebook entries) distance block computed at once: 4 Mi floats = 16 MiB.
_DIST_BLOCK = 1 << 22


def validate_bits(bits: int) -> int:
    """Check a per-stage code width (1..16 bits)."""
    return qm.validate_bits(bits, low=MIN_BITS, high=MAX_BITS)


def validate_dim(dim: int) -> int:
    """Check a vector length (1..64 values)."""
    if isinstance(dim, bool) or not isinstance(dim, int) or not MIN_DIM <= dim <= MAX_DIM:
        raise ValueError(f"dim must be an integer in {MIN_DIM}..{MAX_DIM}, got {dim!r}")
    return dim


def row_view(shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, K) of the matrix a tensor of ``shape`` is quantized as."""
    if len(shape) == 0:
        return 1, 1
    return math.prod(shape[:-1]), shape[-1]


def group_vectors(w2: torch.Tensor, dim: int) -> torch.Tensor:
    """``(N, K)`` -> ``(N, G, dim)`` group vectors, the last group zero-padded."""
    n, k = w2.shape
    g = -(-k // dim)
    if g * dim != k:
        w2 = torch.cat([w2, w2.new_zeros(n, g * dim - k)], dim=1)
    return w2.reshape(n, g, dim)


def ungroup_vectors(v: torch.Tensor, k: int) -> torch.Tensor:
    """``(N, G, dim)`` -> ``(N, K)``: the inverse of :func:`group_vectors`."""
    n, g, d = v.shape
    return v.reshape(n, g * d)[:, :k]


def channel_scales(w2: torch.Tensor) -> torch.Tensor:
    """Per-row fp16 scales ``rms(row)`` of a float ``(N, K)`` matrix, floored at fp16's tiniest value.

    Raises:
        ValueError: a scale overflows fp16.
    """
    rms = w2.float().square().mean(dim=1).sqrt() if w2.shape[1] else w2.new_ones(w2.shape[0])
    s = qm.stored_scale(rms, torch.float16)
    if not bool(torch.isfinite(s).all()):
        raise ValueError(f"a row's scale {float(rms.max()):.4g} overflows fp16")
    return s


def _chunk_rows(k: int) -> int:
    return max(1, _DIST_BLOCK // max(k, 1))


def _partial_dist(x: torch.Tensor, c: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
    """(n, k) squared (weighted) distances less each row's constant ``sum(h * x^2)`` (same argmin)."""
    if h is None:
        return torch.addmm(c.square().sum(1), x, c.T, alpha=-2.0)
    return torch.addmm(h @ c.square().T, h * x, c.T, alpha=-2.0)


def _row_norm(x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
    return (x.square() if h is None else h * x.square()).sum(1)


def _sq_dist(x: torch.Tensor, c: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
    """(n, k) squared (weighted) distances between vectors ``x`` (n, d) and entries ``c`` (k, d)."""
    return (_partial_dist(x, c, h) + _row_norm(x, h).unsqueeze(1)).clamp_(min=0)


def nearest(
    x: torch.Tensor, codebook: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index (int64) and squared distance of the nearest codebook entry for every row of ``x``.

    The distance matrix is computed in blocks of rows, so memory stays at ``_DIST_BLOCK`` floats
    whatever the sizes. ``weights`` (like ``x``) weights each coordinate's squared error.
    """
    n = x.shape[0]
    idx = torch.empty(n, dtype=torch.int64, device=x.device)
    dist = torch.empty(n, dtype=x.dtype, device=x.device)
    step = _chunk_rows(codebook.shape[0])
    for a in range(0, n, step):
        h = None if weights is None else weights[a : a + step]
        dist[a : a + step], idx[a : a + step] = _partial_dist(x[a : a + step], codebook, h).min(dim=1)
    return idx, (dist + _row_norm(x, weights)).clamp_(min=0)


def kmeans_pp_init(
    x: torch.Tensor, k: int, *, weights: torch.Tensor | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): ``k`` rows of ``x`` drawn with probability
    proportional to their squared distance from the entries chosen so far.

    Fewer than ``k`` distinct vectors (or ``k > len(x)``) leave the surplus entries as copies.
    """
    n, d = x.shape
    if n == 0:
        return x.new_zeros(k, d)
    centers = x.new_empty(k, d)
    first = int(torch.randint(n, (1,), generator=generator, device="cpu"))
    centers[0] = x[first]
    norms = _row_norm(x, weights)

    def dist_to(c: torch.Tensor) -> torch.Tensor:
        return (_partial_dist(x, c, weights).squeeze(1) + norms).clamp_(min=0)

    best = dist_to(centers[:1])
    for i in range(1, k):
        total = best.sum()
        if not bool(total > 0):
            centers[i:] = centers[i - 1]
            break
        # inverse-CDF draw: one uniform number against the cumulative squared distances
        u = float(torch.rand((), generator=generator, dtype=torch.float64)) * float(total)
        cdf = best.double().cumsum(0)
        pick = min(
            int(torch.searchsorted(cdf, torch.tensor([u], dtype=torch.float64, device=cdf.device))), n - 1
        )
        centers[i] = x[pick]
        best = torch.minimum(best, dist_to(centers[i : i + 1]))
    return centers


def _centroids(
    x: torch.Tensor, idx: torch.Tensor, old: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    """(Weighted) mean of the rows of ``x`` assigned to each entry; empty entries keep ``old``."""
    h = torch.ones_like(x) if weights is None else weights
    num = torch.zeros_like(old).index_add_(0, idx, h * x)
    den = torch.zeros_like(old).index_add_(0, idx, h)
    return torch.where(den > 0, num / den.clamp(min=torch.finfo(x.dtype).tiny), old)


def lloyd(
    x: torch.Tensor,
    k: int,
    iters: int,
    *,
    weights: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A ``(k, d)`` codebook for the rows of ``x``: k-means++ seeds then ``iters`` Lloyd steps.

    Runs on ``x``'s device; an empty cluster keeps its previous entry.

    Example:
        >>> x = torch.cat([torch.zeros(50, 2), torch.ones(50, 2)])
        >>> sorted(lloyd(x, 2, 5, generator=torch.Generator().manual_seed(0))[:, 0].tolist())
        [0.0, 1.0]
    """
    c = kmeans_pp_init(x, k, weights=weights, generator=generator)
    for _ in range(iters):
        idx, _ = nearest(x, c, weights)
        new = _centroids(x, idx, c, weights)
        if torch.equal(new, c):
            break
        c = new
    return c


def assign_greedy(
    x: torch.Tensor, codebooks: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """``(M, n)`` int64 codes: stage by stage, the nearest entry to what earlier stages left."""
    residual = x.clone()
    codes = []
    for c in codebooks:
        idx, _ = nearest(residual, c, weights)
        residual -= c[idx]
        codes.append(idx)
    return torch.stack(codes) if codes else x.new_zeros((0, x.shape[0]), dtype=torch.int64)


def assign_beam(
    x: torch.Tensor, codebooks: torch.Tensor, beam: int, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """``(M, n)`` int64 codes from a beam search of width ``beam`` over the joint assignment.

    Every vector keeps its ``beam`` best partial assignments; each stage extends all of them by
    every entry and keeps the ``beam`` with the least total error. Rows are processed in blocks so
    that at most ``_DIST_BLOCK`` candidate errors exist at once. Width 1 is :func:`assign_greedy`.
    """
    m, k, d = codebooks.shape
    n = x.shape[0]
    if beam == 1 or m == 0 or n == 0:
        return assign_greedy(x, codebooks, weights)
    out = torch.empty(m, n, dtype=torch.int64, device=x.device)
    step = _chunk_rows(beam * k)
    for a in range(0, n, step):
        xs = x[a : a + step]
        hs = None if weights is None else weights[a : a + step]
        rows = xs.shape[0]
        resid = xs.unsqueeze(1)  # (rows, width, d), width grows to `beam`
        paths = xs.new_zeros((rows, 1, 0), dtype=torch.int64)
        for stage in range(m):
            width = resid.shape[1]
            flat = resid.reshape(rows * width, d)
            hf = None if hs is None else hs.repeat_interleave(width, 0)
            err = _sq_dist(flat, codebooks[stage], hf).reshape(rows, width * k)
            keep = min(beam, width * k)
            _, top = err.topk(keep, dim=1, largest=False)
            parent, entry = top // k, top % k
            resid = resid.gather(1, parent.unsqueeze(-1).expand(rows, keep, d)) - codebooks[stage][entry]
            paths = torch.cat(
                [paths.gather(1, parent.unsqueeze(-1).expand(rows, keep, stage)), entry.unsqueeze(-1)], dim=2
            )
        out[:, a : a + rows] = paths[:, 0, :].T  # topk sorts ascending: path 0 is the best
    return out


def assign(
    x: torch.Tensor, codebooks: torch.Tensor, beam: int = 1, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Codes for ``x`` against ``codebooks`` (greedy for ``beam == 1``, else beam search)."""
    return assign_beam(x, codebooks, beam, weights) if beam > 1 else assign_greedy(x, codebooks, weights)


def _sum_stages(codes: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """``sum_m C_m[codes[m]]`` for codes ``(M, ...)`` and codebooks ``(M, k, d)``: shape ``(..., d)``."""
    out = codebooks[0][codes[0]]
    for stage in range(1, codes.shape[0]):
        out = out + codebooks[stage][codes[stage]]
    return out


def refine_codebooks(
    x: torch.Tensor,
    codes: torch.Tensor,
    codebooks: torch.Tensor,
    sweeps: int = 1,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Codebooks improved for fixed ``codes``: each stage in turn becomes the (weighted) mean of
    what the other stages leave of its vectors (block coordinate descent on the squared error)."""
    cbs = codebooks.clone()
    if codes.shape[0] == 0 or x.shape[0] == 0:
        return cbs
    total = _sum_stages(codes, cbs)
    for _ in range(sweeps):
        for stage in range(cbs.shape[0]):
            others = total - cbs[stage][codes[stage]]
            cbs[stage] = _centroids(x - others, codes[stage], cbs[stage], weights)
            total = others + cbs[stage][codes[stage]]
    return cbs


def fit(
    x: torch.Tensor,
    stages: int,
    bits: int,
    iters: int,
    *,
    beam: int = 1,
    weights: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual codebooks and codes for the rows of ``x`` (n, d).

    Stage ``m``'s codebook is k-means (``iters`` Lloyd steps) on the residual of stages ``< m``,
    so a prefix of stages stays a good approximation. With ``beam > 1`` and several stages the
    codes are then re-chosen jointly by beam search and the codebooks refit to them once.

    Returns:
        ``(codebooks, codes)``: float32 ``(stages, k, d)`` with ``k = min(2^bits, n)`` (at least 1),
        and int64 ``(stages, n)``.
    """
    n, _d = x.shape
    k = max(1, min(1 << bits, n))
    residual = x.clone()
    cbs, codes = [], []
    for _ in range(stages):
        c = lloyd(residual, k, iters, weights=weights, generator=generator)
        idx, _ = nearest(residual, c, weights)
        residual -= c[idx]
        cbs.append(c)
        codes.append(idx)
    codebooks, code_t = torch.stack(cbs), torch.stack(codes)
    if beam > 1 and stages > 1:
        code_t = assign_beam(x, codebooks, beam, weights)
        codebooks = refine_codebooks(x, code_t, codebooks, 1, weights)
    return codebooks, code_t


def reconstruct(
    codes: torch.Tensor,
    codebooks: torch.Tensor,
    scales: torch.Tensor | None,
    shape: tuple[int, ...],
    *,
    stages: int | None = None,
) -> torch.Tensor:
    """Dense float tensor of ``shape`` from codes ``(M, N, G)``, codebooks ``(M, k, d)`` and
    per-row scales ``(N,)`` (or ``None``), using the first ``stages`` stages (all by default).

    Differentiable in ``codebooks`` and ``scales`` (the codes are indices), so it is also the
    forward of :class:`holotensor.nn.CodebookDecoder`.

    Example:
        >>> cb = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
        >>> reconstruct(torch.tensor([[[1, 0]]]), cb, None, (1, 3)).tolist()
        [[3.0, 4.0, 1.0]]
    """
    m = codes.shape[0] if stages is None else stages
    n, k = row_view(tuple(shape))
    if m == 0:
        return codebooks.new_zeros(shape)
    v = _sum_stages(codes[:m].long(), codebooks[:m].float())  # (N, G, d)
    w2 = ungroup_vectors(v, k)
    if scales is not None:
        w2 = w2 * scales.float().reshape(n, 1)
    return w2.reshape(shape)


def packed_codes_size(n: int, bits: int) -> int:
    """Bytes that ``n`` codes of ``bits`` bits take in :func:`pack_codes`' layout."""
    if bits <= 8:
        return qm.packed_size(n, bits)
    return n + qm.packed_size(n, bits - 8)


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack integer codes (each < 2^bits, 1..16 bits) into a uint8 stream (see the module docstring).

    Raises:
        ValueError: bits out of range or a code that does not fit.

    Example:
        >>> pack_codes(torch.tensor([1, 2, 3]), 4).tolist()
        [33, 3]
    """
    validate_bits(bits)
    flat = codes.reshape(-1).long()
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= (1 << bits)):
        raise ValueError(f"codes must lie in [0, {1 << bits}) for {bits} bits")
    if bits <= 8:
        return qm.pack_bits(flat.to(torch.uint8), bits)
    low = qm.pack_bits((flat & 0xFF).to(torch.uint8), 8)
    return torch.cat([low, qm.pack_bits((flat >> 8).to(torch.uint8), bits - 8)])


def unpack_codes(data: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: ``n`` int64 codes.

    Raises:
        ValueError: bits out of range or ``data`` not exactly :func:`packed_codes_size` bytes.
    """
    validate_bits(bits)
    if data.dtype != torch.uint8 or data.numel() != packed_codes_size(n, bits):
        raise ValueError(
            f"{n} codes of {bits} bits need {packed_codes_size(n, bits)} bytes, got {data.numel()}"
        )
    if bits <= 8:
        return qm.unpack_bits(data, bits, n).long()
    low = data[:n].long()
    return low | (qm.unpack_bits(data[n:], bits - 8, n).long() << 8)


@dataclass(frozen=True, eq=False)
class CodebookTensor:
    """What the codebook codec stores for one tensor, unpacked.

    Attributes:
        codes: int64 ``(M, N, G)``, entries of each stage's codebook.
        codebooks: fp16 ``(M, k, d)``.
        scales: fp16 ``(N,)`` per-row scales, or ``None``.
        shape: shape of the dense tensor.
        bits: code width per stage (``k <= 2^bits``).
    """

    codes: torch.Tensor
    codebooks: torch.Tensor
    scales: torch.Tensor | None
    shape: tuple[int, ...]
    bits: int

    def __post_init__(self) -> None:
        validate_bits(self.bits)
        m, k, d = self.codebooks.shape
        n, cols = row_view(self.shape)
        expected = (m, n, -(-cols // d))
        if tuple(self.codes.shape) != expected:
            raise ValueError(
                f"codes must have shape {expected} for shape {self.shape}, got {tuple(self.codes.shape)}"
            )
        if not 1 <= k <= (1 << self.bits):
            raise ValueError(f"a {self.bits}-bit codebook holds 1..{1 << self.bits} entries, got {k}")
        if self.scales is not None and tuple(self.scales.shape) != (n,):
            raise ValueError(f"scales must have shape {(n,)}, got {tuple(self.scales.shape)}")

    @classmethod
    def rounded(
        cls,
        codes: torch.Tensor,
        codebooks: torch.Tensor,
        scales: torch.Tensor | None,
        shape: tuple[int, ...],
        bits: int,
    ) -> CodebookTensor:
        """The tensor with float ``codebooks`` and ``scales`` rounded to fp16, as the codec stores them.

        Raises:
            ValueError: a codebook entry or scale overflows fp16, or the parts do not fit together.
        """
        cbs = codebooks.detach().half()
        sc = None if scales is None else scales.detach().half()
        if not bool(torch.isfinite(cbs).all()) or (sc is not None and not bool(torch.isfinite(sc).all())):
            raise ValueError("a codebook entry or scale overflows fp16")
        return cls(codes, cbs, sc, tuple(shape), bits)

    @property
    def stages(self) -> int:
        return self.codebooks.shape[0]

    def dequantize(self, stages: int | None = None) -> torch.Tensor:
        """The float32 tensor the first ``stages`` stages (all by default) stand for."""
        return reconstruct(self.codes, self.codebooks, self.scales, self.shape, stages=stages)


def _importance_weights(importance: torch.Tensor | None, n: int, k: int, d: int) -> torch.Tensor | None:
    """Per-coordinate weights of the group vectors: ``importance`` per column, 0 on padding."""
    if importance is None and k % d == 0:
        return None
    cols = torch.ones(k) if importance is None else importance.detach().float().cpu()
    return group_vectors(cols.reshape(1, k), d).expand(n, -1, -1).reshape(-1, d)


def quantize(
    w: torch.Tensor,
    *,
    dim: int,
    bits: int,
    stages: int = 1,
    scale: bool = True,
    iters: int = 20,
    beam: int = 1,
    seed: int = 0,
    importance: torch.Tensor | None = None,
) -> CodebookTensor:
    """Vector-quantize ``w`` (any shape) against ``stages`` residual codebooks of ``2^bits`` entries.

    Args:
        w: floating tensor; its last dimension is cut into groups of ``dim`` (see the module
            docstring). Computation runs in float32 on ``w``'s device.
        dim: values per vector, 1..64.
        bits: code width per stage, 1..16 (``k = min(2^bits, vectors)`` entries).
        stages: residual codebooks, >= 1.
        scale: divide each row by its fp16 RMS first (per-output-channel scales).
        iters: Lloyd iterations per stage.
        beam: width of the joint code search (1: greedy).
        seed: seeds the k-means++ draws, so equal inputs give equal codes.
        importance: optional non-negative weight per column (length ``K``), e.g. the mean squared
            input activation of each input feature; each coordinate's squared error is weighted by it.

    Returns:
        A :class:`CodebookTensor` whose codes were chosen against the fp16-rounded codebooks.

    Raises:
        ValueError: bad settings, a non-floating or empty tensor, NaN/Inf values, or a bad
            ``importance``.

    Example:
        >>> ct = quantize(torch.randn(16, 64), dim=4, bits=6, stages=2)
        >>> ct.codes.shape, ct.codebooks.shape
        (torch.Size([2, 16, 16]), torch.Size([2, 64, 4]))
    """
    validate_dim(dim)
    validate_bits(bits)
    if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
        raise ValueError(f"stages must be a positive integer, got {stages!r}")
    if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
        raise ValueError(f"beam must be a positive integer, got {beam!r}")
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise ValueError(f"codebook quantization needs a floating-point tensor, got {type(w).__name__}")
    if w.numel() == 0:
        raise ValueError(f"cannot vector-quantize an empty tensor of shape {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()):
        raise ValueError("cannot vector-quantize a tensor with NaN or Inf values")
    shape = tuple(w.shape)
    n, k = row_view(shape)
    if importance is not None and (
        not isinstance(importance, torch.Tensor)
        or tuple(importance.shape) != (k,)
        or not bool(torch.isfinite(importance).all())
        or bool((importance < 0).any())
    ):
        raise ValueError(f"importance must be {k} finite non-negative values, one per column")
    w2 = w.detach().float().reshape(n, k)
    scales = channel_scales(w2) if scale else None
    if scales is not None:
        w2 = w2 / scales.float().unsqueeze(1)
    x = group_vectors(w2, dim).reshape(-1, dim)
    h = _importance_weights(importance, n, k, dim)
    h = None if h is None else h.to(x.device)
    gen = torch.Generator().manual_seed(seed)
    codebooks, codes = fit(x, stages, bits, iters, beam=beam, weights=h, generator=gen)
    ct = CodebookTensor.rounded(codes.reshape(stages, n, -1), codebooks, scales, shape, bits)
    codes = assign(x, ct.codebooks.float(), beam, h)  # the codes of the entries as stored
    return CodebookTensor(codes.reshape(stages, n, -1), ct.codebooks, ct.scales, shape, bits)
