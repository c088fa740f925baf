"""``clip_grad_norm_`` and ``clip_grad_value_`` against ``torch.nn.utils`` and closed forms.

PyTorch accumulates a float32 norm in float32; fusedoptim accumulates in float64, so float32
results agree to ~1e-6 relative (float32 rounding of the sum over ~10^4 entries), float64 ones
to 1e-12.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import fusedoptim
from fusedoptim.clip import clip_grad_norm_, clip_grad_value_

RTOL = {np.float32: 2e-6, np.float64: 1e-12}
SHAPES = [(30, 20), (7,), (), (5, 4, 3)]


class Param:
    def __init__(self, grad: np.ndarray | None) -> None:
        self.data = np.zeros(1)
        self.grad = grad


def _torch_params(torch: Any, grads: list[np.ndarray]) -> list[Any]:
    """PyTorch parameters of the gradients' dtypes holding copies of the gradients."""
    tensors = []
    for grad in grads:
        tensor = torch.nn.Parameter(torch.from_numpy(np.zeros_like(grad)))
        tensor.grad = torch.from_numpy(grad.copy())
        tensors.append(tensor)
    return tensors


def _grads(dtype: Any, scale: float = 1.0, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.asarray(scale * rng.standard_normal(s), dtype=dtype) for s in SHAPES]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.5, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e6], ids=["clips", "leaves"])
def test_clip_grad_norm_matches_torch(dtype: Any, norm_type: Any, max_norm: float) -> None:
    torch = pytest.importorskip("torch")
    grads = _grads(dtype, scale=3.0)
    tensors = _torch_params(torch, grads)
    expected = torch.nn.utils.clip_grad_norm_(tensors, max_norm, norm_type=norm_type, foreach=False)
    before = [g.copy() for g in grads]
    total = clip_grad_norm_(grads, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    np.testing.assert_allclose(total, expected.item(), rtol=RTOL[dtype])
    for grad, tensor in zip(grads, tensors):
        np.testing.assert_allclose(grad, tensor.grad.numpy(), rtol=RTOL[dtype], atol=0)
    if max_norm > expected.item():  # below the limit: untouched, bitwise
        assert all(a.tobytes() == b.tobytes() for a, b in zip(before, grads))


def test_clip_grad_norm_closed_form_and_inputs() -> None:
    """The global norm is the norm of the concatenation; None entries, parameter objects and a
    single array are accepted; float32 and float64 mix."""
    a = np.array([3.0, 0.0])
    b = np.array([[4.0]], dtype=np.float32)
    c = np.array([12.0])
    total = clip_grad_norm_([a, None, Param(b), Param(None), c], max_norm=6.5)
    assert total == pytest.approx(13.0, rel=1e-12)
    scale = 6.5 / (13.0 + 1e-6)
    np.testing.assert_allclose(a, [3.0 * scale, 0.0], rtol=1e-12)
    np.testing.assert_allclose(b, [[4.0 * scale]], rtol=1e-6)
    np.testing.assert_allclose(c, [12.0 * scale], rtol=1e-12)
    single = np.array([0.0, -2.0])
    assert clip_grad_norm_(single, 1.0, norm_type="inf") == 2.0
    np.testing.assert_allclose(single, [0.0, -2.0 / (2.0 + 1e-6)], rtol=1e-12)
    assert clip_grad_norm_([], 1.0) == 0.0
    assert clip_grad_norm_([None, Param(None)], 1.0) == 0.0


def test_clip_grad_norm_is_the_same_for_any_thread_count() -> None:
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(n).astype(np.float32) for n in (1_000_003, 4_097, 1)]
    threads = fusedoptim.get_num_threads()
    norms = []
    try:
        for count in (1, 2, 3, 7):
            fusedoptim.set_num_threads(count)
            norms.append(clip_grad_norm_([g.copy() for g in grads], 1e9))
    finally:
        fusedoptim.set_num_threads(threads)
    assert len(set(norms)) == 1
    expected = math.sqrt(math.fsum(float(x) ** 2 for g in grads for x in g.astype(np.float64)))
    assert norms[0] == pytest.approx(expected, rel=1e-12)


def _norm_in_lane_order(arrays: list[np.ndarray], norm_type: float) -> float:
    """The norm summed in the order ``_core.grad_norm`` documents (kernels/reduce.hpp): each
    array cut into blocks of 32,768 elements; in each block, lane j (of 16) adds elements j,
    j + 16, ... in turn, the lanes are added in a fixed tree (8, 4, 2, 1) and the blocks' sums in
    order; everything in float64."""
    partials = []
    for array in arrays:
        x = array.astype(np.float64)
        for begin in range(0, x.size, 32_768):
            block = x[begin : begin + 32_768]
            term = block * block if norm_type == 2.0 else np.abs(block)
            whole = term.size // 16 * 16
            acc = np.zeros(16)
            if whole:
                acc = np.add.accumulate(term[:whole].reshape(-1, 16), axis=0)[-1]  # in order
            acc[: term.size - whole] = acc[: term.size - whole] + term[whole:]
            for width in (8, 4, 2, 1):
                acc[:width] = acc[:width] + acc[width : 2 * width]
            partials.append(acc[0])
    total = 0.0
    for value in partials:
        total = total + value
    return math.sqrt(total) if norm_type == 2.0 else total


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("norm_type", [1.0, 2.0, math.inf])
@pytest.mark.parametrize("sizes", [(196_613, 3_391, 19), (65_537, 4_463, 1)], ids=["long", "short"])
def test_grad_norm_bits_with_and_without_prefetch(
    dtype: Any, norm_type: float, sizes: tuple[int, ...]
) -> None:
    # A call prefetches where it has 131,072 elements or more per thread (FO_PREFETCH_MIN): the
    # long one (200,023 elements) on one thread, and on two it does not; the short one (70,001)
    # never does. Every way gives the documented order's bits (the inf-norm, a maximum, has no
    # order to get wrong: it must equal NumPy's).
    rng = np.random.default_rng(3)
    # Magnitudes over 12 decades, so that a sum in another order rounds differently.
    grads = [(rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 6, n)).astype(dtype) for n in sizes]
    if norm_type == math.inf:
        expected = float(max(np.abs(g).max() for g in grads))
    else:
        expected = _norm_in_lane_order(grads, norm_type)
    threads = fusedoptim.get_num_threads()
    try:
        for count in (1, 2):
            fusedoptim.set_num_threads(count)
            assert fusedoptim._core.grad_norm(grads, norm_type) == expected, count
    finally:
        fusedoptim.set_num_threads(threads)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nonfinite_norm(bad: float) -> None:
    torch = pytest.importorskip("torch")
    grads = [np.array([1.0, bad]), np.array([2.0])]
    before = [g.copy() for g in grads]
    with pytest.raises(RuntimeError, match=r"The total norm of order 2\.0 for gradients"):
        clip_grad_norm_(grads, 1.0, error_if_nonfinite=True)
    for grad, old in zip(grads, before):
        np.testing.assert_array_equal(grad, old)  # NaN == NaN here: unchanged
    # Without the error, the gradients are scaled by the non-finite norm, as PyTorch does.
    tensors = _torch_params(torch, grads)
    expected = torch.nn.utils.clip_grad_norm_(tensors, 1.0, foreach=False).item()
    total = clip_grad_norm_(grads, 1.0)
    assert (math.isnan(total) and math.isnan(expected)) or total == expected
    for grad, tensor in zip(grads, tensors):
        np.testing.assert_array_equal(grad, tensor.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_clip_grad_value_matches_torch(dtype: Any) -> None:
    torch = pytest.importorskip("torch")
    grads = _grads(dtype, scale=2.0)
    tensors = _torch_params(torch, grads)
    torch.nn.utils.clip_grad_value_(tensors, 0.75, foreach=False)
    assert clip_grad_value_([*grads, None], 0.75) is None
    for grad, tensor in zip(grads, tensors):
        assert grad.tobytes() == tensor.grad.numpy().tobytes()  # clamping is exact
        assert np.max(np.abs(grad)) <= np.asarray(0.75, dtype=dtype)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda g: clip_grad_norm_(g, 1.0, norm_type=0), ValueError, r"norm_type"),
        (lambda g: clip_grad_norm_(g, 1.0, norm_type="fro"), ValueError, r"norm_type"),
        (lambda g: clip_grad_value_(g, -1.0), ValueError, r"clip_value must be non-negative"),
        (lambda g: clip_grad_value_(g, math.nan), ValueError, r"clip_value"),
        (lambda g: clip_grad_norm_([*g, [1.0]], 1.0), TypeError, r"grads\[2\] must be"),
        (lambda g: clip_grad_norm_([np.arange(3)], 1.0), TypeError, r"dtype int64"),
        (lambda g: clip_grad_norm_([np.zeros((3, 3)).T], 1.0), ValueError, r"C-contiguous"),
        (lambda g: clip_grad_value_([np.frombuffer(b"\0" * 8)], 1.0), ValueError, r"read-only"),
    ],
    ids=["norm-0", "norm-fro", "negative", "nan", "list", "int", "transposed", "read-only"],
)
def test_bad_input_is_refused_and_changes_nothing(call: Any, error: type, message: str) -> None:
    grads = [np.array([5.0, -5.0]), np.array([3.0])]
    with pytest.raises(error, match=message):
        call(grads)
    np.testing.assert_array_equal(grads[0], [5.0, -5.0])
    np.testing.assert_array_equal(grads[1], [3.0])


@pytest.mark.parametrize("nan_first", [False, True], ids=["float64-first", "float32-first"])
def test_mixed_dtypes_inf_norm_keeps_a_nan(nan_first: bool) -> None:
    """float32 and float64 gradients are reduced per dtype and the two norms combined: a NaN in
    either must survive the combination (Python's max drops it when it comes second)."""

    def grads() -> list[np.ndarray]:
        pair = [np.array([2.0]), np.array([1.0, np.nan], np.float32)]
        return pair[::-1] if nan_first else pair

    assert math.isnan(clip_grad_norm_(grads(), 1.0, norm_type=math.inf))
    unchanged = grads()
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(unchanged, 1.0, norm_type=math.inf, error_if_nonfinite=True)
    assert [g.tolist() for g in unchanged][nan_first][0] == 2.0  # nothing scaled


def test_mixed_dtypes_norm_that_overflows_is_inf() -> None:
    """The combined norm of two dtypes overflows to inf, as one dtype's single pass does (and
    torch's), not to an OverflowError from Python's float power or fsum."""
    both64 = [np.array([6.5e30]), np.array([6.5e30])]
    mixed = [np.array([6.5e30]), np.array([6.5e30], np.float32)]
    assert clip_grad_norm_(both64, 1.0, norm_type=10) == math.inf
    assert clip_grad_norm_(mixed, 1.0, norm_type=10) == math.inf
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([np.array([6.5e30]), np.array([6.5e30], np.float32)], 1.0, 10, True)
    # A finite mixed norm is still the norm of the two norms.
    g64, g32 = np.array([3.0]), np.array([4.0], np.float32)
    assert clip_grad_norm_([g64, g32], 10.0, norm_type=3) == pytest.approx((27 + 64) ** (1 / 3))
