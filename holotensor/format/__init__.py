"""File formats: HCT V2 (holotensor's own), safetensors streaming, and the upstream HCTN/HTNS."""

from holotensor.format.hct2 import MAGIC, HCT2Reader, HCT2Writer, StoredFragment
from holotensor.format.hct2_header import CodecRecord, FragmentEntry, QualityPoint, TensorEntry
from holotensor.format.hctn import HctnBlockEntry, HctnReader, HctnVerification, encode_hctn, write_hctn
from holotensor.format.hctn_header import (
    HctnAlgorithm,
    HctnDType,
    HctnHeader,
    HctnQuantization,
    QuantizationScheme,
)
from holotensor.format.htns import (
    HtnsEncoding,
    HtnsEntry,
    HtnsFragment,
    HtnsHeader,
    HtnsReader,
    HtnsVerification,
    encode_htns,
    write_htns,
)
from holotensor.format.sniff import sniff

__all__ = [
    "MAGIC",
    "CodecRecord",
    "FragmentEntry",
    "HCT2Reader",
    "HCT2Writer",
    "HctnAlgorithm",
    "HctnBlockEntry",
    "HctnDType",
    "HctnHeader",
    "HctnQuantization",
    "HctnReader",
    "HctnVerification",
    "HtnsEncoding",
    "HtnsEntry",
    "HtnsFragment",
    "HtnsHeader",
    "HtnsReader",
    "HtnsVerification",
    "QualityPoint",
    "QuantizationScheme",
    "StoredFragment",
    "TensorEntry",
    "encode_hctn",
    "encode_htns",
    "sniff",
    "write_hctn",
    "write_htns",
]
