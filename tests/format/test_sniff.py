"""Container sniffing by magic bytes."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from holotensor.format.hctn import encode_hctn
from holotensor.format.htns import HtnsEncoding, encode_htns
from holotensor.format.sniff import sniff


def test_sniff_bytes() -> None:
    assert sniff(encode_hctn(torch.zeros(3))) == "hctn"
    assert sniff(encode_htns([b"a"], encoding=HtnsEncoding.SPECTRAL, shape=(1,))) == "htns"
    assert sniff(b"\x89HCT\r\n\x1a\n" + bytes(56)) == "hct2"
    header = b'{"__metadata__":{}}'
    assert sniff(len(header).to_bytes(8, "little") + header) == "safetensors"
    assert sniff((1000).to_bytes(8, "little") + header) is None  # header longer than the data
    assert sniff(b"") is None and sniff(b"HCT") is None and sniff(b"PK\x03\x04" + bytes(20)) is None


def test_sniff_files(tmp_path: os.PathLike[str]) -> None:
    st = os.path.join(tmp_path, "m.safetensors")
    save_file({"w": torch.ones(2, 2)}, st)
    assert sniff(st) == "safetensors"
    hctn = os.path.join(tmp_path, "w.hct")
    with open(hctn, "wb") as f:
        f.write(encode_hctn(torch.zeros(3)))
    assert sniff(hctn) == "hctn"
    with pytest.raises(FileNotFoundError):
        sniff(os.path.join(tmp_path, "missing"))
