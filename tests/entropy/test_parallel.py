"""The shared thread pool: every item exactly once, errors propagate, nesting never deadlocks."""

from __future__ import annotations

import threading

import pytest

from holotensor.entropy.parallel import parallel_ranges, worker_count


@pytest.mark.parametrize(("n", "grain"), [(0, 1), (1, 1), (7, 3), (100, 1), (1000, 64), (5, 100)])
def test_covers_each_item_once(n: int, grain: int) -> None:
    seen = [0] * n
    lock = threading.Lock()

    def work(lo: int, hi: int) -> None:
        assert 0 <= lo < hi <= n and hi - lo <= grain
        with lock:
            for i in range(lo, hi):
                seen[i] += 1

    parallel_ranges(work, n, grain)
    assert seen == [1] * n


def test_errors_propagate_after_all_stripes_finish() -> None:
    done = []

    def work(lo: int, hi: int) -> None:
        done.append(lo)
        if lo == 0:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        parallel_ranges(work, 8, 1)
    assert len(done) >= 1


def test_nested_calls_run_serially_inside_pool_threads() -> None:
    total = []

    def inner(lo: int, hi: int) -> None:
        total.append(hi - lo)

    def outer(lo: int, hi: int) -> None:
        parallel_ranges(inner, 10, 1)

    parallel_ranges(outer, 2 * worker_count(), 1)
    assert sum(total) == 10 * 2 * worker_count()
