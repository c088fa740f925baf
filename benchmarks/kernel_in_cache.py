"""The compiled kernels alone, in cache: ns per element of one ``_core.Plan`` call per step.

Compare with ``benchmarks/divider_floor.c``, the issue rate of the square-root and division
units: in cache, RMSprop, AdaDelta and Adam are bound by those units, not by memory. The call goes
straight to the optimizer's compiled plan (no Python ``step()``), on one tensor that stays in
cache::

    python benchmarks/kernel_in_cache.py --threads 1
    python benchmarks/kernel_in_cache.py --threads 2 --size 100000

This is a measurement script, not a test: it asserts nothing and prints the figures.
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np

import fusedoptim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=fusedoptim.get_num_threads())
    parser.add_argument("--size", type=int, default=100_000, help="elements (default: 100000)")
    args = parser.parse_args()
    fusedoptim.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"isa {fusedoptim.build_info()['isa']}, {args.threads} thread(s), {args.size} elements")
    for name in ("SGD", "RMSprop", "Adadelta", "Adam"):
        param = rng.standard_normal(args.size).astype(np.float32)
        grads = [rng.standard_normal(args.size).astype(np.float32)]
        opt = getattr(fusedoptim, name)([param], lr=1e-3)
        opt.step(grads)  # creates the state and the plan
        plan = opt._plans[0]
        (bucket,) = plan.buckets
        number = max(10, 2_000_000 // args.size)
        call, steps, hyper = bucket.run, bucket.steps, plan.args
        times = timeit.repeat(
            lambda call=call, grads=grads, steps=steps, hyper=hyper: call(
                grads, steps, True, *hyper, False
            ),
            number=number,
            repeat=15,
        )
        print(f"  {name:9s} {min(times) / number / args.size * 1e9:.3f} ns/element (best of 15)")


if __name__ == "__main__":
    main()
