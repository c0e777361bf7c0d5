"""Batched zstd decoding on the device: many independent frames, one status code per frame.

::

    count blocks, parse (1 program / frame) --> block table --(host syncs: sizes, job counts)-->
      Huffman tables (1 / tree) --> sequence sizes (1 / frame with sequences) -->
      copies (raw & RLE blocks and literals) + Huffman literals (1 lane / stream) -->
      sequence execution in place (1 / frame with sequences)

Covered: every frame libzstd writes without a dictionary (raw, RLE and compressed blocks;
raw, RLE, Huffman 1- and 4-stream and treeless literals with direct or FSE weights; sequences
with predefined, RLE, FSE and repeat tables, repeat offsets, matches across blocks). Routed to
the CPU (status :data:`STATUS_FALLBACK`): skippable frames and frames naming a dictionary. Content checksums are
skipped, not verified (the container checks xxh3-64 over the stored bytes).

The torch reference for these kernels is a complete zstd decoder, which does not belong in a
kernel package: the tests compare against libzstd and holotensor's reference decoder instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from triton_kernels.zstd import layout as L
from triton_kernels.zstd.fse import NSYM, TABLE_SIZE
from triton_kernels.zstd.huffman import HUFFMAN_CELLS, huffman_literals_kernel, huffman_table_kernel
from triton_kernels.zstd.parse import parse_frames_kernel
from triton_kernels.zstd.sequences import (
    LL_BASE,
    LL_BITS,
    ML_BASE,
    ML_BITS,
    PREDEFINED,
    predefined_tables_kernel,
    sequences_kernel,
)

__all__ = ["decode_frames"]

_BLOCK_MAX = 1 << 17
_COPY_CHUNK = 1024
_LANES = 32
_MAX_OUT_SIZE = 1 << 27  # a frame's output slot: far above what the codecs write (16 MiB)


@triton.jit
def _copy_kernel(src_ptr, out_ptr, blk_ptr, jobs_ptr, status_ptr, CHUNK: tl.constexpr):
    """Raw and RLE blocks, raw and RLE literals: program (job, chunk) moves CHUNK bytes."""
    slot = tl.load(jobs_ptr + tl.program_id(0))
    row = blk_ptr + slot * L.NFIELDS
    kind = tl.load(row + L.KIND)
    lit = tl.load(row + L.LIT)
    size = tl.load(row + L.SIZE)
    nlit = tl.load(row + L.NLIT)
    block = kind < 3
    src = tl.where(block, tl.load(row + L.SRC), tl.load(row + L.LIT_SRC))
    n = tl.where(block, size, nlit)
    dst = tl.load(row + L.OUT) + size - n
    fill = tl.where(block, kind == 2, lit == 1)
    live = tl.load(status_ptr + tl.load(row + L.FRAME)) == 0
    k = tl.program_id(1).to(tl.int64) * CHUNK + tl.arange(0, CHUNK).to(tl.int64)
    m = live & (k < n)
    v = tl.load(src_ptr + src + tl.where(fill, 0, k), mask=m, other=0)
    tl.store(out_ptr + dst + k, v, mask=m)


def _as_index(values: torch.Tensor | Sequence[int], count: int | None, name: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.int64).reshape(-1).cpu()
    if count is not None and t.numel() != count:
        raise ValueError(f"{name} has {t.numel()} entries, expected {count}")
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{name} must not be negative")
    return t


def _check_spans(offsets: torch.Tensor, sizes: torch.Tensor, length: int, what: str) -> None:
    ends = offsets + sizes
    if offsets.numel() and int(ends.max()) > length:
        i = int(torch.argmax((ends > length).to(torch.int8)))
        raise ValueError(f"{what} {i} ends at byte {int(ends[i])}, past the buffer's {length} bytes")


def _predefined(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    probs = torch.zeros(3, NSYM.value, dtype=torch.int32)
    logs = torch.tensor([log for log, _ in PREDEFINED], dtype=torch.int32)
    for t, (_, dist) in enumerate(PREDEFINED):
        probs[t, : len(dist)] = torch.tensor(dist, dtype=torch.int32)
    return probs.to(device), logs.to(device)


def decode_frames(
    stored: torch.Tensor,
    frame_offsets: torch.Tensor | Sequence[int],
    frame_sizes: torch.Tensor | Sequence[int],
    out: torch.Tensor,
    out_offsets: torch.Tensor | Sequence[int],
    out_sizes: torch.Tensor | Sequence[int],
) -> torch.Tensor:
    """Decode zstd frame ``i`` (``stored[frame_offsets[i] :][: frame_sizes[i]]``) into
    ``out[out_offsets[i] :][: out_sizes[i]]``; every frame must decode to exactly its slot.

    Args:
        stored: 1-D contiguous uint8 tensor holding the frames (on the device that decodes).
        frame_offsets, frame_sizes: where each frame lies in ``stored``.
        out: 1-D contiguous uint8 tensor on the same device; written only inside the slots.
        out_offsets, out_sizes: each frame's output slot (slots must not overlap).

    Returns:
        An int32 tensor on the device, one status per frame: 0 decoded, 1 valid but not decoded
        here (decode it on the CPU), >= 2 corrupt (see ``STATUS_NAMES``). A failed frame's slot
        holds unspecified bytes.

    Raises:
        ValueError: tensors of the wrong kind, or spans outside their buffers.

    Example:
        >>> import zstandard
        >>> frame = torch.frombuffer(bytearray(zstandard.compress(b"abc" * 100)), dtype=torch.uint8)
        >>> out = torch.zeros(300, dtype=torch.uint8)
        >>> decode_frames(frame, [0], [frame.numel()], out, [0], [300]).tolist()
        [0]
        >>> bytes(out.numpy()) == b"abc" * 100
        True
    """
    for name, t in (("stored", stored), ("out", out)):
        if t.dtype != torch.uint8 or t.dim() != 1 or not t.is_contiguous():
            raise ValueError(f"{name} must be a contiguous 1-D uint8 tensor, got {t.dtype} {tuple(t.shape)}")
    if stored.device != out.device:
        raise ValueError(f"stored is on {stored.device}, out on {out.device}")
    device = stored.device
    f_off = _as_index(frame_offsets, None, "frame_offsets")
    count = f_off.numel()
    f_size = _as_index(frame_sizes, count, "frame_sizes")
    o_off = _as_index(out_offsets, count, "out_offsets")
    o_size = _as_index(out_sizes, count, "out_sizes")
    _check_spans(f_off, f_size, stored.numel(), "frame")
    _check_spans(o_off, o_size, out.numel(), "output slot")
    if count and int(o_size.max()) > _MAX_OUT_SIZE:
        raise ValueError(f"output slots are limited to {_MAX_OUT_SIZE} bytes")
    order = torch.argsort(o_off)
    if count > 1 and bool(((o_off + o_size)[order[:-1]] > o_off[order[1:]]).any()):
        raise ValueError("output slots overlap")
    status = torch.zeros(count, dtype=torch.int32, device=device)
    if count == 0:
        return status

    f_off, f_size, o_off, o_size = (t.to(device) for t in (f_off, f_size, o_off, o_size))
    frames = torch.zeros(count, L.FR_FIELDS, dtype=torch.int64, device=device)
    parse_args = (stored, f_off, f_size, o_off, o_size)
    parse_frames_kernel[(count,)](*parse_args, frames, frames, frames, status, COUNT=True, num_warps=1)
    nblocks = frames[:, L.FR_NBLOCKS.value]
    frames[:, L.FR_FIRST.value] = torch.cumsum(nblocks, 0) - nblocks
    nslots = int(nblocks.sum())  # host sync 1: the size of the block table
    blocks = torch.zeros(max(nslots, 1), L.NFIELDS, dtype=torch.int64, device=device)
    streams = torch.zeros(max(nslots, 1), 12, dtype=torch.int64, device=device)
    parse_frames_kernel[(count,)](*parse_args, blocks, streams, frames, status, COUNT=False, num_warps=1)

    # host syncs 2..: which slots and frames have work of each kind (grids and workspace sizes)
    table = blocks[:nslots]
    kind, lit, nseq = table[:, L.KIND.value], table[:, L.LIT.value], table[:, L.NSEQ.value]
    good = status[table[:, L.FRAME.value]] == 0
    compressed = good & (kind == 3)
    tree_slots = torch.nonzero(compressed & (lit == 2)).reshape(-1)
    copy_slots = torch.nonzero(good & ((kind == 1) | (kind == 2) | ((kind == 3) & (lit < 2)))).reshape(-1)
    seq_blocks = compressed & (nseq > 0)
    seq_row = torch.cumsum(seq_blocks.to(torch.int64), 0) - 1
    seq_frames = torch.nonzero((status == 0) & (frames[:, L.FR_HAS_SEQ.value] == 1)).reshape(-1)
    n_seq_blocks = int(seq_blocks.sum())

    ntrees = tree_slots.numel()
    table_row = torch.full((max(nslots, 1),), -1, dtype=torch.int64, device=device)
    table_row[tree_slots] = torch.arange(ntrees, dtype=torch.int64, device=device)
    tables = torch.zeros(max(ntrees, 1), HUFFMAN_CELLS.value, dtype=torch.int32, device=device)
    max_bits = torch.zeros(max(ntrees, 1), dtype=torch.int64, device=device)
    if ntrees:
        ranks = torch.zeros(ntrees, 256, dtype=torch.int32, device=device)
        weight_tables = torch.zeros(ntrees, 64, dtype=torch.int32, device=device)
        huffman_table_kernel[(ntrees,)](
            stored, blocks, tree_slots, status, tables, ranks, weight_tables, max_bits
        )

    if seq_frames.numel():
        fse = torch.zeros(3 + 3 * n_seq_blocks, TABLE_SIZE.value, dtype=torch.int32, device=device)
        logs = torch.zeros(3 + 3 * n_seq_blocks, dtype=torch.int64, device=device)
        probs, pre_logs = _predefined(device)
        predefined_tables_kernel[(3,)](probs, pre_logs, fse, logs)
        codes = torch.zeros(4, 64, dtype=torch.int64)
        for r, values in enumerate((LL_BASE, LL_BITS, ML_BASE, ML_BITS)):
            codes[r, : len(values)] = torch.tensor(values, dtype=torch.int64)
        codes = codes.to(device)
        seq_args = (stored, out, blocks, frames, seq_frames, o_off, o_size, seq_row, codes, fse, logs, status)
        sequences_kernel[(seq_frames.numel(),)](*seq_args, EXECUTE=False, num_warps=1)

    if copy_slots.numel():
        chunks = triton.cdiv(min(int(o_size.max()), _BLOCK_MAX), _COPY_CHUNK)
        _copy_kernel[(copy_slots.numel(), chunks)](stored, out, blocks, copy_slots, status, CHUNK=_COPY_CHUNK)
    if int(compressed.sum()):
        huffman_literals_kernel[(triton.cdiv(nslots * 4, _LANES),)](
            stored,
            out,
            blocks,
            streams,
            status,
            table_row,
            tables,
            max_bits,
            nslots,
            LANES=_LANES,
            num_warps=1,
        )
    if seq_frames.numel():
        sequences_kernel[(seq_frames.numel(),)](*seq_args, EXECUTE=True, num_warps=2)
    return status
