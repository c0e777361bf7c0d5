"""FSE table descriptions and decoding tables on the device (RFC 8878 §4.1.1).

:func:`read_distribution` is scalar code (one program reads one description, a few dozen
fields); :func:`build_table` spreads the symbols over the states with vector code: chunks of
positions of the fixed-step walk, each kept position taking the next symbol of the
``repeat(symbol, count)`` order, then one pass over the states in order to number each symbol's
cells (a one-hot cumulative sum). A table row holds one packed int32 per state::

    symbol | nbits << 8 | baseline << 16

The same two functions build the Huffman-weight tables (accuracy log <= 6), the sequence tables
(<= 9) and the predefined tables of §3.1.1.3.2.2.
"""

from __future__ import annotations

import triton
import triton.language as tl

from triton_kernels.zstd.bits import bit_length, forward_read

__all__: list[str] = []  # jit helpers only

NSYM = tl.constexpr(64)
"""Width of the probability vectors: every FSE alphabet of zstd has at most 53 symbols."""

TABLE_SIZE = tl.constexpr(512)
"""Cells of a table row: the largest accuracy log zstd allows is 9."""


@triton.jit
def read_distribution(ptr, start, end, max_log, max_symbol, NSYM: tl.constexpr):
    """Read the description at ``[start, end)``.

    Returns ``(probs, accuracy_log, end_byte, ok)``: ``probs`` a NSYM vector with -1 for "less
    than 1"; ``ok`` is False for a log over ``max_log``, symbols beyond ``max_symbol``, reads past
    ``end`` or fewer than two used symbols. Every loop is bounded by the symbol count.
    """
    idx = tl.arange(0, NSYM)
    total = (end - start) * 8
    ok = total >= 4
    log = forward_read(ptr, start, end, start * 0, 4) + 5
    ok = ok & (log <= max_log)
    bitpos = start * 0 + 4
    remaining = tl.where(ok, tl.full(log.shape, 1, tl.int64) << tl.minimum(log, 9), 0)
    nsym = start * 0
    probs = tl.zeros([NSYM], dtype=tl.int64)
    steps = 0
    while ok & (remaining > 0) & (steps <= NSYM):
        steps += 1
        ok = ok & (nsym <= max_symbol)
        if ok:
            max_value = remaining + 1
            width = bit_length(max_value, 11)
            short = (tl.full(width.shape, 1, tl.int64) << width) - 1 - max_value
            ok = ok & (bitpos + width - 1 <= total)
            value = forward_read(ptr, start, end, bitpos, width - 1)
            bitpos += width - 1
            if value >= short:
                ok = ok & (bitpos + 1 <= total)
                value += forward_read(ptr, start, end, bitpos, 1) << (width - 1)
                bitpos += 1
                if value >= (tl.full(width.shape, 1, tl.int64) << (width - 1)):
                    value -= short
            prob = value - 1
            probs = tl.where(idx == nsym, prob, probs)
            nsym += 1
            remaining -= tl.where(prob == -1, 1, prob)
            if prob == 0:
                repeat = start * 0 + 3
                runs = 0
                while ok & (repeat == 3) & (runs <= NSYM):
                    runs += 1
                    ok = ok & (bitpos + 2 <= total)
                    repeat = forward_read(ptr, start, end, bitpos, 2)
                    bitpos += 2
                    nsym += repeat
                    ok = ok & (nsym <= max_symbol)
    ok = ok & (remaining == 0) & (nsym <= NSYM)
    ok = ok & (tl.sum((probs != 0).to(tl.int32), axis=0) >= 2)
    return probs, log, start + (bitpos + 7) // 8, ok


@triton.jit
def build_table(probs, log, row_ptr, NSYM: tl.constexpr, CHUNK: tl.constexpr, TABLE: tl.constexpr):
    """Write the decoding table of ``probs`` (accuracy ``log``) into ``row_ptr[0 : 1 << log]``.

    ``probs`` must be a valid distribution (as :func:`read_distribution` checks): its positive
    counts plus its "less than 1" symbols fill ``1 << log`` cells.
    """
    sym_idx = tl.arange(0, NSYM)
    size = tl.full(log.shape, 1, tl.int64) << log
    low = probs == -1
    n_low = tl.sum(low.to(tl.int64), axis=0)
    counts = tl.where(probs > 0, probs, 0)
    cum_end = tl.cumsum(counts, axis=0)
    step = (size >> 1) + (size >> 3) + 3
    # 1) the fixed-step walk: the m-th kept position gets symbol #{s : cum_end[s] <= m}
    kept_before = size * 0
    for c in range(TABLE // CHUNK):
        k = c * CHUNK + tl.arange(0, CHUNK).to(tl.int64)
        pos = (k * step) & (size - 1)
        kept = (k < size) & (pos < size - n_low)
        m = kept_before + tl.cumsum(kept.to(tl.int64), axis=0) - kept.to(tl.int64)
        sym = tl.sum((cum_end[None, :] <= m[:, None]).to(tl.int64), axis=1)
        tl.store(row_ptr + pos, sym, mask=kept)
        kept_before += tl.sum(kept.to(tl.int64), axis=0)
    # "less than 1" symbols take the last cells, one each, in symbol order
    low_rank = tl.cumsum(low.to(tl.int64), axis=0) - low.to(tl.int64)
    tl.store(row_ptr + size - 1 - low_rank, sym_idx.to(tl.int64), mask=low)
    tl.debug_barrier()
    # 2) each symbol's cells in state order get x = count .. 2 * count - 1
    cells = tl.where(low, 1, counts)
    seen = tl.zeros([NSYM], dtype=tl.int64)
    for c in range(TABLE // CHUNK):
        u = c * CHUNK + tl.arange(0, CHUNK).to(tl.int64)
        live = u < size
        sym = tl.load(row_ptr + u, mask=live, other=0).to(tl.int64)
        onehot = (sym[:, None] == sym_idx[None, :]).to(tl.int64) * live.to(tl.int64)[:, None]
        running = tl.cumsum(onehot, axis=0) + seen[None, :]
        x = tl.sum(onehot * (running - 1 + cells[None, :]), axis=1)
        seen += tl.sum(onehot, axis=0)
        nbits = log - (bit_length(x, 10) - 1)
        base = (x << nbits) - size
        tl.debug_barrier()
        tl.store(row_ptr + u, (sym | (nbits << 8) | (base << 16)).to(tl.int32), mask=live)
