"""Builds of ``fusedoptim._core`` timed against each other out of cache, with the matched probe.

Loads each build's compiled module under its own name (as ``benchmarks/ab_core.py`` does) and
times, interleaved in one process, each build's kernel (``_core.adagrad``, ``rmsprop``,
``adadelta``, ``adam``, amsgrad, SGD momentum) and the first build's ``_core.stream_update``
with the same traffic, each contender cycling through its own copies of the data, together
larger than the last-level cache. Prints each one's bandwidth (the update's bytes over its
median time) and, in parentheses, the probe's time over its own: the share of the probe's
bandwidth. Used to choose how long ranges take their square roots (``FO_LONG_RANGE_ON_UNIT`` in
``csrc/kernels/lanes.hpp``)::

    cp src/fusedoptim/_core*.so /tmp/default.so
    FUSEDOPTIM_EXTRA_CFLAGS="-DFO_LONG_RANGE_ON_UNIT=0" python setup.py build_ext --inplace --force
    cp src/fusedoptim/_core*.so /tmp/split.so
    python benchmarks/ab_cold.py /tmp/default.so /tmp/split.so --size 1e7 --repeat 30

Another instruction set for every build: ``FUSEDOPTIM_ISA=avx2 python benchmarks/ab_cold.py ...``
(each build reads it when loaded); float64 with ``--dtype float64``.

A measurement script: it asserts nothing and prints the figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ab_core import load

from fusedoptim import bench

STEP = np.full(1, 5, np.int64)  # a later step: no first-step paths
# name: (states, bench configuration for the byte count, call on (module, params, grads, states))
CASES: dict[str, tuple[int, str, Callable[..., None]]] = {
    "adagrad": (1, "adagrad", lambda m, p, g, s: m.adagrad(
        p, g, s[0], STEP, False, 1e-2, 0.0, 0.0, 1e-10, False)),
    "rmsprop": (1, "rmsprop", lambda m, p, g, s: m.rmsprop(
        p, g, s[0], None, None, STEP, False, 1e-2, 0.99, 1e-8, 0.0, 0.0, False, False)),
    "adadelta": (2, "adadelta", lambda m, p, g, s: m.adadelta(
        p, g, s[0], s[1], STEP, False, 1e-3, 0.9, 1e-6, 0.0, False)),
    "adam": (2, "adam", lambda m, p, g, s: m.adam(
        p, g, s[0], s[1], None, STEP, False, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False, False)),
    "amsgrad": (3, "adam_amsgrad", lambda m, p, g, s: m.adam(
        p, g, s[0], s[1], s[2], STEP, False, 1e-3, 0.9, 0.999, 1e-8, 0.0, True, False, False)),
    "sgd-momentum": (1, "sgd_momentum", lambda m, p, g, s: m.sgd(
        p, g, s[0], STEP, False, 1e-3, 0.9, 0.0, 0.0, False, False)),
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builds", nargs="+", help="paths of _core builds (copies, not links)")
    parser.add_argument("--size", type=float, default=1e7)
    parser.add_argument("--repeat", type=int, default=30, help="samples per contender")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--only", default="", help="comma-separated cases (default: all)")
    args = parser.parse_args()
    n = int(args.size)
    dtype = np.dtype(args.dtype).type
    modules = [load(path, f"build{k}") for k, path in enumerate(args.builds)]
    for module in modules:
        module.set_num_threads(args.threads)
    labels = [Path(path).name.split(".")[0] for path in args.builds] + ["probe"]
    cache = bench.last_level_cache_bytes()
    rng = np.random.default_rng(0)
    only = set(filter(None, args.only.split(",")))
    for name, (states, config, update) in CASES.items():
        if only and name not in only:
            continue
        copies = bench._copies_out_of_cache(2 + states, n, dtype, cache)

        def data(states: int = states, copies: int = copies) -> list[Any]:
            return [([rng.standard_normal(n).astype(dtype)],
                     [rng.standard_normal(n).astype(dtype)],
                     [[np.full(n, 0.5, dtype)] for _ in range(states)])
                    for _ in range(copies)]  # fmt: skip

        arrays = [data() for _ in range(len(modules) + 1)]
        runners: list[Callable[..., None]] = [
            lambda p, g, s, module=module, update=update: update(module, p, g, s)
            for module in modules
        ]

        def probe(p: list[np.ndarray], g: list[np.ndarray], s: list[list[np.ndarray]]) -> None:
            modules[0].stream_update([p[0], *(x[0] for x in s)], g[0], 1e-9)

        runners.append(probe)
        times: list[list[float]] = [[] for _ in runners]
        used = [0] * len(runners)
        for r in range(args.repeat + 1):  # the first round warms every contender up
            order = list(range(len(runners)))
            order = order[r % len(order) :] + order[: r % len(order)]
            for j in order:
                p, g, s = arrays[j][used[j] % copies]
                used[j] += 1
                start = time.perf_counter()
                runners[j](p, g, s)
                if r:
                    times[j].append(time.perf_counter() - start)
        medians = [statistics.median(t) for t in times]
        moved = bench.bytes_per_element(config, dtype) * n
        print(f"{name:12s} {n:.0e}: " + "  ".join(
            f"{label} {moved / m / 1e9:5.1f} GB/s ({medians[-1] / m:.3f})"
            for label, m in zip(labels, medians)), flush=True)  # fmt: skip
        del arrays


if __name__ == "__main__":
    main()
