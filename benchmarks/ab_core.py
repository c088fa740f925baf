"""Two builds of ``fusedoptim._core`` timed against each other, interleaved, in one process.

Loads each build's compiled module under its own name and alternates them sample by sample on the
same arrays (AdaGrad, RMSprop plain, centered and with momentum, AdaDelta, Adam, amsgrad, AdamW;
float32, by default 1e5 elements, in cache), so a change of the shared host's speed hits both
alike. Used to compare main with branch ``fma-sqrt``::

    git worktree add /tmp/fma-sqrt fma-sqrt
    (cd /tmp/fma-sqrt && python setup.py build_ext --inplace)
    python benchmarks/ab_core.py src/fusedoptim/_core*.so \
        /tmp/fma-sqrt/src/fusedoptim/_core*.so --threads 2

Two paths to one file load one module twice, which pybind11 refuses: copy a build to compare it
with itself. Each case starts from fresh state and must leave every array finite (centered
RMSprop uses alpha = 0.9999, as ``fusedoptim-bench`` does, so that its variance estimate under a
fixed gradient stays positive however many calls a small size makes). Prints the best of 15
samples per build in ns per element, and new/old.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import time
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
    parser.add_argument("old", help="path of the reference build's _core extension")
    parser.add_argument("new", help="path of the build to compare")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=100_000)
    args = parser.parse_args()
    builds = {"old": load(args.old, "old_build"), "new": load(args.new, "new_build")}
    for module in builds.values():
        module.set_num_threads(args.threads)
    n = args.size
    rng = np.random.default_rng(0)
    param0 = rng.standard_normal(n).astype(np.float32)
    g = [rng.standard_normal(n).astype(np.float32)]
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
    print(f"{args.threads} thread(s), {n} float32 elements: ns/element, best of 15 samples each")
    for name, update in cases.items():
        # Each case starts from its own state: a state another optimizer left behind (a
        # momentum buffer read as AdaDelta's acc_delta) can be negative and make NaNs, which
        # would time the square roots' special-value path instead of the kernels.
        p = [param0.copy()]
        s = [[np.zeros(n, np.float32)] for _ in range(3)]

        def call(module: ModuleType, update=update, p=p, s=s) -> None:
            update(module, p, s)

        for module in builds.values():
            call(module)
        repeats = max(20, 4_000_000 // n)
        best = {label: float("inf") for label in builds}
        for sample in range(15):
            order = list(builds) if sample % 2 == 0 else list(reversed(builds))
            for label in order:
                start = time.perf_counter()
                for _ in range(repeats):
                    call(builds[label])
                best[label] = min(best[label], (time.perf_counter() - start) / repeats / n * 1e9)
        arrays = p + [a for lists in s for a in lists]
        assert all(np.isfinite(a).all() for a in arrays), f"{name}: non-finite values"
        print(f"  {name:17s} old {best['old']:.3f}  new {best['new']:.3f}  "
              f"new/old {best['new'] / best['old']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
