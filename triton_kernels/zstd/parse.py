"""Frame and block headers -> block table, one program per frame (RFC 8878 §3.1.1).

Scalar code: a frame has a handful of blocks, each with a few header fields; what costs time
(literals, sequences, copies) is left to the wide kernels. Every size read from the data is
checked against the frame's bytes, the block maximum and the output slot before it is recorded,
so the later kernels may trust the table. A block with sequences has an unknown decoded size
here; the sequence size pass (:mod:`triton_kernels.zstd.sequences`) completes those frames.
"""

from __future__ import annotations

import triton
import triton.language as tl

from triton_kernels.zstd import layout as L
from triton_kernels.zstd.bits import load_le

__all__: list[str] = []  # the kernel is launched by triton_kernels.zstd.decode

_MAGIC = tl.constexpr(0xFD2FB528)
_SKIPPABLE_MIN = tl.constexpr(0x184D2A50)
_SKIPPABLE_MAX = tl.constexpr(0x184D2A5F)


@triton.jit
def _literals_header(src_ptr, pos, block_end, room, block_max):
    """Parse the literals section at ``pos``. Returns (status, type, regenerated, data start,
    data end = end of the section, streams start, stream count)."""
    b0 = load_le(src_ptr, pos, 1, block_end, 1)
    kind = b0 & 3
    fmt = (b0 >> 2) & 3
    status = 0
    # raw / RLE: 1, 2 or 3 header bytes
    hsize = tl.where(kind < 2, tl.where((fmt & 1) == 0, 1, (fmt >> 1) + 2), tl.where(fmt < 2, 3, fmt + 2))
    value = load_le(src_ptr, pos, hsize, block_end, 8)
    bits = tl.where(fmt == 3, 18, tl.where(fmt == 2, 14, 10))
    mask = (tl.full(bits.shape, 1, tl.int64) << bits) - 1
    regen = tl.where(kind < 2, tl.where(hsize == 1, value >> 3, value >> 4), (value >> 4) & mask)
    csize = tl.where(kind < 2, tl.where(kind == 0, regen, 1), (value >> (4 + bits)) & mask)
    start = pos + hsize
    stop = start + csize
    nstreams = tl.where(kind < 2, 0, tl.where(fmt == 0, 1, 4))
    if pos + hsize > block_end:
        status = L.TRUNCATED
    elif regen > block_max:
        status = L.BAD_LITERALS
    elif regen > room:
        status = L.OVERSIZE
    elif stop > block_end or (kind >= 2) & (csize == 0) or (nstreams == 4) & (regen < 6):
        status = L.BAD_LITERALS
    streams = start
    if kind == 2:
        tree = load_le(src_ptr, start, 1, stop, 1)
        streams = tl.where(tree >= 128, start + 1 + (tree - 127 + 1) // 2, start + 1 + tree)
        if (tree == 0) | (streams >= stop):
            status = tl.maximum(status, L.BAD_HUFFMAN)
    return status, kind, regen, start, stop, streams, nstreams


@triton.jit
def _streams(src_ptr, strm_ptr, slot, streams, stop, regen, nstreams):
    """Split the Huffman streams (jump table for 4) and record (start, end, count) of each."""
    status = 0
    base = strm_ptr + slot * 12
    if nstreams == 1:
        tl.store(base + 0, streams)
        tl.store(base + 1, stop)
        tl.store(base + 2, regen)
        for s in tl.static_range(1, 4):
            tl.store(base + 3 * s + 2, streams * 0)
    else:
        jump = load_le(src_ptr, streams, 6, stop, 8)
        s1 = jump & 0xFFFF
        s2 = (jump >> 16) & 0xFFFF
        s3 = (jump >> 32) & 0xFFFF
        s4 = stop - streams - 6 - s1 - s2 - s3
        if (stop - streams < 6) | (s1 == 0) | (s2 == 0) | (s3 == 0) | (s4 < 1):
            status = L.BAD_LITERALS
        per = (regen + 3) // 4
        p0 = streams + 6
        tl.store(base + 0, p0)
        tl.store(base + 1, p0 + s1)
        tl.store(base + 2, per)
        tl.store(base + 3, p0 + s1)
        tl.store(base + 4, p0 + s1 + s2)
        tl.store(base + 5, per)
        tl.store(base + 6, p0 + s1 + s2)
        tl.store(base + 7, p0 + s1 + s2 + s3)
        tl.store(base + 8, per)
        tl.store(base + 9, p0 + s1 + s2 + s3)
        tl.store(base + 10, stop)
        tl.store(base + 11, regen - 3 * per)
    return status


@triton.jit
def parse_frames_kernel(
    src_ptr,
    frame_off_ptr,
    frame_size_ptr,
    out_off_ptr,
    out_size_ptr,
    blk_ptr,
    strm_ptr,
    frame_ptr,
    status_ptr,
    COUNT: tl.constexpr,
):
    """One program per frame: header checks, then its blocks.

    With ``COUNT`` only the block headers are walked (at most one block per 3 stored bytes) and
    the count is stored in the frame table; otherwise the frame's slots start at its
    ``FR_FIRST`` and there are at most ``FR_NBLOCKS`` (the count) of them.
    """
    f = tl.program_id(0).to(tl.int64)
    fbase = tl.load(frame_off_ptr + f)
    fsize = tl.load(frame_size_ptr + f)
    end = fbase + fsize
    out_base = tl.load(out_off_ptr + f)
    out_size = tl.load(out_size_ptr + f)
    status = 0
    magic = load_le(src_ptr, fbase, 4, end, 4)
    fhd = load_le(src_ptr, fbase + 4, 1, end, 1)
    fcs_flag = fhd >> 6
    single = (fhd >> 5) & 1
    checksum = (fhd >> 2) & 1
    did_flag = fhd & 3
    did_size = tl.where(did_flag == 3, 4, did_flag)
    fcs_size = tl.where(fcs_flag == 0, single, tl.full(fhd.shape, 1, tl.int64) << fcs_flag)
    header = 1 + (1 - single) + did_size + fcs_size
    if fsize < 4:
        status = L.TRUNCATED
    elif (magic >= _SKIPPABLE_MIN) & (magic <= _SKIPPABLE_MAX):
        status = L.FALLBACK
    elif magic != _MAGIC:
        status = L.BAD_HEADER
    elif fsize < 5:
        status = L.TRUNCATED
    elif ((fhd >> 3) & 1) != 0:
        status = L.BAD_HEADER
    elif 4 + header > fsize:
        status = L.TRUNCATED
    p = fbase + 5
    wd = load_le(src_ptr, p, 1 - single, end, 1)
    wlog = 10 + (wd >> 3)
    window = (tl.full(wd.shape, 1, tl.int64) << tl.minimum(wlog, 41)) * (8 + (wd & 7)) // 8
    if (single == 0) & (wlog > 31) & (status == 0):
        status = L.BAD_HEADER
    p += 1 - single
    did = load_le(src_ptr, p, did_size, end, 4)
    if (did != 0) & (status == 0):
        status = L.FALLBACK
    p += did_size
    fcs = load_le(src_ptr, p, fcs_size, end, 8) + tl.where(fcs_size == 2, 256, 0)
    p += fcs_size
    window = tl.where(single == 1, fcs, window)
    if (fcs_size > 0) & (fcs != out_size) & (status == 0):
        status = L.SIZE_MISMATCH
    block_max = tl.minimum(window, L.BLOCK_MAX)

    if COUNT:
        first = fbase * 0
        capacity = fsize // 3 + 1
    else:
        first = tl.load(frame_ptr + f * L.FR_FIELDS + L.FR_FIRST)
        capacity = tl.load(frame_ptr + f * L.FR_FIELDS + L.FR_NBLOCKS)
    decoded = fbase * 0  # bytes of the blocks before the first one with sequences
    has_seq = fbase * 0
    last_tree = fbase * 0 - 1
    done = fbase * 0
    j = 0
    while (status == 0) & (done == 0) & (j < capacity):
        slot = first + j
        row = blk_ptr + slot * L.NFIELDS
        bh = load_le(src_ptr, p, 3, end, 4)
        btype = (bh >> 1) & 3
        bsize = bh >> 3
        content = p + 3
        room = out_size - decoded
        stored = tl.where(btype == 1, 1, bsize)
        if p + 3 > end:
            status = L.TRUNCATED
        elif btype == 3 or bsize > block_max:
            status = L.BAD_HEADER
        elif content + stored > end:
            status = L.TRUNCATED
        elif (btype < 2) & (bsize > room):
            status = L.OVERSIZE
        if (status == 0) & (not COUNT):
            tl.store(row + L.FRAME, f)
            tl.store(row + L.KIND, btype + 1)
            tl.store(row + L.SRC, content)
            tl.store(row + L.OUT, out_base + decoded)
            tl.store(row + L.SIZE, bsize)
            tl.store(row + L.NSEQ, bsize * 0)
            if btype == 2:
                block_end = content + bsize
                lstat, lkind, regen, lstart, lstop, streams, nstreams = _literals_header(
                    src_ptr, content, block_end, room, block_max
                )
                status = lstat
                if (lkind == 3) & (last_tree < 0):
                    status = tl.maximum(status, L.BAD_LITERALS)
                if lkind == 2:
                    last_tree = slot
                tl.store(row + L.LIT, lkind)
                tl.store(row + L.LIT_SRC, lstart)
                tl.store(row + L.NLIT, regen)
                tl.store(row + L.STREAMS, streams)
                tl.store(row + L.LIT_END, lstop)
                tl.store(row + L.NSTREAMS, nstreams)
                tl.store(row + L.TABLE, last_tree)
                if (lkind >= 2) & (status == 0):
                    status = _streams(src_ptr, strm_ptr, slot, streams, lstop, regen, nstreams)
                # sequences section header (§3.1.1.3.2.1)
                s0 = load_le(src_ptr, lstop, 1, block_end, 1)
                s1 = load_le(src_ptr, lstop + 1, 1, block_end, 1)
                s2 = load_le(src_ptr, lstop + 2, 1, block_end, 1)
                shsize = tl.where(s0 < 128, 1, tl.where(s0 < 255, 2, 3))
                nseq = tl.where(
                    s0 < 128, s0, tl.where(s0 < 255, ((s0 - 128) << 8) + s1, s1 + (s2 << 8) + 0x7F00)
                )
                if status == 0:
                    if lstop + shsize > block_end:
                        status = L.BAD_SEQUENCES
                    elif 3 * nseq > tl.minimum(room, block_max):
                        status = L.OVERSIZE
                    elif (nseq == 0) & (lstop + shsize != block_end) or (nseq > 0) & (
                        lstop + shsize >= block_end
                    ):
                        status = L.BAD_SEQUENCES
                tl.store(row + L.SEQ, lstop + shsize)
                tl.store(row + L.SEQ_END, block_end)
                tl.store(row + L.NSEQ, nseq)
                if nseq > 0:
                    has_seq = has_seq * 0 + 1
                    tl.store(row + L.SIZE, bsize * 0 - 1)
                else:
                    tl.store(row + L.SIZE, regen)
                    decoded += regen
            else:
                decoded += bsize
        p = content + stored
        done = bh & 1
        j += 1
    if COUNT:
        tl.store(frame_ptr + f * L.FR_FIELDS + L.FR_NBLOCKS, (fbase * 0 + j).to(tl.int64))
    else:
        if status == 0:
            if done == 0:
                status = L.BAD_HEADER  # more blocks than the counting pass found: cannot happen
            elif p + 4 * checksum != end:
                status = tl.where(p + 4 * checksum > end, L.TRUNCATED, L.BAD_HEADER)
            elif (has_seq == 0) & (decoded != out_size):
                status = L.SIZE_MISMATCH
        tl.store(frame_ptr + f * L.FR_FIELDS + L.FR_HAS_SEQ, has_seq)
        tl.store(frame_ptr + f * L.FR_FIELDS + L.FR_WINDOW, window)
        tl.store(status_ptr + f, status)
