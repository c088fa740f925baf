"""``_core.Plan``: parameters and state checked once, each step checks only the gradients."""

from __future__ import annotations

import numpy as np
import pytest

import fusedoptim
from fusedoptim import _core

ADAM = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, amsgrad=True,
            maximize=False, decoupled_weight_decay=True)  # fmt: skip
SIZES = (0, 1, 7, 1000, 70001)


def _tensors(dtype: type, seed: int = 0) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    states = [[np.zeros_like(p) for p in params] for _ in range(3)]
    return params, states


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("by_address", [False, True], ids=["arrays", "addresses"])
def test_plan_matches_the_functional_call_bitwise(dtype: type, by_address: bool) -> None:
    params_a, states_a = _tensors(dtype)
    params_b, states_b = _tensors(dtype)
    steps_a, steps_b = np.zeros(len(SIZES), np.int64), np.zeros(len(SIZES), np.int64)
    plan = _core.Plan("adam", params_b, states_b, gradient_addresses=by_address)
    assert len(plan) == len(SIZES) and plan.algorithm == "adam"
    rng = np.random.default_rng(1)
    for step in range(6):
        grads: list[np.ndarray | None] = [rng.standard_normal(n).astype(dtype) for n in SIZES]
        if step == 3:
            grads[2] = None  # skipped: not updated, step count not incremented
        _core.adam(params_a, grads, *states_a, steps_a, True, **ADAM)
        passed = [g.ctypes.data if (by_address and g is not None) else g for g in grads]
        plan.adam(passed, steps_b, True, **ADAM)
    for a, b in zip(params_a + sum(states_a, []), params_b + sum(states_b, [])):
        assert a.tobytes() == b.tobytes()
    assert steps_a.tolist() == steps_b.tolist() == [6, 6, 5, 6, 6]


@pytest.mark.parametrize("kind", ["array", "view", "address"])
def test_gradient_overlapping_a_written_array_is_refused_and_changes_nothing(kind: str) -> None:
    params, states = _tensors(np.float64)
    plan = _core.Plan("adam", params, states, gradient_addresses=kind == "address")
    grads: list[object] = [np.ones(n) for n in SIZES]
    target = states[1][4]  # tensor 4's exp_avg_sq, given as tensor 3's gradient's memory
    grads[3] = {"array": target[:1000], "view": target[10:1010], "address": target.ctypes.data}[
        kind
    ]
    before = [a.tobytes() for a in params + sum(states, [])]
    steps = np.zeros(len(SIZES), np.int64)
    with pytest.raises(ValueError, match=r"grads\[3\] shares memory with exp_avg_sqs\[4\]"):
        plan.adam(grads, steps, True, **ADAM)
    assert [a.tobytes() for a in params + sum(states, [])] == before
    assert not steps.any()


Written = list[tuple[str, int, np.ndarray]]


def _first_overlap(grads: list[np.ndarray], written: Written) -> str | None:
    """Brute force: the first gradient overlapping a written array (the one at the lowest
    address, when it overlaps several), as the error names it."""
    written = sorted(written, key=lambda item: item[2].ctypes.data)
    for i, grad in enumerate(grads):
        g0, g1 = grad.ctypes.data, grad.ctypes.data + grad.nbytes
        for name, j, array in written:
            a0, a1 = array.ctypes.data, array.ctypes.data + array.nbytes
            if grad.nbytes and array.nbytes and g0 < a1 and a0 < g1:
                return rf"grads\[{i}\] shares memory with {name}\[{j}\]"
    return None


@pytest.mark.parametrize("seed", range(40))
def test_gradient_overlap_search_agrees_with_brute_force(seed: int) -> None:
    """The overlap search gallops from where the previous gradient's search ended. Gradients
    anywhere in memory (inside one pool, so that they fall between, before, after and on the
    written arrays, or across two of them), as arrays or as addresses, with the parameters in
    memory order, reversed or shuffled, must be judged as by comparing each with every written
    array."""
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 30))
    sizes = [int(n) for n in rng.integers(0, 40, count)]
    pool = np.zeros(sum(sizes) * 2 + 4 * count + 64)  # params and sums, with gaps
    offsets, at = [], 0
    for n in sizes:  # param then sum, each after a random gap
        at += int(rng.integers(0, 3))
        param_at = at
        at += n + int(rng.integers(0, 3))
        offsets.append((param_at, at))
        at += n
    order = [list(range(count)), list(range(count))[::-1], list(rng.permutation(count))][seed % 3]
    sizes = [sizes[k] for k in order]
    offsets = [offsets[k] for k in order]
    params = [pool[p : p + n] for (p, _), n in zip(offsets, sizes)]
    sums = [pool[q : q + n] for (_, q), n in zip(offsets, sizes)]
    by_address = seed % 2 == 1
    plan = _core.Plan("adagrad", params, [sums], gradient_addresses=by_address)
    written = [("params", j, a) for j, a in enumerate(params)] + [
        ("state_sums", j, a) for j, a in enumerate(sums)
    ]
    for _ in range(20):
        grads = []
        for n in sizes:
            if rng.random() < 0.8:  # a separate array, most of the time
                grads.append(np.ones(n))
            else:  # or a window of the pool, anywhere
                start = int(rng.integers(0, len(pool) - n + 1))
                grads.append(pool[start : start + n])
        expected = _first_overlap(grads, written)
        passed = [g.ctypes.data if by_address and g.size else g for g in grads]
        steps = np.zeros(count, np.int64)
        before = pool.tobytes()
        hyper = dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, eps=1e-10, maximize=False)
        if expected is None:
            plan.adagrad(passed, steps, True, **hyper)
            assert steps.tolist() == [1] * count
        else:
            with pytest.raises(ValueError, match=expected):
                plan.adagrad(passed, steps, True, **hyper)
            assert pool.tobytes() == before and not steps.any()


def test_plan_refuses_overlapping_parameters_and_state_when_made() -> None:
    memory = np.zeros(10)
    with pytest.raises(ValueError, match=r"exp_avgs\[1\] shares memory with params\[0\]"):
        _core.Plan("adam", [memory[:5], np.zeros(5)], [[np.zeros(5), memory[3:8]], None, None])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda plan, g, s: plan.sgd(g, s, True, 0.1, 0.0, 0.0, False, 0.0, False),
            ValueError,
            r"this plan was made for adam, not sgd",
        ),
        (
            lambda plan, g, s: plan.adam(g[:2], s, True, **ADAM),
            ValueError,
            r"grads has 2 entries but the plan has 5 parameters",
        ),
        (
            lambda plan, g, s: plan.adam([*g[:4], g[4].astype(np.float32)], s, True, **ADAM),
            TypeError,
            r"grads\[4\] has dtype float32 but params\[4\] has dtype float64",
        ),
        (
            lambda plan, g, s: plan.adam([*g[:4], 12345], s, True, **ADAM),
            ValueError,
            r"grads\[4\] is an address not aligned",
        ),
        (
            lambda plan, g, s: plan.adam(g, s[:2], True, **ADAM),
            ValueError,
            r"steps must be a contiguous 1-D int64 array",
        ),
        (
            lambda plan, g, s: plan.adam(g, s.tolist(), True, **ADAM),
            TypeError,
            r"steps must be a numpy.ndarray of int64, got list",
        ),
    ],
    ids=[
        "wrong-algorithm",
        "too-few-grads",
        "dtype",
        "misaligned-address",
        "steps-length",
        "steps-list",
    ],
)
def test_bad_step_arguments_change_nothing(call: object, error: type, message: str) -> None:
    params, states = _tensors(np.float64)
    plan = _core.Plan("adam", params, states, gradient_addresses=True)
    grads = [np.ones(n) for n in SIZES]
    steps = np.zeros(len(SIZES), np.int64)
    before = [a.tobytes() for a in params + sum(states, [])]
    with pytest.raises(error, match=message):
        call(plan, grads, steps)  # type: ignore[operator]
    assert [a.tobytes() for a in params + sum(states, [])] == before
    assert not steps.any()


@pytest.mark.parametrize("value", [0, 8, False, True, "address"])
def test_integers_are_not_gradients_unless_the_plan_takes_addresses(value: object) -> None:
    """Only fusedoptim.torch passes gradients by address; anywhere else an integer is a mistake
    (a scalar loss, a flag) and must be refused like any other non-array, not dereferenced."""
    params, states = _tensors(np.float64)
    grads: list[object] = [np.ones(n) for n in SIZES]
    grads[2] = params[2].ctypes.data + 8 * 1000 if value == "address" else value
    steps = np.zeros(len(SIZES), np.int64)
    before = [a.tobytes() for a in params + sum(states, [])]
    plan = _core.Plan("adam", params, states)
    with pytest.raises(TypeError, match=r"grads\[2\] must be a numpy.ndarray"):
        plan.adam(grads, steps, True, **ADAM)
    if isinstance(value, bool):  # not addresses either
        with pytest.raises(TypeError, match=r"grads\[2\] must be a numpy.ndarray"):
            _core.Plan("adam", params, states, gradient_addresses=True).adam(
                grads, steps, True, **ADAM
            )
    if type(value) is int and value == 0:
        with pytest.raises(ValueError, match=r"grads\[2\] is a null address"):
            _core.Plan("adam", params, states, gradient_addresses=True).adam(
                grads, steps, True, **ADAM
            )
    assert [a.tobytes() for a in params + sum(states, [])] == before and not steps.any()


def test_optimizer_refuses_an_integer_gradient_after_its_first_step() -> None:
    w = np.ones(4)
    opt = fusedoptim.SGD([w], lr=0.1)
    opt.step([np.ones(4)])
    for bad in (False, 0, 8, w.ctypes.data):
        with pytest.raises(TypeError, match="must be a numpy.ndarray"):
            opt.step([bad])
    np.testing.assert_array_equal(w, np.full(4, 0.9))


def test_missing_state_for_a_parameter_with_a_gradient_is_refused() -> None:
    params = [np.zeros(3), np.zeros(3)]
    plan = _core.Plan("adam", params, [[np.zeros(3), None], [np.zeros(3), None], None])
    steps = np.zeros(2, np.int64)
    plan.adam([np.ones(3), None], steps, True, **{**ADAM, "amsgrad": False})  # tensor 1 skipped
    assert steps.tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"exp_avgs\[1\] is None but the chosen options need it"):
        plan.adam([np.ones(3), np.ones(3)], steps, True, **{**ADAM, "amsgrad": False})
    with pytest.raises(ValueError, match=r"max_exp_avg_sqs\[0\] is None"):
        plan.adam([np.ones(3), None], steps, True, **ADAM)  # amsgrad needs the third state
    assert steps.tolist() == [1, 0]


def test_check_only_writes_nothing() -> None:
    params, states = _tensors(np.float32)
    plan = _core.Plan("adam", params, states)
    before = [a.tobytes() for a in params + sum(states, [])]
    steps = np.zeros(len(SIZES), np.int64)
    plan.adam([np.ones(n, np.float32) for n in SIZES], steps, True, **ADAM, check_only=True)
    assert [a.tobytes() for a in params + sum(states, [])] == before and not steps.any()


def test_unknown_algorithm_and_bad_state_lists() -> None:
    with pytest.raises(ValueError, match=r"unknown algorithm 'lamb'"):
        _core.Plan("lamb", [np.zeros(2)], [])
    with pytest.raises(ValueError, match=r"momentum_buffers has 2 entries but params has 1"):
        _core.Plan("sgd", [np.zeros(2)], [[np.zeros(2), np.zeros(2)]])
    with pytest.raises(ValueError, match=r"states\[1\] must be None for sgd"):
        _core.Plan("sgd", [np.zeros(2)], [None, [np.zeros(2)]])
