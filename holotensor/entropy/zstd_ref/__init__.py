"""A reference zstd decoder (RFC 8878) in Python: the readable oracle for the GPU kernels.

Slow by design (pure Python bit reading, numpy for table building); use libzstd for real work.
"""

from holotensor.entropy.zstd_ref.frame import BlockInfo, FrameInfo, decompress, parse_frames
from holotensor.entropy.zstd_ref.literals import LiteralsInfo
from holotensor.entropy.zstd_ref.sequences import SequencesInfo

__all__ = ["BlockInfo", "FrameInfo", "LiteralsInfo", "SequencesInfo", "decompress", "parse_frames"]
