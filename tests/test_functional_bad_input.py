"""Bad input to ``fusedoptim.functional`` raises a clear error and changes nothing.

Every check happens before any array is written, so each test asserts both the error (type and
a fragment of the message that names the culprit, e.g. ``grads[2]``) and that every parameter,
state array and gradient is bitwise what it was. The bad tensor is always the last of three, so
the tests also show that the two valid tensors before it were not updated either: a kernel that
validated and updated tensor by tensor would fail them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from fusedoptim import functional, reference

# The bad tensor is index 2 and 2-D, so a Fortran-order or transposed copy differs from it.
SHAPES = [(5,), (2, 3), (4, 3)]
BAD = 2


def _other_float(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64 if dtype == np.float32 else np.float32)


def _strided(a: np.ndarray) -> np.ndarray:
    """A non-contiguous view with ``a``'s values (every other row of a larger array)."""
    base = np.zeros((2 * a.shape[0], *a.shape[1:]), dtype=a.dtype)
    view = base[::2]
    view[...] = a
    return view


def _misaligned(a: np.ndarray) -> np.ndarray:
    """A writeable copy of ``a`` whose data pointer is not a multiple of its item size."""
    buffer = bytearray(a.nbytes + 1)
    out = np.frombuffer(buffer, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def _read_only(a: np.ndarray) -> np.ndarray:
    out = a.copy()
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class BadArray:
    """How to spoil one array, which roles it applies to, and the expected error."""

    make: Callable[[np.ndarray], Any]
    roles: tuple[str, ...]  # "params", "grads", "states"
    error: type[Exception]
    # The message fragment as a function of where ("grads[2]") and the call's dtype name.
    message: Callable[[str, str], str]


ALL_ROLES = ("params", "grads", "states")

BAD_ARRAYS: dict[str, BadArray] = {
    "int64": BadArray(
        lambda a: a.astype(np.int64),
        ALL_ROLES,
        TypeError,
        lambda where, _: f"{where} has dtype int64; only float32 and float64 are supported",
    ),
    "complex128": BadArray(
        lambda a: a.astype(np.complex128),
        ALL_ROLES,
        TypeError,
        lambda where, _: f"{where} has dtype complex128; only float32 and float64",
    ),
    "float16": BadArray(
        lambda a: a.astype(np.float16),
        ALL_ROLES,
        TypeError,
        lambda where, _: f"{where} has dtype float16; only float32 and float64",
    ),
    "python-list": BadArray(
        lambda a: a.tolist(),
        ALL_ROLES,
        TypeError,
        lambda where, _: f"{where} must be a numpy.ndarray of float32 or float64, got list",
    ),
    "other-float-dtype": BadArray(
        lambda a: a.astype(_other_float(a.dtype)),
        ("grads", "states"),
        TypeError,
        lambda where, dtype: (
            f"{where} has dtype {_other_float(np.dtype(dtype))} but params[2] has dtype {dtype}"
        ),
    ),
    "transposed-shape": BadArray(
        # Same number of elements: a kernel that only looked at sizes would run on it.
        lambda a: np.ascontiguousarray(a.T),
        ("grads", "states"),
        ValueError,
        lambda where, _: f"{where} has shape (3, 4) but params[2] has shape (4, 3)",
    ),
    "flat-shape": BadArray(
        lambda a: a.ravel().copy(),
        ("grads", "states"),
        ValueError,
        lambda where, _: f"{where} has shape (12,) but params[2] has shape (4, 3)",
    ),
    "strided": BadArray(
        _strided,
        ALL_ROLES,
        ValueError,
        lambda where, _: f"{where} is not C-contiguous",
    ),
    "fortran-order": BadArray(
        np.asfortranarray,
        ALL_ROLES,
        ValueError,
        lambda where, _: f"{where} is not C-contiguous",
    ),
    "read-only": BadArray(
        _read_only,
        ("params", "states"),
        ValueError,
        lambda where, _: f"{where} is read-only",
    ),
    "misaligned": BadArray(
        _misaligned,
        ALL_ROLES,
        ValueError,
        lambda where, _: f"{where} is not aligned",
    ),
    "big-endian": BadArray(
        lambda a: a.astype(a.dtype.newbyteorder(">")),
        ALL_ROLES,
        TypeError,
        lambda where, _: f"{where} has non-native byte order",
    ),
}

BAD_ARRAY_CASES = [(kind, role) for kind, bad in BAD_ARRAYS.items() for role in bad.roles]


def _snapshot_all(problem: Any, grads: list[Any], snapshot: Callable[..., Any]) -> Any:
    grad_bytes = [g.tobytes() if isinstance(g, np.ndarray) else repr(g) for g in grads]
    return snapshot(problem), grad_bytes


@pytest.fixture
def three_tensor_call(
    optimizer_name, dtype, rng, default_case_for, make_problem, random_grads, snapshot
):
    """A valid three-tensor problem for ``optimizer_name`` and a checker for "nothing changed"."""
    case = default_case_for(optimizer_name)
    problem = make_problem(case, SHAPES, dtype, rng)
    grads = random_grads(SHAPES, dtype, rng)

    def assert_nothing_changed(before: Any) -> None:
        after = _snapshot_all(problem, grads, snapshot)
        assert after[0] == before[0], "a parameter or state array was modified"
        assert after[1] == before[1], "a gradient was modified"

    return case, problem, grads, assert_nothing_changed


@pytest.mark.parametrize(
    ("kind", "role"), BAD_ARRAY_CASES, ids=[f"{kind}-{role}" for kind, role in BAD_ARRAY_CASES]
)
def test_bad_array_is_refused_and_nothing_changes(
    kind, role, three_tensor_call, dtype, call_optimizer, snapshot
):
    case, problem, grads, assert_nothing_changed = three_tensor_call
    bad = BAD_ARRAYS[kind]
    if role == "params":
        targets = [("params", problem.params)]
    elif role == "grads":
        targets = [("grads", grads)]
    else:
        targets = [(slot, problem.states[slot]) for slot in case.used_slots]

    for name, arrays in targets:
        good = arrays[BAD]
        arrays[BAD] = bad.make(good)
        before = _snapshot_all(problem, grads, snapshot)
        message = bad.message(f"{name}[{BAD}]", np.dtype(dtype).name)
        with pytest.raises(bad.error, match=re.escape(message)):
            call_optimizer(functional, problem, grads, 1)
        assert_nothing_changed(before)
        arrays[BAD] = good


@pytest.fixture
def reference_result(call_optimizer):
    """``reference_result(problem, grads)``: a copy of ``problem`` after one reference step."""

    def run(problem: Any, grads: list[Any]) -> Any:
        expected = problem.copy()
        call_optimizer(reference, expected, grads, 1)
        return expected

    return run


def test_read_only_gradients_are_accepted(
    three_tensor_call, call_optimizer, reference_result, assert_problems_close
):
    # Gradients are only read: a read-only gradient (e.g. a view of a frozen buffer) is fine.
    case, problem, grads, _ = three_tensor_call
    expected = reference_result(problem, grads)
    for grad in grads:
        grad.flags.writeable = False
    call_optimizer(functional, problem, grads, 1)
    assert_problems_close(problem, expected, context=case.id)


def test_grads_list_of_another_length(three_tensor_call, call_optimizer, snapshot):
    case, problem, grads, assert_nothing_changed = three_tensor_call
    before = _snapshot_all(problem, grads, snapshot)
    with pytest.raises(ValueError, match=re.escape("grads has 2 entries but params has 3")):
        call_optimizer(functional, problem, grads[:2], 1)
    assert_nothing_changed(before)


def test_state_list_of_another_length(three_tensor_call, call_optimizer, snapshot):
    case, problem, grads, assert_nothing_changed = three_tensor_call
    for slot in case.used_slots:
        full = problem.states[slot]
        problem.states[slot] = full[:2]
        before = _snapshot_all(problem, grads, snapshot)
        with pytest.raises(ValueError, match=re.escape(f"{slot} has 2 entries but params has 3")):
            call_optimizer(functional, problem, grads, 1)
        assert_nothing_changed(before)
        problem.states[slot] = full


def test_needed_state_list_is_none(three_tensor_call, call_optimizer, snapshot):
    case, problem, grads, assert_nothing_changed = three_tensor_call
    for slot in case.used_slots:
        full = problem.states[slot]
        problem.states[slot] = None
        before = _snapshot_all(problem, grads, snapshot)
        with pytest.raises(ValueError, match=re.escape(f"{slot} is None but the chosen options")):
            call_optimizer(functional, problem, grads, 1)
        assert_nothing_changed(before)
        problem.states[slot] = full


def test_grad_that_is_the_param_itself(three_tensor_call, call_optimizer, snapshot):
    case, problem, grads, assert_nothing_changed = three_tensor_call
    grads[BAD] = problem.params[BAD]
    before = _snapshot_all(problem, grads, snapshot)
    with pytest.raises(ValueError, match=re.escape("grads[2] shares memory with params[2]")):
        call_optimizer(functional, problem, grads, 1)
    assert_nothing_changed(before)


def test_grad_overlapping_the_param(three_tensor_call, dtype, call_optimizer, snapshot):
    # Param and grad are different, valid, C-contiguous views of one buffer that overlap by
    # half: the kernel would read gradients it has already overwritten.
    case, problem, grads, assert_nothing_changed = three_tensor_call
    shape = SHAPES[BAD]
    size = math.prod(shape)
    buffer = np.zeros(size + size // 2, dtype=dtype)
    param = buffer[:size].reshape(shape)
    param[...] = problem.params[BAD]
    grad = buffer[size // 2 :].reshape(shape)
    problem.params[BAD] = param
    grads[BAD] = grad
    before = _snapshot_all(problem, grads, snapshot)
    with pytest.raises(ValueError, match=re.escape("grads[2] shares memory with params[2]")):
        call_optimizer(functional, problem, grads, 1)
    assert_nothing_changed(before)


def test_state_that_aliases_the_param_or_another_state(three_tensor_call, call_optimizer, snapshot):
    case, problem, grads, assert_nothing_changed = three_tensor_call
    slots = case.used_slots
    for position, slot in enumerate(slots):
        original = problem.states[slot][BAD]
        # The first state list aliases the parameter, later ones the first state list.
        if position == 0:
            problem.states[slot][BAD] = problem.params[BAD]
            message = f"{slot}[2] shares memory with params[2]"
        else:
            problem.states[slot][BAD] = problem.states[slots[0]][BAD]
            message = f"{slot}[2] shares memory with {slots[0]}[2]"
        before = _snapshot_all(problem, grads, snapshot)
        with pytest.raises(ValueError, match=re.escape(message)):
            call_optimizer(functional, problem, grads, 1)
        assert_nothing_changed(before)
        problem.states[slot][BAD] = original


def test_mixed_float32_and_float64_tensors(three_tensor_call, dtype, call_optimizer, snapshot):
    # The last tensor is consistent in itself (param, grad and state all of the other dtype),
    # but one call updates tensors of one dtype only.
    case, problem, grads, assert_nothing_changed = three_tensor_call
    other = _other_float(np.dtype(dtype))
    problem.params[BAD] = problem.params[BAD].astype(other)
    grads[BAD] = grads[BAD].astype(other)
    for slot in case.used_slots:
        problem.states[slot][BAD] = problem.states[slot][BAD].astype(other)
    before = _snapshot_all(problem, grads, snapshot)
    message = f"params[2] has dtype {other} but earlier parameters in this call have another dtype"
    with pytest.raises(TypeError, match=re.escape(message)):
        call_optimizer(functional, problem, grads, 1)
    assert_nothing_changed(before)


def test_params_not_a_list(three_tensor_call, call_optimizer, snapshot):
    case, problem, grads, assert_nothing_changed = three_tensor_call
    function = getattr(functional, case.name)
    options = dict(case.options)
    if case.takes_step:
        options["step"] = 1
    states = [problem.states[slot] for slot in case.state_slots]
    before = _snapshot_all(problem, grads, snapshot)
    with pytest.raises(TypeError, match="params must be a list or tuple of numpy arrays"):
        function(problem.params[0], grads, *states, **options)
    with pytest.raises(TypeError, match="grads must be a list or tuple of numpy arrays"):
        function(problem.params, grads[0], *states, **options)
    assert_nothing_changed(before)


# --------------------------------------------------------------------------------------------
# Hyperparameters: (optimizer, options to override, error, message fragment).

NAN = float("nan")
ALL_OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw")
WITH_EPS = ("adagrad", "rmsprop", "adadelta", "adam", "adamw")
WITH_STEP = ("sgd", "adagrad", "adam", "adamw")
ADAMS = ("adam", "adamw")

BAD_HYPERPARAMETERS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    *[(n, {"lr": -0.1}, ValueError, "Invalid learning rate: -0.1") for n in ALL_OPTIMIZERS],
    *[(n, {"lr": NAN}, ValueError, "Invalid learning rate: nan") for n in ALL_OPTIMIZERS],
    *[
        (n, {"weight_decay": -0.01}, ValueError, "Invalid weight_decay value: -0.01")
        for n in ALL_OPTIMIZERS
    ],
    *[(n, {"eps": -1e-8}, ValueError, "Invalid epsilon value: -1e-08") for n in WITH_EPS],
    *[(n, {"eps": NAN}, ValueError, "Invalid epsilon value: nan") for n in WITH_EPS],
    *[(n, {"beta1": 1.0}, ValueError, "Invalid beta parameter at index 0: 1.0") for n in ADAMS],
    *[(n, {"beta1": -0.1}, ValueError, "Invalid beta parameter at index 0: -0.1") for n in ADAMS],
    *[(n, {"beta2": 1.0}, ValueError, "Invalid beta parameter at index 1: 1.0") for n in ADAMS],
    *[(n, {"beta2": NAN}, ValueError, "Invalid beta parameter at index 1: nan") for n in ADAMS],
    ("sgd", {"momentum": -0.9}, ValueError, "Invalid momentum value: -0.9"),
    ("rmsprop", {"momentum": -0.9}, ValueError, "Invalid momentum value: -0.9"),
    ("rmsprop", {"alpha": 1.5}, ValueError, "Invalid alpha value: 1.5"),
    ("adadelta", {"rho": -0.5}, ValueError, "Invalid rho value: -0.5"),
    ("adagrad", {"lr_decay": -0.01}, ValueError, "Invalid lr_decay value: -0.01"),
    (
        "sgd",
        {"nesterov": True, "momentum": 0.0},
        ValueError,
        "Nesterov momentum requires a momentum and zero dampening",
    ),
    (
        "sgd",
        {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
        ValueError,
        "Nesterov momentum requires a momentum and zero dampening",
    ),
    *[(n, {"step": 0}, ValueError, "Invalid step: 0") for n in WITH_STEP],
    *[(n, {"step": -3}, ValueError, "Invalid step: -3") for n in WITH_STEP],
    *[(n, {"step": 1.5}, TypeError, "step must be an int") for n in WITH_STEP],
    *[(n, {"lr": "0.1"}, TypeError, "learning rate must be a real number") for n in ALL_OPTIMIZERS],
]


def _hyper_id(case: tuple[str, dict[str, Any], type[Exception], str]) -> str:
    name, overrides, _, _ = case
    return name + "-" + "-".join(f"{key}={value}" for key, value in overrides.items())


@pytest.mark.parametrize(
    ("optimizer_name", "overrides", "error", "message"),
    BAD_HYPERPARAMETERS,
    ids=[_hyper_id(case) for case in BAD_HYPERPARAMETERS],
)
def test_bad_hyperparameter_is_refused_and_nothing_changes(
    optimizer_name, overrides, error, message, three_tensor_call, call_optimizer, snapshot
):
    case, problem, grads, assert_nothing_changed = three_tensor_call
    options = dict(overrides)
    step = options.pop("step", 1)
    before = _snapshot_all(problem, grads, snapshot)
    with pytest.raises(error, match=re.escape(message)):
        call_optimizer(functional, problem, grads, step, **options)
    assert_nothing_changed(before)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"beta1": "fraction"}, "Invalid beta parameter at index 0"),
        ({"lr": "longdouble"}, "Invalid learning rate"),
        ({"eps": "longdouble"}, "Invalid epsilon value"),
        ({"weight_decay": "longdouble"}, "Invalid weight_decay value"),
    ],
    ids=[
        "Fraction-beta1-rounds-to-1",
        "longdouble-lr",
        "longdouble-eps",
        "longdouble-weight_decay",
    ],
)
def test_hyperparameters_are_checked_as_float64(options: dict, message: str) -> None:
    """A value in range in its own type that rounds out of range as the core's float64."""
    from fractions import Fraction

    values = {
        "fraction": Fraction(10**20 - 1, 10**20),  # < 1 exactly, 1.0 as a float64
        "longdouble": np.longdouble("1e400"),  # inf as a float64 (x86 long double holds it)
    }
    kwargs = {key: values[value] for key, value in options.items()}
    if any(isinstance(v, np.longdouble) and np.isfinite(float(v)) for v in kwargs.values()):
        pytest.skip("numpy.longdouble is float64 on this platform")
    params = [np.ones(4, np.float32)]
    with pytest.raises(ValueError, match=message):
        functional.adam(
            params,
            [np.full(4, 0.5, np.float32)],
            [np.zeros(4, np.float32)],
            [np.zeros(4, np.float32)],
            None,
            step=1,
            **kwargs,
        )
    assert (params[0] == 1).all()


def test_params_that_are_not_a_list_name_params() -> None:
    with pytest.raises(
        TypeError, match="params must be a list or tuple of numpy arrays, got generator"
    ):
        functional.sgd((p for p in [np.ones(2)]), [np.ones(2)], None, step=1, lr=0.1)


def test_a_numpy_scalar_gradient_is_not_called_an_array() -> None:
    with pytest.raises(
        TypeError, match="grads\\[0\\] must be a numpy.ndarray .*, got numpy.float64"
    ):
        functional.sgd([np.ones(())], [np.float64(1.0)], None, step=1, lr=0.1)


@pytest.mark.parametrize("where", ["param", "state"])
def test_entry_without_gradient_is_still_checked_for_its_type(where: str) -> None:
    """An entry whose gradient is None is skipped (not updated), but a parameter or state that
    is not an array at all is refused, with nothing written (it was accepted silently)."""
    params: list[Any] = [np.ones(3), np.ones(3)]
    exp_avgs: list[Any] = [np.zeros(3), np.zeros(3)]
    if where == "param":
        params[1] = "junk"
        match = r"params\[1\] must be a numpy.ndarray"
    else:
        exp_avgs[1] = 42
        match = r"exp_avgs\[1\] must be a numpy.ndarray or None"
    with pytest.raises(TypeError, match=match):
        functional.adam(params, [np.ones(3), None], exp_avgs, [np.zeros(3), None], None, step=1)
    assert np.array_equal(params[0], np.ones(3)) and not exp_avgs[0].any()
    # None for a state not created yet is fine, and the entry is left alone.
    kept = params[0]
    moments: list[Any] = [[np.zeros(3), None], [np.zeros(3), None]]
    functional.adam([np.ones(3), kept], [np.ones(3), None], *moments, None, step=1)
    assert np.array_equal(kept, np.ones(3))
