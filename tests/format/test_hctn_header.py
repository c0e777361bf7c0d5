"""HCTN header and quantization record: upstream goldens and header-level rules."""

from __future__ import annotations

import pytest
import torch
import xxhash

from holotensor.errors import FormatError
from holotensor.format.hctn import HctnReader, encode_hctn
from holotensor.format.hctn_header import (
    HctnAlgorithm,
    HctnDType,
    HctnHeader,
    HctnQuantization,
    QuantizationScheme,
    byte_size_range,
)

GOLDEN_HEADER = bytes.fromhex(
    "4843544e 02000000 01 01 0300 0020000000000000 d204000000000000 00400000 01000000 02 "
    "4000000000000000 4000000000000000 000000 a7fe9d9fd4af3a30".replace(" ", "")
)
GOLDEN_QUANT = bytes.fromhex("010100 3cf8 800000".replace(" ", ""))


def test_xxh3_sanity_values() -> None:
    assert xxhash.xxh3_64_intdigest(b"") == 0x2D06800538D394C2
    assert xxhash.xxh3_64_intdigest(b"abc") == 0x78AF5F94892F3950
    assert xxhash.xxh3_64_intdigest(bytes([1, 2, 3, 4, 5])) == 0x59B68387649283C1


def test_golden_header_bytes() -> None:
    header = HctnHeader(2, HctnAlgorithm.ZSTD, HctnDType.F16, 0x0003, 8192, 1234, 16384, 1, (64, 64))
    assert header.to_bytes() == GOLDEN_HEADER
    assert int.from_bytes(GOLDEN_HEADER[56:], "little") == 0x303AAFD49F9DFEA7


def test_golden_quantization_record() -> None:
    q = HctnQuantization(QuantizationScheme.GPTQ_INT4, True, 1.0, -8, 128)
    assert q.to_bytes() == GOLDEN_QUANT
    assert HctnQuantization.from_bytes(GOLDEN_QUANT) == q
    assert HctnQuantization.from_bytes(bytes.fromhex("0107003cf8800000")).per_group  # any non-zero


def test_quantization_record_limits() -> None:
    with pytest.raises(ValueError, match="24 bits"):
        HctnQuantization(QuantizationScheme.NONE, False, 1.0, 0, 1 << 24)
    with pytest.raises(ValueError, match="i8"):
        HctnQuantization(QuantizationScheme.NONE, False, 1.0, 128, 1)
    data = bytearray(
        encode_hctn(
            bytes(4), dtype=HctnDType.I8, shape=(4,), quantization=HctnQuantization.from_bytes(GOLDEN_QUANT)
        )
    )
    data[64] = 5
    with pytest.raises(FormatError, match="quantization scheme 5"):
        HctnReader(bytes(data))


def test_to_bytes_writes_only_v2_rank_le_2() -> None:
    with pytest.raises(ValueError, match="only version-2"):
        HctnHeader(1, HctnAlgorithm.LZ4, HctnDType.F32, 0, 0, 0, 1, 0, ()).to_bytes()
    with pytest.raises(ValueError, match="rank 3"):
        HctnHeader(2, HctnAlgorithm.LZ4, HctnDType.F32, 3, 0, 0, 1, 0, (1, 1, 1)).to_bytes()


def test_size_rules() -> None:
    assert byte_size_range(HctnDType.F32, 6) == (24, 24)
    assert byte_size_range(HctnDType.BF16, 6) == (12, 12)
    assert byte_size_range(HctnDType.I4, 65) == (33, 33 + 2 * 3)  # packed, or packed + f16 per 32
    assert HctnDType.I4.element_bytes == 1 and HctnDType.F16.element_bytes == 2
    with pytest.raises(TypeError, match="int64"):
        HctnDType.from_torch(torch.int64)
