"""Out-of-cache bandwidth by traffic pattern, and each kernel against the probe of its own pattern.

``fusedoptim-bench`` holds an out-of-cache case to the bandwidth of its own traffic:
``_core.stream_update`` with the update's arrays (the parameter and each state ``+= s * grad``,
one addition each, walked and prefetched as the kernels walk theirs). This script shows why:

* ``widths``: ``stream_update`` with 1 to 4 written arrays (3, 5, 7 and 9 arrays of traffic) and
  ``stream_axpy`` (``a += s * b``, the probe the bench used before), interleaved;
* ``kernels``: each optimizer's ``step()`` (the bench's fusedoptim contender) against its
  matched probe, interleaved, as a share of the probe's bandwidth.

Both cycle through copies of the data larger than the last-level cache, as the bench does, on
``--threads`` threads, float32. Usage::

    python benchmarks/probe_widths.py                       # 1e7 elements, both parts
    python benchmarks/probe_widths.py --size 1e6 --repeat 150 --part kernels

A measurement script: it asserts nothing and prints the figures.
"""

from __future__ import annotations

import argparse

import numpy as np

from fusedoptim import _core, bench


def widths(size: int, repeat: int, cache: int) -> None:
    # w written arrays and one read (w = 0: a += s*b's two arrays), each pattern cycling through
    # enough copies of its own arrays to leave the cache between two uses of one copy
    counts = {
        w: bench._copies_out_of_cache(max(w, 1) + 1, size, np.float32, cache)
        for w in (0, 1, 2, 3, 4)
    }
    arrays = {
        w: [[np.ones(size, np.float32) for _ in range(max(w, 1) + 1)] for _ in range(counts[w])]
        for w in counts
    }
    steps = {
        "a += s*b (3 arrays)": lambda k: _core.stream_axpy(arrays[0][k][0], arrays[0][k][1], 1e-9)
    }
    copies = {"a += s*b (3 arrays)": counts[0]}
    for w in (1, 2, 3, 4):
        name = f"{w} written ({2 * w + 1} arrays)"
        steps[name] = lambda k, w=w: _core.stream_update(arrays[w][k][:w], arrays[w][k][w], 1e-9)
        copies[name] = counts[w]
    timings = bench.time_interleaved(steps, copies, repeat=repeat)
    for (name, timing), arrays_moved in zip(timings.items(), (3, 3, 5, 7, 9)):
        gbs = arrays_moved * 4 * size / timing.median / 1e9
        print(f"  {name:22s} {gbs:6.1f} GB/s")


def kernels(size: int, repeat: int, cache: int, names: list[str]) -> None:
    layout = bench.Layout(1, size)
    for name in names:
        config = bench.OPTIMIZERS[name]
        count = bench._copies_out_of_cache(2 + config.states, size, np.float32, cache)
        mine, probe = bench.ArrayPool(layout, np.float32), bench.ArrayPool(layout, np.float32)
        steps = {
            "fusedoptim": bench.make_stepper("fusedoptim", config, mine.copies(count, 0)),
            "probe": bench.probe_stepper(probe.copies(count, config.states)),
        }
        timings = bench.time_interleaved(steps, count, repeat=repeat)
        moved = bench.bytes_per_element(name, np.float32) * size
        gbs = {key: moved / timing.median / 1e9 for key, timing in timings.items()}
        print(
            f"  {name:17s} fusedoptim {gbs['fusedoptim']:5.1f} GB/s  probe {gbs['probe']:5.1f} GB/s"
            f"  share {gbs['fusedoptim'] / gbs['probe']:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=1e7)
    parser.add_argument("--repeat", type=int, default=30, help="samples per contender")
    parser.add_argument("--threads", type=int, default=bench.usable_cores())
    parser.add_argument("--part", choices=["widths", "kernels", "both"], default="both")
    parser.add_argument("--optimizers", default=",".join(bench.DEFAULT_OPTIMIZERS))
    args = parser.parse_args()
    size, cache = int(args.size), bench.last_level_cache_bytes()
    print(f"{size:,} float32 elements, {args.threads} thread(s), out of cache, median of "
          f"{args.repeat} interleaved samples")  # fmt: skip
    with bench.thread_count(args.threads, None):
        if args.part in ("widths", "both"):
            widths(size, args.repeat, cache)
        if args.part in ("kernels", "both"):
            kernels(size, args.repeat, cache, args.optimizers.split(","))


if __name__ == "__main__":
    main()
