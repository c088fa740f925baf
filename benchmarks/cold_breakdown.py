"""Where an out-of-cache step over many small tensors spends its time, piece by piece.

Out of cache (each variant cycles through copies of the data larger than the last-level cache,
as ``fusedoptim-bench`` does) and interleaved with ``bench.time_interleaved``, each variant on its
own copies, it times for one optimizer configuration:

* ``class``: the optimizer class's ``opt.step(grads)`` over 500 x 2,000 tensors;
* ``plan``: the compiled plan's call alone, without the Python of ``step()``;
* ``check``: the plan checking the 500 gradients without updating (``check_only``);
* ``fixed``: the same call with every gradient ``None`` (the call's fixed cost);
* ``one tensor``: ``opt.step(grads)`` over one tensor of 1,000,000 elements.

Usage::

    python benchmarks/cold_breakdown.py                  # SGD, 150 samples each
    python benchmarks/cold_breakdown.py --optimizer adam --repeat 100

It reaches into the optimizer's plan (``opt._plans``) to call the compiled plan directly. This is
a measurement script, not a test: it asserts nothing and prints the figures.
"""

from __future__ import annotations

import argparse

import numpy as np

import fusedoptim
from fusedoptim import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", default="sgd", choices=sorted(bench.OPTIMIZERS))
    parser.add_argument("--repeat", type=int, default=150, help="samples per variant")
    args = parser.parse_args()
    config = bench.OPTIMIZERS[args.optimizer]
    cache = bench.last_level_cache_bytes()
    optimizer_class = getattr(fusedoptim, config.torch_class)
    steps, copies = {}, {}

    def build(name: str, layout: bench.Layout) -> tuple[list, list]:
        count = bench.copies_needed(config, layout, np.float32, cache)
        data = bench.ArrayPool(layout, np.float32).copies(count, config.states)
        optimizers = [optimizer_class(copy.params, **config.options) for copy in data]
        grads = [copy.grads for copy in data]
        for optimizer, grad in zip(optimizers, grads):
            optimizer.step(grad)  # creates the state and the plan
        copies[name] = count
        return optimizers, grads

    def core(optimizers: list, grads: list, check_only: bool) -> bench.Stepper:
        calls = [(opt._plans[0], opt._plans[0].buckets[0]) for opt in optimizers]

        def step(k: int) -> None:
            plan, bucket = calls[k]
            bucket.run(grads[k], bucket.steps, True, *plan.args, check_only)

        return step

    many = bench.Layout(500, 2000)
    for name in ("class", "plan", "check", "fixed"):
        optimizers, grads = build(name, many)
        if name == "class":
            steps[name] = lambda k, o=optimizers, g=grads: o[k].step(g[k])
        elif name == "fixed":
            steps[name] = core(optimizers, [[None] * many.count for _ in grads], True)
        else:
            steps[name] = core(optimizers, grads, check_only=name == "check")
    optimizers, grads = build("one tensor", bench.Layout(1, 1_000_000))
    steps["one tensor"] = lambda k, o=optimizers, g=grads: o[k].step(g[k])

    timings = bench.time_interleaved(steps, copies, repeat=args.repeat)
    print(f"{config.label}, float32, {fusedoptim.get_num_threads()} threads, out of cache:")
    for name, timing in timings.items():
        samples = np.array(timing.samples) * 1e6
        q25, median, q75 = np.percentile(samples, [25, 50, 75])
        print(f"  {name:10s} median {median:7.1f} us  (quartiles {q25:.1f} to {q75:.1f})")


if __name__ == "__main__":
    main()
