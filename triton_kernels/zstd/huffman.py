"""Huffman literals on the device (RFC 8878 §4.2): table building and stream decoding.

:func:`huffman_table_kernel` runs one program per block that carries a tree description. The
weights come as 4-bit fields or FSE-compressed (two interleaved states, §4.2.1.2); the last
weight is implied by completing a power of two. Codes are handed out by (weight, symbol), so a
symbol's first table cell is the span of all lighter weights plus the spans of the lighter
symbols of its own weight, both from one-hot cumulative sums; the table is then filled without
any per-cell loop by marking each symbol's first cell and taking a cumulative sum. A table row
holds ``symbol | nbits << 8`` per ``Max_Number_of_Bits``-bit window.

:func:`huffman_literals_kernel` gives one lane to each (block, stream): every lane walks its
backward bitstream for its known symbol count, so a batch of 128 KiB frames with 4 streams runs
4 lanes per frame. Treeless blocks read the table of the frame's last tree.
"""

from __future__ import annotations

import triton
import triton.language as tl

from triton_kernels.zstd import layout as L
from triton_kernels.zstd.bits import backward_peek, backward_start, bit_length, load_le
from triton_kernels.zstd.fse import NSYM, build_table, read_distribution

__all__: list[str] = []  # kernels launched by triton_kernels.zstd.decode

HUFFMAN_CELLS = tl.constexpr(2048)
"""Cells of a Huffman table row (``Max_Number_of_Bits`` <= 11)."""

_WEIGHT_CELLS = tl.constexpr(64)  # FSE table of the weights: accuracy log <= 6


@triton.jit
def _fse_weights(src_ptr, start, stop, fse_row, idx):
    """Weights of an FSE-compressed tree description ``[start, stop)``: (weights, count, ok)."""
    probs, log, stream, ok = read_distribution(src_ptr, start, stop, 6, 12, NSYM)
    if ok:
        build_table(probs, log, fse_row, NSYM, 64, 64)
    tl.debug_barrier()
    bitpos = backward_start(src_ptr, stream, stop)
    ok = ok & (bitpos >= 0) & (stream < stop)
    st1 = backward_peek(src_ptr, stream, stop, bitpos, log, 4)
    bitpos -= log
    st2 = backward_peek(src_ptr, stream, stop, bitpos, log, 4)
    bitpos -= log
    weights = tl.zeros(idx.shape, dtype=tl.int64)
    n = start * 0
    turn = start * 0
    fin = start * 0
    while ok & (fin == 0) & (n <= 255):
        state = tl.where(turn == 0, st1, st2)
        cell = tl.load(fse_row + state, mask=ok & (state < 64), other=0).to(tl.int64)
        weights = tl.where(idx == n, cell & 255, weights)
        n += 1
        nbits = (cell >> 8) & 255
        nxt = (cell >> 16) + backward_peek(src_ptr, stream, stop, bitpos, nbits, 4)
        bitpos -= nbits
        st1 = tl.where(turn == 0, nxt, st1)
        st2 = tl.where(turn == 1, nxt, st2)
        if bitpos < 0:
            other = tl.where(turn == 0, st2, st1)
            cell = tl.load(fse_row + other, mask=other < 64, other=0).to(tl.int64)
            weights = tl.where(idx == n, cell & 255, weights)
            n += 1
            fin = fin * 0 + 1
        turn = 1 - turn
    return weights, n, ok & (fin == 1) & (n <= 255)


@triton.jit
def huffman_table_kernel(
    src_ptr, blk_ptr, tree_slots_ptr, status_ptr, table_ptr, rank_ptr, fse_ptr, max_bits_ptr
):
    """Program ``i`` builds the table of block ``tree_slots[i]`` into table row ``i``."""
    i = tl.program_id(0).to(tl.int64)
    slot = tl.load(tree_slots_ptr + i)
    row = blk_ptr + slot * L.NFIELDS
    frame = tl.load(row + L.FRAME)
    pos = tl.load(row + L.LIT_SRC)
    stop = tl.load(row + L.STREAMS)
    idx = tl.arange(0, 256).to(tl.int64)
    table = table_ptr + i * HUFFMAN_CELLS
    ranks = rank_ptr + i * 256
    header = load_le(src_ptr, pos, 1, stop, 1)
    ok = tl.load(status_ptr + frame) == 0
    if header >= 128:
        n = header - 127
        packed = tl.load(src_ptr + pos + 1 + idx // 2, mask=(idx < n) & (pos + 1 + idx // 2 < stop), other=0)
        weights = tl.where(idx % 2 == 0, packed >> 4, packed & 15).to(tl.int64)
        weights = tl.where(idx < n, weights, 0)
    else:
        weights, n, fse_ok = _fse_weights(src_ptr, pos + 1, stop, fse_ptr + i * _WEIGHT_CELLS, idx)
        ok = ok & fse_ok
    ok = ok & (tl.max(weights, axis=0) <= 11)
    span = tl.where(weights > 0, tl.full(weights.shape, 1, tl.int64) << tl.maximum(weights - 1, 0), 0)
    total = tl.sum(span, axis=0)
    max_bits = bit_length(total, 13)
    rest = (tl.full(total.shape, 1, tl.int64) << max_bits) - total
    ok = ok & (total > 0) & (max_bits <= 11) & ((rest & (rest - 1)) == 0) & (n <= 255)
    weights = tl.where(idx == n, bit_length(rest, 13), weights)
    ok = ok & (tl.sum((weights == 1).to(tl.int32), axis=0) >= 2)
    if ok:
        level = tl.arange(0, 16).to(tl.int64)
        onehot = ((weights[:, None] == level[None, :]) & (weights[:, None] > 0)).to(tl.int64)
        in_level = tl.sum(onehot * (tl.cumsum(onehot, axis=0) - 1), axis=1)
        count = tl.sum(onehot, axis=0)
        level_span = tl.where(level > 0, count << tl.maximum(level - 1, 0), 0)
        span_before = tl.cumsum(level_span, axis=0) - level_span
        count_before = tl.cumsum(count, axis=0) - count
        first = tl.sum(onehot * span_before[None, :], axis=1) + (in_level << tl.maximum(weights - 1, 0))
        rank = tl.sum(onehot * count_before[None, :], axis=1) + in_level
        present = weights > 0
        size = tl.full(total.shape, 1, tl.int64) << max_bits
        cell = tl.arange(0, HUFFMAN_CELLS).to(tl.int64)
        live = cell < size
        tl.store(table + cell, tl.zeros([HUFFMAN_CELLS], dtype=tl.int32), mask=live)
        tl.debug_barrier()
        tl.store(table + first, tl.full([256], 1, tl.int32), mask=present)
        tl.store(ranks + rank, (idx | ((max_bits + 1 - weights) << 8)).to(tl.int32), mask=present)
        tl.debug_barrier()
        owner = tl.cumsum(tl.load(table + cell, mask=live, other=0), axis=0) - 1
        entry = tl.load(ranks + owner, mask=live, other=0)
        tl.debug_barrier()
        tl.store(table + cell, entry, mask=live)
        tl.store(max_bits_ptr + i, max_bits)
    else:
        tl.store(max_bits_ptr + i, max_bits * 0)
        tl.atomic_max(status_ptr + frame, L.BAD_HUFFMAN)


@triton.jit
def huffman_literals_kernel(
    src_ptr,
    out_ptr,
    blk_ptr,
    strm_ptr,
    status_ptr,
    table_row_ptr,
    table_ptr,
    max_bits_ptr,
    nslots,
    LANES: tl.constexpr,
):
    """Lane ``(slot, stream)`` decodes one Huffman stream into the block's literal area."""
    lane = tl.program_id(0).to(tl.int64) * LANES + tl.arange(0, LANES).to(tl.int64)
    slot = lane // 4
    stream = lane % 4
    live = slot < nslots
    row = blk_ptr + slot * L.NFIELDS
    kind = tl.load(row + L.KIND, mask=live, other=0)
    lit = tl.load(row + L.LIT, mask=live, other=0)
    nstreams = tl.load(row + L.NSTREAMS, mask=live, other=0)
    frame = tl.load(row + L.FRAME, mask=live, other=0)
    live = live & (kind == 3) & (lit >= 2) & (stream < nstreams)
    live = live & (tl.load(status_ptr + frame, mask=live, other=1) == 0)
    tslot = tl.load(row + L.TABLE, mask=live, other=-1)
    trow = tl.load(table_row_ptr + tslot, mask=live & (tslot >= 0), other=-1)
    live = live & (trow >= 0)
    width = tl.load(max_bits_ptr + trow, mask=live, other=0)
    live = live & (width > 0)
    info = strm_ptr + slot * 12 + stream * 3
    start = tl.load(info, mask=live, other=0)
    end = tl.load(info + 1, mask=live, other=0)
    count = tl.load(info + 2, mask=live, other=0)
    nlit = tl.load(row + L.NLIT, mask=live, other=0)
    dst = (
        tl.load(row + L.OUT, mask=live, other=0)
        + tl.load(row + L.SIZE, mask=live, other=0)
        - nlit
        + stream * ((nlit + 3) // 4)
    )
    bitpos = backward_start(src_ptr, start, end)
    cells = table_ptr + trow * HUFFMAN_CELLS
    todo = tl.max(tl.where(live, count, 0), axis=0)
    k4 = tl.arange(0, 4).to(tl.int64)
    code_mask = (tl.full(width.shape, 1, tl.int64) << width) - 1
    i = 0
    while i < todo:
        act = live & (i < count)
        # backward_peek_lanes, inlined: the interpreter pays per helper call
        low = bitpos - width
        first = low >> 3
        rel = first[:, None] + k4[None, :]
        where = start[:, None] + rel
        byte = tl.load(src_ptr + where, mask=(rel >= 0) & (where < end[:, None]), other=0)
        word = tl.sum(byte.to(tl.int64) << (8 * k4)[None, :], axis=1)
        code = (word >> (low - (first << 3))) & code_mask
        entry = tl.load(cells + code, mask=act, other=0)
        tl.store(out_ptr + dst + i, entry.to(tl.uint8), mask=act)
        bitpos -= tl.where(act, entry >> 8, 0)
        i += 1
    # bitpos only falls, so a stream that ran dry (or is corrupt: -1) ends below zero
    bad = live & (bitpos != 0)
    tl.atomic_max(status_ptr + frame, tl.full([LANES], L.BAD_STREAM, tl.int32), mask=bad)
