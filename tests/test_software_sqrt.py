"""The update kernels' square root gives the hardware instruction's bits for every input.

On AVX-512, the float32 kernels compute square roots on the FMA units (csrc/kernels/
sqrt_avx512.hpp): a seed from vrsqrt14ps, a coupled Newton step and a final correction, with the
lanes outside [2^-80, 2^128) recomputed by vsqrtps. ``_core.sqrt_`` runs that square root over
arrays, so these tests compare it bit for bit with NumPy's (the hardware's correctly rounded one):
every float32 in [1, 4), which stands for every input in the range because each step scales
exactly with x -> 4^k x; every input near the range's ends; every class of special value; and a
random sample of all 2^32 bit patterns. benchmarks/software_sqrt.c goes further: all 2^32 inputs,
and every seed within vrsqrt14ps's documented error bound, not only this CPU's. Elsewhere (other
instruction sets, float64) the kernels use the hardware instruction and these tests still hold.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import fusedoptim
from fusedoptim import _core

LOW = 0x17800000  # 2^-80, the bottom of the computed range
INF = 0x7F800000


def _check_bits(bits: np.ndarray) -> None:
    """sqrt_ of these float32 bit patterns equals np.sqrt bit for bit, NaN payloads included."""
    x = bits.astype(np.uint32).view(np.float32)
    with np.errstate(invalid="ignore"):
        want = np.sqrt(x)
    got = x.copy()
    _core.sqrt_([got])
    differ = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
    assert differ.size == 0, (
        f"{differ.size} of {bits.size} square roots differ, first: sqrt({x[differ[0]]!r}) gave "
        f"{got[differ[0]]!r}, want {want[differ[0]]!r}"
    )


def _band(first: int, count: int) -> np.ndarray:
    return np.arange(first, first + count, dtype=np.int64) & 0xFFFFFFFF


def test_every_float_in_one_to_four():
    # 2^24 inputs: every significand with an even and an odd exponent.
    _check_bits(_band(0x3F800000, 1 << 24))


def test_the_range_ends_and_special_values():
    bands = [
        _band(0, 1 << 16),  # +0 and the smallest subnormals
        _band(0x00800000 - (1 << 16), 1 << 17),  # the largest subnormals, the smallest normals
        _band(LOW - (1 << 20), 1 << 21),  # both sides of 2^-80
        _band(INF - (1 << 20), (1 << 20) + (1 << 16)),  # the largest floats, +inf, NaNs
        _band(0x80000000, 1 << 16),  # -0 and negative subnormals
        _band(0xBF800000, 1 << 16),  # negative normals
        _band(0xFF800000, 1 << 16),  # -inf and negative NaNs
        _band(0xFFFFFFFF - (1 << 16) + 1, 1 << 16),
    ]
    _check_bits(np.concatenate(bands))


def test_a_random_sample_of_every_bit_pattern():
    rng = np.random.default_rng(2026)
    _check_bits(rng.integers(0, 1 << 32, size=1 << 23, dtype=np.int64))


@pytest.mark.parametrize("n", [0, 1, 7, 15, 16, 17, 33, 1000003])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sizes_and_dtypes_match_numpy(n: int, dtype: type):
    """Vector lanes, single-element tails and thread splits, in both dtypes."""
    x = np.random.default_rng(n).uniform(0, 100, n).astype(dtype)
    want = np.sqrt(x)
    _core.sqrt_([x])
    np.testing.assert_array_equal(x, want)


def test_build_info_says_where_square_roots_run():
    info = fusedoptim.build_info()
    expected = ["float32"] if info["isa"] == "avx512" else []
    assert info["sqrt_on_fma_units"] == expected


def test_sqrt_refuses_bad_input_and_changes_nothing():
    x = np.arange(8, dtype=np.float32)
    before = x.copy()
    with pytest.raises(TypeError):
        _core.sqrt_([x.astype(np.int32)])
    with pytest.raises(ValueError, match="contiguous"):
        _core.sqrt_([x[::2]])
    np.testing.assert_array_equal(x, before)


# <fenv.h> on x86-64 glibc: the rounding modes' values.
ROUNDING_MODES = {"upward": 0x800, "downward": 0x400, "toward_zero": 0xC00}

# A child process (the instruction set is chosen at import, from FUSEDOPTIM_ISA) that sets the
# rounding mode, runs the updates with a square root over float32 and float64 arrays long enough
# for every kernel path (vector groups, prefetch, scalar tail) on 1 and 2 threads, and prints a
# digest.
ROUNDING_CHILD = r"""
import ctypes, ctypes.util, hashlib, sys
import numpy as np
import fusedoptim
from fusedoptim import functional as F
libm = ctypes.CDLL(ctypes.util.find_library("m"))
assert libm.fesetround(int(sys.argv[1])) == 0
rng = np.random.default_rng(5)
n = 300_001
p64 = rng.standard_normal(n)
g64 = rng.standard_normal(n)
digests = []
for threads in (1, 2):
    fusedoptim.set_num_threads(threads)
    arrays = []
    for dtype, name in [(d, k) for d in (np.float32, np.float64) for k in (
            "adagrad", "rmsprop", "rmsprop_centered", "adadelta", "adam")]:
        g = g64.astype(dtype)
        p, s0, s1 = p64.astype(dtype), np.zeros(n, dtype), np.zeros(n, dtype)
        for step in (1, 2, 3):
            if name == "adagrad":
                F.adagrad([p], [g], [s0], step=step, lr=1e-2)
            elif name == "rmsprop":
                F.rmsprop([p], [g], [s0], None, None, lr=1e-2, alpha=0.9)
            elif name == "rmsprop_centered":
                F.rmsprop([p], [g], [s0], None, [s1], lr=1e-2, alpha=0.9, centered=True)
            elif name == "adadelta":
                F.adadelta([p], [g], [s0], [s1], lr=1.0)
            else:
                F.adam([p], [g], [s0], [s1], None, step=step, lr=1e-2)
        arrays += [p, s0, s1]
    digests.append(hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest())
print(fusedoptim.build_info()["isa"], *digests)
"""


@pytest.mark.parametrize("mode", sorted(ROUNDING_MODES))
def test_other_rounding_modes_give_the_hardware_bits(mode: str) -> None:
    # The FMA-unit sequence rounds once, to nearest; under another rounding mode the kernels must
    # use the hardware instruction (rounding as the mode says), or AVX-512 results would differ
    # from the other instruction sets' and depend on where a thread's range starts. The other
    # vector lanes (AVX2, AVX-512 float64) always use it, and must agree too.
    import ctypes
    import ctypes.util
    import platform
    import subprocess
    import sys

    if platform.machine() not in ("x86_64", "AMD64") or sys.platform != "linux":
        pytest.skip("the rounding-mode constants are x86-64 glibc's")
    supported = fusedoptim.build_info()["isa_supported"]
    if "avx512" not in supported:
        pytest.skip("no AVX-512 on this CPU: no FMA-unit square root to check")
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    before = libm.fegetround()
    assert libm.fesetround(ROUNDING_MODES[mode]) == 0
    try:
        _check_bits(_band(0x3F800000, 1 << 20))  # _core.sqrt_ against np.sqrt, in this mode
    finally:
        libm.fesetround(before)
    outputs = {}
    for isa in [isa for isa in ("baseline", "avx2", "avx512") if isa in supported]:
        result = subprocess.run(
            [sys.executable, "-c", ROUNDING_CHILD, str(ROUNDING_MODES[mode])],
            capture_output=True, text=True, env={**os.environ, "FUSEDOPTIM_ISA": isa},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        chosen, one_thread, two_threads = result.stdout.split()
        assert chosen == isa
        assert one_thread == two_threads, f"{isa}: the thread count changed the bits ({mode})"
        outputs[isa] = one_thread
    for isa, output in outputs.items():
        assert output == outputs["baseline"], (isa, mode)
