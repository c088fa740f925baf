"""Fixtures of the pytest-benchmark suites in this folder.

Run them with ``pytest benchmarks/ --benchmark-only`` (the test suite, ``testpaths = ["tests"]``,
never collects them). They share their data, contenders and cache handling with
``fusedoptim-bench`` (:mod:`fusedoptim.bench`), so both measure the same thing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fusedoptim import bench


@pytest.fixture(scope="session")
def array_pool() -> Callable[[bench.Layout, str], bench.ArrayPool]:
    """``array_pool(layout, dtype)``: the arrays of a case, shared by consecutive tests.

    Only the latest pool is kept: the pool of a 1e7-element case holds most of a gigabyte (copies
    of the data larger than the last-level cache), and the parametrization orders the tests
    so that every test of one (layout, dtype) runs in a row.
    """
    pools: dict[tuple[bench.Layout, str], bench.ArrayPool] = {}

    def get(layout: bench.Layout, dtype: str) -> bench.ArrayPool:
        key = (layout, dtype)
        if key not in pools:
            pools.clear()
            pools[key] = bench.ArrayPool(layout, dtype)
        return pools[key]

    return get


@pytest.fixture(scope="session")
def cache_bytes() -> int:
    """The last-level cache size that decides how many copies an out-of-cache case cycles over."""
    return bench.last_level_cache_bytes()
