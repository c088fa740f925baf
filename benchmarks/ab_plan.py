"""Two builds' ``_core.Plan`` steps timed against each other, interleaved, in one process.

What the optimizer classes call at every step (``Plan.adam``: the gradients' checks, the
parameters' re-check, the kernels), for Adam on float32 tensors laid out as the benchmark's
cases: one tensor of 1e3 and 1e5 elements, 200 x 500 and 500 x 2,000 in cache, and 500 x 2,000
out of cache (cycling through 24 copies, more than the last-level cache holds). Used to measure
what the checks added to ``Plan`` in commit dc9dd7c cost::

    git worktree add /tmp/parent dc9dd7c~1
    (cd /tmp/parent && python setup.py build_ext --inplace)
    cp /tmp/parent/src/fusedoptim/_core*.so /tmp/old_core.so
    cp src/fusedoptim/_core*.so /tmp/new_core.so
    python benchmarks/ab_plan.py /tmp/old_core.so /tmp/new_core.so

(Two paths to one file load one module twice, which pybind11 refuses: hence the copies.) Prints
the median time per step of each build and new/old. This is a measurement script: it asserts
nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import ModuleType

import numpy as np
from ab_core import load

LAYOUTS = {"1e3": [1000], "1e5": [100_000], "200x500": [500] * 200, "500x2000": [2000] * 500}
COLD_COPIES = 24


def make_plans(module: ModuleType, sizes: list[int], copies: int, rng: np.random.Generator) -> list:
    plans = []
    for _ in range(copies):
        params = [rng.standard_normal(n).astype(np.float32) for n in sizes]
        grads = [rng.standard_normal(n).astype(np.float32) for n in sizes]
        states = [[np.zeros(n, np.float32) for n in sizes] for _ in range(2)]
        plan = module.Plan("adam", params, [*states, None])
        plans.append((plan, grads, np.zeros(len(sizes), np.int64)))
    return plans


def compare(builds: dict[str, ModuleType], sizes: list[int], copies: int, rounds: int) -> None:
    rng = np.random.default_rng(0)
    plans = {name: make_plans(module, sizes, copies, rng) for name, module in builds.items()}
    number = 1 if copies > 1 else max(3, 200_000 // sum(sizes))
    times: dict[str, list[float]] = {name: [] for name in builds}
    for r in range(rounds):
        for name in builds if r % 2 else reversed(list(builds)):
            plan, grads, steps = plans[name][r % copies]
            start = time.perf_counter()
            for _ in range(number):
                plan.adam(grads, steps, True, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False, False)
            times[name].append((time.perf_counter() - start) / number * 1e6)
    old, new = (statistics.median(t[2:]) for t in times.values())
    print(f"  old {old:9.2f} us  new {new:9.2f} us  new/old {new / old:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="path of the reference build's _core extension")
    parser.add_argument("new", help="path of the build to compare")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    builds = {"old": load(args.old, "old_build"), "new": load(args.new, "new_build")}
    for module in builds.values():
        module.set_num_threads(args.threads)
    print(
        f"Adam float32, {args.threads} thread(s), median time per step over 40 interleaved rounds"
    )
    for layout, sizes in LAYOUTS.items():
        print(f"{layout}, in cache:", end="")
        compare(builds, sizes, 1, 40)
    print(f"500x2000, out of cache ({COLD_COPIES} copies):", end="")
    compare(builds, LAYOUTS["500x2000"], COLD_COPIES, 60)


if __name__ == "__main__":
    main()
