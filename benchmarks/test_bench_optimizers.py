"""pytest-benchmark suites: every optimizer configuration, size, dtype, layout and thread count,
with fusedoptim, the NumPy reference and torch.optim side by side in one group per case.

The full product is large (11 configurations x 6 layouts x 2 dtypes x 2 thread counts x 3
contenders) and its 1e7-element NumPy cases are slow: select with ``-k``, e.g.

    pytest benchmarks/ --benchmark-only -k "adam- and 1e6 and float32"
    pytest benchmarks/ --benchmark-only -k "500x2000 and float32 and allthreads"
    pytest benchmarks/ --benchmark-only -k "rmsprop and 1e7 and 1thread" --benchmark-columns=median

Test ids read ``<optimizer>-<layout>-<dtype>-<threads>-<contender>``; a group holds the three
contenders of one (optimizer, layout, dtype, threads), so the table compares them directly. Cases of
``bench.COLD_MIN_ELEMENTS`` elements or more cycle through copies of their data larger than the
last-level cache (one copy per round), so no round finds its data in cache; smaller ones run in
cache with pytest-benchmark's own calibration.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from fusedoptim import bench

LAYOUTS = [bench.Layout(1, 10**exponent) for exponent in (3, 5, 6, 7)] + [
    bench.Layout(500, 2000),
    bench.Layout(200, 500),
]
DTYPES = ["float32", "float64"]
THREADS = {"1thread": 1, "allthreads": bench.usable_cores()}
# Rounds of an out-of-cache case, each a single step on the copy touched longest ago.
COLD_ROUNDS = 10

# Outermost loop first: every test of one (layout, dtype) runs in a row and shares its pool.
CASES = [
    pytest.param(
        layout, dtype, threads, optimizer, contender,
        id=f"{optimizer}-{layout.id}-{dtype}-{threads_id}-{contender}",
    )
    for layout in LAYOUTS
    for dtype in DTYPES
    for threads_id, threads in THREADS.items()
    for optimizer in bench.OPTIMIZERS
    for contender in bench.CONTENDERS
]  # fmt: skip


@pytest.mark.parametrize(("layout", "dtype", "threads", "optimizer", "contender"), CASES)
def test_step(
    benchmark: object,
    array_pool: Callable[[bench.Layout, str], bench.ArrayPool],
    cache_bytes: int,
    layout: bench.Layout,
    dtype: str,
    threads: int,
    optimizer: str,
    contender: str,
) -> None:
    torch = pytest.importorskip("torch") if contender == "torch" else None
    config = bench.OPTIMIZERS[optimizer]
    copies = bench.copies_needed(config, layout, dtype, cache_bytes)
    benchmark.group = f"{optimizer} | {layout.name} | {dtype} | {threads} thread(s)"
    benchmark.extra_info.update(
        elements=layout.elements,
        bytes_per_element=bench.bytes_per_element(optimizer, dtype),
        copies=copies,
        torch_path=config.torch_path if contender == "torch" else None,
    )
    data = array_pool(layout, dtype).copies(copies, bench.pool_states(contender, config))
    with bench.thread_count(threads, torch):
        step = bench.make_stepper(contender, config, data, torch)
        for copy in range(copies):  # warm-up: lazy state, page faults, step 1's special paths
            step(copy)
        if copies == 1:
            step(0)
            benchmark(step, 0)
        else:
            cycle = itertools.cycle(range(copies))
            benchmark.pedantic(
                step, setup=lambda: ((next(cycle),), {}), rounds=COLD_ROUNDS, iterations=1
            )
