"""Edge cases of the compiled core found in review: overlaps across tensors, the caller's
floating-point mode, the step-count array, and strict option types."""

from __future__ import annotations

import numpy as np
import pytest

import fusedoptim
from fusedoptim import _core
from fusedoptim import functional as F


@pytest.fixture
def two_threads() -> object:
    before = fusedoptim.get_num_threads()
    fusedoptim.set_num_threads(2)
    yield
    fusedoptim.set_num_threads(before)


def _snapshot(*arrays: np.ndarray) -> list[bytes]:
    return [a.tobytes() for a in arrays]


@pytest.mark.parametrize(
    ("grad_index", "message"),
    [
        (1, r"grads\[1\] shares memory with params\[0\]"),
        (0, r"params\[1\] shares memory with grads\[0\]"),
    ],
    ids=["grad-is-other-param", "param-is-other-grad"],
)
def test_overlap_across_tensors_is_refused_and_changes_nothing(
    grad_index: int, message: str
) -> None:
    params = [np.arange(6.0), np.arange(6.0) + 10]
    grads = [np.ones(6), np.ones(6)]
    if grad_index == 1:
        grads[1] = params[0]  # the second tensor's gradient is the first tensor's parameter
    else:
        params[1] = grads[0]  # the second tensor's parameter is the first tensor's gradient
    buffers = [np.zeros(6), np.zeros(6)]
    before = _snapshot(*params, *grads, *buffers)
    with pytest.raises(ValueError, match=message):
        F.sgd(params, grads, buffers, step=2, lr=0.1, momentum=0.9)
    assert _snapshot(*params, *grads, *buffers) == before


def test_partial_overlap_between_states_of_different_tensors_is_refused() -> None:
    memory = np.zeros(12)
    params = [np.zeros(6), np.zeros(6)]
    grads = [np.ones(6), np.ones(6)]
    exp_avgs = [memory[0:6], memory[4:10]]  # overlap by two elements
    exp_avg_sqs = [np.zeros(6), np.zeros(6)]
    with pytest.raises(ValueError, match=r"exp_avgs\[1\] shares memory with exp_avgs\[0\]"):
        F.adam(params, grads, exp_avgs, exp_avg_sqs, None, step=1)
    assert not memory.any() and not params[0].any()


def test_gradients_may_share_memory_with_each_other() -> None:
    grad = np.ones(6)
    params = [np.zeros(6), np.zeros(6)]
    F.sgd(params, [grad, grad[:]], None, step=1, lr=0.5)
    np.testing.assert_array_equal(params[0], -0.5)
    np.testing.assert_array_equal(params[1], -0.5)


def test_clipping_refuses_the_same_gradient_twice() -> None:
    grad = np.full(4, 3.0)
    with pytest.raises(ValueError, match=r"shares memory"):
        fusedoptim.clip_grad_value_([grad, grad], 1.0)
    np.testing.assert_array_equal(grad, 3.0)
    with pytest.raises(ValueError, match=r"arrays\[1\] shares memory with arrays\[0\]"):
        _core.scale_([grad, grad[1:]], 0.5)
    np.testing.assert_array_equal(grad, 3.0)


def test_results_follow_the_callers_flush_to_zero_mode_on_every_thread(two_threads: object) -> None:
    """Worker threads adopt the calling thread's FTZ/DAZ mode for the call (x86 MXCSR)."""
    torch = pytest.importorskip("torch")
    tiny = np.float32(1e-39)  # a float32 denormal
    n = 1 << 18

    def run(threads: int) -> bytes:
        fusedoptim.set_num_threads(threads)
        params = [np.full(n, tiny, dtype=np.float32)]
        F.sgd(params, [np.full(n, tiny, dtype=np.float32)], None, step=1, lr=0.5)
        return params[0].tobytes()

    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        one, two = run(1), run(2)
    finally:
        torch.set_flush_denormal(False)
    assert one == two
    assert not np.frombuffer(one, dtype=np.float32).any()  # flushed everywhere: all zeros
    assert run(2) == run(1) and np.frombuffer(run(2), dtype=np.float32).all()  # mode restored


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (np.ones(1, dtype=">i8"), r"steps must be a contiguous 1-D int64 array"),
        (np.ones(1, dtype=np.int32), r"steps must be a contiguous 1-D int64 array"),
        (np.ones((1, 1), dtype=np.int64), r"steps must be a contiguous 1-D int64 array"),
        (np.full(1, np.iinfo(np.int64).max), r"cannot be incremented past the largest int64"),
        ([1], r"steps must be a numpy.ndarray of int64, got list"),
    ],
    ids=["big-endian", "int32", "2-d", "overflow", "list"],
)
def test_core_refuses_bad_step_arrays(steps: np.ndarray | list[int], message: str) -> None:
    param, grad = np.zeros(3), np.ones(3)
    before = np.asarray(steps).tobytes()
    error = TypeError if isinstance(steps, list) else ValueError
    with pytest.raises(error, match=message):
        _core.sgd([param], [grad], None, steps, True, 0.1, 0.0, 0.0, False, 0.0, False)
    assert np.asarray(steps).tobytes() == before and not param.any()


@pytest.mark.parametrize("value", ["no", 1, None], ids=["string", "int", "None"])
def test_option_flags_must_be_booleans(value: object) -> None:
    param = np.zeros(3)
    with pytest.raises(TypeError, match=r"maximize must be True or False"):
        F.sgd([param], [np.ones(3)], None, step=1, lr=0.1, maximize=value)  # type: ignore[arg-type]
    assert not param.any()
    F.sgd([param], [np.ones(3)], None, step=1, lr=0.1, maximize=np.bool_(True))
    np.testing.assert_array_equal(param, 0.1)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"lr": float("inf")}, ValueError, r"Invalid learning rate: inf"),
        ({"lr": 10**400}, ValueError, r"does not fit in a float64"),
        ({"step": 2**70}, ValueError, r"Invalid step"),
    ],
    ids=["infinite-lr", "huge-int-lr", "huge-step"],
)
def test_out_of_range_numbers_are_refused_with_their_name(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    param = np.zeros(3)
    arguments = {"step": 1, "lr": 0.1, **kwargs}
    with pytest.raises(error, match=message):
        F.sgd([param], [np.ones(3)], None, **arguments)  # type: ignore[arg-type]
    assert not param.any()


def test_same_items_compares_identity_not_values() -> None:
    a, b = np.zeros(1), np.zeros(1)
    assert _core.same_items([a, b], (a, b))
    assert _core.same_items([], ())
    assert not _core.same_items([a], [b])  # equal values, another object
    assert not _core.same_items([a], [a, a])
    with pytest.raises(TypeError, match="lists or tuples"):
        _core.same_items(iter([a]), [a])


def test_step_counts_sharing_memory_with_a_parameter_are_refused() -> None:
    """The private entry points take the step counts as an array that they increment."""
    buffer = np.zeros(4)
    steps = buffer[:1].view(np.int64)
    with pytest.raises(ValueError, match="steps shares memory with params\\[0\\]"):
        _core.sgd([buffer], [np.ones(4)], None, steps, True, 0.5, 0.0, 0.0, False, 0.0, False)
    plan = _core.Plan("sgd", [buffer], [None])
    with pytest.raises(ValueError, match="steps shares memory with params\\[0\\]"):
        plan.sgd([np.ones(4)], steps, True, 0.5, 0.0, 0.0, False, 0.0, False)
    assert (buffer == 0).all()
    # Counts that are not incremented are only read: sharing is allowed then.
    _core.sgd(
        [buffer[1:]],
        [np.ones(3)],
        None,
        np.ones(1, np.int64),
        False,
        0.5,
        0.0,
        0.0,
        False,
        0.0,
        False,
    )


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (True, TypeError),
        (1.5, TypeError),
        ("2", TypeError),
        (0, ValueError),
        (-1, ValueError),
        (2**31, ValueError),
        (2**70, ValueError),
    ],
)
def test_set_num_threads_refuses_what_is_not_a_positive_int(value: object, error: type) -> None:
    before = fusedoptim.get_num_threads()
    with pytest.raises(error, match="set_num_threads: n must be"):
        fusedoptim.set_num_threads(value)  # type: ignore[arg-type]
    assert fusedoptim.get_num_threads() == before


def test_footprint_finds_overlaps_between_written_and_read_arrays() -> None:
    base = np.zeros(100)
    a, b, c = base[:10], base[10:20], np.zeros(5)
    footprint = _core.Footprint([a, None, b, c])
    assert footprint.overlap() is None and len(footprint) == 3
    assert footprint.first_read_overlap([np.zeros(3), None, "x", base[15:16]]) == (3, 2)
    assert footprint.first_read_overlap([base[::-1][:1]]) is None  # base[99]: outside
    assert footprint.first_read_overlap([base[::7]]) == (0, 0)  # strided: its extent counts
    assert footprint.first_read_overlap([base[20:], np.zeros(0), base[:0]]) is None
    assert _core.Footprint([a, base[5:12]]).overlap() == (0, 1)
    assert _core.Footprint([b, a, base[9:11]]).overlap() in {(0, 2), (1, 2)}
    with pytest.raises(TypeError, match="written\\[1\\] must be a numpy.ndarray"):
        _core.Footprint([a, [1.0]])


def test_same_values_compares_a_groups_hyperparameters_with_a_snapshot() -> None:
    keys = {"lr": 0.1, "betas": (0.9, 0.999), "amsgrad": False}
    group = {"params": [], "lr": 0.1, "betas": (0.9, 0.999), "amsgrad": False}
    checked, types = (0.1, (0.9, 0.999), False), (float, tuple, bool)
    assert _core.same_values(group, keys, checked, types)
    assert not _core.same_values({**group, "lr": 0.2}, keys, checked, types)
    assert not _core.same_values({**group, "amsgrad": 0}, keys, checked, types)  # equal, not bool
    assert not _core.same_values({**group, "betas": [0.9, 0.999]}, keys, checked, types)
    assert not _core.same_values({"lr": 0.1, "betas": (0.9, 0.999)}, keys, checked, types)
    assert not _core.same_values(group, keys, None, types)
    array_group = {**group, "lr": np.array([0.1, 0.1])}  # comparing raises: not the same
    array_types = (np.ndarray, tuple, bool)
    assert not _core.same_values(
        array_group, keys, (np.array([0.1, 0.1]), (0.9, 0.999), False), array_types
    )
    nan = float("nan")
    assert _core.same_values(
        {**group, "lr": nan}, keys, (nan, (0.9, 0.999), False), types
    )  # same object


def test_same_values_follows_only_plain_dicts_and_lets_interrupts_through() -> None:
    from collections import OrderedDict

    keys = OrderedDict([("momentum", 0.0), ("dampening", 0.0)])
    keys.move_to_end("momentum")  # iteration order now differs from insertion order
    group = {"params": [], "momentum": 0.9, "dampening": 0.1}
    # A snapshot taken in iteration order (dampening, momentum) of swapped values:
    assert not _core.same_values(group, keys, (0.9, 0.1), (float, float))

    class Interrupting(float):
        def __eq__(self, other: object) -> bool:
            raise KeyboardInterrupt

        __hash__ = float.__hash__

    value = Interrupting(0.5)
    with pytest.raises(KeyboardInterrupt):
        _core.same_values({"lr": value}, {"lr": 0.0}, (0.5,), (Interrupting,))

    class Raising(float):
        def __eq__(self, other: object) -> bool:
            raise ValueError("no comparison")

        __hash__ = float.__hash__

    assert not _core.same_values({"lr": Raising(0.5)}, {"lr": 0.0}, (0.5,), (Raising,))
