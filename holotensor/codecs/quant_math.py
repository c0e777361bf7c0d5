"""Groupwise integer quantization and tight bit packing: the one implementation of this math.

The blockquant codec, :class:`holotensor.nn.LearnedQuantizer` and the exporters all call these
functions; none of them re-derives a scale, a rounding rule or a bit layout.

Conventions (normative for the blockquant payload):

* **Groups** run along the last dimension. A tensor of shape ``(*lead, K)`` with group size ``gs``
  has ``G = ceil(K / gs)`` groups per row; ``group_size=None`` means per channel (one group per
  row, ``gs = K``). A 0-d tensor is treated as a 1-element vector.
* **Padding**: when ``gs`` does not divide ``K`` the last group of each row is shorter. It is padded
  internally by repeating the row's last element, which leaves the group's min, max and max|w|
  unchanged; padded positions are dropped again, so codes always have the input's shape.
* **Symmetric** (``zeros is None``): signed codes ``q`` in ``[-2^(b-1), 2^(b-1)-1]``, scale
  ``max|w| / (2^(b-1)-1)``, ``w ~ q * scale``. Codes are stored offset-binary as ``q + 2^(b-1)``.
* **Asymmetric**: codes ``q`` in ``[0, 2^b-1]``, ``zero = min(w)`` (the value code 0 decodes to, in
  weight units, as LSQ+'s offset beta), ``scale = (max(w) - zero) / (2^b-1)``,
  ``w ~ q * scale + zero``.
* Scales and zeros are stored in fp16 or bf16, and codes are always computed from the *stored*
  (rounded) scales and zeros, so every value inside the representable range is reproduced within
  half a step. A scale that would be 0 (constant or all-zero group) or underflow is raised to the
  scale dtype's smallest positive value; a scale or zero that overflows it raises ``ValueError``.
* Rounding is round-half-to-even (``torch.round``).
* **Empty tensors** quantize to empty codes, scales and zeros of the matching shapes and
  dequantize back to an empty tensor.
* **Bit packing** (:func:`pack_bits`) is little-endian: code ``i`` occupies stream bits
  ``[i*b, (i+1)*b)``, least significant bit first, and stream bit ``j`` is bit ``j % 8`` of byte
  ``j // 8``. For 4 bits this is "low nibble first". ``n`` codes take exactly ``ceil(n*b/8)`` bytes;
  unused high bits of the last byte are zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "CLIP_RATIOS",
    "MAX_BITS",
    "MAX_GROUP_SIZE",
    "MIN_BITS",
    "MIN_GROUP_SIZE",
    "SCALE_DTYPES",
    "QuantizedTensor",
    "choose_params",
    "code_range",
    "code_units",
    "codes_grouped",
    "dequantize",
    "fit_params_grouped",
    "group_rows",
    "num_groups",
    "pack_bits",
    "packed_size",
    "quantize",
    "quantize_with",
    "range_params",
    "resolve_scale_dtype",
    "round_params",
    "scales_shape",
    "stored_scale",
    "ungroup",
    "unpack_bits",
    "validate_bits",
    "validate_group_size",
    "values_grouped",
]

MIN_BITS = 2
MAX_BITS = 8
MIN_GROUP_SIZE = 32
MAX_GROUP_SIZE = 256
SCALE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
SCALE_SEARCHES = ("minmax", "mse", "lsq")
# Clipping ratios tried by the MSE search, from no clipping down to half the range.
_MSE_GRID = torch.linspace(1.0, 0.5, 26).tolist()
CLIP_RATIOS: tuple[float, ...] = tuple(_MSE_GRID)
"""The clipping ratios every range search tries (the MSE search here, calibration's searches)."""


def validate_bits(bits: int, *, low: int = MIN_BITS, high: int = MAX_BITS) -> int:
    """Check a bit width; ``ValueError`` outside ``[low, high]`` or for a non-integer."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not low <= bits <= high:
        raise ValueError(f"bits must be an integer in {low}..{high}, got {bits!r}")
    return bits


def validate_group_size(group_size: int | None) -> int | None:
    """Check a group size: ``None`` (per channel) or an integer in 32..256."""
    if group_size is None:
        return None
    if (
        isinstance(group_size, bool)
        or not isinstance(group_size, int)
        or not MIN_GROUP_SIZE <= group_size <= MAX_GROUP_SIZE
    ):
        raise ValueError(
            f"group_size must be None (per channel) or an integer in {MIN_GROUP_SIZE}..{MAX_GROUP_SIZE}, "
            f"got {group_size!r}"
        )
    return group_size


def resolve_scale_dtype(scale_dtype: str | torch.dtype) -> torch.dtype:
    """``"fp16"``/``"bf16"`` (or the torch dtype itself) -> torch dtype; ``ValueError`` otherwise."""
    if isinstance(scale_dtype, torch.dtype) and scale_dtype in SCALE_DTYPES.values():
        return scale_dtype
    if isinstance(scale_dtype, str) and scale_dtype in SCALE_DTYPES:
        return SCALE_DTYPES[scale_dtype]
    raise ValueError(f"scale_dtype must be one of {sorted(SCALE_DTYPES)}, got {scale_dtype!r}")


def code_range(bits: int, signed: bool) -> tuple[int, int]:
    """Smallest and largest integer code: signed ``[-2^(b-1), 2^(b-1)-1]``, unsigned ``[0, 2^b-1]``."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _row_view(shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, K) of the 2-D view quantization works on."""
    if len(shape) == 0:
        return 1, 1
    k = shape[-1]
    rows = math.prod(shape[:-1])
    return rows, k


def _effective_group(k: int, group_size: int | None) -> int:
    return max(k, 1) if group_size is None else group_size


def num_groups(shape: tuple[int, ...], group_size: int | None) -> int:
    """Groups per row for a tensor of ``shape``."""
    _, k = _row_view(tuple(shape))
    return -(-k // _effective_group(k, group_size))


def scales_shape(shape: tuple[int, ...], group_size: int | None) -> tuple[int, ...]:
    """Shape of the scales (and zeros) of a tensor of ``shape``: ``(*lead, G)``."""
    lead = tuple(shape[:-1])
    return (*lead, num_groups(shape, group_size))


def group_rows(x: torch.Tensor, group_size: int | None, *, pad: str = "edge") -> torch.Tensor:
    """View ``x`` of shape ``(*lead, K)`` as ``(rows, G, gs)``.

    The last group is padded by repeating each row's last element (``pad="edge"``, for values) or
    with zeros (``pad="zero"``, for gradients, so padding never contributes to a sum).
    """
    rows, k = _row_view(tuple(x.shape))
    x2 = x.reshape(rows, k)
    gs = _effective_group(k, group_size)
    g = -(-k // gs)
    extra = g * gs - k
    if extra:
        fill = x2[:, -1:].expand(rows, extra) if pad == "edge" else x2.new_zeros(rows, extra)
        x2 = torch.cat([x2, fill], dim=1)
    return x2.reshape(rows, g, gs)


def ungroup(xg: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`group_rows`: drop the padding and restore ``shape``."""
    rows, k = _row_view(tuple(shape))
    return xg.reshape(rows, xg.shape[-2] * xg.shape[-1])[:, :k].reshape(shape)


def _check_finite(w: torch.Tensor) -> None:
    finite = torch.isfinite(w)
    if not bool(finite.all()):
        bad = (~finite).nonzero()[0].tolist()
        n_nan = int(torch.isnan(w).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise ValueError(
            f"cannot quantize a tensor with non-finite values: {n_nan} NaN and {n_inf} Inf "
            f"(first at index {tuple(bad)})"
        )


def _as_float(w: torch.Tensor) -> torch.Tensor:
    """Checked float32 copy of the data: all quantization arithmetic is float32."""
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(w).__name__}")
    if not w.is_floating_point():
        raise ValueError(f"quantization needs a floating-point tensor, got dtype {w.dtype}")
    w = w.detach()
    _check_finite(w)
    return w.to(torch.float32)


def stored_scale(scale: torch.Tensor, scale_dtype: torch.dtype) -> torch.Tensor:
    """``scale`` raised to the dtype's smallest positive value and rounded to it (no checks)."""
    tiny = torch.finfo(scale_dtype).smallest_normal * torch.finfo(scale_dtype).eps
    return scale.float().clamp(min=tiny).to(scale_dtype)


def round_params(
    scale: torch.Tensor, zero: torch.Tensor | None, scale_dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Round scales (and zeros) to their storage dtype, returned as float32 values.

    Scales are first raised to the dtype's smallest positive value, so a constant group or an
    underflowing scale still divides safely. Raises ``ValueError`` if either overflows the dtype.
    """
    s = stored_scale(scale, scale_dtype)
    if not bool(torch.isfinite(s).all()):
        raise ValueError(f"a quantization scale overflows {scale_dtype}; use scale_dtype='bf16'")
    z = None
    if zero is not None:
        z = zero.float().to(scale_dtype)
        if not bool(torch.isfinite(z).all()):
            raise ValueError(f"a quantization zero point overflows {scale_dtype}; use scale_dtype='bf16'")
        z = z.float()
    return s.float(), z


def code_units(xg: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None) -> torch.Tensor:
    """``(x - zero) / scale``: values measured in steps, before rounding (a new tensor)."""
    return xg / scale if zero is None else (xg - zero).div_(scale)


def codes_grouped(
    xg: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None, lo: int, hi: int
) -> torch.Tensor:
    """Integer codes (as floats) ``clamp(round((x - zero) / scale), lo, hi)``, broadcasting."""
    return code_units(xg, scale, zero).round_().clamp_(lo, hi)


def values_grouped(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None) -> torch.Tensor:
    """Dequantized values ``q * scale + zero`` (zero omitted when ``None``)."""
    return q * scale if zero is None else torch.addcmul(zero, q, scale)


def _minmax(
    xg: torch.Tensor, lo: int, hi: int, offset: bool, ratio: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Range-fitting scale/zero for a clipping ``ratio`` of the group's range."""
    if offset:
        mn = xg.amin(dim=-1, keepdim=True) * ratio
        mx = xg.amax(dim=-1, keepdim=True) * ratio
        return (mx - mn) / (hi - lo), mn
    amax = xg.clamp(min=0) if lo == 0 else xg.abs()
    return amax.amax(dim=-1, keepdim=True) * ratio / hi, None


def range_params(
    xg: torch.Tensor, lo: int, hi: int, *, offset: bool, ratio: float, scale_dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stored scales (and zeros) covering ``ratio`` of each group's range, shaped ``(..., 1)``.

    The candidate every clipping search evaluates; ``ratio=1`` is plain round to nearest.
    """
    return round_params(*_minmax(xg, lo, hi, offset, ratio), scale_dtype)


def fit_params_grouped(
    xg: torch.Tensor,
    lo: int,
    hi: int,
    *,
    offset: bool,
    method: str = "minmax",
    scale_dtype: torch.dtype = torch.float16,
    valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Choose stored scales (and zeros) for grouped data ``xg`` of shape ``(..., gs)``.

    Returns float32 tensors shaped ``(..., 1)`` already rounded to ``scale_dtype``. ``valid``
    (1 for real values, 0 for padding, shaped like ``xg``) keeps padding out of the MSE search.

    Methods:
        ``"minmax"``: cover the group's range exactly (round to nearest, RTN).
        ``"mse"``: try clipping ratios 1.0 .. 0.5 and keep, per group, the one with the least
            squared reconstruction error (computed with the rounded parameters).
        ``"lsq"``: LSQ's initial step ``2 * mean|x| / sqrt(hi)`` (Esser et al. 2020); only for
            codes without an offset.
    """
    if method not in SCALE_SEARCHES:
        raise ValueError(f"scale search must be one of {SCALE_SEARCHES}, got {method!r}")
    if xg.shape[-1] == 0 or xg.numel() == 0:
        shape = (*xg.shape[:-1], 1)
        return xg.new_ones(shape, dtype=torch.float32), (
            xg.new_zeros(shape, dtype=torch.float32) if offset else None
        )
    if method == "lsq":
        if offset:
            raise ValueError("the 'lsq' step initialisation has no offset rule; use 'minmax' or 'mse'")
        s = 2.0 * xg.abs().mean(dim=-1, keepdim=True) / math.sqrt(hi)
        return round_params(s, None, scale_dtype)
    best_s, best_z = round_params(*_minmax(xg, lo, hi, offset), scale_dtype)
    if method == "minmax":
        return best_s, best_z
    best_err = _sq_error(xg, best_s, best_z, lo, hi, valid)
    for ratio in _MSE_GRID[1:]:
        s, z = round_params(*_minmax(xg, lo, hi, offset, ratio), scale_dtype)
        err = _sq_error(xg, s, z, lo, hi, valid)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_s = torch.where(better, s, best_s)
        if z is not None and best_z is not None:
            best_z = torch.where(better, z, best_z)
    return best_s, best_z


def _sq_error(
    xg: torch.Tensor, s: torch.Tensor, z: torch.Tensor | None, lo: int, hi: int, valid: torch.Tensor | None
) -> torch.Tensor:
    err = (values_grouped(codes_grouped(xg, s, z, lo, hi), s, z) - xg).square()
    return (err if valid is None else err * valid).sum(dim=-1, keepdim=True)


def _fit(
    wf: torch.Tensor, xg: torch.Tensor, lo: int, hi: int, symmetric: bool, search: str, sdt: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor | None]:
    valid = group_rows(torch.ones_like(wf), xg.shape[-1], pad="zero") if search == "mse" else None
    return fit_params_grouped(xg, lo, hi, offset=not symmetric, method=search, scale_dtype=sdt, valid=valid)


def _codes(
    xg: torch.Tensor, s: torch.Tensor, z: torch.Tensor | None, lo: int, hi: int, shape: tuple
) -> torch.Tensor:
    return ungroup(codes_grouped(xg, s, z, lo, hi).sub_(lo), shape).to(torch.uint8)


def _as_stored(t: torch.Tensor | None, sdt: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor | None:
    return None if t is None else t.to(sdt).reshape(shape)


def choose_params(
    w: torch.Tensor,
    bits: int,
    group_size: int | None,
    symmetric: bool,
    scale_dtype: str | torch.dtype = "fp16",
    *,
    scale_search: str = "minmax",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scales (and zeros, ``None`` if symmetric) for ``w``, in ``scale_dtype``, shaped ``(*lead, G)``.

    Raises:
        ValueError: bad bits/group size/scale dtype, NaN or Inf in ``w``, or a scale overflowing
            the scale dtype.
    """
    validate_bits(bits)
    validate_group_size(group_size)
    sdt = resolve_scale_dtype(scale_dtype)
    wf = _as_float(w)
    lo, hi = code_range(bits, symmetric)
    s, z = _fit(wf, group_rows(wf, group_size), lo, hi, symmetric, scale_search, sdt)
    shape = scales_shape(tuple(w.shape), group_size)
    return _as_stored(s, sdt, shape), _as_stored(z, sdt, shape)


def _grouped_params(
    shape: tuple[int, ...], scales: torch.Tensor, zeros: torch.Tensor | None, group_size: int | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    expected = scales_shape(shape, group_size)
    if tuple(scales.shape) != expected or (zeros is not None and tuple(zeros.shape) != expected):
        raise ValueError(
            f"scales/zeros must have shape {expected} for a tensor of shape {shape}, got "
            f"{tuple(scales.shape)}" + ("" if zeros is None else f" and {tuple(zeros.shape)}")
        )
    rows, _ = _row_view(shape)
    g = expected[-1]
    s = scales.float().reshape(rows, g, 1)
    z = None if zeros is None else zeros.float().reshape(rows, g, 1)
    return s, z


def quantize_with(
    w: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    bits: int,
    group_size: int | None,
) -> torch.Tensor:
    """uint8 codes of ``w`` (same shape) for given stored scales/zeros (``None``: symmetric).

    Symmetric codes are offset-binary (``q + 2^(b-1)``).
    """
    validate_bits(bits)
    validate_group_size(group_size)
    wf = _as_float(w)
    shape = tuple(w.shape)
    s, z = _grouped_params(shape, scales, zeros, group_size)
    lo, hi = code_range(bits, zeros is None)
    return _codes(group_rows(wf, group_size), s, z, lo, hi, shape)


def quantize(
    w: torch.Tensor,
    bits: int,
    group_size: int | None,
    symmetric: bool,
    scale_dtype: str | torch.dtype = "fp16",
    *,
    scale_search: str = "minmax",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Groupwise integer quantization of ``w`` along its last dimension.

    Args:
        w: floating tensor of shape ``(*lead, K)`` (any device); NaN/Inf are rejected.
        bits: 2..8.
        group_size: 32..256 values per group, or ``None`` for one group per row.
        symmetric: signed codes and no zero point; otherwise min/max with an offset.
        scale_dtype: ``"fp16"`` or ``"bf16"``, the storage dtype of scales and zeros.
        scale_search: ``"minmax"`` (RTN) or ``"mse"`` (clipping search), see
            :func:`fit_params_grouped`.

    Returns:
        ``(codes, scales, zeros)``: uint8 codes shaped like ``w``, scales shaped ``(*lead, G)`` in
        ``scale_dtype``, and zeros like scales (``None`` when symmetric).

    Raises:
        ValueError: bits or group size out of range, unknown scale dtype, non-finite weights.

    Example:
        >>> codes, scales, zeros = quantize(torch.randn(8, 256), 4, 128, symmetric=False)
        >>> codes.shape, scales.shape
        (torch.Size([8, 256]), torch.Size([8, 2]))
    """
    validate_bits(bits)
    validate_group_size(group_size)
    sdt = resolve_scale_dtype(scale_dtype)
    wf = _as_float(w)
    shape = tuple(w.shape)
    lo, hi = code_range(bits, symmetric)
    xg = group_rows(wf, group_size)
    s, z = _fit(wf, xg, lo, hi, symmetric, scale_search, sdt)
    codes = _codes(xg, s, z, lo, hi, shape)
    side = scales_shape(shape, group_size)
    return codes, _as_stored(s, sdt, side), _as_stored(z, sdt, side)


def dequantize(
    codes: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    *,
    bits: int,
    group_size: int | None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Inverse of :func:`quantize`: ``(codes - 2^(b-1)) * scale`` or ``codes * scale + zero``.

    Example:
        >>> w = torch.randn(4, 64)
        >>> c, s, z = quantize(w, 8, 32, symmetric=True)
        >>> bool((dequantize(c, s, z, bits=8, group_size=32) - w).abs().max() < 0.05)
        True
    """
    validate_bits(bits)
    validate_group_size(group_size)
    if codes.dtype != torch.uint8:
        raise ValueError(f"codes must be uint8, got {codes.dtype}")
    shape = tuple(codes.shape)
    s, z = _grouped_params(shape, scales, zeros, group_size)
    lo, _ = code_range(bits, zeros is None)
    q = group_rows(codes.to(torch.float32).add_(lo), group_size, pad="zero")
    return ungroup(values_grouped(q, s, z), shape).to(dtype)


def packed_size(n: int, bits: int) -> int:
    """Bytes that ``n`` codes of ``bits`` bits take when packed: ``ceil(n * bits / 8)``."""
    return (n * bits + 7) // 8


def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack the flattened uint8 ``codes`` (each < 2^bits) into a tight little-endian bit stream.

    Eight codes make exactly ``bits`` bytes. Widths dividing 8 fill whole bytes; the others place
    each code of an 8-code group across one or two bytes. Both are uint8 column operations,
    vectorized over the tensor.

    Raises:
        ValueError: bits outside 1..8, codes not uint8, or a code that does not fit in ``bits``.

    Example:
        >>> pack_bits(torch.tensor([1, 2, 3], dtype=torch.uint8), 4).tolist()
        [33, 3]
    """
    validate_bits(bits, low=1, high=8)
    if codes.dtype != torch.uint8:
        raise ValueError(f"codes must be uint8, got {codes.dtype}")
    flat = codes.reshape(-1)
    n = flat.numel()
    if n and bits < 8 and int(flat.max()) >= (1 << bits):
        raise ValueError(f"a code does not fit in {bits} bits (max code {int(flat.max())})")
    if bits == 8:
        return flat.clone()
    pad = (-n) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    if 8 % bits == 0:
        cols = flat.reshape(-1, 8 // bits)
        out = cols[:, 0].clone()
        for k in range(1, cols.shape[1]):
            out |= cols[:, k] << (k * bits)
        return out[: packed_size(n, bits)]
    # Other widths: code k of each 8-code group starts at stream bit k*bits and spans one or two
    # of the group's `bits` output bytes; uint8 shifts drop the bits that belong elsewhere.
    cols = flat.reshape(-1, 8)
    out = torch.zeros((cols.shape[0], bits), dtype=torch.uint8, device=flat.device)
    for k in range(8):
        start = k * bits
        for j in range(start // 8, (start + bits - 1) // 8 + 1):
            shift = start - 8 * j
            out[:, j] |= cols[:, k] << shift if shift >= 0 else cols[:, k] >> -shift
    return out.reshape(-1)[: packed_size(n, bits)]


def unpack_bits(data: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: ``n`` uint8 codes from a packed 1-D uint8 tensor.

    Raises:
        ValueError: bits outside 1..8, or ``data`` is not exactly ``ceil(n * bits / 8)`` bytes.
    """
    validate_bits(bits, low=1, high=8)
    if data.dtype != torch.uint8:
        raise ValueError(f"packed data must be uint8, got {data.dtype}")
    if n < 0 or data.numel() != packed_size(n, bits):
        raise ValueError(f"{n} codes of {bits} bits need {packed_size(n, bits)} bytes, got {data.numel()}")
    flat = data.reshape(-1)
    if bits == 8:
        return flat.clone()
    mask = (1 << bits) - 1
    if 8 % bits == 0:
        per = 8 // bits
        out = torch.empty((flat.numel(), per), dtype=torch.uint8, device=flat.device)
        for k in range(per):
            out[:, k] = (flat >> (k * bits)) & mask
        return out.reshape(-1)[:n]
    pad = (-flat.numel()) % bits
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    rows = flat.reshape(-1, bits)
    out = torch.empty((rows.shape[0], 8), dtype=torch.uint8, device=flat.device)
    for k in range(8):
        start = k * bits
        first, last = start // 8, (start + bits - 1) // 8
        code = rows[:, first] >> (start - 8 * first)
        if last != first:
            code = code | (rows[:, last] << (8 * last - start))
        out[:, k] = code & mask
    return out.reshape(-1)[:n]


@dataclass(frozen=True, eq=False)
class QuantizedTensor:
    """Packed codes plus scales/zeros: what a frozen quantizer or the blockquant codec holds.

    Attributes:
        packed: 1-D uint8 tensor of :func:`pack_bits` output.
        scales: ``(*lead, G)`` in fp16 or bf16.
        zeros: like ``scales``, or ``None`` for symmetric codes.
        shape: shape of the dense tensor.
        bits: code width, 2..8.
        group_size: values per group, ``None`` per channel.
    """

    packed: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None
    shape: tuple[int, ...]
    bits: int
    group_size: int | None

    def __post_init__(self) -> None:
        validate_bits(self.bits)
        validate_group_size(self.group_size)
        expected = scales_shape(self.shape, self.group_size)
        if tuple(self.scales.shape) != expected or (
            self.zeros is not None and tuple(self.zeros.shape) != expected
        ):
            raise ValueError(f"scales/zeros must have shape {expected} for a tensor of shape {self.shape}")
        if self.scales.dtype not in SCALE_DTYPES.values():
            raise ValueError(f"scales must be fp16 or bf16, got {self.scales.dtype}")
        if self.zeros is not None and self.zeros.dtype != self.scales.dtype:
            raise ValueError(f"zeros dtype {self.zeros.dtype} differs from scales dtype {self.scales.dtype}")
        n = math.prod(self.shape)
        if self.packed.dtype != torch.uint8 or self.packed.numel() != packed_size(n, self.bits):
            raise ValueError(
                f"packed codes must be {packed_size(n, self.bits)} uint8 bytes for shape {self.shape}"
            )

    @property
    def symmetric(self) -> bool:
        return self.zeros is None

    @classmethod
    def from_codes(
        cls,
        codes: torch.Tensor,
        scales: torch.Tensor,
        zeros: torch.Tensor | None,
        bits: int,
        group_size: int | None,
    ) -> QuantizedTensor:
        """Pack uint8 ``codes`` (as from :func:`quantize`) together with their scales/zeros."""
        return cls(pack_bits(codes, bits), scales, zeros, tuple(codes.shape), bits, group_size)

    def codes(self) -> torch.Tensor:
        """The unpacked uint8 codes, shaped like the dense tensor."""
        return unpack_bits(self.packed, self.bits, math.prod(self.shape)).reshape(self.shape)

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The dense tensor these codes stand for."""
        return dequantize(
            self.codes(), self.scales, self.zeros, bits=self.bits, group_size=self.group_size, dtype=dtype
        )
