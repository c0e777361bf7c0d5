"""Sequences on the device (RFC 8878 §3.1.1.3.2, §3.1.2): FSE decoding and execution in place.

One program per frame that has sequences walks its blocks in order (matches reach back into
earlier blocks, and repeat offsets and repeat-mode tables carry over), in two launches of the
same kernel:

* the size pass (``EXECUTE=False``) reads each block's compression modes, builds its FSE tables
  into the block's table rows, decodes every sequence and checks it (literals used, offset
  within the output so far and the window, block and frame sizes), then records the block's
  decoded size and the output position of every block of the frame;
* the execute pass (``EXECUTE=True``) runs after the literals were written *right-aligned* in
  each block's output range, decodes the sequences again from the stored tables and executes
  them in place: a literal run moves down (its source never lies below its destination) and a
  match copies from output already final, with ``src = dst - offset + (k mod offset)`` so that
  overlapping matches are one vector copy. The last literals are already where they belong.

No scratch buffer holds literals or sequences: the only workspace is the FSE table rows.
"""

from __future__ import annotations

import triton
import triton.language as tl

from triton_kernels.zstd import layout as L
from triton_kernels.zstd.bits import backward_peek, backward_start, load_le
from triton_kernels.zstd.fse import NSYM, TABLE_SIZE, build_table, read_distribution

__all__: list[str] = []  # kernels launched by triton_kernels.zstd.decode

LL_BASE = (*range(16), 16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
LL_BASE = (*LL_BASE, 32768, 65536)
LL_BITS = (0,) * 16 + (1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
ML_BASE = (*range(3, 35), 35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051)
ML_BASE = (*ML_BASE, 4099, 8195, 16387, 32771, 65539)
ML_BITS = (0,) * 32 + (1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
"""Baselines and extra bits of the literal and match length codes (§3.1.1.3.2.1.1)."""

PREDEFINED = (
    (
        6,
        (4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1)
        + (-1,) * 4,
    ),
    (5, (1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1)),
    (6, (1, 4, 3, 2, 2, 2, 2, 2, 2) + (1,) * 37 + (-1,) * 7),
)
"""(accuracy log, distribution) of the predefined literal length, offset and match length tables."""

_CHUNK = tl.constexpr(256)  # bytes per vector step of a literal or match copy


@triton.jit
def predefined_tables_kernel(probs_ptr, logs_ptr, fse_ptr, al_ptr):
    """Program ``t`` builds predefined table ``t`` (LL, OF, ML) into table row ``t``."""
    t = tl.program_id(0)
    probs = tl.load(probs_ptr + t * NSYM + tl.arange(0, NSYM)).to(tl.int64)
    log = tl.load(logs_ptr + t).to(tl.int64)
    build_table(probs, log, fse_ptr + t * TABLE_SIZE, NSYM, 64, TABLE_SIZE)
    tl.store(al_ptr + t, log)


@triton.jit
def _table(src_ptr, p, end, mode, previous, kind, max_symbol, max_log, row, fse_ptr, al_ptr):
    """Table row for one symbol type: (row, position after its description, ok)."""
    ok = p <= end
    result = previous
    if mode == 0:
        result = previous * 0 + kind  # the predefined rows are 0, 1, 2
    elif mode == 1:
        symbol = load_le(src_ptr, p, 1, end, 1)
        ok = ok & (p < end) & (symbol <= max_symbol)
        tl.store(fse_ptr + row * TABLE_SIZE, symbol.to(tl.int32))
        tl.store(al_ptr + row, symbol * 0)
        result = row
        p += 1
    elif mode == 2:
        probs, log, stop, ok = read_distribution(src_ptr, p, end, max_log, max_symbol, NSYM)
        if ok:
            build_table(probs, log, fse_ptr + row * TABLE_SIZE, NSYM, 64, TABLE_SIZE)
        tl.store(al_ptr + row, log)
        result = row
        p = stop
    else:
        ok = ok & (previous >= 0)
    return result, p, ok


@triton.jit
def _read(src_ptr, start, end, bitpos, n, ok):
    """Consume ``n`` bits (no zero fill): (value, bitpos, ok)."""
    ok = ok & (bitpos >= n)
    value = backward_peek(src_ptr, start, end, bitpos, n, 8)
    return value, bitpos - n, ok


@triton.jit
def _move(out_ptr, src, dst, n, period, CHUNK: tl.constexpr):
    """``out[dst + k] = out[src + k % period]`` for k < n (period = n for a plain move down)."""
    k0 = n * 0
    while k0 < n:
        k = k0 + tl.arange(0, CHUNK).to(tl.int64)
        m = k < n
        v = tl.load(out_ptr + src + k % period, mask=m, other=0)
        tl.debug_barrier()
        tl.store(out_ptr + dst + k, v, mask=m)
        k0 += CHUNK
    tl.debug_barrier()


@triton.jit
def sequences_kernel(
    src_ptr,
    out_ptr,
    blk_ptr,
    frame_ptr,
    frames_ptr,
    out_off_ptr,
    out_size_ptr,
    seq_row_ptr,
    codes_ptr,
    fse_ptr,
    al_ptr,
    status_ptr,
    EXECUTE: tl.constexpr,
):
    """Program ``i`` runs the size or execute pass over frame ``frames[i]``."""
    f = tl.load(frames_ptr + tl.program_id(0)).to(tl.int64)
    out_base = tl.load(out_off_ptr + f)
    out_end = out_base + tl.load(out_size_ptr + f)
    window = tl.load(frame_ptr + f * L.FR_FIELDS + L.FR_WINDOW)
    nblocks = tl.load(frame_ptr + f * L.FR_FIELDS + L.FR_NBLOCKS)
    first = tl.load(frame_ptr + f * L.FR_FIELDS + L.FR_FIRST)
    started = tl.load(status_ptr + f) == 0  # an earlier kernel may have failed the frame
    ok = started
    code = out_base * 0 + L.BAD_SEQUENCES
    d = out_base
    rep0 = out_base * 0 + 1
    rep1 = out_base * 0 + 4
    rep2 = out_base * 0 + 8
    prev_ll = out_base * 0 - 1
    prev_of = out_base * 0 - 1
    prev_ml = out_base * 0 - 1
    j = 0
    while ok & (j < nblocks):
        slot = first + j
        row = blk_ptr + slot * L.NFIELDS
        size = tl.load(row + L.SIZE)
        nseq = tl.load(row + L.NSEQ)
        if not EXECUTE:
            tl.store(row + L.OUT, d)
        if nseq == 0:
            code = tl.where(d + size > out_end, L.OVERSIZE, code)
            ok = ok & (d + size <= out_end)
            d += size
        else:
            send = tl.load(row + L.SEQ_END)
            nlit = tl.load(row + L.NLIT)
            if EXECUTE:
                r_ll = tl.load(row + L.ROW_LL)
                r_of = tl.load(row + L.ROW_OF)
                r_ml = tl.load(row + L.ROW_ML)
                bits = tl.load(row + L.BITS)
            else:
                p = tl.load(row + L.SEQ)
                modes = load_le(src_ptr, p, 1, send, 1)
                ok = ok & ((modes & 3) == 0)
                base_row = 3 + 3 * tl.load(seq_row_ptr + slot)
                p += 1
                r_ll = prev_ll
                r_of = prev_of
                r_ml = prev_ml
                for t in range(3):  # literal lengths, offsets, match lengths
                    previous = tl.where(t == 0, prev_ll, tl.where(t == 1, prev_of, prev_ml))
                    max_symbol = tl.where(t == 0, 35, tl.where(t == 1, 31, 52))
                    max_log = tl.where(t == 1, 8, 9)
                    mode = (modes >> (6 - 2 * t)) & 3
                    chosen, p, good = _table(
                        src_ptr,
                        p,
                        send,
                        mode,
                        previous,
                        t,
                        max_symbol,
                        max_log,
                        base_row + t,
                        fse_ptr,
                        al_ptr,
                    )
                    ok = ok & good
                    r_ll = tl.where(t == 0, chosen, r_ll)
                    r_of = tl.where(t == 1, chosen, r_of)
                    r_ml = tl.where(t == 2, chosen, r_ml)
                bits = p
                tl.store(row + L.ROW_LL, r_ll)
                tl.store(row + L.ROW_OF, r_of)
                tl.store(row + L.ROW_ML, r_ml)
                tl.store(row + L.BITS, bits)
                tl.debug_barrier()
            prev_ll = r_ll
            prev_of = r_of
            prev_ml = r_ml
            ok = ok & (r_ll >= 0) & (r_of >= 0) & (r_ml >= 0)
            t_ll = fse_ptr + tl.maximum(r_ll, 0) * TABLE_SIZE
            t_of = fse_ptr + tl.maximum(r_of, 0) * TABLE_SIZE
            t_ml = fse_ptr + tl.maximum(r_ml, 0) * TABLE_SIZE
            bitpos = backward_start(src_ptr, bits, send)
            ok = ok & (bitpos >= 0) & (bits < send)
            s_ll, bitpos, ok = _read(
                src_ptr, bits, send, bitpos, tl.load(al_ptr + r_ll, mask=r_ll >= 0, other=0), ok
            )
            s_of, bitpos, ok = _read(
                src_ptr, bits, send, bitpos, tl.load(al_ptr + r_of, mask=r_of >= 0, other=0), ok
            )
            s_ml, bitpos, ok = _read(
                src_ptr, bits, send, bitpos, tl.load(al_ptr + r_ml, mask=r_ml >= 0, other=0), ok
            )
            block = d
            lit_area = block + size - nlit  # execute pass: where the literals were written
            used = d * 0
            i = 0
            while ok & (i < nseq):
                c_ll = tl.load(t_ll + s_ll).to(tl.int64)
                c_of = tl.load(t_of + s_of).to(tl.int64)
                c_ml = tl.load(t_ml + s_ml).to(tl.int64)
                of_code = c_of & 255
                ml_code = c_ml & 255
                ll_code = c_ll & 255
                extra, bitpos, ok = _read(src_ptr, bits, send, bitpos, of_code, ok)
                value = ((extra * 0 + 1) << of_code) + extra
                ml_bits = tl.load(codes_ptr + 192 + ml_code)
                ll_bits = tl.load(codes_ptr + 64 + ll_code)
                extra, bitpos, ok = _read(src_ptr, bits, send, bitpos, ml_bits + ll_bits, ok)  # ML then LL
                match = tl.load(codes_ptr + 128 + ml_code) + (extra >> ll_bits)
                literal = tl.load(codes_ptr + ll_code) + (
                    extra & ((tl.full(ll_bits.shape, 1, tl.int64) << ll_bits) - 1)
                )
                index = value - 1 + (literal == 0)
                offset = rep0
                if value > 3:
                    offset = value - 3
                    rep2 = rep1
                    rep1 = rep0
                    rep0 = offset
                elif index == 1:
                    offset = rep1
                    rep1 = rep0
                    rep0 = offset
                elif index == 2:
                    offset = rep2
                    rep2 = rep1
                    rep1 = rep0
                    rep0 = offset
                elif index == 3:
                    offset = rep0 - 1
                    rep2 = rep1
                    rep1 = rep0
                    rep0 = offset
                produced = d + literal - out_base
                ok = ok & (offset > 0) & (used + literal <= nlit) & (offset <= produced) & (offset <= window)
                fits = d + literal + match + (nlit - used - literal) <= out_end
                code = tl.where(ok & (fits == 0), L.OVERSIZE, code)
                ok = ok & fits
                if EXECUTE:
                    if ok & (lit_area + used != d):
                        _move(out_ptr, lit_area + used, d, literal, tl.maximum(literal, 1), _CHUNK)
                    if ok:
                        _move(out_ptr, d + literal - offset, d + literal, match, offset, _CHUNK)
                d += literal + match
                used += literal
                if i + 1 < nseq:  # state updates, in the order LL, ML, OF, read as one field
                    n_ll = (c_ll >> 8) & 255
                    n_ml = (c_ml >> 8) & 255
                    n_of = (c_of >> 8) & 255
                    extra, bitpos, ok = _read(src_ptr, bits, send, bitpos, n_ll + n_ml + n_of, ok)
                    s_ll = (c_ll >> 16) + (extra >> (n_ml + n_of))
                    s_ml = (c_ml >> 16) + ((extra >> n_of) & ((tl.full(n_ml.shape, 1, tl.int64) << n_ml) - 1))
                    s_of = (c_of >> 16) + (extra & ((tl.full(n_of.shape, 1, tl.int64) << n_of) - 1))
                i += 1
            ok = ok & (bitpos == 0)
            d += nlit - used
            code = tl.where(ok & (d - block > L.BLOCK_MAX), L.OVERSIZE, code)
            ok = ok & (d - block <= L.BLOCK_MAX)
            if not EXECUTE:
                tl.store(row + L.SIZE, d - block)
        j += 1
    if not EXECUTE:
        code = tl.where(ok & (d != out_end), L.SIZE_MISMATCH, code)
        ok = ok & (d == out_end)
    if started & (ok == 0):
        tl.atomic_max(status_ptr + f, code.to(tl.int32))
