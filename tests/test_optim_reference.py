"""The optimizer classes against :mod:`fusedoptim.reference`, the plain-NumPy ground truth.

The reference functions take lists of arrays and one step number, so a small driver here plays
the optimizer: per parameter it keeps the state (created when PyTorch creates it) and the step
count, and calls the reference one tensor at a time. The classes must agree with it on
parameters *and* state, through everything the classes add on top of the kernels: two param
groups with their own hyperparameters, an ``lr`` changed mid-run, missing gradients, parameter
objects, named parameters, mixed dtypes in one group and options switched on mid-run.

Tolerances (as for the functional API against the reference): the kernels and the reference
round each operation in the storage dtype in the same order, so they agree to a few ulps at
most; float64 to 1e-12 and float32 to 1e-5 relative leave room for an ulp carried through 30
steps, while a wrong formula, branch, step count or hyperparameter moves results by 1e-3 or more.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fusedoptim import optim, reference


def _load_cases() -> Any:
    path = Path(__file__).with_name("_optim_cases.py")
    spec = importlib.util.spec_from_file_location("_optim_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CASES = _load_cases()
STEPS, SHAPES, MISSING, AXES = _CASES.STEPS, _CASES.SHAPES, _CASES.MISSING, _CASES.AXES
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def _configs() -> list[Any]:
    configs = []
    for name, (base, axes) in AXES.items():
        for values in itertools.product(*axes.values()):
            options = dict(zip(axes, values))
            if name == "SGD" and (
                (options["momentum"] == 0 and options["dampening"] != 0)
                or (options["nesterov"] and (options["momentum"] == 0 or options["dampening"]))
            ):
                continue  # the same branch again, or refused (Nesterov needs momentum)
            label = "-".join(
                [name] + [f"{k}={v}" for k, v in options.items() if v not in (0.0, False)]
            )
            configs.append(pytest.param(name, {**base, **options}, id=label))
    return configs


# --------------------------------------------------------------------------------------------
# The reference driver.
DEFAULTS = {
    name: dict(
        (key, parameter.default)
        for key, parameter in inspect.signature(cls.__init__).parameters.items()
        if key not in ("self", "params")
    )
    for name, cls in (
        ("SGD", optim.SGD),
        ("Adagrad", optim.Adagrad),
        ("RMSprop", optim.RMSprop),
        ("Adadelta", optim.Adadelta),
        ("Adam", optim.Adam),
        ("AdamW", optim.AdamW),
    )
}


class ReferenceRun:
    """One tensor at a time through fusedoptim.reference, with PyTorch's state rules."""

    def __init__(self, name: str, groups: list[dict[str, Any]], defaults: dict[str, Any]) -> None:
        self.name = name
        self.groups = [{**DEFAULTS[name], **defaults, **group} for group in groups]
        if name == "AdamW":
            for group in self.groups:
                group["decoupled_weight_decay"] = True
        self.state: dict[int, dict[str, Any]] = {}
        if name == "Adagrad":  # PyTorch creates AdaGrad's state in the constructor
            for group in self.groups:
                for param in group["params"]:
                    self._init(group, param)

    def _kinds(self, group: dict[str, Any]) -> list[str]:
        if self.name == "SGD":
            return ["momentum_buffer"] if group["momentum"] != 0 else []
        if self.name == "Adagrad":
            return ["sum"]
        if self.name == "RMSprop":
            return (
                ["square_avg"]
                + (["momentum_buffer"] if group["momentum"] > 0 else [])
                + (["grad_avg"] if group["centered"] else [])
            )
        if self.name == "Adadelta":
            return ["square_avg", "acc_delta"]
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])

    def _init(self, group: dict[str, Any], param: np.ndarray) -> None:
        state = self.state.setdefault(id(param), {"count": 0})
        for kind in self._kinds(group):
            if kind not in state:
                fill = group["initial_accumulator_value"] if kind == "sum" else 0.0
                state[kind] = np.full_like(param, fill)
                if kind == "momentum_buffer" and self.name == "SGD":
                    state["count"] = 0  # a new buffer starts as the gradient

    def step(self, grads: list[np.ndarray | None]) -> None:
        flat = iter(grads)
        for group in self.groups:
            for param in group["params"]:
                grad = next(flat)
                if grad is None:
                    continue
                self._init(group, param)
                state = self.state[id(param)]
                state["count"] += 1
                self._call(group, param, grad, state)

    def _call(self, group: dict[str, Any], p: np.ndarray, g: np.ndarray, s: dict) -> None:
        one = lambda key: [s[key]] if key in s else None  # noqa: E731
        common = {"lr": group["lr"], "weight_decay": group["weight_decay"]}
        common["maximize"] = group["maximize"]
        if self.name == "SGD":
            reference.sgd(
                [p], [g], one("momentum_buffer") if group["momentum"] != 0 else None,
                step=s["count"], momentum=group["momentum"], dampening=group["dampening"],
                nesterov=group["nesterov"], **common,
            )  # fmt: skip
        elif self.name == "Adagrad":
            reference.adagrad(
                [p], [g], one("sum"), step=s["count"], lr_decay=group["lr_decay"],
                eps=group["eps"], **common,
            )  # fmt: skip
        elif self.name == "RMSprop":
            reference.rmsprop(
                [p], [g], one("square_avg"),
                one("momentum_buffer") if group["momentum"] > 0 else None,
                one("grad_avg") if group["centered"] else None,
                alpha=group["alpha"], eps=group["eps"], momentum=group["momentum"],
                centered=group["centered"], **common,
            )  # fmt: skip
        elif self.name == "Adadelta":
            reference.adadelta(
                [p], [g], one("square_avg"), one("acc_delta"), rho=group["rho"],
                eps=group["eps"], **common,
            )  # fmt: skip
        else:
            beta1, beta2 = group["betas"]
            reference.adam(
                [p], [g], one("exp_avg"), one("exp_avg_sq"),
                one("max_exp_avg_sq") if group["amsgrad"] else None, step=s["count"],
                beta1=beta1, beta2=beta2, eps=group["eps"], amsgrad=group["amsgrad"],
                decoupled_weight_decay=group["decoupled_weight_decay"], **common,
            )  # fmt: skip


# --------------------------------------------------------------------------------------------
def _gradients(dtypes: list[Any], seed: int = 7) -> list[list[np.ndarray | None]]:
    rng = np.random.default_rng(seed)
    sequence = []
    for step in range(STEPS):
        grads: list[np.ndarray | None] = []
        for index, (shape, dtype) in enumerate(zip(SHAPES, dtypes)):
            grad = rng.uniform(0.1, 2.0, size=shape) * rng.choice((-1.0, 1.0), size=shape)
            grads.append(None if (step, index) in MISSING else np.asarray(grad, dtype=dtype))
        sequence.append(grads)
    return sequence


def _initial(dtypes: list[Any]) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [np.asarray(rng.standard_normal(s), dtype=d) for s, d in zip(SHAPES, dtypes)]


def _assert_close(got: np.ndarray, want: np.ndarray, label: str) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, label
    rtol = RTOL[want.dtype]
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=label)


def _assert_matches(
    ours: optim.Optimizer, ours_params: list, run: ReferenceRun, ref_params: list
) -> None:
    for index, (param, ref_param) in enumerate(zip(ours_params, ref_params)):
        data = param.data if isinstance(param, Param) else param
        _assert_close(data, ref_param, f"param {index}")
        state = ours.state[param]
        expected = run.state.get(id(ref_param), {})
        kinds = [key for key in expected if key != "count"]
        assert sorted(k for k in state if k != "step") == sorted(kinds), f"state of {index}"
        for kind in kinds:
            _assert_close(state[kind], expected[kind], f"{kind} of param {index}")
        if ours._keeps_step and expected:
            assert int(state["step"]) == expected["count"], f"step of param {index}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("name", "options"), _configs())
def test_matches_reference(name: str, options: dict[str, Any], dtype: Any) -> None:
    dtypes = [dtype] * len(SHAPES)
    ours_params, ref_params = _initial(dtypes), _initial(dtypes)
    second = {"lr": options["lr"] * 0.5, "weight_decay": 0.0 if options["weight_decay"] else 0.02}
    ours = getattr(optim, name)(
        [{"params": ours_params[:2]}, {"params": ours_params[2:], **second}], **options
    )
    run = ReferenceRun(
        name, [{"params": ref_params[:2]}, {"params": ref_params[2:], **second}], options
    )
    for step, grads in enumerate(_gradients(dtypes)):
        if step == 12:
            ours.param_groups[0]["lr"] *= 0.3
            run.groups[0]["lr"] *= 0.3
        ours.step(grads)
        run.step([None if g is None else g.copy() for g in grads])
    _assert_matches(ours, ours_params, run, ref_params)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("name", "options"), _configs())
def test_short_step_path_gives_the_full_paths_bits(
    name: str, options: dict[str, Any], dtype: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From its second step a group of plain arrays takes the short path (``_core.fast_step``,
    which reads the hyperparameters from the plan's argument tuple in C). It must give the full
    path's bits for every option branch, also after ``lr`` changes (checked again on the way)."""
    dtypes = [dtype] * len(SHAPES)
    short_params, full_params = _initial(dtypes), _initial(dtypes)
    short = getattr(optim, name)(short_params, **options)
    full = getattr(optim, name)(full_params, **options)
    taken: list[bool] = []
    real = optim.Optimizer._fast_step

    def counting(self: Any, grads: Any) -> bool:
        result = real(self, grads)
        if self is short:
            taken.append(result)
        return result

    monkeypatch.setattr(optim.Optimizer, "_fast_step", counting)
    rng = np.random.default_rng(11)
    for step in range(8):
        if step == 4:
            short.param_groups[0]["lr"] *= 0.3
            full.param_groups[0]["lr"] *= 0.3
        grads = [
            np.asarray(rng.uniform(0.1, 2.0, shape) * rng.choice((-1.0, 1.0), shape), dtype)
            for shape in SHAPES
        ]
        short.step(grads)
        full._fast = None  # the full path at every step
        full.step([grad.copy() for grad in grads])
    assert taken == [True] * 7  # steps 2 to 8
    for index, (mine, theirs) in enumerate(zip(short_params, full_params)):
        assert mine.tobytes() == theirs.tobytes(), f"param {index}"
        assert short.state[mine].keys() == full.state[theirs].keys()
        for key, value in short.state[mine].items():
            other = full.state[theirs][key]
            assert np.asarray(value).tobytes() == np.asarray(other).tobytes(), f"{key} of {index}"


class Param:
    """A minimal parameter object: what a small NumPy model would hold."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.grad: np.ndarray | None = None


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW"])
def test_parameter_objects_and_named_parameters_match_plain_arrays(name: str) -> None:
    """The three ways to pass parameters run the same update, bitwise."""
    options = {"lr": 0.01, "weight_decay": 0.01}
    if name in ("SGD", "RMSprop"):
        options["momentum"] = 0.5
    dtypes = [np.float64] * len(SHAPES)
    arrays = _initial(dtypes)
    objects = [Param(array) for array in _initial(dtypes)]
    named = _initial(dtypes)
    by_array = getattr(optim, name)(arrays, **options)
    by_object = getattr(optim, name)(objects, **options)
    by_name = getattr(optim, name)([(f"w{i}", p) for i, p in enumerate(named)], **options)
    for grads in _gradients(dtypes):
        by_array.step(grads)
        by_name.step(grads)
        for param, grad in zip(objects, grads):
            param.grad = grad
        by_object.step()
    for index in range(len(SHAPES)):
        assert arrays[index].tobytes() == objects[index].data.tobytes() == named[index].tobytes()
        for key, value in by_array.state[arrays[index]].items():
            assert np.array_equal(value, by_object.state[objects[index]][key])
            assert np.array_equal(value, by_name.state[named[index]][key])


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW"])
def test_mixed_dtypes_in_one_group(name: str) -> None:
    """float32 and float64 parameters in one group (the core takes one dtype per call)."""
    options: dict[str, Any] = {"lr": 0.02}
    if name in ("SGD", "RMSprop"):
        options["momentum"] = 0.9
    dtypes = [np.float32, np.float64, np.float64, np.float32]
    ours_params, ref_params = _initial(dtypes), _initial(dtypes)
    ours = getattr(optim, name)(ours_params, **options)
    run = ReferenceRun(name, [{"params": ref_params}], options)
    for grads in _gradients(dtypes):
        ours.step(grads)
        run.step(grads)
    _assert_matches(ours, ours_params, run, ref_params)


@pytest.mark.parametrize(
    ("name", "switch"),
    [
        ("Adam", {"amsgrad": True}),
        ("AdamW", {"amsgrad": True}),
        ("RMSprop", {"momentum": 0.9}),
        ("RMSprop", {"centered": True}),
        ("SGD", {"momentum": 0.9}),
    ],
)
def test_options_switched_on_mid_run(name: str, switch: dict[str, Any]) -> None:
    """State an option needs is created when it is switched on: zeros (the value it would have
    had at a parameter's first step), or SGD's buffer starting as the gradient. PyTorch raises
    KeyError here for all but SGD."""
    dtypes = [np.float64] * len(SHAPES)
    ours_params, ref_params = _initial(dtypes), _initial(dtypes)
    options = {"lr": 0.02}
    ours = getattr(optim, name)(ours_params, **options)
    run = ReferenceRun(name, [{"params": ref_params}], options)
    for step, grads in enumerate(_gradients(dtypes)):
        if step == 9:
            ours.param_groups[0].update(switch)
            run.groups[0].update(switch)
        ours.step(grads)
        run.step(grads)
    _assert_matches(ours, ours_params, run, ref_params)


def test_adagrad_groups_use_their_own_initial_accumulator_value() -> None:
    dtypes = [np.float64] * len(SHAPES)
    ours_params, ref_params = _initial(dtypes), _initial(dtypes)
    ours = optim.Adagrad(
        [{"params": ours_params[:2]}, {"params": ours_params[2:3], "initial_accumulator_value": 2}],
        lr=0.1,
        initial_accumulator_value=0.5,
    )
    ours.add_param_group({"params": ours_params[3:], "initial_accumulator_value": 3.0})
    assert ours.state[ours_params[2]]["sum"][0, 0, 0] == 2.0
    assert ours_params[3] not in ours.state  # as in PyTorch: added groups start lazily
    run = ReferenceRun(
        "Adagrad",
        [
            {"params": ref_params[:2]},
            {"params": ref_params[2:3], "initial_accumulator_value": 2},
        ],
        {"lr": 0.1, "initial_accumulator_value": 0.5},
    )
    run.groups.append({**run.groups[0], "params": ref_params[3:], "initial_accumulator_value": 3.0})
    for grads in _gradients(dtypes):
        ours.step(grads)
        run.step(grads)
    _assert_matches(ours, ours_params, run, ref_params)
