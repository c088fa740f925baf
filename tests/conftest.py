"""Shared test helpers for the optimizer kernel suite.

The tests run with ``--import-mode=importlib``, under which test modules cannot ``import
conftest``; so everything shared lives here and reaches the tests in one of two ways:

* parametrization, through :func:`pytest_generate_tests`: a test that names the argument
  ``optimizer_case`` runs once per optimizer x option branch (``CASE_FAMILIES`` has subsets of
  those under other argument names), one that names ``optimizer_name`` once per optimizer;
* fixtures that hand out the helper functions (``make_problem``, ``call_optimizer``, ...).

An *optimizer case* is an optimizer name plus the keyword options of one branch (momentum or
not, Nesterov, centered, amsgrad, weight decay, maximize, ...). The option grid is generated as
a product of axes with an explicit skip list (:func:`_is_redundant_or_invalid`), so adding an
axis adds every combination.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pytest

OPTIMIZER_NAMES: tuple[str, ...] = ("sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw")

# State list arguments, in the positional order of the functional/reference signatures.
STATE_SLOTS: dict[str, tuple[str, ...]] = {
    "sgd": ("momentum_buffers",),
    "adagrad": ("state_sums",),
    "rmsprop": ("square_avgs", "momentum_buffers", "grad_avgs"),
    "adadelta": ("square_avgs", "acc_deltas"),
    "adam": ("exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs"),
    "adamw": ("exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs"),
}

# The key torch.optim uses for each state list in ``optimizer.state[p]``.
TORCH_STATE_KEY: dict[str, str] = {
    "momentum_buffers": "momentum_buffer",
    "state_sums": "sum",
    "square_avgs": "square_avg",
    "grad_avgs": "grad_avg",
    "acc_deltas": "acc_delta",
    "exp_avgs": "exp_avg",
    "exp_avg_sqs": "exp_avg_sq",
    "max_exp_avg_sqs": "max_exp_avg_sq",
}

# Optimizers whose functional form takes the 1-based ``step`` (bias correction, lr decay, the
# first momentum step); RMSprop and AdaDelta do not depend on it.
TAKES_STEP = frozenset({"sgd", "adagrad", "adam", "adamw"})

# Learning rates large enough that 20 steps move the parameters visibly, so a wrong update
# cannot hide below the tolerance.
BASE_OPTIONS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.05},
    "adagrad": {"lr": 0.1, "eps": 1e-10},
    "rmsprop": {"lr": 0.01, "alpha": 0.9, "eps": 1e-8},
    "adadelta": {"lr": 0.9, "rho": 0.85, "eps": 1e-6},
    "adam": {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-8},
    "adamw": {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-8},
}

WEIGHT_DECAY = 0.05

# The option axes of each optimizer: every branch of its update rule.
OPTION_AXES: dict[str, dict[str, tuple[Any, ...]]] = {
    "sgd": {
        "momentum": (0.0, 0.9),
        "dampening": (0.0, 0.3),
        "nesterov": (False, True),
        "weight_decay": (0.0, WEIGHT_DECAY),
        "maximize": (False, True),
    },
    "adagrad": {
        "lr_decay": (0.0, 0.01),
        "weight_decay": (0.0, WEIGHT_DECAY),
        "maximize": (False, True),
    },
    "rmsprop": {
        "centered": (False, True),
        "momentum": (0.0, 0.9),
        "weight_decay": (0.0, WEIGHT_DECAY),
        "maximize": (False, True),
    },
    "adadelta": {
        "weight_decay": (0.0, WEIGHT_DECAY),
        "maximize": (False, True),
    },
    "adam": {
        "amsgrad": (False, True),
        "weight_decay": (0.0, WEIGHT_DECAY),
        "maximize": (False, True),
    },
    "adamw": {
        "amsgrad": (False, True),
        "weight_decay": (0.0, WEIGHT_DECAY),
        "maximize": (False, True),
    },
}


def _is_redundant_or_invalid(name: str, options: dict[str, Any]) -> bool:
    """The skip list of the option product.

    SGD: dampening only acts on the momentum buffer, so with momentum 0 a non-zero dampening is
    the same branch as dampening 0; Nesterov needs momentum > 0 and dampening 0 (torch.optim and
    fusedoptim both reject it otherwise, tested in test_functional_bad_input.py).
    """
    if name == "sgd":
        if options["momentum"] == 0 and options["dampening"] != 0:
            return True
        if options["nesterov"] and (options["momentum"] == 0 or options["dampening"] != 0):
            return True
    return False


@dataclass(frozen=True)
class OptimizerCase:
    """One optimizer with the keyword options of one branch of its update rule."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """A readable pytest id such as ``sgd-momentum-nesterov-wd-maximize``."""
        parts = [self.name]
        for key, value in self.options.items():
            if key in BASE_OPTIONS[self.name] or not value:
                continue
            short = "wd" if key == "weight_decay" else key
            parts.append(short if value is True or key == "weight_decay" else f"{short}{value}")
        return "-".join(parts) if len(parts) > 1 else f"{self.name}-plain"

    @property
    def takes_step(self) -> bool:
        return self.name in TAKES_STEP

    @property
    def state_slots(self) -> tuple[str, ...]:
        return STATE_SLOTS[self.name]

    def needs(self, slot: str) -> bool:
        """Whether this branch reads and writes the state list ``slot``."""
        if slot == "momentum_buffers":
            return self.options.get("momentum", 0.0) != 0
        if slot == "grad_avgs":
            return bool(self.options.get("centered", False))
        if slot == "max_exp_avg_sqs":
            return bool(self.options.get("amsgrad", False))
        return True

    @property
    def used_slots(self) -> tuple[str, ...]:
        return tuple(slot for slot in self.state_slots if self.needs(slot))


def option_cases(name: str) -> list[OptimizerCase]:
    """Every branch of optimizer ``name``: the product of its option axes minus the skip list."""
    axes = OPTION_AXES[name]
    cases = []
    for values in itertools.product(*axes.values()):
        options = dict(zip(axes, values))
        if _is_redundant_or_invalid(name, options):
            continue
        cases.append(OptimizerCase(name, {**BASE_OPTIONS[name], **options}))
    return cases


def default_case(name: str) -> OptimizerCase:
    """A single case per optimizer with its stateful branches switched on.

    Used where a test is about something other than the option branches (large tensors, bad
    input, threads), so it exercises as much of the kernel as one configuration can.
    """
    extra: dict[str, dict[str, Any]] = {
        "sgd": {"momentum": 0.9, "nesterov": True, "weight_decay": WEIGHT_DECAY},
        "adagrad": {"lr_decay": 0.01, "weight_decay": WEIGHT_DECAY},
        "rmsprop": {"momentum": 0.9, "centered": True, "weight_decay": WEIGHT_DECAY},
        "adadelta": {"weight_decay": WEIGHT_DECAY},
        "adam": {"amsgrad": True, "weight_decay": WEIGHT_DECAY},
        "adamw": {"amsgrad": True, "weight_decay": WEIGHT_DECAY},
    }
    return OptimizerCase(name, {**BASE_OPTIONS[name], **extra[name]})


ALL_CASES: list[OptimizerCase] = [case for name in OPTIMIZER_NAMES for case in option_cases(name)]


# Families of cases, each parametrizing the test argument of the same name.
CASE_FAMILIES: dict[str, list[OptimizerCase]] = {
    "optimizer_case": ALL_CASES,
    # Optimizers whose update depends on the step number.
    "stepped_optimizer_case": [case for case in ALL_CASES if case.takes_step],
    # Branches that leave at least one state list unused (may be None or anything).
    "optimizer_case_with_unused_state": [
        case for case in ALL_CASES if len(case.used_slots) < len(case.state_slots)
    ],
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize the case families of ``CASE_FAMILIES`` and ``optimizer_name``.

    A test that parametrizes one of these arguments itself (``@pytest.mark.parametrize``) keeps
    its own values.
    """
    explicit: set[str] = set()
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        explicit.update(names.split(",") if isinstance(names, str) else names)
    explicit = {name.strip() for name in explicit}
    for argument, cases in CASE_FAMILIES.items():
        if argument in metafunc.fixturenames and argument not in explicit:
            metafunc.parametrize(argument, cases, ids=[case.id for case in cases])
    if "optimizer_name" in metafunc.fixturenames and "optimizer_name" not in explicit:
        metafunc.parametrize("optimizer_name", OPTIMIZER_NAMES)


# --------------------------------------------------------------------------------------------
# Problems: parameters, states and gradients for one optimizer case.


@dataclass
class Problem:
    """The arrays of one optimizer run: parameters and every state list (None where unused)."""

    case: OptimizerCase
    params: list[np.ndarray]
    states: dict[str, list[np.ndarray] | None]

    def copy(self) -> Problem:
        return Problem(self.case, copy.deepcopy(self.params), copy.deepcopy(self.states))

    def named_arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(label, array)`` for every parameter and state array, e.g. ``exp_avgs[2]``."""
        for i, param in enumerate(self.params):
            yield f"params[{i}]", param
        for slot, arrays in self.states.items():
            if arrays is None:
                continue
            for i, array in enumerate(arrays):
                yield f"{slot}[{i}]", array


def _make_problem(
    case: OptimizerCase,
    shapes: Sequence[tuple[int, ...]],
    dtype: Any,
    rng: np.random.Generator,
) -> Problem:
    """Random parameters and freshly initialised state, as torch.optim initialises it.

    The SGD momentum buffer is filled with random values instead of zeros: on step 1 it must be
    overwritten with the gradient (torch's buffer starts as None), so leftover content that
    leaked into the result would show.
    """
    params = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    states: dict[str, list[np.ndarray] | None] = {}
    for slot in case.state_slots:
        if not case.needs(slot):
            states[slot] = None
        elif case.name == "sgd":
            states[slot] = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
        else:
            states[slot] = [np.zeros(shape, dtype=dtype) for shape in shapes]
    return Problem(case, params, states)


def _random_grads(
    shapes: Sequence[tuple[int, ...]], dtype: Any, rng: np.random.Generator
) -> list[np.ndarray]:
    """Fresh gradients, bounded away from zero so no branch is trivially skipped."""
    grads = []
    for shape in shapes:
        magnitude = rng.uniform(0.1, 2.0, size=shape)
        sign = rng.choice((-1.0, 1.0), size=shape)
        grads.append((magnitude * sign).astype(dtype))
    return grads


def _call_optimizer(
    impl: ModuleType,
    problem: Problem,
    grads: Sequence[np.ndarray | None],
    step: int,
    **overrides: Any,
) -> None:
    """Call ``impl.<optimizer>`` (functional or reference) on ``problem`` in place.

    ``overrides`` replace options of the case (for the bad-input tests).
    """
    case = problem.case
    function: Callable[..., None] = getattr(impl, case.name)
    options = {**case.options, **overrides}
    if case.takes_step:
        options.setdefault("step", step)
    state_lists = [problem.states[slot] for slot in case.state_slots]
    function(problem.params, list(grads), *state_lists, **options)


def _run_steps(
    impl: ModuleType,
    problem: Problem,
    grad_sequence: Sequence[Sequence[np.ndarray | None]],
    first_step: int = 1,
) -> None:
    for offset, grads in enumerate(grad_sequence):
        _call_optimizer(impl, problem, grads, first_step + offset)


# Tolerances for the compiled kernels against the NumPy reference. Both compute in the storage
# dtype, with each per-step scalar (1 - beta, -lr / bias_correction1, ...) rounded to that dtype
# once, and both follow the same order of operations; with GCC and -ffp-contract=off (the
# build's flags) they agree to the last bit. Nothing in C++ promises that in general, though: a
# compiler that contracts a * b + c into one FMA, or a libm pow that differs from Python's by an
# ulp in a bias correction, shifts a result by an ulp, and an ulp in a state feeds every later
# step. A few ulps per operation over ~10 operations and 20 steps stay far inside 1e-12 relative
# in float64 and 1e-5 in float32 (ulp 6e-8), while a wrong formula, branch or scalar moves
# results by 1e-3 or more. The absolute part is the same relative tolerance times the array's
# largest entry, so entries passing near zero are judged against the array's scale.
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def _assert_problems_close(
    actual: Problem, expected: Problem, rtol: float | None = None, context: str = ""
) -> None:
    """Parameters and every state array of two problems agree; NaN/Inf at the same places."""
    expected_arrays = dict(expected.named_arrays())
    actual_arrays = dict(actual.named_arrays())
    assert actual_arrays.keys() == expected_arrays.keys()
    for label, want in expected_arrays.items():
        got = actual_arrays[label]
        assert got.dtype == want.dtype and got.shape == want.shape, label
        tolerance = RTOL[want.dtype] if rtol is None else rtol
        finite = want[np.isfinite(want)]
        scale = float(np.max(np.abs(finite))) if finite.size else 1.0
        np.testing.assert_allclose(
            got,
            want,
            rtol=tolerance,
            atol=tolerance * scale,
            equal_nan=True,
            err_msg=f"{context} {label}",
        )


def _snapshot(problem: Problem) -> dict[str, Any]:
    """The exact bytes of every parameter and state array (a copy of anything else there)."""
    return {
        label: array.tobytes() if isinstance(array, np.ndarray) else copy.deepcopy(array)
        for label, array in problem.named_arrays()
    }


# --------------------------------------------------------------------------------------------
# Fixtures. Those that hand out a helper function are session-scoped (a function holds no state),
# so module-scoped fixtures can use them too.


@pytest.fixture
def rng() -> np.random.Generator:
    """A generator with a fixed seed: every test sees the same data on every run."""
    return np.random.default_rng(20240611)


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture(scope="session")
def make_problem() -> Callable[..., Problem]:
    """``make_problem(case, shapes, dtype, rng) -> Problem``."""
    return _make_problem


@pytest.fixture(scope="session")
def random_grads() -> Callable[..., list[np.ndarray]]:
    """``random_grads(shapes, dtype, rng) -> list of arrays`` bounded away from zero."""
    return _random_grads


@pytest.fixture(scope="session")
def call_optimizer() -> Callable[..., None]:
    """``call_optimizer(impl, problem, grads, step, **overrides)``: one in-place step."""
    return _call_optimizer


@pytest.fixture(scope="session")
def run_steps() -> Callable[..., None]:
    """``run_steps(impl, problem, grad_sequence, first_step=1)``: several steps."""
    return _run_steps


@pytest.fixture(scope="session")
def assert_problems_close() -> Callable[..., None]:
    """``assert_problems_close(actual, expected, rtol=None, context="")``."""
    return _assert_problems_close


@pytest.fixture(scope="session")
def snapshot() -> Callable[[Problem], dict[str, Any]]:
    """``snapshot(problem) -> {label: bytes}`` to prove arrays were left bitwise unchanged."""
    return _snapshot


@pytest.fixture(scope="session")
def every_option_case() -> list[OptimizerCase]:
    """Every branch of every optimizer (``ALL_CASES``), for tests that loop over them."""
    return ALL_CASES


@pytest.fixture(scope="session")
def default_case_for() -> Callable[[str], OptimizerCase]:
    """``default_case_for(name)``: one case per optimizer with its stateful branches on."""
    return default_case


@pytest.fixture(scope="session")
def torch_state_key() -> dict[str, str]:
    """Map from state list name (``exp_avgs``) to torch.optim's state key (``exp_avg``)."""
    return TORCH_STATE_KEY
