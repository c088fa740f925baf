"""Builds of ``fusedoptim._core`` timed against each other, interleaved, in one process.

Loads each build's compiled module under its own name and takes turns between them sample by
sample (the order rotating each sample) on the same arrays (AdaGrad, RMSprop plain, centered and
with momentum, AdaDelta, Adam, amsgrad, AdamW; by default float32, 1e5 elements, in cache), so a
change of the shared host's speed hits all alike. Used to compare main with branch ``fma-sqrt``
and to choose how the AVX-512 kernels share their square roots between the FMA units and the
square-root unit (``csrc/kernels/lanes.hpp``)::

    git worktree add /tmp/fma-sqrt fma-sqrt
    (cd /tmp/fma-sqrt && python setup.py build_ext --inplace)
    python benchmarks/ab_core.py src/fusedoptim/_core*.so \
        /tmp/fma-sqrt/src/fusedoptim/_core*.so --threads 2

    # every square root on the FMA units, against the default balance:
    cp src/fusedoptim/_core*.so /tmp/balanced.so
    FUSEDOPTIM_EXTRA_CFLAGS="-DFO_UNIT_EVERY_RMSPROP=0 -DFO_UNIT_EVERY_ADAGRAD=0 \
        -DFO_UNIT_EVERY_RMSPROP_CENTERED=0 -DFO_UNIT_EVERY_ADAM=0 -DFO_UNIT_EVERY_ADADELTA=0" \
        python setup.py build_ext --inplace --force
    cp src/fusedoptim/_core*.so /tmp/all_fma.so
    python benchmarks/ab_core.py /tmp/balanced.so /tmp/all_fma.so

Two paths to one file load one module twice, which pybind11 refuses: copy a build to compare it
with itself. Each case starts from fresh state and must leave every array finite (centered
RMSprop uses alpha = 0.9999, as ``fusedoptim-bench`` does, so that its variance estimate under a
fixed gradient stays positive however many calls a small size makes). Prints the best of 15
samples per build in ns per element (``--median``: the median of 31), and in parentheses its time
over the first build's. A sample times a few milliseconds of calls back to back.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import time
from pathlib import Path
from types import ModuleType

import numpy as np


def load(path: str, name: str) -> ModuleType:
    loader = importlib.machinery.ExtensionFileLoader(f"{name}._core", path)
    spec = importlib.util.spec_from_file_location(f"{name}._core", path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "builds",
        nargs="+",
        metavar="BUILD",
        help="paths of _core extensions (the first is the reference)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--only", default="", help="comma-separated cases (default: all)")
    parser.add_argument(
        "--median",
        action="store_true",
        help="the median of 31 samples instead of the best of 15: what a change of the time a "
        "typical call takes shows (the split between threads), where the best shows the kernel",
    )
    args = parser.parse_args()
    if len(args.builds) < 2:
        parser.error("give at least two builds")
    labels = [f"{k}:{Path(path).stem.split('.')[0]}" for k, path in enumerate(args.builds)]
    builds = {
        label: load(path, f"build{k}") for k, (label, path) in enumerate(zip(labels, args.builds))
    }
    dtype = np.dtype(args.dtype)
    for module in builds.values():
        module.set_num_threads(args.threads)
    n = args.size
    rng = np.random.default_rng(0)
    param0 = rng.standard_normal(n).astype(dtype)
    g = [rng.standard_normal(n).astype(dtype)]
    steps = np.full(1, 5, np.int64)
    cases = {
        "adagrad": lambda m, p, s: m.adagrad(
            p, g, s[0], steps, False, 1e-2, 0.0, 0.0, 1e-10, False
        ),
        "rmsprop": lambda m, p, s: m.rmsprop(
            p, g, s[0], None, None, steps, False, 1e-2, 0.99, 1e-8, 0.0, 0.0, False, False
        ),
        "rmsprop-centered": lambda m, p, s: m.rmsprop(
            p, g, s[0], None, s[2], steps, False, 1e-2, 0.9999, 1e-8, 0.0, 0.0, True, False
        ),
        "rmsprop-momentum": lambda m, p, s: m.rmsprop(
            p, g, s[0], s[1], None, steps, False, 1e-2, 0.99, 1e-8, 0.0, 0.9, False, False
        ),
        "adadelta": lambda m, p, s: m.adadelta(
            p, g, s[0], s[1], steps, False, 1.0, 0.9, 1e-6, 0.0, False
        ),
        "adam": lambda m, p, s: m.adam(
            p, g, s[0], s[1], None, steps, False, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False, False
        ),
        "adam-amsgrad": lambda m, p, s: m.adam(
            p, g, s[0], s[1], s[2], steps, False, 1e-3, 0.9, 0.999, 1e-8, 0.0, True, False, False
        ),
        "adamw": lambda m, p, s: m.adam(
            p, g, s[0], s[1], None, steps, False, 1e-3, 0.9, 0.999, 1e-8, 1e-2, False, False, True
        ),
    }
    samples = 31 if args.median else 15
    statistic = "median" if args.median else "best"
    print(
        f"{args.threads} thread(s), {n} {dtype} elements: ns/element, {statistic} of "
        f"{samples} samples each"
    )
    only = set(filter(None, args.only.split(",")))
    if only - cases.keys():
        parser.error(f"unknown cases {sorted(only - cases.keys())}; choose from {list(cases)}")
    for name, update in cases.items():
        if only and name not in only:
            continue
        # Each case starts from its own state: a state another optimizer left behind (a
        # momentum buffer read as AdaDelta's acc_delta) can be negative and make NaNs, which
        # would time the square roots' special-value path instead of the kernels.
        p = [param0.copy()]
        s = [[np.zeros(n, dtype)] for _ in range(3)]

        def call(module: ModuleType, update=update, p=p, s=s) -> None:
            update(module, p, s)

        for module in builds.values():
            call(module)
        repeats = max(20, 4_000_000 // n)
        times: dict[str, list[float]] = {label: [] for label in builds}
        for sample in range(samples):
            first = sample % len(labels)
            order = labels[first:] + labels[:first]
            for label in order:
                start = time.perf_counter()
                for _ in range(repeats):
                    call(builds[label])
                times[label].append((time.perf_counter() - start) / repeats / n * 1e9)
        best = {
            label: sorted(t)[len(t) // 2] if args.median else min(t) for label, t in times.items()
        }
        arrays = p + [a for lists in s for a in lists]
        assert all(np.isfinite(a).all() for a in arrays), f"{name}: non-finite values"
        reference = best[labels[0]]
        each = "  ".join(
            f"{label} {best[label]:.3f} ({best[label] / reference:.2f})" for label in labels
        )
        print(f"  {name:17s} {each}", flush=True)


if __name__ == "__main__":
    main()
