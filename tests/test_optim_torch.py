"""The optimizer classes against ``torch.optim`` given the same gradients.

Every optimizer and option branch runs 30 steps on two parameter groups with different
hyperparameters, with an ``lr`` and a ``weight_decay`` changed mid-run and some gradients missing
(``None``: the parameter is skipped, and its state is created late), next to the same run of
``torch.optim.<Optimizer>(..., foreach=False)``. Parameters and every state entry must agree.

Tolerances: float64 to 1e-12 relative. float32 to 2e-6 relative: both sides compute in float32
but round differently (PyTorch's CPU kernels fuse some multiply-adds and evaluate ``addcdiv`` in
another order), a few ulps (6e-8 each) per operation, and adaptive methods carry an ulp in their
state into every later step. A wrong formula, branch or scalar moves results by 1e-3 or more.
The absolute part is the relative tolerance times the larger of 1 and the array's largest entry:
every quantity here is built from O(1) numbers (parameters ~N(0, 1), gradients up to 2), so an
entry that passes near zero by cancellation (a running average of gradients of both signs) is
judged on the scale of what it was computed from.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fusedoptim import optim

torch = pytest.importorskip("torch")


def _load_cases() -> Any:
    path = Path(__file__).with_name("_optim_cases.py")
    spec = importlib.util.spec_from_file_location("_optim_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CASES = _load_cases()
STEPS, SHAPES, MISSING, AXES = _CASES.STEPS, _CASES.SHAPES, _CASES.MISSING, _CASES.AXES
LR_CHANGE_STEP, WD_CHANGE_STEP = 12, 20


def _invalid(name: str, options: dict[str, Any]) -> bool:
    """Skip list: dampening without momentum is the momentum-0 branch again; Nesterov needs
    momentum and zero dampening (refused by both libraries, tested in test_optim_bad_input)."""
    if name != "SGD":
        return False
    if options["momentum"] == 0 and options["dampening"] != 0:
        return True
    return options["nesterov"] and (options["momentum"] == 0 or options["dampening"] != 0)


def _configs() -> list[Any]:
    configs = []
    for name, (base, axes) in AXES.items():
        for values in itertools.product(*axes.values()):
            options = dict(zip(axes, values))
            if _invalid(name, options):
                continue
            label = "-".join(
                [name] + [f"{k}={v}" for k, v in options.items() if v not in (0.0, False)]
            )
            configs.append(pytest.param(name, {**base, **options}, id=label))
    return configs


RTOL = {np.float32: 2e-6, np.float64: 1e-12}


def _assert_close(got: np.ndarray, want: np.ndarray, dtype: Any, label: str) -> None:
    assert got.dtype == np.dtype(dtype), label
    assert got.shape == want.shape, label
    rtol = RTOL[dtype]
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=label)


def _second_group(options: dict[str, Any]) -> dict[str, Any]:
    """Group 1's own hyperparameters: half the learning rate and another weight decay."""
    return {"lr": options["lr"] * 0.5, "weight_decay": 0.02 if options["weight_decay"] == 0 else 0}


def _gradients(dtype: Any) -> list[list[np.ndarray | None]]:
    rng = np.random.default_rng(7)
    sequence = []
    for step in range(STEPS):
        grads: list[np.ndarray | None] = []
        for index, shape in enumerate(SHAPES):
            # Bounded away from zero so that no branch is trivially skipped.
            grad = rng.uniform(0.1, 2.0, size=shape) * rng.choice((-1.0, 1.0), size=shape)
            grads.append(None if (step, index) in MISSING else np.asarray(grad, dtype=dtype))
        sequence.append(grads)
    return sequence


def _run_both(name: str, options: dict[str, Any], dtype: Any) -> tuple[Any, list, Any, list]:
    rng = np.random.default_rng(3)
    initial = [np.asarray(rng.standard_normal(shape), dtype=dtype) for shape in SHAPES]
    ours_params = [array.copy() for array in initial]
    torch_params = [torch.nn.Parameter(torch.from_numpy(array.copy())) for array in initial]

    extra = _second_group(options)
    ours = getattr(optim, name)(
        [{"params": ours_params[:2]}, {"params": ours_params[2:], **extra}], **options
    )
    theirs = getattr(torch.optim, name)(
        [{"params": torch_params[:2]}, {"params": torch_params[2:], **extra}],
        foreach=False,
        **options,
    )
    for step, grads in enumerate(_gradients(dtype)):
        if step == LR_CHANGE_STEP:
            for optimizer in (ours, theirs):
                optimizer.param_groups[0]["lr"] *= 0.3
        if step == WD_CHANGE_STEP:
            for optimizer in (ours, theirs):
                optimizer.param_groups[1]["weight_decay"] = 0.07
        ours.step(grads)
        for param, grad in zip(torch_params, grads):
            param.grad = None if grad is None else torch.from_numpy(grad.copy())
        theirs.step()
    return ours, ours_params, theirs, torch_params


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("name", "options"), _configs())
def test_matches_torch_after_30_steps(name: str, options: dict[str, Any], dtype: Any) -> None:
    ours, ours_params, theirs, torch_params = _run_both(name, options, dtype)
    for index, (param, torch_param) in enumerate(zip(ours_params, torch_params)):
        _assert_close(param, torch_param.detach().numpy(), dtype, f"param {index}")
        ours_state = ours.state[param]
        torch_state = theirs.state[torch_param]
        assert list(ours_state) == list(torch_state), f"state keys of param {index}"
        for key, value in torch_state.items():
            if key == "step":
                assert int(ours_state["step"]) == int(value.item()), f"step of param {index}"
            else:
                _assert_close(ours_state[key], value.numpy(), dtype, f"{key} of param {index}")


def test_steps_count_only_steps_with_a_gradient() -> None:
    """PyTorch's per-parameter ``step``: a step without a gradient does not count."""
    ours, ours_params, theirs, torch_params = _run_both(
        "Adam", {"lr": 0.01, "weight_decay": 0.0}, np.float64
    )
    expected = [STEPS - sum(1 for _, i in MISSING if i == k) for k in range(len(SHAPES))]
    assert [int(theirs.state[p]["step"].item()) for p in torch_params] == expected
    assert [int(ours.state[p]["step"]) for p in ours_params] == expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_sgd_momentum_switched_on_mid_run_matches_torch(dtype: Any) -> None:
    """Momentum turned on through param_groups: the new buffer starts as the gradient, as in
    PyTorch (whose buffer is None), though the parameter has stepped before."""
    rng = np.random.default_rng(11)
    initial = [np.asarray(rng.standard_normal(shape), dtype=dtype) for shape in SHAPES]
    ours_params = [array.copy() for array in initial]
    torch_params = [torch.nn.Parameter(torch.from_numpy(array.copy())) for array in initial]
    ours = optim.SGD(ours_params, lr=0.05, dampening=0.2)
    theirs = torch.optim.SGD(torch_params, lr=0.05, dampening=0.2, foreach=False)
    for step, grads in enumerate(_gradients(dtype)):
        if step == 6:
            ours.param_groups[0]["momentum"] = 0.9
            theirs.param_groups[0]["momentum"] = 0.9
        ours.step(grads)
        for param, grad in zip(torch_params, grads):
            param.grad = None if grad is None else torch.from_numpy(grad.copy())
        theirs.step()
    for index, (param, torch_param) in enumerate(zip(ours_params, torch_params)):
        _assert_close(param, torch_param.detach().numpy(), dtype, f"param {index}")
        _assert_close(
            ours.state[param]["momentum_buffer"],
            theirs.state[torch_param]["momentum_buffer"].numpy(),
            dtype,
            f"momentum_buffer {index}",
        )
