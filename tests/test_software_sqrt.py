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
