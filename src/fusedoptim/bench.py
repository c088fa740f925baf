"""``fusedoptim-bench``: fusedoptim measured side by side against NumPy and ``torch.optim``.

Run ``fusedoptim-bench`` (or ``python -m fusedoptim.bench``) with no arguments for the project's
report: every optimizer of the issue list on one tensor of 1e3 to 1e7 elements and on two
many-tensor layouts (500 x 2,000 and 200 x 500), float32, on all cores. For each case it prints the
time per element of the NumPy reference (:mod:`fusedoptim.reference`), of the best ``torch.optim``
path (``fused=True`` where torch has a fused CPU kernel, its default otherwise) and of
fusedoptim's optimizer class (``step()``, timed as torch's is), the speed-ups, and the memory
bandwidth fusedoptim achieves as a fraction of the machine's, which it measures in the same run.

How the timing is kept honest:

* **Same data for every contender.** Parameters and gradients come from one seeded generator per
  (layout, dtype); every contender starts from those values with zeroed state.
* **Warm-up, then the median of several repetitions.** Every copy of the data takes one untimed
  step first (allocating torch's lazy state, faulting pages in, taking step 1's special paths).
  Repetitions continue until about ``--min-time`` seconds are spent (at least 3; out of cache,
  at least 15 for the contenders timed side by side), unless
  ``--repeat`` fixes their number; the report shows the median.
* **Side by side, interleaved.** The contenders of a case are timed together: each has its own
  copies of the data, and their samples alternate (in an order that rotates every round). A
  shared machine's speed drifts over seconds; interleaving puts every contender under the same
  drift, so the speed-ups compare like moments.
* **Nothing left in cache for the out-of-cache sizes.** From ``COLD_MIN_ELEMENTS`` elements up, a
  contender cycles through independent copies of the problem, so many that the copies touched
  between two uses of one copy exceed the last-level cache. Each step then reads its data from
  memory and pays for writing back the previous steps' results, as in training, where the
  forward and backward passes evict the optimizer's data between steps. Smaller cases run hot in
  cache on purpose: that is where they live in practice, and there the per-call overhead is what
  is measured.
* **The bandwidth is measured, not quoted.** Each out-of-cache case is held to the bandwidth of
  its own traffic, timed alongside it: ``_core.stream_update`` reads and writes the same arrays
  as the update (the parameter and each state ``+= s * gradient``, e.g. 7 arrays' bytes for
  Adam), with the least arithmetic. The pattern matters: on this project's machine 5, 7 and 9
  arrays stream 8% to 24% faster than 3 walked the same way, and the kernels' walk
  (software prefetch) adds 6% to 15% over a plain ``a += s * b`` (benchmarks/RESULTS.md), so
  one probe for all would flatter the wider updates. Before and after the cases,
  ``_core.stream_axpy`` (``a += s * b``, 3 arrays) over arrays twice the last-level cache,
  with the run's thread count, is reported as the machine's in-place bandwidth (the in-cache
  cases' '% of bw' uses it), with ``_core.stream_triad`` beside it (its store first reads the
  destination into cache, so it moves 4 arrays' bytes where STREAM counts 3, which makes it
  the slower probe).
* **So is the compute limit.** In cache, AdaGrad, RMSprop, AdaDelta and Adam wait on the CPU's
  square-root and division units, not on memory. ``_core.divider_probe`` issues the same
  correctly rounded square roots and divisions per element as the update (and nothing else) on
  all threads. Where this build computes square roots on the FMA units too (float32 on
  AVX-512, ``build_info()["sqrt_on_fma_units"]``: most of them there, balanced against the
  divider), it issues only the divisions, the least any update can leave to the divider when
  its square roots may run elsewhere. Timed alongside each in-cache case, it gives the least
  time such an update can take there, and with the bandwidth the largest speed-up a target can
  ask.

NumPy runs on one thread whatever ``--threads`` says (it has no threaded elementwise loops), so it
is measured once per case and its number is repeated for every thread count.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import itertools
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from . import _core, optim, reference

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "DEFAULT_SIZES",
    "FLOAT32_BYTES_PER_ELEMENT",
    "OPTIMIZERS",
    "Layout",
    "OptimizerConfig",
    "bytes_per_element",
    "evaluate_targets",
    "main",
    "parse_size",
]

# --------------------------------------------------------------------------------------------
# What is measured.

# Bytes each update must move per element in float32 (float64 doubles them): every array the
# update reads (the parameter, its gradient, each state it reads) plus every array it writes (the
# parameter and each state it updates), i.e. 4 * (3 + 2 * states). Arrays, not instructions: this
# is the traffic one fused pass cannot avoid, so bytes/element / bandwidth is the fastest the
# update can run once its data has left the cache.
FLOAT32_BYTES_PER_ELEMENT: dict[str, int] = {
    "sgd": 12,  # read p, g; write p
    "sgd_momentum": 20,  # read p, g, momentum_buffer; write p, momentum_buffer
    "sgd_nesterov": 20,  # as sgd_momentum
    "adagrad": 20,  # read p, g, sum; write p, sum
    "rmsprop": 20,  # read p, g, square_avg; write p, square_avg
    "rmsprop_centered": 28,  # rmsprop + grad_avg read and written
    "rmsprop_momentum": 28,  # rmsprop + momentum_buffer read and written
    "adadelta": 28,  # read p, g, square_avg, acc_delta; write p, square_avg, acc_delta
    "adam": 28,  # read p, g, exp_avg, exp_avg_sq; write p, exp_avg, exp_avg_sq
    "adam_amsgrad": 36,  # adam + max_exp_avg_sq read and written
    "adamw": 28,  # as adam
}


@dataclass(frozen=True)
class OptimizerConfig:
    """One optimizer configuration as every contender runs it.

    ``state_slots`` lists the functional API's positional state arguments in order, with the
    torch.optim state name each one holds, or ``None`` where this configuration passes ``None``.
    ``options`` are keyword hyperparameters spelled the same way in :mod:`fusedoptim.functional`,
    :mod:`fusedoptim.reference` and ``torch.optim``.
    """

    name: str
    label: str
    function: str
    state_slots: tuple[str | None, ...]
    options: dict[str, Any]
    torch_class: str
    torch_fused: bool
    takes_step: bool = True
    # (square roots, divisions) per element: work for the CPU's square-root and division units,
    # which in cache bound the update as the bandwidth does out of cache (see measure_divider).
    divider_ops: tuple[int, int] = (0, 0)

    @property
    def states(self) -> int:
        """Number of state arrays per parameter."""
        return sum(slot is not None for slot in self.state_slots)

    @property
    def torch_path(self) -> str:
        return "fused=True" if self.torch_fused else "default (for-loop)"

    @property
    def first_step_differs(self) -> bool:
        """Whether the NumPy reference's first step takes another path than later ones (SGD's
        momentum buffer starts as a copy of the gradient); its other updates repeat one path."""
        return self.function == "sgd" and self.options.get("momentum", 0) != 0


# Typical hyperparameters; the values do not change the work done, only keep the state finite
# and away from subnormals over thousands of steps.
OPTIMIZERS: dict[str, OptimizerConfig] = {
    config.name: config
    for config in [
        OptimizerConfig("sgd", "SGD", "sgd", (None,), {"lr": 1e-3}, "SGD", True),
        OptimizerConfig(
            "sgd_momentum", "SGD momentum", "sgd", ("momentum_buffer",),
            {"lr": 1e-3, "momentum": 0.9}, "SGD", True,
        ),
        OptimizerConfig(
            "sgd_nesterov", "SGD Nesterov", "sgd", ("momentum_buffer",),
            {"lr": 1e-3, "momentum": 0.9, "nesterov": True}, "SGD", True,
        ),
        OptimizerConfig(
            "adagrad", "AdaGrad", "adagrad", ("sum",), {"lr": 1e-2}, "Adagrad", True,
            divider_ops=(1, 1),
        ),
        OptimizerConfig(
            "rmsprop", "RMSprop", "rmsprop", ("square_avg", None, None), {"lr": 1e-3},
            "RMSprop", False, takes_step=False, divider_ops=(1, 1),
        ),
        # alpha close to 1: under a constant gradient the centered variance estimate decays like
        # alpha**t, and once rounding drives it below zero the update is NaN (in torch too). With
        # 0.9999 that takes ~1e5 steps, more than a run takes; the work per step is the same.
        OptimizerConfig(
            "rmsprop_centered", "RMSprop centered", "rmsprop", ("square_avg", None, "grad_avg"),
            {"lr": 1e-3, "alpha": 0.9999, "centered": True}, "RMSprop", False, takes_step=False,
            divider_ops=(1, 1),
        ),
        OptimizerConfig(
            "rmsprop_momentum", "RMSprop momentum", "rmsprop",
            ("square_avg", "momentum_buffer", None), {"lr": 1e-3, "momentum": 0.9},
            "RMSprop", False, takes_step=False, divider_ops=(1, 1),
        ),
        OptimizerConfig(
            "adadelta", "AdaDelta", "adadelta", ("square_avg", "acc_delta"), {"lr": 1.0},
            "Adadelta", False, takes_step=False, divider_ops=(2, 1),
        ),
        OptimizerConfig(
            "adam", "Adam", "adam", ("exp_avg", "exp_avg_sq", None), {"lr": 1e-3}, "Adam", True,
            divider_ops=(1, 2),
        ),
        OptimizerConfig(
            "adam_amsgrad", "Adam amsgrad", "adam", ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
            {"lr": 1e-3, "amsgrad": True}, "Adam", True, divider_ops=(1, 2),
        ),
        OptimizerConfig(
            "adamw", "AdamW", "adamw", ("exp_avg", "exp_avg_sq", None),
            {"lr": 1e-3, "weight_decay": 1e-2}, "AdamW", True, divider_ops=(1, 2),
        ),
    ]
}  # fmt: skip


def sqrt_on_fma_units() -> frozenset[str]:
    """The dtypes whose kernels take square roots on the FMA units (most of them, the rest on
    the divider) in this build."""
    return frozenset(_core.build_info()["sqrt_on_fma_units"])


def divider_ops(config: OptimizerConfig, dtype: str | np.dtype) -> tuple[int, int]:
    """(square roots, divisions) per element that ``config``'s update must give the CPU's
    square-root and division units for ``dtype``: none of the square roots where this build's
    kernels can compute them on the FMA units (they put most there and balance the rest on the
    units, but any share could move)."""
    sqrts, divisions = config.divider_ops
    if np.dtype(dtype).name in sqrt_on_fma_units():
        sqrts = 0
    return sqrts, divisions


# The issue's list; rmsprop_momentum is available with --optimizers (or "all").
DEFAULT_OPTIMIZERS = tuple(name for name in OPTIMIZERS if name != "rmsprop_momentum")
DEFAULT_SIZES = "1e3,1e5,1e6,1e7,500x2000,200x500"
CONTENDERS = ("numpy", "torch", "fusedoptim")

# From this many elements (all tensors of the case together) the data is kept out of cache.
COLD_MIN_ELEMENTS = 1_000_000
NEVER = sys.maxsize  # --cold-from never
# Used when the operating system does not say how large the last-level cache is.
FALLBACK_CACHE_BYTES = 64 * 2**20
# Out-of-cache cases: between two uses of one copy of the data, the other copies touched hold at
# least this many times the last-level cache. One is enough for a least-recently-used cache;
# raise it for a cache that keeps part of a cyclic working set (each copy costs memory and time:
# every contender resets all copies and warms each up once).
CACHE_FLUSH_FACTOR = 1.0
# The bandwidth probe's arrays: at least this many float32 elements each, and together at least
# twice the last-level cache.
BANDWIDTH_MIN_ELEMENTS = 64 * 2**20
BANDWIDTH_REPEAT = 5
# The divider probe: this many elements per thread (the kernels' smallest share of a thread, so
# that every thread takes part), kept in its core's cache, each call running over them
# DIVIDER_REPEATS times (about 0.2 ms in float32), DIVIDER_SAMPLES calls per measurement.
DIVIDER_ELEMENTS_PER_THREAD = 2**14
DIVIDER_REPEATS = 25
DIVIDER_SAMPLES = 15

DEFAULT_MIN_TIME = 0.04  # seconds of timed steps per contender and case
DEFAULT_RETRIES = 2
DEFAULT_RETRY_SECONDS = 3.0
QUIET_PATIENCE = 10.0  # the longest wait for a quiet moment before a retry
MIN_REPEATS = 3
# Out of cache, the interleaved contenders (torch, fusedoptim, the probe) take at least this many
# samples: at 1e7 elements --min-time allows only 4 to 10, and a few slow moments of the host
# among so few would move a median (NumPy, timed alone and far slower, keeps MIN_REPEATS).
COLD_MIN_SAMPLES = 15
MAX_REPEATS = 200
# For in-cache cases one timing sample batches calls until it lasts this long, so that timer
# resolution and the loop's own overhead stay below 1% of a sample.
SAMPLE_SECONDS = 2e-3
SEED = 20240611


def bytes_per_element(optimizer: str, dtype: Any) -> int:
    """Bytes one update of ``optimizer`` must move per element of ``dtype``.

    Example:
        >>> import numpy as np
        >>> from fusedoptim.bench import bytes_per_element
        >>> bytes_per_element("adam", np.float32), bytes_per_element("adam_amsgrad", np.float64)
        (28, 72)
    """
    return FLOAT32_BYTES_PER_ELEMENT[optimizer] // 4 * np.dtype(dtype).itemsize


@dataclass(frozen=True)
class Layout:
    """``count`` tensors of ``size`` elements each."""

    count: int
    size: int

    @property
    def elements(self) -> int:
        return self.count * self.size

    @property
    def one_tensor(self) -> bool:
        return self.count == 1

    @property
    def name(self) -> str:
        """``"1 tensor"`` or ``"500 x 2,000"``, as the table shows it."""
        return "1 tensor" if self.one_tensor else f"{self.count} x {self.size:,}"

    @property
    def id(self) -> str:
        """``"1e7"`` (one tensor, when exact) or ``"500x2000"``, as test ids and JSON use it."""
        if self.one_tensor:
            exponent = round(math.log10(self.size))
            return f"1e{exponent}" if 10**exponent == self.size else str(self.size)
        return f"{self.count}x{self.size}"


def parse_size(text: str) -> Layout:
    """Parse one ``--sizes`` entry: a size (``1e6``, ``250000``, ``10_000``) or ``COUNTxSIZE``.

    Example:
        >>> from fusedoptim.bench import parse_size
        >>> parse_size("1e6"), parse_size("500x2000")
        (Layout(count=1, size=1000000), Layout(count=500, size=2000))
        >>> parse_size("0")
        Traceback (most recent call last):
        ...
        ValueError: size must be a positive whole number of elements, got '0'
    """
    lowered = text.strip().lower()
    count_text, _, size_text = lowered.partition("x") if "x" in lowered else ("1", "", lowered)
    count, size = _positive_int(count_text, text), _positive_int(size_text, text)
    return Layout(count, size)


def _positive_int(text: str, whole: str) -> int:
    error = ValueError(f"size must be a positive whole number of elements, got {whole!r}")
    if not re.fullmatch(r"[0-9][0-9_]*(\.[0-9]*)?([eE]\+?[0-9]+)?", text.strip()):
        raise error
    value = float(text.replace("_", ""))
    if not (1 <= value <= 2**40) or value != int(value):
        raise error
    return int(value)


# --------------------------------------------------------------------------------------------
# The machine.


def last_level_cache_bytes() -> int:
    """Size of the largest CPU cache the operating system reports, or a fallback of 64 MiB.

    Example:
        >>> from fusedoptim.bench import last_level_cache_bytes
        >>> last_level_cache_bytes() > 0
        True
    """
    largest = (0, 0)
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            level = int((index / "level").read_text())
            size = _parse_cache_size((index / "size").read_text())
        except (OSError, ValueError):
            continue
        largest = max(largest, (level, size))
    return largest[1] or FALLBACK_CACHE_BYTES


def _parse_cache_size(text: str) -> int:
    match = re.fullmatch(r"\s*([0-9]+)\s*([KMG]?)B?\s*", text)
    if match is None:
        raise ValueError(text)
    return int(match.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[match.group(2)]


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one).

    Example:
        >>> from fusedoptim.bench import usable_cores
        >>> usable_cores() >= 1
        True
    """
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(torch: ModuleType | None) -> dict[str, Any]:
    """CPU, cores, cache, build and library versions, for the report and the JSON file."""
    from . import __version__

    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cores": usable_cores(),
        "last_level_cache_bytes": last_level_cache_bytes(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "fusedoptim": __version__,
        "build_info": dict(_core.build_info()),
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
    }


def _import_torch() -> ModuleType | None:
    try:
        import torch
    except ImportError:
        return None
    return torch


@contextlib.contextmanager
def thread_count(threads: int, torch: ModuleType | None) -> Iterator[None]:
    """Run fusedoptim (and torch, when given) on ``threads`` threads, then restore both.

    Example:
        >>> import fusedoptim
        >>> from fusedoptim.bench import thread_count
        >>> before = fusedoptim.get_num_threads()
        >>> with thread_count(1, None):
        ...     fusedoptim.get_num_threads()
        1
        >>> fusedoptim.get_num_threads() == before
        True
    """
    saved = _core.get_num_threads()
    saved_torch = torch.get_num_threads() if torch is not None else None
    _core.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        _core.set_num_threads(saved)
        if torch is not None and saved_torch is not None:
            torch.set_num_threads(saved_torch)


# --------------------------------------------------------------------------------------------
# The data.


def base_data(layout: Layout, dtype: Any, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Initial parameters and gradients of a case, flat: the same for every contender.

    Gradients are bounded away from zero so that no state decays towards subnormals (which would
    slow every contender down for reasons that have nothing to do with it).

    Example:
        >>> import numpy as np
        >>> from fusedoptim.bench import Layout, base_data
        >>> params, grads = base_data(Layout(2, 3), np.float32)
        >>> params.shape, grads.dtype, bool(np.all(np.abs(grads) >= 1e-3))
        ((6,), dtype('float32'), True)
    """
    rng = np.random.default_rng(seed)
    params = rng.standard_normal(layout.elements, dtype=np.float32).astype(dtype)
    magnitude = rng.uniform(1e-3, 1e-2, layout.elements).astype(dtype)
    grads = np.where(rng.random(layout.elements) < 0.5, -magnitude, magnitude)
    return params, grads


@dataclass
class ProblemCopy:
    """One independent copy of a case: per tensor, its parameter, gradient and state arrays."""

    params: list[np.ndarray]
    grads: list[np.ndarray]
    states: list[list[np.ndarray]]  # states[slot][tensor]


class ArrayPool:
    """Copies of one case's arrays, allocated on first use and reused by every contender.

    Reusing the memory spares each contender the page faults of fresh allocations (outside the
    timing anyway, but they cost wall time); :meth:`copies` resets the values every time, so each
    contender starts from the same data. Each tensor is its own allocation, as in a model.
    """

    def __init__(
        self,
        layout: Layout,
        dtype: Any,
        seed: int = SEED,
        base: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """``base``: :func:`base_data`'s arrays for this many elements, when already made (at
        1e7 elements making them takes about half a second; a case's pools share them)."""
        self.layout = layout
        self.dtype = np.dtype(dtype)
        params, grads = base_data(layout, dtype, seed) if base is None else base
        if params.size != layout.elements or grads.size != layout.elements:
            raise ValueError(f"base data of {params.size} elements for {layout.elements}")
        self._base_params = np.split(params, layout.count)
        self._base_grads = np.split(grads, layout.count)
        self._arrays: dict[tuple[int, str], list[np.ndarray]] = {}
        self._set: set[tuple[int, str]] = set()  # arrays holding values set by copies()

    def _tensors(self, copy: int, role: str) -> list[np.ndarray]:
        key = (copy, role)
        if key not in self._arrays:
            self._arrays[key] = [
                np.empty(self.layout.size, self.dtype) for _ in range(self.layout.count)
            ]
        return self._arrays[key]

    def copies(self, count: int, states: int, reset: bool = True) -> list[ProblemCopy]:
        """``count`` copies with ``states`` zeroed states per tensor, reset to the base data.

        With ``reset=False`` only arrays allocated by this call are set (to the same values); the
        others keep what earlier users left in them: for the bandwidth probe, whose traffic is
        the same whatever the values, and whose updates (``+= 1e-9 * grad``) keep them finite.
        """
        result = []
        for copy in range(count):
            params, grads = self._tensors(copy, "param"), self._tensors(copy, "grad")
            state_lists = [self._tensors(copy, f"state{slot}") for slot in range(states)]
            result.append(ProblemCopy(params, grads, state_lists))
        roles = ["param", "grad", *(f"state{slot}" for slot in range(states))]
        work = [
            (copy, role)
            for copy in range(count)
            for role in roles
            if reset or (copy, role) not in self._set
        ]
        # Resetting hundreds of megabytes is memory-bound: one array list per worker thread
        # (NumPy releases the GIL while copying) does it in a fraction of one thread's time.
        with ThreadPoolExecutor(max_workers=usable_cores()) as executor:
            list(executor.map(lambda key: self._reset(*key), work))
        self._set.update(work)
        return result

    def _reset(self, copy: int, role: str) -> None:
        tensors = self._arrays[(copy, role)]
        if role in ("param", "grad"):
            base = self._base_params if role == "param" else self._base_grads
            for tensor, values in zip(tensors, base):
                np.copyto(tensor, values)
        else:
            for tensor in tensors:
                tensor.fill(0)


def copies_needed(
    config: OptimizerConfig,
    layout: Layout,
    dtype: Any,
    cache_bytes: int,
    cold_from: int | None = None,
) -> int:
    """How many copies of the data a contender cycles through so no step finds them in cache.

    One copy for in-cache cases, those of fewer than ``cold_from`` elements (default
    ``COLD_MIN_ELEMENTS``). Otherwise enough copies that the *other* copies, touched between
    two uses of one copy, hold at least ``CACHE_FLUSH_FACTOR`` times the last-level cache.

    Example:
        >>> import numpy as np
        >>> from fusedoptim.bench import OPTIMIZERS, Layout, copies_needed
        >>> copies_needed(OPTIMIZERS["adam"], Layout(1, 10**7), np.float32, 100 * 10**6)
        2
        >>> copies_needed(OPTIMIZERS["adam"], Layout(1, 10**6), np.float32, 100 * 10**6)
        8
        >>> copies_needed(OPTIMIZERS["adam"], Layout(1, 1000), np.float32, 100 * 10**6)
        1
    """
    if layout.elements < (COLD_MIN_ELEMENTS if cold_from is None else cold_from):
        return 1
    return _copies_out_of_cache(2 + config.states, layout.elements, dtype, cache_bytes)


def _copies_out_of_cache(arrays: int, elements: int, dtype: Any, cache_bytes: int) -> int:
    copy_bytes = arrays * elements * np.dtype(dtype).itemsize
    return 1 + max(1, math.ceil(CACHE_FLUSH_FACTOR * cache_bytes / copy_bytes))


# --------------------------------------------------------------------------------------------
# The contenders: each makes a function step(copy) that takes one optimizer step on that copy.


def pool_states(contender: str, config: OptimizerConfig) -> int:
    """State arrays per tensor that ``contender``'s copies of the data need from the pool:
    NumPy's reference updates the copy's own; fusedoptim's and torch's optimizers create and
    keep theirs (zeroed, at the first step), so their copies need none. The copies to cycle
    through out of cache count those states all the same (:func:`copies_needed`): they are as
    large wherever they live.

    Example:
        >>> from fusedoptim.bench import OPTIMIZERS, pool_states
        >>> pool_states("numpy", OPTIMIZERS["adam"]), pool_states("torch", OPTIMIZERS["adam"])
        (2, 0)
    """
    return config.states if contender == "numpy" else 0


Stepper = Callable[[int], None]


def make_stepper(
    contender: str,
    config: OptimizerConfig,
    copies: Sequence[ProblemCopy],
    torch: ModuleType | None = None,
) -> Stepper:
    """One optimizer step on copy ``k`` of the data, for ``contender``.

    ``"numpy"`` calls :mod:`fusedoptim.reference` once per step over all tensors;
    ``"fusedoptim"`` builds one optimizer (:class:`fusedoptim.Adam`, ...) per copy on the copy's
    parameters and calls ``step(grads)``; ``"torch"`` builds one ``torch.optim`` optimizer per
    copy, on tensors that share the copy's memory with gradients assigned once, and calls
    ``step()``. Each copy counts its own steps from 1.

    Example:
        >>> import numpy as np
        >>> from fusedoptim.bench import OPTIMIZERS, ArrayPool, Layout, make_stepper
        >>> pool = ArrayPool(Layout(2, 4), np.float32)
        >>> copy = pool.copies(1, OPTIMIZERS["adam"].states)[0]
        >>> before = copy.params[0].copy()
        >>> step = make_stepper("fusedoptim", OPTIMIZERS["adam"], [copy])
        >>> step(0)
        >>> bool(np.all(copy.params[0] != before))
        True
    """
    if contender == "torch":
        if torch is None:
            raise ValueError("the torch contender needs the torch module")
        return _torch_stepper(config, copies, torch)
    if contender == "fusedoptim":
        return _fusedoptim_stepper(config, copies)
    if contender != "numpy":
        raise ValueError(f"unknown contender {contender!r}; choose from {', '.join(CONTENDERS)}")
    function = getattr(reference, config.function)
    calls = []
    for copy in copies:
        states = iter(copy.states)
        state_arguments = [None if slot is None else next(states) for slot in config.state_slots]
        calls.append((copy.params, copy.grads, *state_arguments))
    steps = [0] * len(copies)
    options = config.options

    if config.takes_step:

        def step(k: int) -> None:
            steps[k] += 1
            function(*calls[k], step=steps[k], **options)

    else:

        def step(k: int) -> None:
            function(*calls[k], **options)

    return step


def _fusedoptim_stepper(config: OptimizerConfig, copies: Sequence[ProblemCopy]) -> Stepper:
    # The optimizer classes, as torch's are timed through theirs: one optimizer per copy on the
    # copy's parameters, stepping with its gradients (the classes keep their own state, created
    # zeroed at the first, untimed step, as torch's is).
    optimizer_class = getattr(optim, config.torch_class)
    optimizers = [optimizer_class(copy.params, **config.options) for copy in copies]
    grads = [copy.grads for copy in copies]

    def step(k: int) -> None:
        optimizers[k].step(grads[k])

    return step


def _torch_stepper(config: OptimizerConfig, copies: Sequence[ProblemCopy], torch: Any) -> Stepper:
    optimizer_class = getattr(torch.optim, config.torch_class)
    options = dict(config.options)
    if config.torch_fused:
        options["fused"] = True
    optimizers = []
    for copy in copies:
        params = []
        for param, grad in zip(copy.params, copy.grads):
            tensor = torch.from_numpy(param).requires_grad_(True)
            tensor.grad = torch.from_numpy(grad)
            params.append(tensor)
        optimizers.append(optimizer_class(params, **options))

    def step(k: int) -> None:
        optimizers[k].step()

    return step


# --------------------------------------------------------------------------------------------
# Timing.


# A measurement is flagged as disturbed when other processes (or the hypervisor, as steal time)
# took more than this share of one core meanwhile, and at least this many clock ticks: on a
# machine whose cores are all in use by the run, one busy core makes every multi-threaded step
# wait for the scheduler (whole time slices, milliseconds), so such numbers measure the load.
DISTURBED_CORE_SHARE = 0.1
DISTURBED_MIN_TICKS = 3


class CpuMonitor:
    """CPU time used by *other* processes between :meth:`start` and :meth:`stop` (Linux only).

    The machine-wide busy and steal time from ``/proc/stat`` minus this process's own CPU time.
    Elsewhere it measures nothing and :meth:`stop` returns ``None``.
    """

    def __init__(self) -> None:
        self._start: tuple[float, float, float] | None = None

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as stat:
                fields = [int(value) for value in stat.readline().split()[1:]]
            ticks_per_second = os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, AttributeError):
            return None
        # user nice system idle iowait irq softirq steal ...; guest time is inside user.
        busy = fields[0] + fields[1] + fields[2] + sum(fields[5:8])
        own = os.times()
        return busy / ticks_per_second, own.user + own.system, time.perf_counter()

    def start(self) -> CpuMonitor:
        self._start = self._sample()
        return self

    def stop(self) -> float | None:
        """Cores' worth of CPU other processes used on average since :meth:`start`, or None."""
        end = self._sample()
        if self._start is None or end is None:
            return None
        busy, own, wall = (b - a for a, b in zip(self._start, end))
        others = max(0.0, busy - own)
        ticks = others * os.sysconf("SC_CLK_TCK")
        if wall <= 0 or ticks < DISTURBED_MIN_TICKS:
            return 0.0
        return others / wall


@dataclass
class Timing:
    """Seconds per step of each timing sample (a sample averages ``number`` consecutive steps).

    ``others`` is the CPU other processes used meanwhile, in cores (see :class:`CpuMonitor`).
    """

    samples: list[float]
    number: int
    copies: int
    others: float | None = None
    attempts: int = 1
    wall_seconds: float = 0.0  # the whole measurement: resets, warm-up, retries

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def disturbed(self) -> bool:
        return self.others is not None and self.others > DISTURBED_CORE_SHARE


def time_steps(
    step: Stepper, copies: int, repeat: int | None = None, min_time: float = DEFAULT_MIN_TIME
) -> Timing:
    """Warm up, then time steps of ``step`` cycling through ``copies`` copies of the data.

    With one copy (in-cache cases) a sample is a batch of calls lasting about ``SAMPLE_SECONDS``;
    with several (out-of-cache cases) a sample is one call, on the copy touched longest ago.
    ``repeat`` fixes the number of samples; otherwise samples are taken until ``min_time``
    seconds are spent, at least ``MIN_REPEATS`` and at most ``MAX_REPEATS``. One contender of
    :func:`time_interleaved`.

    Example:
        >>> from fusedoptim.bench import time_steps
        >>> copies_used = []
        >>> timing = time_steps(copies_used.append, copies=3, repeat=4)
        >>> copies_used  # warm-up of every copy, one calibration step, then one step per sample
        [0, 1, 2, 0, 1, 2, 0, 1]
        >>> len(timing.samples), timing.number
        (4, 1)
    """
    return time_interleaved({"": step}, copies, repeat, min_time)[""]


def turn_orders(names: Sequence[str]) -> list[tuple[str, ...]]:
    """Orders of the contenders for successive rounds, to be cycled through, such that over one
    cycle (counting from the end of one round into the next) each contender comes right after
    each other one equally often.

    Example:
        >>> from fusedoptim.bench import turn_orders
        >>> turn_orders(["a", "b", "c"])  # a b c a c b | a ...: ab bc ca ac cb ba, once each
        [('a', 'b', 'c'), ('a', 'c', 'b')]
    """
    names = tuple(names)
    pairs = [(a, b) for a in names for b in names if a != b]
    orders = list(itertools.permutations(names))
    for length in range(1, 4):
        if len(orders) ** length > 20_000:
            break
        for cycle in itertools.product(orders, repeat=length):
            flat = [name for order in cycle for name in order]
            follows = dict.fromkeys(pairs, 0)
            for before, after in zip(flat, flat[1:] + flat[:1]):
                if before != after:
                    follows[(before, after)] += 1
            if len(set(follows.values())) <= 1:
                return list(cycle)
    return orders  # every order in turn: balanced within rounds, nearly so across them


def time_interleaved(
    steps: Mapping[str, Stepper],
    copies: int | Mapping[str, int],
    repeat: int | None = None,
    min_time: float = DEFAULT_MIN_TIME,
    warm_up: Mapping[str, int] | None = None,
    min_samples: int = MIN_REPEATS,
) -> dict[str, Timing]:
    """Time several contenders side by side, their samples interleaved.

    Each contender cycles through its own ``copies`` copies of the data (a number for all, or
    one per contender) and is warmed up and calibrated as :func:`time_steps` describes. Then the
    samples are taken in rounds: in each round the contenders take turns, each contender's
    samples spread evenly over the rounds (a slow one that needs fewer samples takes one every
    few rounds). So a change in the machine's speed while the case is measured (another tenant
    of a shared host, a clock change) reaches every contender alike and their ratio holds, where
    timing one contender after the other would compare different moments. The rounds cycle
    through :func:`turn_orders`, so that, when the contenders take the same number of samples,
    each follows each other one equally often (an out-of-cache step also pays for writing back
    the data the step before it left dirty, and contenders leave different amounts). When one
    takes fewer samples, its turns come after whichever contender ran before in that round, and
    most samples of the others follow themselves or each other: a small share of the samples, and
    the medians reported are robust to it.

    ``warm_up`` limits the untimed first steps of the contenders it names to that many copies
    (default: every copy), for contenders that create no state and whose first step is like the
    others. Without ``repeat``, each contender takes at least ``min_samples`` samples.

    Example:
        >>> from fusedoptim.bench import time_interleaved
        >>> calls = []
        >>> timings = time_interleaved(
        ...     {"a": lambda k: calls.append(("a", k)), "b": lambda k: calls.append(("b", k))},
        ...     copies=1, repeat=3)
        >>> [len(timing.samples) for timing in timings.values()]
        [3, 3]
    """
    clock = time.perf_counter
    monitor = CpuMonitor().start()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a sample would be charged to a contender
    names = list(steps)
    count = copies if isinstance(copies, Mapping) else dict.fromkeys(names, copies)
    number: dict[str, int] = {}
    wanted: dict[str, int] = {}
    position: dict[str, int] = {}
    samples: dict[str, list[float]] = {name: [] for name in names}
    try:
        for name in names:  # warm-up: every copy once
            warm = count[name] if warm_up is None else warm_up.get(name, count[name])
            for k in range(min(warm, count[name])):
                steps[name](k)
        for name in names:
            step = steps[name]
            if count[name] == 1:
                step(0)
                batch = 1
                while True:  # calibrate the batch, doubling from one call
                    start = clock()
                    for _ in range(batch):
                        step(0)
                    elapsed = clock() - start
                    if elapsed >= SAMPLE_SECONDS or batch >= 2**20:
                        break
                    batch *= 2
            else:
                batch = 1
                start = clock()
                step(0)
                elapsed = clock() - start
            number[name] = batch
            position[name] = 1 % count[name]
            wanted[name] = (
                repeat
                if repeat is not None
                else min(MAX_REPEATS, max(min_samples, math.ceil(min_time / elapsed)))
            )
        rounds = max(wanted.values())
        orders = turn_orders(names)
        for r in range(rounds):
            for name in orders[r % len(orders)]:
                if (r + 1) * wanted[name] // rounds == r * wanted[name] // rounds:
                    continue  # not this contender's round
                step, batch, k = steps[name], number[name], position[name]
                start = clock()
                for _ in range(batch):
                    step(k)
                samples[name].append((clock() - start) / batch)
                position[name] = (k + 1) % count[name]
    finally:
        if gc_was_enabled:
            gc.enable()
    others = monitor.stop()
    return {name: Timing(samples[name], number[name], count[name], others) for name in names}


@dataclass
class Bandwidth:
    """Memory bandwidth measured on ``threads`` threads, in GB/s (10^9 bytes per second)."""

    threads: int
    in_place_gbs: float  # stream_axpy: a += s * b, 3 arrays' bytes per element
    triad_gbs: float  # stream_triad: a = b + s * c, 4 arrays' bytes (with write-allocate)
    elements: int
    in_place_samples: list[float] = field(default_factory=list)
    triad_samples: list[float] = field(default_factory=list)
    others: float | None = None  # cores other processes used meanwhile (see CpuMonitor)


def bandwidth_elements(cache_bytes: int) -> int:
    """Elements per float32 probe array: two arrays together at least twice the cache.

    Example:
        >>> from fusedoptim.bench import BANDWIDTH_MIN_ELEMENTS, bandwidth_elements
        >>> bandwidth_elements(2**20) == BANDWIDTH_MIN_ELEMENTS
        True
    """
    return max(BANDWIDTH_MIN_ELEMENTS, math.ceil(cache_bytes / 4))


def bandwidth_arrays(cache_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three float32 arrays of ones the bandwidth probes run on (hundreds of megabytes each).

    Written by every usable core at once: the first write of fresh memory faults its pages in,
    which on a virtual machine can take longer than the probes themselves. A run makes them
    once and measures before and after the cases on the same arrays.
    """
    elements = bandwidth_elements(cache_bytes)
    arrays = tuple(np.empty(elements, np.float32) for _ in range(3))
    workers = usable_cores()
    bounds = [elements * k // workers for k in range(workers + 1)]
    pieces = [array[lo:hi] for array in arrays for lo, hi in zip(bounds, bounds[1:])]
    with ThreadPoolExecutor(max_workers=workers) as executor:  # np.copyto releases the GIL
        list(executor.map(lambda piece: np.copyto(piece, 1.0), pieces))
    return arrays  # type: ignore[return-value]


def measure_bandwidth(
    threads: int,
    cache_bytes: int,
    repeat: int | None = None,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Bandwidth:
    """Median bandwidth of the two STREAM-style probes in ``_core`` on ``threads`` threads, on
    ``arrays`` (from :func:`bandwidth_arrays`; made for this call when not given)."""
    a, b, c = bandwidth_arrays(cache_bytes) if arrays is None else arrays
    elements = a.size
    repeat = repeat or BANDWIDTH_REPEAT
    # Tiny scalar: a grows by ~1e-7 per call and stays far from overflow however often it runs.
    scalar = 1e-7

    def probe(function: Callable[[], None], arrays: int) -> tuple[float, list[float]]:
        function()  # faults the pages in and starts the thread team
        samples = []
        for _ in range(max(repeat, MIN_REPEATS)):
            start = time.perf_counter()
            function()
            samples.append(time.perf_counter() - start)
        return arrays * 4 * elements / statistics.median(samples) / 1e9, samples

    monitor = CpuMonitor().start()
    with thread_count(threads, None):
        in_place, in_place_samples = probe(lambda: _core.stream_axpy(a, b, scalar), 3)
        triad, triad_samples = probe(lambda: _core.stream_triad(a, b, c, scalar), 4)
    return Bandwidth(
        threads, in_place, triad, elements, in_place_samples, triad_samples, monitor.stop()
    )


@dataclass
class DividerRate:
    """The square-root and division units' rate on ``threads`` threads: ns per element of work
    with ``square_roots`` square roots and ``divisions`` divisions (``_core.divider_probe``)."""

    threads: int
    dtype: str
    square_roots: int
    divisions: int
    ns_per_element: float  # the fastest sample: the units' best rate in the run
    samples: list[float] = field(default_factory=list)  # seconds per call
    elements: int = 0  # per call: elements * repeats pieces of work

    @property
    def key(self) -> tuple[int, str, int, int]:
        return (self.threads, self.dtype, self.square_roots, self.divisions)


def divider_work(threads: int) -> int:
    """Elements of work one divider probe call on ``threads`` threads does (its arrays' length
    times its passes over them)."""
    return DIVIDER_ELEMENTS_PER_THREAD * threads * DIVIDER_REPEATS


def divider_arrays(threads: int, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """The divider probe's two arrays: each thread's share fits its core's cache."""
    rng = np.random.default_rng(SEED)
    elements = DIVIDER_ELEMENTS_PER_THREAD * threads
    return (rng.uniform(1.0, 2.0, elements).astype(dtype),
            rng.uniform(1.0, 2.0, elements).astype(dtype))  # fmt: skip


def divider_stepper(threads: int, dtype: Any, ops: tuple[int, int]) -> Stepper:
    """``_core.divider_probe`` as one contender of a case (whatever the copy ``k``: its arrays
    stay in cache): the square-root and division units' rate at the moment of the case."""
    a, b = divider_arrays(threads, dtype)

    def step(k: int) -> None:
        _core.divider_probe(a, b, ops[0], ops[1], DIVIDER_REPEATS)

    return step


def measure_divider(threads: int, dtype: str, square_roots: int, divisions: int) -> DividerRate:
    """The time per element that ``square_roots`` square roots and ``divisions`` divisions
    take on ``threads`` threads, in cache, with nothing else to wait for: no update with that
    many correctly rounded square roots and divisions per element runs faster in cache
    (:meth:`Report.floors`). The fastest of the samples: a bound should err on the fast side."""
    a, b = divider_arrays(threads, dtype)
    with thread_count(threads, None):
        _core.divider_probe(a, b, square_roots, divisions, 1)  # starts the thread team
        samples = []
        for _ in range(DIVIDER_SAMPLES):
            start = time.perf_counter()
            _core.divider_probe(a, b, square_roots, divisions, DIVIDER_REPEATS)
            samples.append(time.perf_counter() - start)
    work = divider_work(threads)
    return DividerRate(threads, dtype, square_roots, divisions, min(samples) / work * 1e9,
                       samples, work)  # fmt: skip


# --------------------------------------------------------------------------------------------
# A run.


@dataclass
class Settings:
    optimizers: list[str]
    layouts: list[Layout]
    dtypes: list[str]
    threads: list[int]
    contenders: list[str]
    repeat: int | None = None
    min_time: float = DEFAULT_MIN_TIME
    cold_from: int | None = None  # None: COLD_MIN_ELEMENTS
    retries: int = 0  # measurements taken again when other processes disturbed them
    retry_seconds: float = math.inf  # the most time a run spends on such retries, in all

    @property
    def cold_threshold(self) -> int:
        return COLD_MIN_ELEMENTS if self.cold_from is None else self.cold_from


@dataclass
class Case:
    """All contenders on one (optimizer, layout, dtype, threads)."""

    optimizer: str
    layout: Layout
    dtype: str
    threads: int
    bytes_per_element: int
    timings: dict[str, Timing] = field(default_factory=dict)
    cold: bool | None = None  # data out of cache; None: decided by COLD_MIN_ELEMENTS
    probe: Timing | None = None  # the bandwidth probe timed alongside (out-of-cache cases)
    divider: Timing | None = None  # the divider probe timed alongside (square roots, divisions)
    divider_work: int = 0  # elements of work per divider probe call

    def __post_init__(self) -> None:
        if self.cold is None:
            self.cold = self.layout.elements >= COLD_MIN_ELEMENTS

    def ns_per_element(self, contender: str) -> float | None:
        timing = self.timings.get(contender)
        return None if timing is None else timing.median / self.layout.elements * 1e9

    def speedup(self, contender: str) -> float | None:
        """How many times faster fusedoptim is than ``contender``."""
        mine, theirs = self.ns_per_element("fusedoptim"), self.ns_per_element(contender)
        return None if mine is None or theirs is None else theirs / mine

    @property
    def gbs(self) -> float | None:
        """Bandwidth fusedoptim achieves, counting the bytes the update must move."""
        mine = self.ns_per_element("fusedoptim")
        return None if mine is None else self.bytes_per_element / mine

    @property
    def divider_ns(self) -> float | None:
        """ns per element of the case's square roots and divisions at the rate the divider
        probe timed alongside measured (its median), or None where it did not run."""
        if self.divider is None or not self.divider_work:
            return None
        return self.divider.median / self.divider_work * 1e9

    @property
    def probe_gbs(self) -> float | None:
        """Bandwidth of the case's own traffic (:func:`probe_stepper`: the update's arrays, one
        of each of the case's size and dtype, read and written with one addition each) measured
        interleaved with the contenders, or None where no probe ran (in-cache cases)."""
        if self.probe is None:
            return None
        moved = self.bytes_per_element * self.layout.elements
        return moved / self.probe.median / 1e9


@dataclass
class Report:
    settings: Settings
    machine: dict[str, Any]
    bandwidth: dict[int, Bandwidth]
    cases: list[Case]
    command: str
    started: str
    wall_seconds: float = 0.0
    others: float | None = None  # cores other processes used on average during the run
    notes: list[str] = field(default_factory=list)
    bandwidth_runs: list[Bandwidth] = field(default_factory=list)  # every probe, in run order
    # The fastest divider rate per (threads, dtype, square roots, divisions), and every one.
    divider: dict[tuple[int, str, int, int], DividerRate] = field(default_factory=dict)
    divider_runs: list[DividerRate] = field(default_factory=list)

    def case_bandwidth(self, case: Case) -> float | None:
        """The bandwidth a case is held to: its own probe's, measured alongside it (out of
        cache), else the run's (before and after the cases)."""
        if case.probe_gbs is not None:
            return case.probe_gbs
        bandwidth = self.bandwidth.get(case.threads)
        return None if bandwidth is None else bandwidth.in_place_gbs

    def divider_floor(self, case: Case) -> float | None:
        """ns per element the case's square roots and divisions take: at the rate measured
        alongside the case, else at the units' fastest rate of the run; None for an optimizer
        without them (SGD) or when not measured."""
        if case.divider_ns is not None:
            return case.divider_ns
        sqrts, divisions = divider_ops(OPTIMIZERS[case.optimizer], case.dtype)
        rate = self.divider.get((case.threads, case.dtype, sqrts, divisions))
        return None if rate is None else rate.ns_per_element

    def floors(self, case: Case) -> dict[str, float]:
        """The least ns per element any implementation of the case's update can take, per limit:
        ``"bandwidth"`` (out of cache: its bytes moved once at the case's bandwidth) and
        ``"divider"`` (its correctly rounded square roots and divisions at the units' rate).
        Each is capped at fusedoptim's own time where fusedoptim ran faster than it."""
        mine = case.ns_per_element("fusedoptim")
        result = {}
        bandwidth = self.case_bandwidth(case)
        if case.cold and bandwidth is not None:
            result["bandwidth"] = case.bytes_per_element / max(bandwidth, case.gbs or 0.0)
        divider = self.divider_floor(case)
        if divider is not None:
            result["divider"] = divider if mine is None else min(divider, mine)
        return result

    def bound_limit(self, case: Case) -> str | None:
        """Which of :meth:`floors` binds (the slowest), or None where none applies."""
        floors = self.floors(case)
        return max(floors, key=floors.__getitem__) if floors else None

    def speedup_bound(self, case: Case, contender: str) -> float | None:
        """The largest speed-up over ``contender`` that the case's :meth:`floors` allow: its
        time over the slowest floor. None where no floor applies (SGD in cache)."""
        theirs, floors = case.ns_per_element(contender), self.floors(case)
        if theirs is None or not floors:
            return None
        return theirs / max(floors.values())

    def bandwidth_fraction(self, case: Case) -> float | None:
        gbs, bandwidth = case.gbs, self.case_bandwidth(case)
        return None if gbs is None or bandwidth is None else gbs / bandwidth

    def find(self, optimizer: str, layout: Layout, dtype: str, threads: int) -> Case | None:
        for case in self.cases:
            if (case.optimizer, case.layout, case.dtype, case.threads) == (
                optimizer, layout, dtype, threads,
            ):  # fmt: skip
                return case
        return None


# The contender name of the bandwidth probe timed alongside the out-of-cache cases.
PROBE = "bandwidth"
PROBE_SCALAR = 1e-9  # a += PROBE_SCALAR * b barely changes the probe's arrays
# The contender name of the divider probe timed alongside cases with square roots and divisions.
DIVIDER = "divider"


def probe_stepper(copies: Sequence[ProblemCopy]) -> Stepper:
    """``_core.stream_update`` on copy ``k``'s first parameter, gradient and states: each of
    the parameter and the states ``+= s * gradient``, the traffic of the case's update (the
    same arrays read and written) with the least arithmetic. The bandwidth of that pattern, as
    one contender of a case: more streams reach more bandwidth than ``a += s * b``'s three on
    this project's machine (benchmarks/RESULTS.md), so a case is held to its own pattern's."""

    def step(k: int) -> None:
        copy = copies[k]
        written = [copy.params[0], *(tensors[0] for tensors in copy.states)]
        _core.stream_update(written, copy.grads[0], PROBE_SCALAR)

    return step


def _measure(
    contenders: Sequence[str],
    config: OptimizerConfig,
    pools: Mapping[str, ArrayPool],
    count: int,
    settings: Settings,
    torch: ModuleType | None,
    probe_copies: int = 0,
    budget: RetryBudget | None = None,
    divider_threads: int = 0,
) -> dict[str, Timing]:
    """Time the contenders on one case, each on its own copies of the same data.

    NumPy, the slowest by far, is timed first on its own; then torch and fusedoptim are timed
    interleaved (:func:`time_interleaved`), with the bandwidth probe (``pools[PROBE]``, on
    ``probe_copies`` copies) as another contender when ``probe_copies`` is set, and the divider
    probe (:func:`divider_stepper`, the configuration's square roots and divisions on
    ``divider_threads`` threads) when ``divider_threads`` is set. Measured again, from the same
    data, while other processes disturb them (within ``budget``).
    """
    budget = RetryBudget(settings.retry_seconds) if budget is None else budget
    started = time.perf_counter()
    groups = [[name] for name in contenders if name == "numpy"]
    side_by_side = [name for name in contenders if name != "numpy"]
    if side_by_side:
        groups.append(side_by_side)
    timings: dict[str, Timing] = {}
    for group in groups:
        attempt = 0
        while True:
            with budget.charge(attempt):
                if attempt:
                    wait_for_quiet(patience=budget.patience())
                measured = _measure_group(
                    group, config, pools, count, settings, torch,
                    probe_copies if group is side_by_side else 0,
                    divider_threads if group is side_by_side else 0,
                )  # fmt: skip
            attempt += 1
            disturbed = any(timing.disturbed for timing in measured.values())
            if not disturbed or not budget.allows(attempt, settings):
                break
        for timing in measured.values():
            timing.attempts = attempt
        timings.update(measured)
    wall = time.perf_counter() - started
    for timing in timings.values():
        timing.wall_seconds = wall
    return timings


def _measure_group(
    group: Sequence[str],
    config: OptimizerConfig,
    pools: Mapping[str, ArrayPool],
    count: int,
    settings: Settings,
    torch: ModuleType | None,
    probe_copies: int,
    divider_threads: int = 0,
) -> dict[str, Timing]:
    """One measurement of ``group``'s contenders (interleaved), from freshly reset copies."""
    steps = {
        name: make_stepper(
            name, config, pools[name].copies(count, pool_states(name, config)), torch
        )
        for name in group
    }
    copies = dict.fromkeys(group, count)
    if probe_copies:
        probe = pools[PROBE].copies(probe_copies, config.states, reset=False)  # any values do
        steps[PROBE] = probe_stepper(probe)
        copies[PROBE] = probe_copies
    dtype = pools[group[0]].dtype
    if divider_threads and divider_ops(config, dtype) != (0, 0):
        steps[DIVIDER] = divider_stepper(divider_threads, dtype,
                                         divider_ops(config, dtype))  # fmt: skip
        copies[DIVIDER] = 1
    # The warm-up step creates torch's and fusedoptim's state on each copy. NumPy's state is
    # the copies' own, zeroed by the reset: its first copy's step takes the first-call costs,
    # and the others need one only where a first step takes another path than later ones.
    warm_up = {"numpy": 1} if not config.first_step_differs else None
    side_by_side = count > 1 and "numpy" not in group  # out of cache
    return time_interleaved(steps, copies, settings.repeat, settings.min_time, warm_up,
                            COLD_MIN_SAMPLES if side_by_side else MIN_REPEATS)  # fmt: skip


class RetryBudget:
    """The time a run may still spend measuring again what other processes disturbed.

    On a shared host retries can be frequent, and one of an out-of-cache case costs seconds;
    the budget bounds the run's length. Once it is spent, disturbed measurements are kept (and
    marked in the report).
    """

    def __init__(self, seconds: float) -> None:
        self.left = seconds

    def allows(self, attempt: int, settings: Settings) -> bool:
        return attempt <= settings.retries and (attempt == 0 or self.left > 0)

    def patience(self) -> float:
        """How long a retry may wait for a quiet moment: at most what is left of the budget."""
        return max(0.0, min(QUIET_PATIENCE, self.left))

    @contextlib.contextmanager
    def charge(self, attempt: int) -> Iterator[None]:
        """Time the block against the budget when it is a retry (``attempt`` > 0)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            if attempt:
                self.left -= time.perf_counter() - started


def _measure_bandwidth(
    threads: int,
    cache_bytes: int,
    settings: Settings,
    budget: RetryBudget,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> Bandwidth:
    attempt = 0
    while True:
        with budget.charge(attempt):
            if attempt:
                wait_for_quiet(patience=budget.patience())
            bandwidth = measure_bandwidth(threads, cache_bytes, settings.repeat, arrays)
        attempt += 1
        if not _disturbed(bandwidth.others) or not budget.allows(attempt, settings):
            return bandwidth


def _best_bandwidth(measurements: Sequence[Bandwidth]) -> Bandwidth:
    """The highest undisturbed in-place bandwidth (the highest of all when every one was).

    The highest, not a typical one, because it is the denominator of '% of bw' and of the
    speed-up bounds: a higher bandwidth can only make fusedoptim look worse.
    """
    quiet = [bandwidth for bandwidth in measurements if not _disturbed(bandwidth.others)]
    return max(quiet or measurements, key=lambda bandwidth: bandwidth.in_place_gbs)


def wait_for_quiet(seconds: float = 0.5, patience: float = QUIET_PATIENCE) -> bool:
    """Wait (at most ``patience`` seconds) for ``seconds`` in which other processes use no CPU.

    Returns whether such a moment came; without ``/proc/stat`` it returns False at once.
    """
    deadline = time.perf_counter() + patience
    while time.perf_counter() < deadline:
        monitor = CpuMonitor().start()
        time.sleep(seconds)
        others = monitor.stop()
        if others is None:
            return False
        if others == 0.0:
            return True
    return False


class _Progress:
    """A progress bar on a terminal (tqdm when installed), nothing otherwise (CI logs)."""

    def __init__(self, total: int, stream: Any) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.enabled = bool(getattr(stream, "isatty", lambda: False)())
        self.bar = None
        if self.enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, file=stream, leave=False, unit="case")

    def update(self, label: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_description(label, refresh=False)
            self.bar.update(1)
        else:
            self.stream.write(f"\r[{self.done}/{self.total}] {label:<50}")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


def run(
    settings: Settings, torch: ModuleType | None, command: str = "", progress_stream: Any = None
) -> Report:
    """Measure the bandwidth, then every case of ``settings``; returns the :class:`Report`."""
    started = time.perf_counter()
    monitor = CpuMonitor().start()
    cache_bytes = last_level_cache_bytes()
    report = Report(
        settings=settings,
        machine=machine_info(torch),
        bandwidth={},
        cases=[],
        command=command,
        started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    configs = [OPTIMIZERS[name] for name in settings.optimizers]
    total = len(settings.threads) * (
        2 + len(settings.dtypes) * len(settings.layouts) * len(configs) * len(settings.contenders)
    )
    progress = _Progress(total, progress_stream if progress_stream is not None else sys.stderr)
    budget = RetryBudget(settings.retry_seconds)
    numpy_timings: dict[tuple[str, Layout, str], Timing] = {}

    def measure_dividers(threads: int) -> None:
        """Every divider rate the cases need, kept as the fastest seen so far."""
        for dtype in settings.dtypes:
            needed = {divider_ops(config, dtype) for config in configs} - {(0, 0)}
            for sqrts, divisions in sorted(needed):
                rate = measure_divider(threads, dtype, sqrts, divisions)
                report.divider_runs.append(rate)
                best = report.divider.get(rate.key)
                if best is None or rate.ns_per_element < best.ns_per_element:
                    report.divider[rate.key] = rate

    try:
        probe_arrays = bandwidth_arrays(cache_bytes)  # for every bandwidth measurement of the run
        for threads in settings.threads:
            report.bandwidth_runs.append(
                _measure_bandwidth(threads, cache_bytes, settings, budget, probe_arrays)
            )
            report.bandwidth[threads] = report.bandwidth_runs[-1]
            measure_dividers(threads)
            progress.update(f"bandwidth, {threads} thread(s)")
            with thread_count(threads, torch):
                for dtype in settings.dtypes:
                    for layout in settings.layouts:
                        # Interleaved contenders need copies of their own. NumPy, timed
                        # before them, shares torch's (every contender resets its copies).
                        base = base_data(layout, dtype)  # the same values for every pool
                        shared = ArrayPool(layout, dtype, base=base)
                        pools = {"numpy": shared, "torch": shared}
                        pools["fusedoptim"] = ArrayPool(layout, dtype, base=base)
                        cold = layout.elements >= settings.cold_threshold
                        if cold:
                            pools[PROBE] = ArrayPool(Layout(1, layout.elements), dtype, base=base)
                        for config in configs:
                            case = Case(
                                config.name, layout, dtype, threads,
                                bytes_per_element(config.name, dtype), cold=cold,
                            )  # fmt: skip
                            count = copies_needed(
                                config, layout, dtype, cache_bytes, settings.cold_threshold
                            )
                            probe_copies = (
                                _copies_out_of_cache(
                                    2 + config.states, layout.elements, dtype, cache_bytes
                                )
                                if cold and "fusedoptim" in settings.contenders
                                else 0
                            )
                            key = (config.name, layout, dtype)
                            # NumPy runs on one thread: measured once, with the first thread count.
                            contenders = [
                                name
                                for name in settings.contenders
                                if name != "numpy" or key not in numpy_timings
                            ]
                            # In cache the square roots and divisions can be the limit: their
                            # probe runs alongside. Out of cache the bandwidth binds first (here
                            # by 1.8x or more); the run's fastest divider rate still counts.
                            divider_threads = (
                                threads if "fusedoptim" in settings.contenders and not cold else 0
                            )
                            timings = _measure(contenders, config, pools, count, settings,
                                               torch, probe_copies, budget,
                                               divider_threads)  # fmt: skip
                            if "numpy" in timings:
                                numpy_timings[key] = timings["numpy"]
                            case.probe = timings.get(PROBE)
                            case.divider = timings.get(DIVIDER)
                            if case.divider is not None:
                                case.divider_work = divider_work(threads)
                            for contender in settings.contenders:
                                case.timings[contender] = timings.get(
                                    contender, numpy_timings.get(key)
                                )
                                progress.update(
                                    f"{config.name} {layout.id} {dtype} {threads}t {contender}"
                                )
                            report.cases.append(case)
                        del pools, base
            # Once more after the cases: the best of the two is the run's bandwidth.
            report.bandwidth_runs.append(
                _measure_bandwidth(threads, cache_bytes, settings, budget, probe_arrays)
            )
            report.bandwidth[threads] = _best_bandwidth(
                [run for run in report.bandwidth_runs if run.threads == threads]
            )
            measure_dividers(threads)
            progress.update(f"bandwidth again, {threads} thread(s)")
    finally:
        progress.close()
    report.wall_seconds = time.perf_counter() - started
    report.others = monitor.stop()
    return report


# --------------------------------------------------------------------------------------------
# Targets (issue 4), checked on float32 at the run's largest thread count.

TORCH_FUSED_TARGET_OPTIMIZERS = ("sgd", "sgd_momentum", "sgd_nesterov", "adagrad", "adam",
                                 "adam_amsgrad", "adamw")  # fmt: skip
NO_FUSED_TORCH_OPTIMIZERS = ("rmsprop", "rmsprop_centered", "rmsprop_momentum", "adadelta")


@dataclass
class TargetResult:
    """One target: met when every measured case passes; ``cases`` lists (label, value, passed).

    ``bounds`` holds, for the cases of a speed-up target that a limit applies to, the largest
    speed-up the measured limits allow (:meth:`Report.speedup_bound`): out of cache, moving the
    update's bytes once at the measured bandwidth; in and out of cache, its square roots and
    divisions at the units' measured rate. ``limits`` says which one binds. A bandwidth bound
    below the threshold shows the target cannot be met here; a divider bound below it, that it
    cannot be met with the CPU's square-root and division instructions (a division computed on
    the FMA units instead is not bound by it: see benchmarks/software_division.c).
    """

    description: str
    threshold: float
    unit: str
    cases: list[tuple[str, float, bool]]
    bounds: dict[str, float] = field(default_factory=dict)
    # Which limit sets each bound: "bandwidth" or "divider" (see Report.floors).
    limits: dict[str, str] = field(default_factory=dict)
    # For a ratio of two cases' times, each case's value before correcting for the machine's
    # speed (their probes' bandwidths) at the two moments.
    uncorrected: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if not self.cases:
            return "not measured"
        return "met" if all(passed for _, _, passed in self.cases) else "NOT MET"

    def worst(self) -> tuple[str, float, bool] | None:
        if not self.cases:
            return None
        if self.unit == "x time":  # a ratio that must stay below the threshold
            return max(self.cases, key=lambda item: item[1])
        return min(self.cases, key=lambda item: item[1])


def evaluate_targets(report: Report) -> list[TargetResult]:
    """The issue's targets, each checked over the cases of ``report`` it applies to.

    Speed-up targets also state the largest speed-up the measured bandwidth (out of cache) and
    square-root/division rate allow (see :class:`TargetResult`), which shows when one cannot be
    met.
    """
    threads = max(report.settings.threads)
    one_10m, one_1m, many = Layout(1, 10**7), Layout(1, 10**6), Layout(500, 2000)

    def cases(layout: Layout, names: Sequence[str]) -> list[Case]:
        found = (report.find(name, layout, "float32", threads) for name in names)
        return [case for case in found if case is not None]

    def speedups(
        found: list[Case], contender: str, threshold: float
    ) -> list[tuple[str, float, bool]]:
        result = []
        for case in found:
            value = case.speedup(contender)
            if value is not None:
                result.append((f"{case.optimizer} {case.layout.id}", value, value >= threshold))
        return result

    limits: dict[str, str] = {}

    def bounds(found: list[Case], contender: str = "torch") -> dict[str, float]:
        """:meth:`Report.speedup_bound` per case a limit applies to (its limit in ``limits``)."""
        result = {}
        for case in found:
            bound, limit = report.speedup_bound(case, contender), report.bound_limit(case)
            if bound is not None and limit is not None:
                result[f"{case.optimizer} {case.layout.id}"] = bound
                limits[f"{case.optimizer} {case.layout.id}"] = limit
        return result

    names = list(report.settings.optimizers)
    fused_names = [name for name in names if name in TORCH_FUSED_TARGET_OPTIMIZERS]
    targets = []

    at_10m = cases(one_10m, names)
    fractions = []
    for case in at_10m:
        fraction = report.bandwidth_fraction(case)
        if fraction is not None:
            fractions.append((case.optimizer, 100 * fraction, fraction >= 0.9))
    targets.append(TargetResult("10M one tensor: >= 90% of measured bandwidth", 90, "%", fractions))
    targets.append(
        TargetResult(
            "10M one tensor: >= 8x faster than NumPy", 8, "x", speedups(at_10m, "numpy", 8),
            bounds=bounds(at_10m, "numpy"),
        )
    )  # fmt: skip
    targets.append(
        TargetResult(
            "10M one tensor: at least as fast as torch", 1, "x", speedups(at_10m, "torch", 1),
            bounds=bounds(at_10m),
        )
    )  # fmt: skip

    at_1m_fused = cases(one_1m, fused_names)
    targets.append(
        TargetResult(
            "1M one tensor: >= 1.5x faster than torch fused=True", 1.5, "x",
            speedups(at_1m_fused, "torch", 1.5), bounds=bounds(at_1m_fused),
        )
    )  # fmt: skip
    targets.append(
        TargetResult(
            "1M one tensor: >= 8x faster than NumPy", 8, "x",
            speedups(cases(one_1m, names), "numpy", 8),
            bounds=bounds(cases(one_1m, names), "numpy"),
        )
    )  # fmt: skip

    many_fused = cases(many, fused_names)
    targets.append(
        TargetResult(
            "500 x 2,000: >= 5x faster than torch fused=True", 5, "x",
            speedups(many_fused, "torch", 5), bounds=bounds(many_fused),
        )
    )  # fmt: skip
    # Two cases measured seconds apart: the machine's speed may differ between them. Each has
    # its probe (the same work: one array of 1M elements), timed alongside, which measures that
    # speed; the ratio is taken at equal speed, the raw one reported beside it.
    ratios, raw = [], {}
    for case in cases(many, names):
        single = report.find(case.optimizer, one_1m, "float32", threads)
        mine = case.ns_per_element("fusedoptim")
        theirs = single.ns_per_element("fusedoptim") if single is not None else None
        if mine is None or theirs is None:
            continue
        ratio = mine / theirs
        if case.probe_gbs is not None and single is not None and single.probe_gbs is not None:
            raw[case.optimizer] = ratio
            ratio *= case.probe_gbs / single.probe_gbs
        ratios.append((case.optimizer, ratio, ratio <= 1.5))
    targets.append(
        TargetResult(
            "500 x 2,000: <= 1.5x the time of one 1M tensor", 1.5, "x time", ratios,
            uncorrected=raw,
        )
    )  # fmt: skip

    slow_torch = [name for name in names if name in NO_FUSED_TORCH_OPTIMIZERS]
    every = [
        case
        for case in report.cases
        if case.optimizer in slow_torch and case.dtype == "float32" and case.threads == threads
    ]
    targets.append(
        TargetResult(
            "RMSprop and AdaDelta, every size: >= 5x faster than torch", 5, "x",
            speedups(every, "torch", 5), bounds=bounds(every),
        )
    )  # fmt: skip
    for target in targets:
        target.limits = {label: limits[label] for label in target.bounds}
    return targets


# --------------------------------------------------------------------------------------------
# Output.


def format_ns(value: float | None) -> str:
    """Nanoseconds per element with three significant digits, ``-`` when not measured.

    Example:
        >>> from fusedoptim.bench import format_ns
        >>> format_ns(0.5531), format_ns(12.34), format_ns(4567.8), format_ns(None)
        ('0.553', '12.3', '4568', '-')
    """
    if value is None or not math.isfinite(value):
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _format_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def format_table(report: Report) -> str:
    """The report's table: one row per case, aligned columns, footnotes below."""
    contenders = report.settings.contenders
    header = ["optimizer", "layout", "elements", "dtype", "threads"]
    header += [f"{name} ns/el" for name in contenders]
    header += [f"vs {name}" for name in contenders if name != "fusedoptim"]
    if "fusedoptim" in contenders:
        header += ["GB/s", "% of bw"]
    rows = []
    for case in report.cases:
        row = [
            case.optimizer,
            case.layout.name,
            f"{case.layout.elements:,}",
            case.dtype,
            str(case.threads),
        ]
        for name in contenders:
            timing = case.timings.get(name)
            mark = "*" if timing is not None and timing.disturbed else ""
            row.append(format_ns(case.ns_per_element(name)) + mark)
        row += [_format_ratio(case.speedup(name)) for name in contenders if name != "fusedoptim"]
        if "fusedoptim" in contenders:
            gbs = case.gbs
            row.append("-" if gbs is None else f"{gbs:.1f}")
            fraction = report.bandwidth_fraction(case)
            if fraction is None:
                row.append("-")
            else:
                row.append(f"{100 * fraction:.0f}%" + ("" if case.cold else " (c)"))
        rows.append(row)
    left = {0, 1, 3}
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [line(header), line(["-" * width for width in widths])]
    out += [line(row) for row in rows]
    out.append("")
    for threads, bandwidth in sorted(report.bandwidth.items()):
        runs = [run for run in report.bandwidth_runs if run.threads == threads]
        each = " and ".join(
            f"{run.in_place_gbs:.1f}{'*' if _disturbed(run.others) else ''}" for run in runs
        )
        out.append(
            f"memory bandwidth, {threads} thread{'s' if threads > 1 else ''}: "
            f"{bandwidth.in_place_gbs:.1f}{'*' if _disturbed(bandwidth.others) else ''} GB/s "
            "in place (a += s*b: 3 arrays, the read-modify-write of an optimizer update; "
            f"the best of {each} measured before and after the cases; in-cache cases' "
            "'% of bw' uses it), "
            f"{bandwidth.triad_gbs:.1f} GB/s triad (a = b + s*c, counted as 4 arrays: its store "
            "reads the line first)"
        )
    for threads in sorted({key[0] for key in report.divider}):
        for dtype in report.settings.dtypes:
            rates = [
                rate for key, rate in sorted(report.divider.items())
                if key[0] == threads and key[1] == dtype
            ]  # fmt: skip
            if rates:
                optimizers = sorted({case.optimizer for case in report.cases})
                each = ", ".join(
                    f"{divider_ops_name((r.square_roots, r.divisions), dtype, optimizers)} "
                    f"{r.ns_per_element:.3g}"
                    for r in rates
                )
                out.append(
                    f"sqrt/div units, {threads} thread{'s' if threads > 1 else ''}, {dtype}: "
                    f"{each} ns/el (the fastest sample before and after the cases: the least "
                    "time of any update with those correctly rounded operations; a case with "
                    "them is held to the rate measured alongside it, in the JSON file)"
                )
    out += [
        "ns/el: median time per step / elements. vs X: X's time / fusedoptim's. GB/s: bytes the "
        "update must move (e.g. Adam float32 28 B/element) / fusedoptim's time.",
        "Timing: numpy first, then torch, fusedoptim and a probe interleaved, so that they share "
        "the machine's drift: out of cache the bandwidth probe (the update's own traffic: its "
        "parameter and states += s*grad, one array each of the case's size), against which "
        "the case's '% of bw' and bounds are taken; in cache, for "
        "optimizers with square roots and divisions, the sqrt/div probe, which sets their bounds "
        "there (both in the JSON file).",
        (
            f"Cases of >= {report.settings.cold_threshold:,} elements cycle through copies of the "
            f"data larger than the {report.machine['last_level_cache_bytes'] / 2**20:.0f} MiB "
            "last-level cache (out of cache); "
            if report.settings.cold_threshold < NEVER
            else "Every case runs in cache (--cold-from never); "
        )
        + "in-cache cases are marked (c): their GB/s is cache bandwidth.",
    ]
    if "torch" in contenders:
        fused = sorted({OPTIMIZERS[c.optimizer].torch_class for c in report.cases
                        if OPTIMIZERS[c.optimizer].torch_fused})  # fmt: skip
        others = sorted({OPTIMIZERS[c.optimizer].torch_class for c in report.cases
                         if not OPTIMIZERS[c.optimizer].torch_fused})  # fmt: skip
        text = "torch: opt.step() with grads assigned once"
        if fused:
            text += f"; fused=True for {', '.join(fused)}"
        if others:
            text += f"; torch's default (single-tensor for-loop on CPU) for {', '.join(others)}"
        out.append(text + ".")
    if "numpy" in contenders:
        out.append("numpy: fusedoptim.reference, one thread (NumPy ufuncs are single-threaded).")
    disturbed = [
        timing for case in report.cases for timing in case.timings.values() if timing.disturbed
    ] + [bandwidth for bandwidth in report.bandwidth.values() if _disturbed(bandwidth.others)]
    if disturbed:
        out.append(
            f"* measured while other processes used more than {DISTURBED_CORE_SHARE:.0%} of a "
            "core: a thread waiting for a core stalls every multi-threaded step, so these numbers "
            "measure the load."
        )
    repeated = sum(timing.attempts - 1 for case in report.cases for timing in case.timings.values())
    if disturbed:
        out.append(
            f"WARNING: other processes used {report.others or 0:.2f} cores on average during "
            f"this run and disturbed {len(disturbed)} measurement(s) (marked *) even after "
            f"{repeated} repeat(s): re-run on a quiet machine."
        )
    elif _disturbed(report.others) or repeated:
        out.append(
            f"Note: other processes used {report.others or 0:.2f} cores on average during this "
            f"run; {repeated} measurement(s) were taken again because of them, and none of the "
            "numbers above was disturbed."
        )
    out += report.notes
    return "\n".join(out)


def divider_ops_name(ops: tuple[int, int], dtype: str, optimizers: Sequence[str]) -> str:
    """E.g. "sqrt+2 div (Adam, AdamW)": the operations and which of ``optimizers`` need them."""
    parts = [
        f"{count} {operation}" if count > 1 else operation
        for count, operation in zip(ops, ("sqrt", "div"))
        if count
    ]
    names = [OPTIMIZERS[name].label for name in optimizers
             if divider_ops(OPTIMIZERS[name], dtype) == ops]  # fmt: skip
    return "+".join(parts) + (f" ({', '.join(names)})" if names else "")


def _disturbed(others: float | None) -> bool:
    return others is not None and others > DISTURBED_CORE_SHARE


LIMIT_NAMES = {"bandwidth": "bandwidth", "divider": "sqrt/div units"}


def format_targets(targets: Sequence[TargetResult], threads: int) -> str:
    """One line per target: met / NOT MET / not measured, the worst case, and what failed."""
    out = [f"targets (float32, {threads} thread{'s' if threads > 1 else ''}):"]
    for target in targets:
        line = f"  [{target.status}] {target.description}"
        worst = target.worst()
        if worst is not None:
            unit = "%" if target.unit == "%" else "x"
            line += f": worst {worst[1]:.2f}{unit} ({worst[0]})"
            if target.uncorrected:
                label, value = max(target.uncorrected.items(), key=lambda item: item[1])
                line += (
                    f" at equal machine speed (by the cases' probes; as timed, worst "
                    f"{value:.2f}{unit} ({label}))"
                )
            failing = []
            for label, value, ok in target.cases:
                if not ok:
                    bound = target.bounds.get(label)
                    limit = ""
                    if bound is not None:
                        name = target.limits.get(label, "bandwidth")
                        verb = "allows" if name == "bandwidth" else "allow"
                        limit = f" ({LIMIT_NAMES[name]} {verb} <= {bound:.2f}x)"
                    failing.append(f"{label} {value:.2f}{unit}{limit}")
            if failing:
                line += f"; failing: {', '.join(failing)}"
        out.append(line)
    return "\n".join(out)


def report_json(report: Report, targets: Sequence[TargetResult]) -> dict[str, Any]:
    """Everything measured, with the machine and settings, as JSON-ready data."""
    settings = asdict(report.settings)
    settings["layouts"] = [layout.id for layout in report.settings.layouts]
    return {
        "command": report.command,
        "started": report.started,
        "wall_seconds": report.wall_seconds,
        "other_processes_cores": report.others,
        "machine": report.machine,
        "settings": {
            **settings,
            "retry_seconds": None
            if math.isinf(settings["retry_seconds"])
            else settings["retry_seconds"],
            "cold_min_elements": report.settings.cold_threshold,
            "sample_seconds": SAMPLE_SECONDS,
            "seed": SEED,
        },
        "bandwidth": [asdict(bandwidth) for bandwidth in report.bandwidth.values()],
        "bandwidth_runs": [asdict(bandwidth) for bandwidth in report.bandwidth_runs],
        "divider": [asdict(rate) for rate in report.divider.values()],
        "divider_runs": [asdict(rate) for rate in report.divider_runs],
        "cases": [
            {
                "optimizer": case.optimizer,
                "layout": case.layout.id,
                "tensors": case.layout.count,
                "tensor_elements": case.layout.size,
                "elements": case.layout.elements,
                "dtype": case.dtype,
                "threads": case.threads,
                "out_of_cache": case.cold,
                "bytes_per_element": case.bytes_per_element,
                "torch_path": OPTIMIZERS[case.optimizer].torch_path,
                "ns_per_element": {name: case.ns_per_element(name) for name in case.timings},
                "speedup": {
                    name: case.speedup(name) for name in case.timings if name != "fusedoptim"
                },
                "gbs": case.gbs,
                "probe_gbs": case.probe_gbs,
                "speedup_bound": {
                    name: report.speedup_bound(case, name)
                    for name in case.timings
                    if name != "fusedoptim"
                },
                # The units' floor as measured; floors_ns holds the floors the bounds use,
                # each capped at fusedoptim's own time (see Report.floors).
                "divider_floor_ns": report.divider_floor(case),
                "floors_ns": report.floors(case),
                "bound_limit": report.bound_limit(case),
                "bandwidth_fraction": report.bandwidth_fraction(case),
                "bandwidth_fraction_of_run_best": (
                    None
                    if case.gbs is None or case.threads not in report.bandwidth
                    else case.gbs / report.bandwidth[case.threads].in_place_gbs
                ),
                "timings": {name: asdict(timing) for name, timing in case.timings.items()},
                "probe": None if case.probe is None else asdict(case.probe),
                "divider_probe": None if case.divider is None else asdict(case.divider),
                "divider_probe_work": case.divider_work,
            }
            for case in report.cases
        ],
        "targets": [
            {
                "description": target.description,
                "status": target.status,
                "threshold": target.threshold,
                "cases": [
                    {"case": label, "value": value, "passed": ok}
                    for label, value, ok in target.cases
                ],
                "bounds": target.bounds,
                "bound_limits": target.limits,
                "uncorrected": target.uncorrected,
            }
            for target in targets
        ],
    }


PLOT_COLORS = {"numpy": "tab:orange", "torch": "tab:blue", "fusedoptim": "tab:green"}
MANY_MARKERS = ("s", "^", "D", "v", "P")
DIVIDER_COLOR = "tab:purple"


def write_plot(report: Report, path: str | os.PathLike[str]) -> None:
    """ns/element against elements (log-log), one panel per optimizer, to a PNG at ``path``.

    One-tensor sizes are lines, many-tensor layouts unconnected markers at their total size; the
    shaded sizes run out of cache, where the dashed line is the bandwidth limit, bytes/element
    over the measured in-place bandwidth. The dotted line, for optimizers with square roots and
    divisions, is the time those take at the units' fastest measured rate, a limit at every size.
    Uses :class:`matplotlib.figure.Figure` directly, so no pyplot state or backend is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    optimizers = list(report.settings.optimizers)
    columns = min(4, len(optimizers))
    rows = math.ceil(len(optimizers) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.4 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    combos = [(d, t) for d in report.settings.dtypes for t in report.settings.threads]
    styles = ["-", "--", ":", "-."]
    many_layouts = [layout for layout in report.settings.layouts if not layout.one_tensor]
    cold_from = report.settings.cold_threshold
    legend_axes = None
    for index, name in enumerate(optimizers):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_title(f"{OPTIMIZERS[name].label} ({FLOAT32_BYTES_PER_ELEMENT[name]} B/el f32)")
        axes.grid(True, which="both", alpha=0.3)
        if index % columns == 0:
            axes.set_ylabel("ns per element")
        if index >= len(optimizers) - columns:
            axes.set_xlabel("elements (all tensors)")
        sizes: list[int] = []
        for combo_index, (dtype, threads) in enumerate(combos):
            style = styles[combo_index % len(styles)]
            suffix = f", {dtype}, {threads}t" if len(combos) > 1 else ""
            found = [
                case for case in report.cases
                if case.optimizer == name and case.dtype == dtype and case.threads == threads
            ]  # fmt: skip
            single = sorted((c for c in found if c.layout.one_tensor), key=lambda c: c.layout.size)
            sizes += [case.layout.elements for case in found]
            for contender in report.settings.contenders:
                points = [(c.layout.elements, c.ns_per_element(contender)) for c in single]
                points = [(x, y) for x, y in points if y is not None]
                if points:
                    axes.plot(
                        *zip(*points), style, marker="o", markersize=3,
                        color=PLOT_COLORS[contender], label=f"{contender}{suffix}",
                    )  # fmt: skip
                for layout_index, layout in enumerate(many_layouts):
                    case = next((c for c in found if c.layout == layout), None)
                    value = case.ns_per_element(contender) if case is not None else None
                    if value is not None:
                        axes.plot(
                            [layout.elements], [value], linestyle="none",
                            marker=MANY_MARKERS[layout_index % len(MANY_MARKERS)],
                            markerfacecolor="none", color=PLOT_COLORS[contender],
                        )  # fmt: skip
            # The fastest of the optimizer's own probes (its traffic), else the run's a += s*b.
            probes = [case.probe_gbs for case in found if case.probe_gbs is not None]
            bandwidth = report.bandwidth.get(threads)
            gbs = max(probes) if probes else bandwidth.in_place_gbs if bandwidth else None
            cold_sizes = [size for size in sizes if size >= cold_from]
            if gbs is not None and cold_sizes:
                floor = bytes_per_element(name, dtype) / gbs
                axes.plot(
                    [min(cold_sizes), max(cold_sizes)], [floor, floor],
                    style if style != "-" else "--", color="black", linewidth=1,
                    label=f"bandwidth limit{suffix} "
                    + ("(own traffic)" if probes else f"(a += s*b, {gbs:.0f} GB/s)"),
                )  # fmt: skip
            rate = report.divider.get((threads, dtype, *divider_ops(OPTIMIZERS[name], dtype)))
            if rate is not None and sizes:
                axes.plot(
                    [min(sizes), max(sizes)], [rate.ns_per_element] * 2, ":",
                    color=DIVIDER_COLOR, linewidth=1.2,
                )  # fmt: skip
        if sizes and max(sizes) >= cold_from:
            axes.axvspan(
                max(cold_from / 1.5, min(sizes) / 1.5), max(sizes) * 1.5, color="gray",
                alpha=0.1, linewidth=0, label="out of cache",
            )  # fmt: skip
        if index == 0:
            if report.divider:
                axes.plot([], [], ":", color=DIVIDER_COLOR, label="sqrt/div units limit")
            for layout_index, layout in enumerate(many_layouts):
                axes.plot(
                    [], [], linestyle="none", marker=MANY_MARKERS[layout_index % len(MANY_MARKERS)],
                    markerfacecolor="none", color="gray", label=f"{layout.name} tensors",
                )  # fmt: skip
            legend_axes = axes
    if legend_axes is not None:
        # In the first free panel slot when there is one (works with any matplotlib), else in
        # the first panel.
        handles, labels = legend_axes.get_legend_handles_labels()
        if rows * columns > len(optimizers):
            slot = figure.add_subplot(rows, columns, len(optimizers) + 1)
            slot.axis("off")
            slot.legend(handles, labels, loc="center", frameon=False)
        else:
            legend_axes.legend(handles, labels, fontsize="small")
    build = report.machine.get("build_info", {})
    figure.suptitle(
        f"fusedoptim-bench: {report.machine.get('cpu', '?')}, "
        f"{', '.join(str(t) for t in report.settings.threads)} thread(s), "
        f"ISA {build.get('isa', '?')} ({report.started})"
    )
    figure.savefig(path, dpi=110)


# --------------------------------------------------------------------------------------------
# The command.


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fusedoptim-bench",
        description=(
            "Time fusedoptim's fused optimizer kernels against the NumPy reference and "
            "torch.optim (when installed), with the machine's memory bandwidth measured in the "
            "same run, and print a table."
        ),
        epilog=(
            f"Optimizers: {', '.join(OPTIMIZERS)} (default: all but rmsprop_momentum). "
            "Sizes are element counts (1e6, 250000, 10_000) or COUNTxSIZE for COUNT tensors of "
            "SIZE elements."
        ),
    )
    parser.add_argument(
        "--optimizers", default=",".join(DEFAULT_OPTIMIZERS), metavar="NAMES",
        help="comma-separated optimizer configurations, or 'all' (default: the issue's ten)",
    )  # fmt: skip
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, metavar="SIZES",
        help=f"comma-separated sizes or COUNTxSIZE layouts (default: {DEFAULT_SIZES})",
    )  # fmt: skip
    parser.add_argument(
        "--dtype", default="float32", metavar="DTYPES",
        help="float32, float64, or both (comma-separated or 'both'; default: float32)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", default="all", metavar="COUNTS",
        help=f"comma-separated thread counts, 'all' = {usable_cores()} here (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--repeat", type=int, default=None, metavar="N",
        help=f"timed repetitions per contender and case (default: as many as fit in --min-time, "
        f"{MIN_REPEATS} to {MAX_REPEATS})",
    )  # fmt: skip
    parser.add_argument(
        "--min-time", type=float, default=DEFAULT_MIN_TIME, metavar="SECONDS",
        help=f"timed seconds per contender and case without --repeat (default: {DEFAULT_MIN_TIME})",
    )  # fmt: skip
    parser.add_argument(
        "--contenders", default=None, metavar="NAMES",
        help="comma-separated subset of numpy, torch, fusedoptim (default: all three; torch only "
        "when installed)",
    )  # fmt: skip
    parser.add_argument(
        "--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
        help="measure a case again, up to N times, when other processes took CPU time "
        f"meanwhile (Linux; default: {DEFAULT_RETRIES})",
    )  # fmt: skip
    parser.add_argument(
        "--retry-time", type=float, default=DEFAULT_RETRY_SECONDS, metavar="SECONDS",
        help="the most time the run spends on those repeats, in all (default: "
        f"{DEFAULT_RETRY_SECONDS:g}; they stop once it is spent)",
    )  # fmt: skip
    parser.add_argument(
        "--cold-from", default=None, metavar="SIZE",
        help=f"keep the data of cases of at least SIZE elements out of cache between steps, or "
        f"'never' (default: {Layout(1, COLD_MIN_ELEMENTS).id})",
    )  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="write every measurement and the machine")
    parser.add_argument("--plot", metavar="FILE.png", help="write the ns/element plot (matplotlib)")
    return parser


def _parse_settings(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[Settings, ModuleType | None, list[str]]:
    notes = []
    names = _comma_list(args.optimizers)
    if names == ["all"]:
        names = list(OPTIMIZERS)
    unknown = [name for name in names if name not in OPTIMIZERS]
    if unknown or not names:
        parser.error(
            f"--optimizers: unknown optimizer {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from: {', '.join(OPTIMIZERS)}, all"
        )
    layouts = []
    for text in _comma_list(args.sizes):
        try:
            layouts.append(parse_size(text))
        except ValueError as error:
            parser.error(f"--sizes: {error}")
    if not layouts:
        parser.error("--sizes: no size given")
    dtypes = _comma_list(args.dtype)
    if dtypes == ["both"]:
        dtypes = ["float32", "float64"]
    if not dtypes or any(dtype not in ("float32", "float64") for dtype in dtypes):
        parser.error(f"--dtype: expected float32, float64 or both, got {args.dtype!r}")
    threads = []
    for text in _comma_list(args.threads):
        if text == "all":
            threads.append(usable_cores())
        elif text.isdigit() and int(text) >= 1:
            threads.append(int(text))
        else:
            parser.error(f"--threads: expected positive whole numbers or 'all', got {text!r}")
    if not threads:
        parser.error("--threads: no thread count given")
    if not args.retry_time >= 0:
        parser.error(f"--retry-time: must be at least 0 seconds, got {args.retry_time}")
    if args.retries < 0:
        parser.error(f"--retries: must be at least 0, got {args.retries}")
    if args.repeat is not None and args.repeat < 1:
        parser.error(f"--repeat: must be at least 1, got {args.repeat}")
    if not (args.min_time > 0 and math.isfinite(args.min_time)):
        parser.error(f"--min-time: must be a positive number of seconds, got {args.min_time}")

    cold_from = None
    if args.cold_from == "never":
        cold_from = NEVER
    elif args.cold_from is not None:
        try:
            cold_from = parse_size(args.cold_from).elements
        except ValueError as error:
            parser.error(f"--cold-from: {error} (or 'never')")

    if args.contenders is None:
        contenders = list(CONTENDERS)
        explicit = False
    else:
        contenders = _comma_list(args.contenders)
        explicit = True
        unknown = [name for name in contenders if name not in CONTENDERS]
        if unknown or not contenders:
            parser.error(
                f"--contenders: unknown contender {', '.join(map(repr, unknown)) or '(none)'}; "
                f"choose from: {', '.join(CONTENDERS)}"
            )
        contenders = [name for name in CONTENDERS if name in contenders]  # canonical order
    torch = None
    if "torch" in contenders:
        torch = _import_torch()
        if torch is None:
            if explicit:
                parser.error(
                    '--contenders torch: torch is not installed: pip install "fusedoptim[torch]"'
                )
            contenders.remove("torch")
            notes.append(
                'torch is not installed, so it is not compared: pip install "fusedoptim[torch]"'
            )

    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error(
                '--plot needs matplotlib, which is not installed: pip install "fusedoptim[plot]"'
            )
    for option, value in (("--json", args.json), ("--plot", args.plot)):
        if value is not None and not Path(value).resolve().parent.is_dir():
            parser.error(
                f"{option}: directory {str(Path(value).resolve().parent)!r} does not exist"
            )

    settings = Settings(
        optimizers=list(dict.fromkeys(names)),
        layouts=list(dict.fromkeys(layouts)),
        dtypes=list(dict.fromkeys(dtypes)),
        threads=list(dict.fromkeys(threads)),
        contenders=contenders,
        repeat=args.repeat,
        min_time=args.min_time,
        cold_from=cold_from,
        retries=args.retries,
        retry_seconds=args.retry_time,
    )
    return settings, torch, notes


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark report; ``argv`` defaults to the command line. Returns the exit status.

    Example (the parser alone; ``main(argv)`` runs the benchmark with the same arguments):
        >>> from fusedoptim.bench import build_parser
        >>> args = build_parser().parse_args(["--optimizers", "adam,sgd", "--sizes", "1e6"])
        >>> args.optimizers, args.sizes, args.dtype, args.threads
        ('adam,sgd', '1e6', 'float32', 'all')
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    settings, torch, notes = _parse_settings(parser, args)
    words = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["fusedoptim-bench", *words])
    report = run(settings, torch, command)
    report.notes += notes
    targets = evaluate_targets(report)
    print(format_table(report))
    print()
    print(format_targets(targets, max(settings.threads)))
    print(f"\nwall time {report.wall_seconds:.1f} s; command: {command}")
    if args.json is not None:
        Path(args.json).write_text(json.dumps(report_json(report, targets), indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.plot is not None:
        write_plot(report, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
