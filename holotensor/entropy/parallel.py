"""One shared thread pool for the entropy stage: libzstd (through ``zstandard``) and numpy's
ufuncs release the GIL, so threads give real multi-core speed without copying data to processes."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["parallel_ranges", "worker_count"]

_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
_LOCAL = threading.local()  # .inside is set in pool threads: nested calls run serially, never deadlock


def worker_count() -> int:
    """Cores this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(
                max_workers=worker_count(), thread_name_prefix="holotensor", initializer=_mark_inside
            )
        return _POOL


def _mark_inside() -> None:
    _LOCAL.inside = True


def parallel_ranges(work: Callable[[int, int], None], n: int, grain: int) -> None:
    """Call ``work(lo, hi)`` over ``[0, n)`` in pieces of ``grain`` items, on all cores.

    The pieces are dealt out as one contiguous stripe per worker (the caller's thread takes one),
    so a call costs a few task hand-offs rather than one per piece. Called from inside a pool
    thread it runs serially. Exceptions propagate.
    """
    if n <= 0:
        return
    pieces = -(-n // grain)
    stripes = 1 if getattr(_LOCAL, "inside", False) else min(worker_count(), pieces)
    if stripes == 1:
        _run(work, 0, n, grain)
        return
    bounds = [min(n, grain * (pieces * i // stripes)) for i in range(stripes + 1)]
    futures = [_pool().submit(_run, work, bounds[i], bounds[i + 1], grain) for i in range(1, stripes)]
    try:
        _run(work, bounds[0], bounds[1], grain)
    finally:
        for fut in futures:
            fut.exception()  # wait for every stripe before anyone touches the outputs
    for fut in futures:
        fut.result()


def _run(work: Callable[[int, int], None], lo: int, hi: int, grain: int) -> None:
    for start in range(lo, hi, grain):
        work(start, min(hi, start + grain))
