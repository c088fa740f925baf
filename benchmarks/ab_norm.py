"""Builds of ``fusedoptim._core`` timed against each other on ``grad_norm`` (the 2-norm).

Loads each build's compiled module under its own name (as ``benchmarks/ab_core.py`` does) and
times, interleaved in one process on 2 threads, each build's ``grad_norm([x], 2.0)`` at 1e5 and
1e6 elements (one array, hot in cache) and 1e7 (ten arrays in turn, together larger than this
machine's last-level cache). Prints each build's read bandwidth (the array's bytes over the
median time) and the values, which must be equal. ``DTYPE=float64`` for float64, and
``FUSEDOPTIM_ISA=avx2`` for another instruction set::

    python benchmarks/ab_norm.py /tmp/before.so /tmp/after.so /tmp/before2.so /tmp/after2.so

A measurement script: it asserts nothing and prints the figures.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np
from ab_core import load


def main() -> None:
    import sys

    paths = sys.argv[1:]
    modules = [load(path, f"build{k}") for k, path in enumerate(paths)]
    for module in modules:
        module.set_num_threads(2)
    dtype = np.dtype(os.environ.get("DTYPE", "float32"))
    rng = np.random.default_rng(0)
    arrays: list[list[np.ndarray]] = []
    for n, copies in ((10**5, 1), (10**6, 1), (10**7, 10)):
        arrays = [[rng.random(n).astype(dtype) for _ in range(copies)] for _ in modules]
        times: list[list[float]] = [[] for _ in modules]
        calls = max(1, 10**6 // n) if copies == 1 else 1
        order = list(range(len(modules)))
        for r in range(30 if copies > 1 else 15):
            for j in order[r % len(order) :] + order[: r % len(order)]:
                x = arrays[j][r % copies]
                start = time.perf_counter()
                for _ in range(calls):
                    modules[j].grad_norm([x], 2.0)
                times[j].append((time.perf_counter() - start) / calls)
        print(
            f"n={n:>9} {dtype.name}: "
            + "  ".join(
                f"{Path(path).name} {dtype.itemsize * n / statistics.median(t) / 1e9:5.1f} GB/s"
                for path, t in zip(paths, times)
            ),
            flush=True,
        )
    print("values", [module.grad_norm([arrays[0][0]], 2.0) for module in modules])


if __name__ == "__main__":
    main()
