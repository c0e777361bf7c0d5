"""dtype names as they appear in files (safetensors' short codes) and their torch twins."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["DTypeInfo", "dtype_info", "from_torch", "supported_dtypes"]


@dataclass(frozen=True)
class DTypeInfo:
    """A storable dtype.

    Attributes:
        name: the file name of the dtype ("BF16", "F32", ...), as in safetensors.
        torch_dtype: the matching torch dtype.
        itemsize: bytes per element.
        kind: "float", "int", "uint" or "bool".
        exponent_bits / mantissa_bits: IEEE-style field widths for floats, 0 otherwise.
    """

    name: str
    torch_dtype: torch.dtype
    itemsize: int
    kind: str
    exponent_bits: int = 0
    mantissa_bits: int = 0


def _table() -> dict[str, DTypeInfo]:
    rows = [
        ("F64", "float64", 8, "float", 11, 52),
        ("F32", "float32", 4, "float", 8, 23),
        ("F16", "float16", 2, "float", 5, 10),
        ("BF16", "bfloat16", 2, "float", 8, 7),
        ("F8_E4M3", "float8_e4m3fn", 1, "float", 4, 3),
        ("F8_E5M2", "float8_e5m2", 1, "float", 5, 2),
        ("F8_E8M0", "float8_e8m0fnu", 1, "float", 8, 0),
        ("I64", "int64", 8, "int", 0, 0),
        ("I32", "int32", 4, "int", 0, 0),
        ("I16", "int16", 2, "int", 0, 0),
        ("I8", "int8", 1, "int", 0, 0),
        ("U64", "uint64", 8, "uint", 0, 0),
        ("U32", "uint32", 4, "uint", 0, 0),
        ("U16", "uint16", 2, "uint", 0, 0),
        ("U8", "uint8", 1, "uint", 0, 0),
        ("BOOL", "bool", 1, "bool", 0, 0),
    ]
    table = {}
    for name, attr, size, kind, e, m in rows:
        td = getattr(torch, attr, None)  # newer dtypes are gated on the installed torch
        if td is not None:
            table[name] = DTypeInfo(name, td, size, kind, e, m)
    return table


_BY_NAME = _table()
_BY_TORCH = {info.torch_dtype: info for info in _BY_NAME.values()}


def supported_dtypes() -> list[str]:
    """File names of every dtype this installation can store."""
    return list(_BY_NAME)


def dtype_info(name: str) -> DTypeInfo:
    """Look up a dtype by its file name; raises ``KeyError`` listing the known names."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown dtype {name!r}; known: {', '.join(_BY_NAME)}") from None


def from_torch(dtype: torch.dtype) -> DTypeInfo:
    """Look up a torch dtype; raises ``TypeError`` for dtypes holotensor cannot store."""
    try:
        return _BY_TORCH[dtype]
    except KeyError:
        raise TypeError(
            f"holotensor cannot store dtype {dtype}; supported: {', '.join(str(d.torch_dtype) for d in _BY_TORCH.values())}"
        ) from None
