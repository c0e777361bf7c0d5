"""The "raw" entropy coding: stored bytes are the payload itself.

For payloads that no coder shrinks (and for debugging); decoding is one copy, on a GPU a plain
device copy. The container's per-fragment checksum is its only protection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from holotensor.entropy.base import EntropyCoder, register_coder
from holotensor.errors import FormatError

__all__ = ["RawCoder"]


@register_coder("raw")
class RawCoder(EntropyCoder):
    """Identity coding with empty parameters.

    Example:
        >>> stored, params = RawCoder().encode(memoryview(b"xyz"), {})
        >>> stored, params
        (b'xyz', {})
    """

    def encode(self, data: memoryview, options: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
        if options:
            raise ValueError(f"the raw coding takes no options, got {sorted(options)}")
        return bytes(data), {}

    def check(self, params: Mapping[str, Any], stored_size: int, raw_size: int) -> None:
        """Raises ``FormatError`` unless the params are empty and both sizes agree."""
        if params:
            raise FormatError(f"raw coding takes no params, got {sorted(params)}")
        if stored_size != raw_size:
            raise FormatError(f"raw fragment stores {stored_size} bytes but declares {raw_size}")

    def decode(self, stored: memoryview, params: Mapping[str, Any], raw_size: int) -> bytearray:
        self.check(params, len(stored), raw_size)
        return bytearray(stored)
