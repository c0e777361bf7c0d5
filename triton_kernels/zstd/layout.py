"""Status codes and the block table shared by the zstd kernels.

A counting pass of the parse kernel sizes the table (one slot per block, frames in order); the
parse pass fills it; the later kernels read it. A slot's fields (int64):

============= ==============================================================================
KIND          0 unused, 1 raw block, 2 RLE block, 3 compressed block
SRC           absolute stored position of the block content
OUT           absolute output position of the block (known after the sequence size pass)
SIZE          decoded size (-1 until the sequence size pass for blocks with sequences)
LIT           literals type: 0 raw, 1 RLE, 2 Huffman with a tree, 3 treeless Huffman
LIT_SRC       raw/RLE literal bytes, or the Huffman tree description
NLIT          regenerated literal count
STREAMS       start of the Huffman streams (jump table included) / LIT_END: their end
NSTREAMS      1 or 4
TABLE         slot whose Huffman table the literals use
SEQ/SEQ_END   the sequences section after its count header, and the block end
NSEQ          Number_of_Sequences
ROW_LL/OF/ML  FSE table rows chosen for the block (sequence size pass)
BITS          start of the sequence bitstream (sequence size pass)
FRAME         the frame the block belongs to
============= ==============================================================================
"""

from __future__ import annotations

import triton.language as tl

__all__ = [
    "STATUS_BAD_HEADER",
    "STATUS_BAD_HUFFMAN",
    "STATUS_BAD_LITERALS",
    "STATUS_BAD_SEQUENCES",
    "STATUS_BAD_STREAM",
    "STATUS_FALLBACK",
    "STATUS_NAMES",
    "STATUS_OK",
    "STATUS_OVERSIZE",
    "STATUS_SIZE_MISMATCH",
    "STATUS_TRUNCATED",
]

STATUS_OK = 0
STATUS_FALLBACK = 1
"""Valid zstd the kernels do not decode (dictionaries, skippable frames, too many blocks): decode
this frame on the CPU with libzstd."""
STATUS_TRUNCATED = 2
STATUS_BAD_HEADER = 3
STATUS_OVERSIZE = 4
STATUS_SIZE_MISMATCH = 5
STATUS_BAD_LITERALS = 6
STATUS_BAD_HUFFMAN = 7
STATUS_BAD_STREAM = 8
STATUS_BAD_SEQUENCES = 9

STATUS_NAMES = {
    STATUS_OK: "ok",
    STATUS_FALLBACK: "needs the CPU decoder",
    STATUS_TRUNCATED: "truncated frame",
    STATUS_BAD_HEADER: "bad frame or block header",
    STATUS_OVERSIZE: "decodes past its output slot or block maximum",
    STATUS_SIZE_MISMATCH: "content size differs from the output slot",
    STATUS_BAD_LITERALS: "bad literals section",
    STATUS_BAD_HUFFMAN: "bad Huffman tree description",
    STATUS_BAD_STREAM: "corrupt Huffman literal stream",
    STATUS_BAD_SEQUENCES: "bad sequences section",
}
"""What each per-frame status code means; codes >= 2 are corrupt data (libzstd fails too)."""

# kernel-side copies (Triton reads module globals only as constexpr)
OK = tl.constexpr(STATUS_OK)
FALLBACK = tl.constexpr(STATUS_FALLBACK)
TRUNCATED = tl.constexpr(STATUS_TRUNCATED)
BAD_HEADER = tl.constexpr(STATUS_BAD_HEADER)
OVERSIZE = tl.constexpr(STATUS_OVERSIZE)
SIZE_MISMATCH = tl.constexpr(STATUS_SIZE_MISMATCH)
BAD_LITERALS = tl.constexpr(STATUS_BAD_LITERALS)
BAD_HUFFMAN = tl.constexpr(STATUS_BAD_HUFFMAN)
BAD_STREAM = tl.constexpr(STATUS_BAD_STREAM)
BAD_SEQUENCES = tl.constexpr(STATUS_BAD_SEQUENCES)

KIND = tl.constexpr(0)
SRC = tl.constexpr(1)
OUT = tl.constexpr(2)
SIZE = tl.constexpr(3)
LIT = tl.constexpr(4)
LIT_SRC = tl.constexpr(5)
NLIT = tl.constexpr(6)
STREAMS = tl.constexpr(7)
LIT_END = tl.constexpr(8)
NSTREAMS = tl.constexpr(9)
TABLE = tl.constexpr(10)
SEQ = tl.constexpr(11)
SEQ_END = tl.constexpr(12)
NSEQ = tl.constexpr(13)
ROW_LL = tl.constexpr(14)
ROW_OF = tl.constexpr(15)
ROW_ML = tl.constexpr(16)
BITS = tl.constexpr(17)
FRAME = tl.constexpr(18)
NFIELDS = 19

# frame table fields
FR_NBLOCKS = tl.constexpr(0)
FR_HAS_SEQ = tl.constexpr(1)
FR_WINDOW = tl.constexpr(2)
FR_FIRST = tl.constexpr(3)
FR_FIELDS = 4

BLOCK_MAX = tl.constexpr(1 << 17)
