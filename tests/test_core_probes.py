"""The compiled probes behind fusedoptim-bench's limits: the STREAM-style bandwidth probes and the
square-root/division units' probe. They must compute what they say (so the time measured is the
work counted) and refuse bad input like the kernels do."""

from __future__ import annotations

import numpy as np
import pytest

import fusedoptim
from fusedoptim import _core

DTYPES = [np.float32, np.float64]
# Around the vector width and the kernels' per-thread share (2**14), so that tails and the
# split between two threads are both exercised.
SIZES = [0, 1, 7, 2**15 + 3]
# stream_update also on a range long enough for the prefetching walk (FO_PREFETCH_MIN, 131,072
# elements per thread, on two threads), which the benchmark's out-of-cache probes take.
LONG = 2 * 131_072 + 1_003


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request: pytest.FixtureRequest) -> object:
    before = fusedoptim.get_num_threads()
    fusedoptim.set_num_threads(request.param)
    yield request.param
    fusedoptim.set_num_threads(before)


def _inputs(n: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    return rng.uniform(1.0, 2.0, n).astype(dtype), rng.uniform(1.0, 2.0, n).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize(
    ("square_roots", "divisions"), [(0, 1), (0, 2), (1, 1), (2, 1), (1, 2), (2, 2)]
)
def test_divider_probe_computes_its_operations(
    threads: int, dtype: type, n: int, square_roots: int, divisions: int
) -> None:
    """a <- b / sqrt(a) (a itself with no square root, b's root too with 2, and the root divided
    by the divisor first with 2 divisions), repeated: bit for bit NumPy's correctly rounded
    operations in the same order. The benchmark divides by 1, which a skipped division would
    match; 3 would not."""
    a, b = _inputs(n, dtype)
    expected = a.copy()
    for _ in range(3):
        root = np.sqrt(expected) if square_roots else expected
        numerator = np.sqrt(b) if square_roots == 2 else b
        denominator = root / dtype(3.0) if divisions == 2 else root
        expected = numerator / denominator
    b_before = b.copy()
    _core.divider_probe(a, b, square_roots, divisions, 3, 3.0)
    np.testing.assert_array_equal(a, expected)
    np.testing.assert_array_equal(b, b_before)
    # With the benchmark's divisor it stays between 1/2 and 2: no subnormal, infinity or NaN
    # however long it runs (without a square root it alternates between a and b / a).
    a, b = _inputs(n, dtype)
    _core.divider_probe(a, b, square_roots, divisions, 51)
    if n:
        assert a.min() > 0.5 and a.max() < 2.0


BAD_COUNTS = "square_roots must be 0, 1 or 2 and divisions 1 or 2"


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda a, b: (a, b, 3, 1, 1), ValueError, f"{BAD_COUNTS}, got 3 and 1"),
        (lambda a, b: (a, b, -1, 1, 1), ValueError, f"{BAD_COUNTS}, got -1 and 1"),
        (lambda a, b: (a, b, 1, 0, 1), ValueError, f"{BAD_COUNTS}, got 1 and 0"),
        (lambda a, b: (a, b, 1, 1, 0), ValueError, "repeats must be at least 1, got 0"),
        (lambda a, b: (a, b.astype(np.float64), 1, 1, 1), TypeError,
         "b has dtype float64 but a has dtype float32"),
        (lambda a, b: (a, b[:-1], 1, 1, 1), ValueError,
         r"b has shape \(15,\) but a has shape \(16,\)"),
        (lambda a, b: (a, a, 1, 1, 1), ValueError, "b shares memory with a;"),
        (lambda a, b: (a, b[::-1], 1, 1, 1), ValueError, "contiguous"),
        (lambda a, b: (a.tolist(), b, 1, 1, 1), TypeError, "numpy.ndarray"),
        (lambda a, b: (a.astype(np.int32), b.astype(np.int32), 1, 1, 1), TypeError, "float32"),
    ],
    ids=["square-roots", "negative-square-roots", "divisions", "repeats", "dtype", "shape",
         "alias", "strided", "list", "int"],
)  # fmt: skip
def test_divider_probe_refuses_bad_input_and_changes_nothing(
    change: object, error: type[Exception], message: str
) -> None:
    a, b = _inputs(16, np.float32)
    before = a.copy(), b.copy()
    args = change(a, b)  # type: ignore[operator]
    with pytest.raises(error, match=message):
        _core.divider_probe(*args)
    np.testing.assert_array_equal(a, before[0])
    np.testing.assert_array_equal(b, before[1])


def test_divider_probe_refuses_a_read_only_output() -> None:
    a, b = _inputs(16, np.float32)
    a.flags.writeable = False
    with pytest.raises(ValueError, match="writeable|read-only"):
        _core.divider_probe(a, b, 1, 1, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_stream_probes_compute_axpy_and_triad(threads: int, dtype: type, n: int) -> None:
    a, b = _inputs(n, dtype)
    c = np.random.default_rng(1).uniform(1.0, 2.0, n).astype(dtype)
    scalar = 0.5  # exact in both dtypes: the expected values round like the probe's
    expected = a + dtype(scalar) * b
    _core.stream_axpy(a, b, scalar)
    np.testing.assert_array_equal(a, expected)
    _core.stream_triad(a, b, c, scalar)
    np.testing.assert_array_equal(a, b + dtype(scalar) * c)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (lambda a, b, c: (a, b, c.astype(np.float64)), TypeError,
         "stream_triad: c has dtype float64 but a has dtype float32"),
        (lambda a, b, c: (a, b[:-1], c), ValueError,
         r"stream_triad: b has shape \(15,\) but a has shape \(16,\)"),
        (lambda a, b, c: (a, b, a), ValueError, "stream_triad: c shares memory with a;"),
        (lambda a, b, c: (a[::2], b[::2], c[::2]), ValueError,
         "stream_triad: a is not C-contiguous"),
    ],
    ids=["dtype", "shape", "alias", "strided"],
)  # fmt: skip
def test_stream_probe_refuses_bad_input_and_changes_nothing(
    args: object, error: type[Exception], message: str
) -> None:
    a, b = _inputs(16, np.float32)
    c = b * 2
    before = a.copy(), b.copy(), c.copy()
    with pytest.raises(error, match=message):
        _core.stream_triad(*args(a, b, c), 2.0)  # type: ignore[operator]
    for array, saved in zip((a, b, c), before):
        np.testing.assert_array_equal(array, saved)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [*SIZES, LONG])
@pytest.mark.parametrize("written", [1, 2, 3, 4])
def test_stream_update_adds_to_every_written_array(
    threads: int, dtype: type, n: int, written: int
) -> None:
    """Each written array += scalar * read, and read is left alone: the probe moves the bytes
    of an update with written - 1 states (the benchmark counts them so)."""
    rng = np.random.default_rng(written)
    arrays = [rng.uniform(1.0, 2.0, n).astype(dtype) for _ in range(written)]
    read = rng.uniform(1.0, 2.0, n).astype(dtype)
    scalar = 0.5  # exact in both dtypes: the expected values round like the probe's
    expected = [array + dtype(scalar) * read for array in arrays]
    read_before = read.copy()
    _core.stream_update(arrays if written % 2 else tuple(arrays), read, scalar)
    for array, wanted in zip(arrays, expected):
        np.testing.assert_array_equal(array, wanted)
    np.testing.assert_array_equal(read, read_before)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (lambda w, r: ([], r), ValueError, "written must hold 1 to 4 arrays, got 0"),
        (lambda w, r: ([*w, w[0].copy(), w[0].copy()], r), ValueError,
         "written must hold 1 to 4 arrays, got 5"),
        (lambda w, r: (w[0], r), TypeError, "written must be a list or tuple"),
        (lambda w, r: ([w[0], w[1].astype(np.float64)], r), TypeError,
         "written\\[1\\] has dtype float64 but written\\[0\\] has dtype float32"),
        (lambda w, r: (w, r[:-1]), ValueError,
         r"read has shape \(15,\) but written\[0\] has shape \(16,\)"),
        (lambda w, r: ([w[0], w[1], w[0]], r), ValueError,
         r"written\[2\] shares memory with written\[0\];"),
        (lambda w, r: (w, w[2]), ValueError, r"read shares memory with written\[2\];"),
        (lambda w, r: ([w[0], np.ones(32, np.float32)[::2]], r), ValueError,
         r"written\[1\] is not C-contiguous"),
        (lambda w, r: ([w[0], w[1].tolist()], r), TypeError, "numpy.ndarray"),
    ],
    ids=["empty", "five", "not-a-list", "dtype", "shape", "alias", "alias-read", "strided",
         "list-item"],
)  # fmt: skip
def test_stream_update_refuses_bad_input_and_changes_nothing(
    args: object, error: type[Exception], message: str
) -> None:
    rng = np.random.default_rng(0)
    written = [rng.uniform(1.0, 2.0, 16).astype(np.float32) for _ in range(3)]
    read = rng.uniform(1.0, 2.0, 16).astype(np.float32)
    before = [array.copy() for array in (*written, read)]
    with pytest.raises(error, match=message):
        _core.stream_update(*args(written, read), 2.0)  # type: ignore[operator]
    for array, saved in zip((*written, read), before):
        np.testing.assert_array_equal(array, saved)


def test_stream_update_refuses_a_read_only_written_array() -> None:
    written = [np.ones(16, np.float32), np.ones(16, np.float32)]
    written[1].flags.writeable = False
    with pytest.raises(ValueError, match=r"written\[1\] is read-only"):
        _core.stream_update(written, np.ones(16, np.float32), 1.0)
    np.testing.assert_array_equal(written[0], 1.0)
