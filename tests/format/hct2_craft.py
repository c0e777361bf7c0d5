"""Build HCT V2 files byte by byte, so tests can hand readers hostile but well-checksummed headers."""

from __future__ import annotations

import json
import struct
from typing import Any

import xxhash

from holotensor.format.hct2 import MAGIC

PREAMBLE = struct.Struct("<8sHHIQQQ24s")


def craft(header: dict[str, Any] | bytes, data: bytes = b"", *, major: int = 2, minor: int = 0) -> bytes:
    """A file with ``data`` (padded to 64) in the data section and ``header`` after it."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    body = data + bytes(-len(data) % 64)
    offset = 64 + len(body)
    head = PREAMBLE.pack(MAGIC, major, minor, 0, offset, len(raw), 0, bytes(24))
    digest = xxhash.xxh3_64_intdigest(head[:32] + raw)
    return PREAMBLE.pack(MAGIC, major, minor, 0, offset, len(raw), digest, bytes(24)) + body + raw


def tensor_doc(name: str = "t", **over: Any) -> dict[str, Any]:
    doc = {
        "name": name,
        "dtype": "U8",
        "shape": [4],
        "codec": {"name": "lossless", "version": 1, "config": {}, "params": {}},
        "fragments": [
            {
                "offset": 64,
                "size": 4,
                "raw_size": 4,
                "coding": "raw",
                "coding_params": {},
                "xxh3": f"{xxhash.xxh3_64_intdigest(b'abcd'):016x}",
            }
        ],
        "quality": [],
    }
    doc.update(over)
    return doc
