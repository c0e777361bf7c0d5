"""File formats: HCT V2 (holotensor's own), safetensors streaming, and the upstream HCTN/HTNS."""

from holotensor.format.hct2 import MAGIC, HCT2Reader, HCT2Writer, StoredFragment
from holotensor.format.hct2_header import CodecRecord, FragmentEntry, QualityPoint, TensorEntry

__all__ = [
    "MAGIC",
    "CodecRecord",
    "FragmentEntry",
    "HCT2Reader",
    "HCT2Writer",
    "QualityPoint",
    "StoredFragment",
    "TensorEntry",
]
