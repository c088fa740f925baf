"""The ``torch.optim``-like surface of the optimizer classes, and the fast-step design.

Signatures against PyTorch's, the ways to pass parameters, ``step``'s closure, ``zero_grad``,
``add_param_group``, mutable ``param_groups``, the identity-keyed ``state``, one core call per
group with no per-tensor Python work once warmed up, thread safety, and the docstring examples.
"""

from __future__ import annotations

import collections
import doctest
import importlib
import inspect
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fusedoptim
from fusedoptim import _core, optim, reference

NAMES = ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW"]
TORCH_ONLY_ARGUMENTS = {"foreach", "capturable", "differentiable", "fused"}


class Param:
    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.grad: np.ndarray | None = None


# --------------------------------------------------------------------------------------------
# Signatures and defaults.


@pytest.mark.parametrize("name", NAMES)
def test_constructor_matches_torch(name: str) -> None:
    """Same argument names, order, defaults and keyword-only-ness as torch.optim (without
    PyTorch's implementation switches). One deliberate difference: RMSprop's ``maximize`` is
    keyword-only, because PyTorch's seventh positional argument there is ``capturable``."""
    torch = pytest.importorskip("torch")
    ours = inspect.signature(getattr(optim, name)).parameters
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    expected = [p for key, p in theirs.items() if key not in TORCH_ONLY_ARGUMENTS]
    assert list(ours) == [p.name for p in expected]
    for parameter in expected:
        mine = ours[parameter.name]
        assert mine.default == parameter.default, parameter.name
        if name == "RMSprop" and parameter.name == "maximize":
            assert mine.kind is inspect.Parameter.KEYWORD_ONLY
        else:
            assert mine.kind is parameter.kind, parameter.name


@pytest.mark.parametrize("name", NAMES)
def test_defaults_and_groups_hold_the_constructor_arguments(name: str) -> None:
    cls = getattr(optim, name)
    opt = cls([np.zeros(2)], lr=0.5)
    signature = inspect.signature(cls).parameters
    expected = {k: p.default for k, p in signature.items() if k != "params"}
    expected["lr"] = 0.5
    if name == "AdamW":
        expected["decoupled_weight_decay"] = True
    assert opt.defaults == expected
    assert {k: v for k, v in opt.param_groups[0].items() if k != "params"} == expected
    assert isinstance(opt, optim.Optimizer)


def test_numpy_scalars_are_accepted_as_hyperparameters() -> None:
    w = np.ones(2)
    opt = optim.Adam([w], lr=np.float32(0.5), betas=(np.float64(0.5), 0.9))
    opt.step([np.ones(2)])
    np.testing.assert_allclose(w, 0.5, rtol=1e-7)  # the first Adam step moves by about lr


# --------------------------------------------------------------------------------------------
# Parameters and step().


def test_params_may_be_a_generator_dicts_or_named_pairs() -> None:
    arrays = [np.ones(2), np.ones(3)]
    by_generator = optim.SGD((a for a in arrays), lr=0.1)
    assert [len(g["params"]) for g in by_generator.param_groups] == [2]
    named = optim.SGD([("w", np.ones(2)), ("b", np.ones(1))], lr=0.1)
    assert named.param_groups[0]["param_names"] == ["w", "b"]
    assert named.state_dict()["param_groups"][0]["param_names"] == ["w", "b"]
    groups = optim.SGD([{"params": np.ones(2)}, {"params": [np.ones(3)], "lr": 1.0}], lr=0.1)
    assert [g["lr"] for g in groups.param_groups] == [0.1, 1.0]


def test_error_messages_use_parameter_names() -> None:
    opt = optim.Adam([("encoder.weight", np.ones(2)), ("encoder.bias", np.ones(3))])
    with pytest.raises(ValueError, match=r"parameter 1 \('encoder\.bias'\) has shape \(2,\)"):
        opt.step([np.ones(2), np.ones(2)])


def test_none_gradient_skips_the_parameter() -> None:
    w, b = np.ones(2), np.ones(1)
    opt = optim.Adam([w, b], lr=0.1)
    opt.step([np.ones(2), None])
    assert np.array_equal(b, [1.0]) and b not in opt.state and w in opt.state
    opt.step([None, np.ones(1)])
    assert int(opt.state[w]["step"]) == 1 and int(opt.state[b]["step"]) == 1


def test_closure_is_called_first_and_its_loss_returned() -> None:
    w = np.array([3.0])
    calls = []

    def closure() -> float:
        calls.append(w.copy())
        return float(w[0] ** 2)

    opt = optim.SGD([w], lr=0.1)
    assert opt.step([2 * w], closure=closure) == 9.0
    assert np.array_equal(calls[0], [3.0])  # before the update
    np.testing.assert_allclose(w, [3.0 - 0.1 * 6.0])
    assert opt.step([2 * w]) is None
    # Warmed up (the short step path), a closure is still called first and its loss returned.
    assert opt._fast is not None
    before = w.copy()
    assert opt.step([2 * w], closure=closure) == float(before[0] ** 2)
    assert np.array_equal(calls[-1], before) and len(calls) == 2
    np.testing.assert_allclose(w, before - 0.1 * 2 * before)


def test_positional_closure_with_parameter_objects() -> None:
    """``opt.step(closure)`` as in PyTorch: the closure sets ``.grad``."""
    p = Param(np.array([2.0]))
    opt = optim.SGD([p], lr=0.25)

    def closure() -> float:
        p.grad = 2 * p.data
        return float(p.data[0] ** 2)

    assert opt.step(closure) == 4.0
    np.testing.assert_allclose(p.data, [2.0 - 0.25 * 4.0])


def test_zero_grad() -> None:
    params = [Param(np.zeros(2)), Param(np.zeros(3))]
    params[0].grad = np.ones(2)
    opt = optim.SGD(params, lr=0.1)
    grad = params[0].grad
    opt.zero_grad(set_to_none=False)
    assert params[0].grad is grad and np.array_equal(grad, [0.0, 0.0])
    assert params[1].grad is None
    opt.zero_grad()
    assert params[0].grad is None
    # Plain arrays: the optimizer holds no gradients; accepted and does nothing.
    w = np.ones(2)
    plain = optim.SGD([w], lr=0.1)
    plain.zero_grad()
    assert np.array_equal(w, [1.0, 1.0])


def test_add_param_group_trains_with_its_own_hyperparameters() -> None:
    w, v = np.zeros(2), np.zeros(2)
    opt = optim.SGD([w], lr=0.1, momentum=0.0)
    group = {"params": [v], "lr": 1.0}
    opt.add_param_group(group)
    assert opt.param_groups[1] is group and group["momentum"] == 0.0  # filled from defaults
    opt.step([np.ones(2), np.ones(2)])
    np.testing.assert_array_equal(w, [-0.1, -0.1])
    np.testing.assert_array_equal(v, [-1.0, -1.0])
    assert opt.state_dict()["param_groups"][1]["params"] == [1]


def test_changed_lr_and_weight_decay_apply_from_the_next_step() -> None:
    w = np.array([1.0])
    opt = optim.SGD([w], lr=0.1)
    opt.step([np.array([1.0])])
    assert w[0] == 1.0 - 0.1
    opt.param_groups[0]["lr"] = 0.5
    opt.param_groups[0]["weight_decay"] = 1.0
    before = w[0]
    opt.step([np.array([1.0])])
    assert w[0] == before - 0.5 * (1.0 + 1.0 * before)


@pytest.mark.parametrize("container", [list, collections.UserList])
def test_hyperparameters_edited_in_place_apply_and_are_checked(container: type) -> None:
    """The step remembers a copy of the values it last checked, so an edit inside a list (which
    leaves the group's entries the same objects) is seen, applied and checked like any other."""
    w = np.array([1.0, -1.0])
    grad = np.array([0.5, 2.0])
    want = [w.copy()]
    exp_avg, exp_avg_sq = [np.zeros(2)], [np.zeros(2)]
    opt = optim.Adam([w], lr=0.1)
    opt.param_groups[0]["betas"] = container([0.9, 0.999])
    opt.step([grad])
    reference.adam(want, [grad], exp_avg, exp_avg_sq, None, step=1, lr=0.1)
    opt.param_groups[0]["betas"][0] = 0.5
    opt.step([grad])
    reference.adam(want, [grad], exp_avg, exp_avg_sq, None, step=2, lr=0.1, beta1=0.5)
    np.testing.assert_array_equal(w, want[0])

    opt.param_groups[0]["betas"][1] = 1.5
    before = w.copy()
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        opt.step([grad])
    np.testing.assert_array_equal(w, before)


@pytest.mark.parametrize(("key", "value"), [("amsgrad", 0), ("maximize", 0.0), ("lr", True)])
def test_an_equal_value_of_another_type_is_checked_too(key: str, value: object) -> None:
    """0 == False, yet amsgrad=0 is refused by a new optimizer: a live one must refuse it too
    (else its state_dict would not load anywhere)."""
    w = np.ones(3)
    opt = optim.Adam([w], lr=1.0 if key == "lr" else 0.1)
    opt.step([np.ones(3)])
    opt.step([np.ones(3)])  # the short path is armed
    before = w.copy()
    opt.param_groups[0][key] = value
    with pytest.raises((TypeError, ValueError), match=key if key != "lr" else "learning rate"):
        opt.step([np.ones(3)])
    np.testing.assert_array_equal(w, before)


def test_arguments_come_from_the_values_checked_even_if_a_list_changes_meanwhile() -> None:
    """Another thread editing betas in place between the check and the conversion must not get
    an unchecked value into the update, and its edit must be seen (and refused) next step."""
    w = np.ones(2)
    opt = optim.Adam([w], lr=0.1)
    betas = opt.param_groups[0]["betas"] = [0.9, 0.999]
    real = opt._core_arguments

    def racing(group: Any) -> tuple:
        betas[0] = 1.5  # the other thread, right after the check
        return real(group)

    opt._core_arguments = racing  # type: ignore[method-assign]
    opt.step([np.ones(2)])
    assert opt._plans[0].args[1] == 0.9  # converted from what was checked
    opt._core_arguments = real  # type: ignore[method-assign]
    before = w.copy()
    with pytest.raises(ValueError, match="beta parameter at index 0"):
        opt.step([np.ones(2)])
    np.testing.assert_array_equal(w, before)


def test_parameter_list_edited_in_place_is_noticed() -> None:
    w, intruder = np.zeros(2), np.zeros(2)
    opt = optim.SGD([w], lr=0.1)
    opt.step([np.ones(2)])
    opt.param_groups[0]["params"][0] = intruder  # an equal array, but not the one registered
    with pytest.raises(ValueError, match="put into param_groups directly"):
        opt.step([np.ones(2)])
    np.testing.assert_array_equal(intruder, [0.0, 0.0])
    opt.param_groups[0]["params"][0] = w
    opt.step([np.ones(2)])
    np.testing.assert_array_equal(w, [-0.2, -0.2])


# --------------------------------------------------------------------------------------------
# State.


def test_state_is_keyed_by_identity() -> None:
    w, b = np.zeros(2), np.zeros(2)
    opt = optim.Adam([w, b], lr=0.1)
    assert len(opt.state) == 0 and w not in opt.state and opt.state[w] == {}
    opt.step([np.ones(2), None])
    assert w in opt.state and b not in opt.state and list(opt.state) == [w]
    assert np.zeros(2) not in opt.state  # an equal array is another parameter
    with pytest.raises(KeyError, match="not a parameter of this optimizer"):
        opt.state[np.zeros(2)]
    assert list(opt.state[w]) == ["step", "exp_avg", "exp_avg_sq"]
    ((key, value),) = opt.state.items()  # the Mapping mixins work
    assert key is w and value is opt.state[w]


def test_state_edited_by_the_user_is_used() -> None:
    w = np.zeros(2)
    opt = optim.SGD([w], lr=1.0, momentum=0.5)
    opt.step([np.ones(2)])
    opt.state[w]["momentum_buffer"] = np.array([10.0, 20.0])
    opt.step([np.zeros(2)])
    # buffer = 0.5 * [10, 20] + 0 = [5, 10], the parameter moves by -1 * buffer from [-1, -1].
    np.testing.assert_array_equal(w, [-6.0, -11.0])


def test_deleted_state_starts_again() -> None:
    w = np.zeros(2)
    opt = optim.Adam([w], lr=0.1)
    opt.step([np.ones(2)])
    opt.step([np.ones(2)])
    del opt.state[w]
    assert w not in opt.state
    opt.step([np.ones(2)])
    assert int(opt.state[w]["step"]) == 1


def test_repr_lists_the_groups() -> None:
    text = repr(optim.Adam([{"params": [np.zeros(1)]}, {"params": [np.zeros(1)], "lr": 0.5}]))
    assert text.startswith("Adam (") and "Parameter Group 1" in text and "lr: 0.5" in text


# --------------------------------------------------------------------------------------------
# The fast step: one core call per group, no slow path once warmed up.


def test_one_core_call_per_group_and_no_per_tensor_work_once_warm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    checks: list[int] = []
    real_adam = _core.Plan.adam

    def counting_adam(plan: _core.Plan, *args: Any) -> None:
        # The optimizer passes check_only positionally, last.
        (checks if args[-1] else calls).append(len(plan))
        real_adam(plan, *args)

    # Patched before the optimizer exists: each bucket binds its plan's method when it is made.
    monkeypatch.setattr(_core.Plan, "adam", counting_adam)
    params = [np.zeros(10, dtype=np.float32) for _ in range(60)]
    grads = [np.ones(10, dtype=np.float32) for _ in range(60)]
    opt = optim.Adam([{"params": params[:40]}, {"params": params[40:], "lr": 0.01}])
    opt.step(grads)  # warm-up: creates state
    assert calls == [40, 20]
    calls.clear()
    checks.clear()

    slow: list[str] = []
    for method in ("_rebuild", "_create_state", "_check_grads", "_make_core_plans"):
        real = getattr(optim.Optimizer, method)

        def spy(self: Any, *args: Any, _real: Any = real, _name: str = method, **kw: Any) -> Any:
            slow.append(_name)
            return _real(self, *args, **kw)

        monkeypatch.setattr(optim.Optimizer, method, spy)
    for _ in range(3):
        opt.step(grads)
    assert calls == [40, 20] * 3
    # With two groups, each group's call is first checked by the core without writing, so a bad
    # gradient in the second group cannot leave the first group updated.
    assert checks == [40, 20] * 3
    assert slow == []
    assert int(opt.state[params[0]]["step"]) == 4

    # A structural change (a new group) rebuilds once, then the fast path resumes.
    opt.add_param_group({"params": [np.zeros(3, dtype=np.float32)]})
    opt.step([*grads, np.ones(3, dtype=np.float32)])
    slow.clear()
    opt.step([*grads, np.ones(3, dtype=np.float32)])
    assert slow == []


@pytest.mark.parametrize("change", ["state-item", "load_state_dict", "data", "amsgrad-on"])
def test_core_plan_follows_replaced_state_and_data(change: str) -> None:
    """The compiled plan holds the arrays it checked; after any of these changes it must update
    the new arrays (checked against the reference) and leave the replaced ones alone."""
    rng = np.random.default_rng(0)
    params = [Param(rng.standard_normal(n)) for n in (5, 300)]
    opt = optim.Adam(params, lr=0.1)
    # The same run, one tensor at a time in plain NumPy.
    want = [p.data.copy() for p in params]
    exp_avgs = [np.zeros_like(w) for w in want]
    exp_avg_sqs = [np.zeros_like(w) for w in want]
    max_exp_avg_sqs: list[np.ndarray] | None = None

    def step(count: int) -> None:
        grads = [rng.standard_normal(w.shape) for w in want]
        for param, grad in zip(params, grads):
            param.grad = grad.copy()
        opt.step()
        amsgrad = max_exp_avg_sqs is not None
        reference.adam(want, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step=count, lr=0.1,
                       amsgrad=amsgrad)  # fmt: skip

    step(1)
    step(2)
    if change == "state-item":
        replaced = opt.state[params[1]]["exp_avg"]
        opt.state[params[1]]["exp_avg"] = replaced * 0.5
        exp_avgs[1] *= 0.5
    elif change == "load_state_dict":
        replaced = opt.state[params[1]]["exp_avg_sq"]
        saved = opt.state_dict()
        saved["state"][1]["exp_avg_sq"] *= 2.0
        opt.load_state_dict(saved)
        exp_avg_sqs[1] *= 2.0
    elif change == "data":
        replaced = params[0].data
        params[0].data = replaced + 1.0
        want[0] += 1.0
    else:
        replaced = opt.state[params[0]]["exp_avg"]  # kept: only a new kind of state is added
        opt.param_groups[0]["amsgrad"] = True
        max_exp_avg_sqs = [np.zeros_like(w) for w in want]
    before = replaced.copy()
    step(3)
    step(4)

    if change == "amsgrad-on":
        assert opt.state[params[0]]["exp_avg"] is replaced
    else:
        np.testing.assert_array_equal(replaced, before)
    for index, param in enumerate(params):
        state = opt.state[param]
        assert int(state["step"]) == 4
        got = [param.data, state["exp_avg"], state["exp_avg_sq"]]
        expected = [want[index], exp_avgs[index], exp_avg_sqs[index]]
        if max_exp_avg_sqs is not None:
            got.append(state["max_exp_avg_sq"])
            expected.append(max_exp_avg_sqs[index])
        for got_array, want_array in zip(got, expected):
            np.testing.assert_allclose(got_array, want_array, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "change", ["none", "lr", "state-item", "load_state_dict", "amsgrad-on", "add_param_group"]
)
def test_short_step_path_follows_every_change(change: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain arrays in one group take a short path once warmed up; it must notice each change
    the full path notices, and give the reference's numbers throughout."""
    rng = np.random.default_rng(1)
    params = [rng.standard_normal(n) for n in (5, 300)]
    opt = optim.Adam(params, lr=0.1)
    want = [p.copy() for p in params]
    exp_avgs = [np.zeros_like(w) for w in want]
    exp_avg_sqs = [np.zeros_like(w) for w in want]
    max_exp_avg_sqs: list[np.ndarray] | None = None
    lr = 0.1
    short: list[bool] = []
    real = optim.Optimizer._fast_step

    def counting(self: Any, grads: Any) -> bool:
        short.append(real(self, grads))
        return short[-1]

    monkeypatch.setattr(optim.Optimizer, "_fast_step", counting)

    def step(count: int) -> None:
        grads = [rng.standard_normal(w.shape) for w in want]
        opt.step(grads + ([np.ones(2)] if len(opt.param_groups) > 1 else []))
        reference.adam(want, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step=count, lr=lr,
                       amsgrad=max_exp_avg_sqs is not None)  # fmt: skip

    step(1)  # creates the state: the full path
    step(2)
    step(3)
    assert short == [True, True]  # steps 2 and 3 took the short path
    if change == "lr":
        lr = opt.param_groups[0]["lr"] = 0.05  # as a scheduler does: still the short path
    elif change == "state-item":
        opt.state[params[1]]["exp_avg"] = opt.state[params[1]]["exp_avg"] * 0.5
        exp_avgs[1] *= 0.5
    elif change == "load_state_dict":
        saved = opt.state_dict()
        saved["state"][1]["exp_avg_sq"] *= 2.0
        opt.load_state_dict(saved)
        exp_avg_sqs[1] *= 2.0
    elif change == "amsgrad-on":
        opt.param_groups[0]["amsgrad"] = True
        max_exp_avg_sqs = [np.zeros_like(w) for w in want]
    elif change == "add_param_group":
        opt.add_param_group({"params": [np.zeros(2)], "lr": 1.0})
    step(4)
    step(5)
    # A structural change costs one full step, then the short path resumes; with two groups it
    # is not offered any more.
    if change in ("none", "lr"):
        assert short == [True] * 4
    elif change == "add_param_group":
        assert short == [True, True, False]
    else:
        assert short == [True, True, False, True]
    for index, param in enumerate(params):
        state = opt.state[param]
        assert int(state["step"]) == 5
        np.testing.assert_allclose(param, want[index], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(state["exp_avg"], exp_avgs[index], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(state["exp_avg_sq"], exp_avg_sqs[index], rtol=1e-12, atol=1e-12)
    if change == "add_param_group":
        np.testing.assert_array_less(opt.param_groups[1]["params"][0], 0.0)  # it trains too


def test_short_step_path_refuses_bad_input_like_the_full_path() -> None:
    w, v = np.zeros(3), np.zeros(2)
    opt = optim.SGD([w, v], lr=0.1, momentum=0.9)
    for _ in range(3):
        opt.step([np.ones(3), np.ones(2)])
    before = [w.copy(), v.copy(), opt.state[w]["momentum_buffer"].copy()]
    with pytest.raises(ValueError, match=r"gradient for parameter 1 has shape \(3,\) but its"):
        opt.step([np.ones(3), np.ones(3)])
    with pytest.raises(ValueError, match="step\\(\\) got 1 gradients for 2 parameters"):
        opt.step([np.ones(3)])
    with pytest.raises(TypeError, match="grads must be a list or tuple"):
        opt.step(np.ones(3))
    opt.param_groups[0]["lr"] = -1.0
    with pytest.raises(ValueError, match="Invalid learning rate"):
        opt.step([np.ones(3), np.ones(2)])
    for array, saved in zip([w, v, opt.state[w]["momentum_buffer"]], before):
        np.testing.assert_array_equal(array, saved)
    opt.param_groups[0]["lr"] = 0.1
    opt.step([np.ones(3), np.ones(2)])
    assert w[0] < before[0][0]


def test_two_threads_stepping_one_optimizer() -> None:
    """Concurrent step() calls take turns: the result is exactly that of the same number of
    steps taken in sequence (the gradients are fixed, so the order does not matter)."""
    rng = np.random.default_rng(0)
    shapes = [(20_000,)] * 8 + [(300,)] * 30
    grads = [rng.standard_normal(shape) for shape in shapes]
    start = [rng.standard_normal(shape) for shape in shapes]
    steps_per_thread = 25

    sequential_params = [a.copy() for a in start]
    sequential = optim.Adam(sequential_params, lr=1e-3, amsgrad=True)
    for _ in range(2 * steps_per_thread):
        sequential.step(grads)

    threaded_params = [a.copy() for a in start]
    threaded = optim.Adam(threaded_params, lr=1e-3, amsgrad=True)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(steps_per_thread):
                threaded.step(grads)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for a, b in zip(sequential_params, threaded_params):
        assert a.tobytes() == b.tobytes()
    assert int(threaded.state[threaded_params[0]]["step"]) == 2 * steps_per_thread


# --------------------------------------------------------------------------------------------
# Documentation.

DOCUMENTED_MODULES = [
    "fusedoptim.optim",
    "fusedoptim.optim.base",
    "fusedoptim.optim.sgd",
    "fusedoptim.optim.adagrad",
    "fusedoptim.optim.rmsprop",
    "fusedoptim.optim.adadelta",
    "fusedoptim.optim.adam",
    "fusedoptim.optim.adamw",
    "fusedoptim.clip",
    "fusedoptim.serialization",
]


@pytest.mark.parametrize("module_name", DOCUMENTED_MODULES)
def test_docstring_examples_run(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("name", NAMES)
def test_docstrings_have_equations_arguments_example_and_reference(name: str) -> None:
    doc = getattr(optim, name).__doc__
    assert ".. math::" in doc and "Example:" in doc and ">>>" in doc
    assert "Reference" in doc and "{" + "params}" not in doc
    for argument in inspect.signature(getattr(optim, name)).parameters:
        assert f"{argument} (" in doc, argument
    assert "(default:" in doc


def test_top_level_exports() -> None:
    for name in [*NAMES, "Optimizer", "save", "load", "clip_grad_norm_", "clip_grad_value_"]:
        assert hasattr(fusedoptim, name), name
    assert fusedoptim.Adam is optim.Adam


def test_docs_examples_run_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """The Python blocks of docs/optim.md (the README's section) run in order, and the
    training loop prints what its comment says."""
    path = Path(__file__).resolve().parents[1] / "docs" / "optim.md"
    if not path.exists():
        pytest.skip("docs/optim.md is not part of this checkout")
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)
    assert blocks
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(path), "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "[ 2.  -1.   0.5] [0.3]"
    assert printed[1] == "['step', 'exp_avg', 'exp_avg_sq'] 1"


def test_short_step_path_keeps_its_plan_alive_through_python_callbacks() -> None:
    """The short path compares the hyperparameters with those last checked, which runs their
    ``__eq__``: Python that may drop the optimizer's own reference to the plan being stepped.
    The step must still use that plan (as the full path would), not freed memory."""
    w = np.ones(4)
    opt = optim.SGD([w], lr=0.1)
    junk: list[Any] = []

    class LR(float):
        armed = False

        def __eq__(self, other: object) -> bool:
            if LR.armed:
                LR.armed = False
                opt._fast.clear()  # type: ignore[union-attr]  # the only other reference
                junk.extend(tuple(range(k, k + 9)) for k in range(10_000))  # reuse the memory
            return float(self) == float(other)  # type: ignore[arg-type]

        __hash__ = float.__hash__

    opt.param_groups[0]["lr"] = LR(0.1)
    opt.step([np.ones(4)])
    opt.step([np.ones(4)])
    assert opt._fast is not None
    opt.param_groups[0]["lr"] = LR(0.1)  # another object: compared with __eq__
    LR.armed = True
    opt.step([np.ones(4)])
    np.testing.assert_allclose(w, 1.0 - 3 * 0.1)


def test_assigning_state_replaces_it_as_in_torch() -> None:
    """``opt.state = defaultdict(dict)`` is torch's way to reset an optimizer: every parameter
    starts again from no state. (It used to be ignored: the steps kept the old moments.)"""
    w, fresh_w = np.zeros(2), np.zeros(2)
    opt = optim.Adam([w], lr=0.1)
    opt.step([np.array([1.0, -2.0])])
    w[:] = fresh_w
    opt.state = collections.defaultdict(dict)
    assert len(opt.state) == 0 and opt.state_dict()["state"] == {}
    fresh = optim.Adam([fresh_w], lr=0.1)
    opt.step([np.array([0.5, 3.0])])
    fresh.step([np.array([0.5, 3.0])])
    assert np.array_equal(w, fresh_w)
    assert int(opt.state[w]["step"]) == 1
    # A mapping with state for some parameters (objects: arrays cannot be dict keys): those get
    # it, the others none.
    p, q = Param(np.zeros(2)), Param(np.zeros(3))
    two = optim.SGD([p, q], lr=0.1, momentum=0.9)
    p.grad, q.grad = np.ones(2), np.ones(3)
    two.step()
    two.state = {p: {"momentum_buffer": np.full(2, 5.0)}}
    assert q not in two.state and np.array_equal(two.state[p]["momentum_buffer"], [5.0, 5.0])
    with pytest.raises(ValueError, match="not a parameter of this optimizer"):
        two.state = {p: {}, "weights": {}}
    with pytest.raises(TypeError, match="must be a mapping"):
        two.state = [p]  # type: ignore[assignment]
    with pytest.raises(TypeError, match="must be a mapping"):
        two.state = {p: 3}
    assert np.array_equal(two.state[p]["momentum_buffer"], [5.0, 5.0])  # nothing changed
    two.step()
    np.testing.assert_allclose(two.state[p]["momentum_buffer"], 0.9 * 5.0 + 1.0)


def test_state_dict_with_a_parameter_appended_to_the_list_directly() -> None:
    """torch's state_dict numbers a parameter appended to group['params'] without
    add_param_group, without state; so does fusedoptim's (it raised a bare KeyError)."""
    w = np.zeros(2)
    opt = optim.Adam([w], lr=0.1)
    opt.step([np.ones(2)])
    opt.param_groups[0]["params"].append(np.zeros(3))
    saved = opt.state_dict()
    assert saved["param_groups"][0]["params"] == [0, 1] and list(saved["state"]) == [0]


def test_a_key_deleted_from_defaults_is_a_value_error_naming_it() -> None:
    w = np.zeros(2)
    opt = optim.Adam([w], lr=0.1)
    opt.step([np.ones(2)])
    del opt.defaults["amsgrad"]
    before = w.copy()
    with pytest.raises(ValueError, match="optimizer.defaults lacks 'amsgrad'"):
        opt.step([np.ones(2)])
    np.testing.assert_array_equal(w, before)  # nothing written
