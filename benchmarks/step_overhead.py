"""Per-step overhead of the optimizer classes: many small tensors against one large one.

Measures ``fusedoptim.optim.Adam.step()`` (plain float32 arrays, gradients passed in):

* over ``--tensors`` tensors of ``--size`` elements (default 500 x 2,000 = 1,000,000 elements),
* over one tensor of the same total size (1,000,000 elements),
* and, when PyTorch is installed, ``torch.optim.Adam(fused=True)`` over the same 500 tensors
  (float32 CPU tensors whose ``.grad`` holds the same gradients).

Each figure is the median of ``--repeats`` timed steps after ``--warmup`` untimed ones,
timed in alternating blocks so that a change in the machine's load affects all alike. The
issue's targets: the many-tensor step costs at most 1.5x the one-tensor step (the per-step
plan leaves no per-tensor Python work), and at least 5x less than PyTorch's fused step.

Usage::

    python benchmarks/step_overhead.py                 # all cores the core uses by default
    python benchmarks/step_overhead.py --threads 1     # pin the thread count (also for torch)

This is a measurement script, not a test: it asserts nothing and prints the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

import fusedoptim
from fusedoptim.optim import Adam


def median_seconds(
    steps: dict[str, Callable[[], object]], repeats: int, warmup: int, block: int = 10
) -> dict[str, float]:
    """Median wall time of one call of each ``steps`` entry, after ``warmup`` untimed calls.

    The candidates are timed in alternating blocks of ``block`` calls, so that a change in the
    machine's load (other processes, frequency scaling) affects all of them alike.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    samples: dict[str, list[int]] = {name: [] for name in steps}
    while any(len(times) < repeats for times in samples.values()):
        for name, step in steps.items():
            for _ in range(min(block, repeats - len(samples[name]))):
                start = time.perf_counter_ns()
                step()
                samples[name].append(time.perf_counter_ns() - start)
    return {name: statistics.median(times) * 1e-9 for name, times in samples.items()}


def fusedoptim_step(shapes: list[int], seed: int) -> Callable[[], object]:
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n).astype(np.float32) for n in shapes]
    grads = [rng.standard_normal(n).astype(np.float32) for n in shapes]
    # A tiny lr keeps the parameters in range however many steps are timed.
    optimizer = Adam(params, lr=1e-6)
    return lambda: optimizer.step(grads)


def torch_fused_step(shapes: list[int], seed: int) -> Callable[[], object]:
    import torch

    rng = np.random.default_rng(seed)
    params = []
    for n in shapes:
        param = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(n).astype(np.float32)))
        param.grad = torch.from_numpy(rng.standard_normal(n).astype(np.float32))
        params.append(param)
    optimizer = torch.optim.Adam(params, lr=1e-6, fused=True)
    return optimizer.step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tensors", type=int, default=500, help="number of small tensors")
    parser.add_argument("--size", type=int, default=2_000, help="elements per small tensor")
    parser.add_argument("--repeats", type=int, default=300, help="timed steps per figure")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=None, help="threads for the core/torch")
    args = parser.parse_args(argv)

    if args.threads is not None:
        fusedoptim.set_num_threads(args.threads)
    threads = fusedoptim.get_num_threads()
    total = args.tensors * args.size

    candidates = {
        "many": fusedoptim_step([args.size] * args.tensors, 0),
        "one": fusedoptim_step([total], 1),
    }
    try:
        import torch

        torch.set_num_threads(threads)
        candidates["torch"] = torch_fused_step([args.size] * args.tensors, 0)
        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    median = median_seconds(candidates, args.repeats, args.warmup)
    many, one = median["many"], median["one"]

    small = f"{args.tensors} x {args.size:,}"
    rows = [
        (f"fusedoptim Adam, {small}", many),
        (f"fusedoptim Adam, 1 x {total:,}", one),
    ]
    if "torch" in median:
        rows.append((f"torch Adam(fused=True), {small}", median["torch"]))
    width = max(len(label) for label, _ in rows)

    print(f"machine: {platform.machine()} {platform.processor() or ''}".rstrip())
    print(f"cpus: {os.cpu_count()}, fusedoptim threads: {threads}, isa: "
          f"{fusedoptim.build_info().get('isa')}, torch: {torch_version}")  # fmt: skip
    print(f"float32, median of {args.repeats} steps after {args.warmup} warm-up steps:")
    for label, seconds in rows:
        print(f"  {label.ljust(width)}  {seconds * 1e6:10.1f} us")
    print(f"  many / one tensor:           {many / one:6.2f}   (target <= 1.5)")
    if "torch" in median:
        print(f"  torch fused / fusedoptim:    {median['torch'] / many:6.2f}x  (target >= 5)")


if __name__ == "__main__":
    main()
