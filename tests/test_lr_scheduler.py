"""fusedoptim.lr_scheduler: the same learning rates as torch, closed forms, resuming, bad input.

Every scheduler and option is a :class:`Case`: how to build it from a scheduler module (torch's
or ours, so one line builds both), and its closed form written from the schedule's definition.
Each case runs 300 steps

* against torch's scheduler on a torch optimizer, both with our scheduler on a duck-typed
  optimizer and on the same kind of torch optimizer (skipped without torch), and
* against the closed form on a duck-typed optimizer (always).

Then every case is saved mid-run and restored into a fresh optimizer and scheduler, in each order
users load things; the trajectory must not change. The torch bugs this module avoids are shown
next to the uninterrupted run they should match.
"""

from __future__ import annotations

import copy
import math
import pickle
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from fusedoptim import lr_scheduler as ours

STEPS = 300
RTOL = 1e-12
MOMENTUM = 0.9
BETAS = (0.9, 0.999)


# ---------------------------------------------------------------------------------------------
# Optimizers.


class DuckOptimizer:
    """The smallest optimizer a scheduler accepts: ``param_groups``, ``defaults`` and ``step``."""

    def __init__(self, lrs: tuple[float, ...] = (0.1,), kind: str = "sgd") -> None:
        extra: dict[str, Any] = {"momentum": MOMENTUM} if kind == "sgd" else {"betas": BETAS}
        self.defaults = {"lr": lrs[0], **extra}
        self.param_groups = [{"lr": lr, **extra} for lr in lrs]
        self.steps_taken = 0

    def step(self, *args: Any, **kwargs: Any) -> Any:
        self.steps_taken += 1
        return args, kwargs


def torch_optimizer(lrs: tuple[float, ...] = (0.1,), kind: str = "sgd") -> Any:
    torch = pytest.importorskip("torch")
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lrs[0], momentum=MOMENTUM)
    return torch.optim.Adam(groups, lr=lrs[0], betas=BETAS)


def momentum_of(group: dict[str, Any]) -> float:
    return group["betas"][0] if "betas" in group else group["momentum"]


# ---------------------------------------------------------------------------------------------
# Closed forms, from the definitions in torch's documentation and the papers.


def cosine(base: float, eta_min: float, t: float, period: float) -> float:
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / period)) / 2


def warm_restarts(base: float, t: int, T_0: int, T_mult: int, eta_min: float) -> float:
    start, length = 0, T_0
    while t >= start + length:  # walk the cycles: exact for integers
        start, length = start + length, length * T_mult
    return cosine(base, eta_min, t - start, length)


def cyclic_fraction(t: int, up: float, down: float) -> tuple[float, int]:
    """Height in [0, 1] of the triangle at step t, and the 1-based cycle number."""
    position = t % (up + down)
    height = position / up if position <= up else (up + down - position) / down
    return height, int(t // (up + down)) + 1


def one_cycle(t: int, phases: list[tuple[float, float, float]], anneal: str) -> float:
    """phases: (end_step, start_value, end_value); a phase runs from the previous end_step."""
    start_step = 0.0
    for index, (end_step, start, end) in enumerate(phases):
        if t <= end_step or index == len(phases) - 1:
            pct = (t - start_step) / (end_step - start_step)
            if anneal == "cos":
                return end + (start - end) * (1 + math.cos(math.pi * pct)) / 2
            return start + (end - start) * pct
        start_step = end_step
    raise AssertionError("unreachable")


def one_cycle_lr_phases(
    max_lr: float, pct: float, total: int, div: float, final_div: float, three_phase: bool
) -> list[tuple[float, float, float]]:
    initial = max_lr / div
    minimum = initial / final_div
    if three_phase:
        return [
            (pct * total - 1, initial, max_lr),
            (2 * pct * total - 2, max_lr, initial),
            (total - 1, initial, minimum),
        ]
    return [(pct * total - 1, initial, max_lr), (total - 1, max_lr, minimum)]


def one_cycle_momentum_phases(
    pct: float, total: int, base: float, top: float, three_phase: bool
) -> list[tuple[float, float, float]]:
    if three_phase:
        return [
            (pct * total - 1, top, base),
            (2 * pct * total - 2, base, top),
            (total - 1, top, top),
        ]
    return [(pct * total - 1, top, base), (total - 1, base, top)]


# ---------------------------------------------------------------------------------------------
# The cases.


@dataclass(frozen=True)
class Case:
    id: str
    #: (scheduler module, optimizer) -> scheduler; the module is torch's or ours.
    build: Callable[[Any, Any], Any]
    #: closed form: (step, group index, the group's lr before the scheduler) -> lr
    lr: Callable[[int, int, float], float]
    lrs: tuple[float, ...] = (0.1,)
    kind: str = "sgd"
    #: closed form of the cycled momentum (or beta1): (step, group index) -> momentum
    momentum: Callable[[int, int], float] | None = None


def _case(id: str, build: Any, lr: Any, **options: Any) -> Any:
    return pytest.param(Case(id, build, lr, **options), id=id)


def _cyclic_lr(base: float, top: float, up: float, down: float, scale: Any, by: str) -> Any:
    def lr(t: int, group: int, initial: float) -> float:
        height, cycle = cyclic_fraction(t, up, down)
        return base + (top - base) * height * scale(cycle if by == "cycle" else t)

    return lr


def _cyclic_momentum(base: float, top: float, up: float, down: float, scale: Any, by: str) -> Any:
    def momentum(t: int, group: int) -> float:
        height, cycle = cyclic_fraction(t, up, down)
        return top - (top - base) * height * scale(cycle if by == "cycle" else t)

    return momentum


def _one_cycle(
    max_lrs: tuple[float, ...],
    total: int,
    pct: float = 0.3,
    anneal: str = "cos",
    div: float = 25.0,
    final_div: float = 1e4,
    three_phase: bool = False,
) -> tuple[Any, Any]:
    def lr(t: int, group: int, initial: float) -> float:
        phases = one_cycle_lr_phases(max_lrs[group], pct, total, div, final_div, three_phase)
        return one_cycle(t, phases, anneal)

    def momentum(t: int, group: int) -> float:
        return one_cycle(t, one_cycle_momentum_phases(pct, total, 0.85, 0.95, three_phase), anneal)

    return lr, momentum


def _no_scale(x: float) -> float:
    return 1.0


def _custom_scale(x: float) -> float:
    return 1 / (1 + 0.01 * x)


ONE_CYCLE_DEFAULT = _one_cycle((0.1,), 300)
ONE_CYCLE_LINEAR = _one_cycle((0.1,), 300, pct=0.25, anneal="linear", div=10.0, final_div=100.0)
ONE_CYCLE_THREE = _one_cycle((0.1,), 300, pct=0.4, three_phase=True)
ONE_CYCLE_EPOCHS = _one_cycle((0.1,), 300)
ONE_CYCLE_ADAM = _one_cycle((0.01, 0.02), 300)

CASES = [
    _case(
        "LambdaLR",
        lambda m, o: m.LambdaLR(o, lambda epoch: 0.95**epoch),
        lambda t, g, base: base * 0.95**t,
    ),
    _case(
        "LambdaLR-per-group",
        lambda m, o: m.LambdaLR(o, [lambda epoch: 0.95**epoch, lambda epoch: 1 / (1 + epoch)]),
        lambda t, g, base: base * (0.95**t if g == 0 else 1 / (1 + t)),
        lrs=(0.1, 0.02),
    ),
    _case(
        "MultiplicativeLR",
        lambda m, o: m.MultiplicativeLR(o, lambda epoch: 0.98),
        lambda t, g, base: base * 0.98**t,
    ),
    _case(
        "StepLR",
        lambda m, o: m.StepLR(o, step_size=7, gamma=0.5),
        lambda t, g, base: base * 0.5 ** (t // 7),
    ),
    _case(
        "StepLR-default-gamma",
        lambda m, o: m.StepLR(o, 30),
        lambda t, g, base: base * 0.1 ** (t // 30),
    ),
    _case(
        "MultiStepLR-unordered-repeated",
        lambda m, o: m.MultiStepLR(o, milestones=[150, 30, 80, 80], gamma=0.5),
        lambda t, g, base: base * 0.5 ** sum(milestone <= t for milestone in (30, 80, 80, 150)),
    ),
    _case(
        "ConstantLR-default",
        lambda m, o: m.ConstantLR(o),
        lambda t, g, base: base * (1 / 3 if t < 5 else 1.0),
    ),
    _case(
        "ConstantLR",
        lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=40),
        lambda t, g, base: base * (0.5 if t < 40 else 1.0),
    ),
    _case(
        "LinearLR-default",
        lambda m, o: m.LinearLR(o),
        lambda t, g, base: base * (1 / 3 + (1 - 1 / 3) * min(t, 5) / 5),
    ),
    _case(
        "LinearLR",
        lambda m, o: m.LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=60),
        lambda t, g, base: base * (0.25 + 0.5 * min(t, 60) / 60),
        lrs=(0.1, 0.3),
    ),
    _case(
        "LinearLR-decreasing",
        lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=100),
        lambda t, g, base: base * (1.0 - 0.9 * min(t, 100) / 100),
    ),
    _case(
        "ExponentialLR",
        lambda m, o: m.ExponentialLR(o, gamma=0.99),
        lambda t, g, base: base * 0.99**t,
    ),
    _case(
        "PolynomialLR-default",
        lambda m, o: m.PolynomialLR(o),
        lambda t, g, base: base * (1 - min(t, 5) / 5),
    ),
    _case(
        "PolynomialLR",
        lambda m, o: m.PolynomialLR(o, total_iters=100, power=2.0),
        lambda t, g, base: base * (1 - min(t, 100) / 100) ** 2,
    ),
    _case(
        "CosineAnnealingLR-unclamped",
        lambda m, o: m.CosineAnnealingLR(o, T_max=50, eta_min=0.001),
        lambda t, g, base: cosine(base, 0.001, t, 50),
    ),
    _case(
        "CosineAnnealingLR-to-zero",
        lambda m, o: m.CosineAnnealingLR(o, T_max=40),
        lambda t, g, base: cosine(base, 0.0, t, 40),
        lrs=(0.1, 0.05),
    ),
    _case(
        "CosineAnnealingWarmRestarts",
        lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=1e-4),
        lambda t, g, base: warm_restarts(base, t, 10, 2, 1e-4),
    ),
    _case(
        "CosineAnnealingWarmRestarts-T_mult-1",
        lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=7),
        lambda t, g, base: warm_restarts(base, t, 7, 1, 0.0),
    ),
    _case(
        "CyclicLR-triangular",
        lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=20),
        _cyclic_lr(0.01, 0.1, 20, 20, _no_scale, "cycle"),
        momentum=_cyclic_momentum(0.8, 0.9, 20, 20, _no_scale, "cycle"),
    ),
    _case(
        "CyclicLR-triangular2-asymmetric",
        lambda m, o: m.CyclicLR(
            o,
            0.01,
            0.1,
            step_size_up=15,
            step_size_down=25,
            mode="triangular2",
            cycle_momentum=False,
        ),
        _cyclic_lr(0.01, 0.1, 15, 25, lambda cycle: 0.5 ** (cycle - 1), "cycle"),
    ),
    _case(
        "CyclicLR-exp_range",
        lambda m, o: m.CyclicLR(
            o,
            0.01,
            0.1,
            step_size_up=10,
            mode="exp_range",
            gamma=0.99,
            base_momentum=0.7,
            max_momentum=0.95,
        ),
        _cyclic_lr(0.01, 0.1, 10, 10, lambda step: 0.99**step, "iterations"),
        momentum=_cyclic_momentum(0.7, 0.95, 10, 10, lambda step: 0.99**step, "iterations"),
    ),
    _case(
        "CyclicLR-scale_fn-iterations",
        lambda m, o: m.CyclicLR(
            o,
            0.01,
            0.1,
            step_size_up=12,
            scale_fn=_custom_scale,
            scale_mode="iterations",
            cycle_momentum=False,
        ),
        _cyclic_lr(0.01, 0.1, 12, 12, _custom_scale, "iterations"),
    ),
    _case(
        "CyclicLR-adam-betas",
        lambda m, o: m.CyclicLR(o, base_lr=0.001, max_lr=0.01, step_size_up=25),
        _cyclic_lr(0.001, 0.01, 25, 25, _no_scale, "cycle"),
        kind="adam",
        momentum=_cyclic_momentum(0.8, 0.9, 25, 25, _no_scale, "cycle"),
    ),
    _case(
        "OneCycleLR",
        lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=300),
        ONE_CYCLE_DEFAULT[0],
        momentum=ONE_CYCLE_DEFAULT[1],
    ),
    _case(
        "OneCycleLR-linear",
        lambda m, o: m.OneCycleLR(
            o,
            0.1,
            total_steps=300,
            pct_start=0.25,
            anneal_strategy="linear",
            div_factor=10.0,
            final_div_factor=100.0,
        ),
        ONE_CYCLE_LINEAR[0],
        momentum=ONE_CYCLE_LINEAR[1],
    ),
    _case(
        "OneCycleLR-three-phase",
        lambda m, o: m.OneCycleLR(o, 0.1, total_steps=300, pct_start=0.4, three_phase=True),
        ONE_CYCLE_THREE[0],
        momentum=ONE_CYCLE_THREE[1],
    ),
    _case(
        "OneCycleLR-epochs-no-momentum",
        lambda m, o: m.OneCycleLR(o, 0.1, epochs=10, steps_per_epoch=30, cycle_momentum=False),
        ONE_CYCLE_EPOCHS[0],
    ),
    _case(
        "OneCycleLR-adam-betas",
        lambda m, o: m.OneCycleLR(o, max_lr=[0.01, 0.02], total_steps=300),
        ONE_CYCLE_ADAM[0],
        lrs=(0.001, 0.002),
        kind="adam",
        momentum=ONE_CYCLE_ADAM[1],
    ),
    _case(
        "SequentialLR-warmup-cosine",
        lambda m, o: m.SequentialLR(
            o,
            [m.LinearLR(o, start_factor=0.1, total_iters=20), m.CosineAnnealingLR(o, 280, 1e-4)],
            milestones=[20],
        ),
        lambda t, g, base: (
            base * (0.1 + 0.9 * t / 20) if t < 20 else cosine(base, 1e-4, t - 20, 280)
        ),
    ),
    _case(
        "SequentialLR-three",
        lambda m, o: m.SequentialLR(
            o,
            [m.ConstantLR(o, 0.5, 10), m.ExponentialLR(o, 0.99), m.StepLR(o, 30, 0.5)],
            milestones=[50, 120],
        ),
        # Each scheduler restarts from its epoch 0 at its milestone.
        lambda t, g, base: (
            base * (0.5 if t < 10 else 1.0)
            if t < 50
            else base * 0.99 ** (t - 50)
            if t < 120
            else base * 0.5 ** ((t - 120) // 30)
        ),
    ),
    _case(
        "ChainedScheduler",
        lambda m, o: m.ChainedScheduler([m.ConstantLR(o, 0.5, 40), m.ExponentialLR(o, 0.99)]),
        # Chained factors multiply.
        lambda t, g, base: base * (0.5 if t < 40 else 1.0) * 0.99**t,
    ),
    _case(
        "ChainedScheduler-optimizer-given",
        lambda m, o: m.ChainedScheduler(
            [m.LinearLR(o, start_factor=0.2, total_iters=30), m.StepLR(o, 50, 0.5)], optimizer=o
        ),
        lambda t, g, base: base * (0.2 + 0.8 * min(t, 30) / 30) * 0.5 ** (t // 50),
        lrs=(0.1, 0.01),
    ),
]


def run(case: Case, module: Any, optimizer: Any, steps: int = STEPS) -> dict[str, np.ndarray]:
    """Build the case's scheduler and record lr, get_last_lr() and momentum at every step."""
    scheduler = case.build(module, optimizer)
    return record(scheduler, optimizer, steps)


def record(scheduler: Any, optimizer: Any, steps: int) -> dict[str, np.ndarray]:
    lrs, last_lrs, momentums = [], [], []
    for step in range(steps):
        if step:
            optimizer.step()
            scheduler.step()
        lrs.append([float(group["lr"]) for group in optimizer.param_groups])
        last_lrs.append([float(lr) for lr in scheduler.get_last_lr()])
        momentums.append([momentum_of(group) for group in optimizer.param_groups])
    return {"lr": np.array(lrs), "last_lr": np.array(last_lrs), "momentum": np.array(momentums)}


def assert_trajectories_equal(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]):
    for key in ("lr", "last_lr", "momentum"):
        np.testing.assert_allclose(actual[key], expected[key], rtol=RTOL, atol=0, err_msg=key)


# ---------------------------------------------------------------------------------------------
# Same numbers as torch.


@pytest.mark.parametrize("case", CASES)
def test_matches_torch(case: Case) -> None:
    torch_lr_scheduler = pytest.importorskip("torch.optim.lr_scheduler")
    reference_optimizer = torch_optimizer(case.lrs, case.kind)
    reference = run(case, torch_lr_scheduler, reference_optimizer)

    duck = DuckOptimizer(case.lrs, case.kind)
    on_duck = run(case, ours, duck)
    assert_trajectories_equal(on_duck, reference)
    # The keys torch's schedulers leave in the groups (initial_lr, max_lr, ...) are ours too.
    for mine, theirs in zip(duck.param_groups, reference_optimizer.param_groups):
        for key in ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"):
            assert (key in mine) == (key in theirs), key
            if key in mine:
                assert mine[key] == pytest.approx(theirs[key], rel=RTOL, abs=0), key

    on_torch_optimizer = run(case, ours, torch_optimizer(case.lrs, case.kind))
    assert_trajectories_equal(on_torch_optimizer, reference)


@pytest.mark.parametrize("case", CASES)
def test_matches_closed_form(case: Case) -> None:
    trajectory = run(case, ours, DuckOptimizer(case.lrs, case.kind))
    expected = np.array(
        [[case.lr(t, g, base) for g, base in enumerate(case.lrs)] for t in range(STEPS)]
    )
    np.testing.assert_allclose(trajectory["lr"], expected, rtol=RTOL, atol=0)
    np.testing.assert_array_equal(trajectory["last_lr"], trajectory["lr"])
    if case.momentum is not None:
        expected_momentum = np.array(
            [[case.momentum(t, g) for g in range(len(case.lrs))] for t in range(STEPS)]
        )
        np.testing.assert_allclose(trajectory["momentum"], expected_momentum, rtol=RTOL, atol=0)
    else:
        # A scheduler that does not cycle momentum leaves it alone.
        assert np.all(trajectory["momentum"] == MOMENTUM)


def test_cosine_warm_restarts_fractional_epochs_match_torch() -> None:
    torch_lr_scheduler = pytest.importorskip("torch.optim.lr_scheduler")
    batches = 7
    epochs = [epoch + batch / batches for epoch in range(40) for batch in range(batches)]

    def trajectory(module: Any, optimizer: Any) -> list[float]:
        scheduler = module.CosineAnnealingWarmRestarts(optimizer, T_0=3, T_mult=2, eta_min=0.01)
        lrs = []
        for epoch in epochs:
            optimizer.step()
            scheduler.step(epoch)
            lrs.append(optimizer.param_groups[0]["lr"])
        return lrs

    reference = trajectory(torch_lr_scheduler, torch_optimizer())
    np.testing.assert_allclose(trajectory(ours, DuckOptimizer()), reference, rtol=RTOL, atol=0)


def test_cosine_warm_restarts_fractional_epochs_closed_form() -> None:
    optimizer = DuckOptimizer((0.5,))
    scheduler = ours.CosineAnnealingWarmRestarts(optimizer, T_0=3, T_mult=2, eta_min=0.01)
    for epoch in [0.5, 2.75, 3.0, 4.5, 8.999, 9.0, 20.25]:
        optimizer.step()
        scheduler.step(epoch)
        # Cycles start at epochs 0, 3, 9, 21 and last 3, 6, 12.
        start, length = max((s, n) for s, n in [(0, 3), (3, 6), (9, 12)] if s <= epoch)
        expected = cosine(0.5, 0.01, epoch - start, length)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=RTOL)
        assert scheduler.last_epoch == math.floor(epoch)


# ---------------------------------------------------------------------------------------------
# ReduceLROnPlateau: driven by a metric.

PLATEAU_OPTIONS = [
    pytest.param({}, id="default"),
    pytest.param({"patience": 2, "factor": 0.5, "cooldown": 3}, id="cooldown"),
    pytest.param({"mode": "max", "threshold_mode": "abs", "threshold": 0.01}, id="max-abs"),
    pytest.param({"patience": 1, "factor": 0.3, "min_lr": [0.004, 0.001]}, id="min_lr-per-group"),
    pytest.param({"patience": 0, "factor": 0.9, "eps": 0.005}, id="eps"),
]


def plateau_metric(t: int, mode: str) -> float:
    """A loss that falls in steps with a little deterministic noise (an accuracy for "max")."""
    loss = 1.0 / (1 + t // 25) + 0.01 * ((t * 7919) % 13) / 13
    return loss if mode == "min" else 1.0 - loss


def run_plateau(module: Any, optimizer: Any, options: dict[str, Any]) -> np.ndarray:
    scheduler = module.ReduceLROnPlateau(optimizer, **options)
    lrs = []
    for t in range(STEPS):
        optimizer.step()
        scheduler.step(plateau_metric(t, options.get("mode", "min")))
        lrs.append([float(lr) for lr in scheduler.get_last_lr()])
        assert lrs[-1] == [group["lr"] for group in optimizer.param_groups]
    return np.array(lrs)


@pytest.mark.parametrize("options", PLATEAU_OPTIONS)
def test_reduce_on_plateau_matches_torch(options: dict[str, Any]) -> None:
    torch_lr_scheduler = pytest.importorskip("torch.optim.lr_scheduler")
    lrs = (0.1, 0.05)
    reference = run_plateau(torch_lr_scheduler, torch_optimizer(lrs), options)
    assert len(np.unique(reference[:, 0])) > 2, "the metric should cause several reductions"
    np.testing.assert_allclose(
        run_plateau(ours, DuckOptimizer(lrs), options), reference, rtol=RTOL, atol=0
    )
    np.testing.assert_allclose(
        run_plateau(ours, torch_optimizer(lrs), options), reference, rtol=RTOL, atol=0
    )


def reductions(epoch: int, patience: int, cooldown: int) -> int:
    """Reductions after ``epoch`` (1-based) epochs of a metric that never improves after the
    first: the first needs patience + 1 bad epochs, each later one cooldown more."""
    first = patience + 2
    return 0 if epoch < first else 1 + (epoch - first) // (cooldown + patience + 1)


@pytest.mark.parametrize(("patience", "cooldown"), [(0, 0), (2, 0), (3, 4), (10, 1)])
@pytest.mark.parametrize(
    ("mode", "threshold_mode", "threshold", "metric"),
    [
        ("min", "rel", 1e-4, lambda epoch: 1.0),  # flat
        ("min", "rel", 1e-4, lambda epoch: 1.0 - 1e-7 * epoch),  # improves, but too little
        ("min", "abs", 0.1, lambda epoch: 5.0 - 0.05 * (epoch % 2)),  # wobbles within 0.1
        ("max", "rel", 1e-4, lambda epoch: 0.5),  # flat accuracy
        ("max", "abs", 0.0, lambda epoch: 0.9 - 0.001 * epoch),  # falling accuracy
    ],
)
def test_reduce_on_plateau_closed_form(
    patience: int, cooldown: int, mode: str, threshold_mode: str, threshold: float, metric: Any
) -> None:
    optimizer = DuckOptimizer((1.0,))
    scheduler = ours.ReduceLROnPlateau(
        optimizer, mode=mode, factor=0.5, patience=patience, threshold=threshold,
        threshold_mode=threshold_mode, cooldown=cooldown, min_lr=2.0**-12,
    )  # fmt: skip
    for epoch in range(1, 120):
        scheduler.step(metric(epoch))
        expected = max(0.5 ** reductions(epoch, patience, cooldown), 2.0**-12)
        assert scheduler.get_last_lr() == [expected], epoch
        assert scheduler.last_epoch == epoch


@pytest.mark.parametrize(
    ("mode", "threshold_mode", "metric"),
    [
        ("min", "rel", lambda epoch: 1.0 / epoch),
        ("min", "abs", lambda epoch: -epoch),
        ("max", "rel", lambda epoch: 1.0 - 1.0 / (epoch + 1)),
        ("max", "abs", lambda epoch: epoch),
    ],
)
def test_reduce_on_plateau_keeps_lr_while_improving(
    mode: str, threshold_mode: str, metric: Any
) -> None:
    optimizer = DuckOptimizer((0.1,))
    scheduler = ours.ReduceLROnPlateau(
        optimizer, mode=mode, threshold_mode=threshold_mode, threshold=1e-4, patience=0
    )
    for epoch in range(1, 100):
        scheduler.step(metric(epoch))
    assert scheduler.get_last_lr() == [0.1]
    assert scheduler.num_bad_epochs == 0


# ---------------------------------------------------------------------------------------------
# Save mid-run, restore into a fresh optimizer and scheduler, continue.

RESUME_AT = [1, 20, 123]


def continue_run(scheduler: Any, optimizer: Any, start: int) -> np.ndarray:
    lrs = [[float(group["lr"]) for group in optimizer.param_groups]]
    momentums = [[momentum_of(group) for group in optimizer.param_groups]]
    for _ in range(start + 1, STEPS):
        optimizer.step()
        scheduler.step()
        lrs.append([float(group["lr"]) for group in optimizer.param_groups])
        momentums.append([momentum_of(group) for group in optimizer.param_groups])
    return np.concatenate([np.array(lrs), np.array(momentums)], axis=1)


def saved_run(case: Case, resume_at: int) -> tuple[Any, bytes]:
    """Run to ``resume_at``; return the optimizer's groups and the pickled scheduler state."""
    optimizer = DuckOptimizer(case.lrs, case.kind)
    scheduler = case.build(ours, optimizer)
    for _ in range(resume_at):
        optimizer.step()
        scheduler.step()
    # Through pickle, as a checkpoint goes: the state must not hold functions or the optimizer.
    return copy.deepcopy(optimizer.param_groups), pickle.dumps(scheduler.state_dict())


@pytest.mark.parametrize("resume_at", RESUME_AT)
@pytest.mark.parametrize("order", ["optimizer-then-scheduler", "scheduler-only", "before-build"])
@pytest.mark.parametrize("case", CASES)
def test_resume_gives_the_uninterrupted_trajectory(case: Case, order: str, resume_at: int) -> None:
    optimizer = DuckOptimizer(case.lrs, case.kind)
    uninterrupted = continue_run(case.build(ours, optimizer), optimizer, 0)

    saved_groups, saved_state = saved_run(case, resume_at)
    fresh = DuckOptimizer(case.lrs, case.kind)
    if order == "before-build":  # load the optimizer's state, then build (pytorch#119168)
        fresh.param_groups = copy.deepcopy(saved_groups)
    scheduler = case.build(ours, fresh)
    if order == "optimizer-then-scheduler":  # torch's recommended order
        fresh.param_groups = copy.deepcopy(saved_groups)
    # "scheduler-only": the optimizer's state is not loaded at all (pytorch#29697)
    scheduler.load_state_dict(pickle.loads(saved_state))

    resumed = continue_run(scheduler, fresh, resume_at)
    np.testing.assert_allclose(resumed, uninterrupted[resume_at:], rtol=RTOL, atol=0)


@pytest.mark.parametrize("options", PLATEAU_OPTIONS)
def test_reduce_on_plateau_resume(options: dict[str, Any]) -> None:
    lrs = (0.1, 0.05)
    mode = options.get("mode", "min")
    uninterrupted = run_plateau(ours, DuckOptimizer(lrs), options)
    optimizer = DuckOptimizer(lrs)
    scheduler = ours.ReduceLROnPlateau(optimizer, **options)
    for t in range(150):
        scheduler.step(plateau_metric(t, mode))
    saved = pickle.dumps(scheduler.state_dict())
    fresh = DuckOptimizer(lrs)  # the optimizer's state is not loaded
    restored = ours.ReduceLROnPlateau(fresh, **options)
    restored.load_state_dict(pickle.loads(saved))
    assert restored.get_last_lr() == [group["lr"] for group in fresh.param_groups]
    for t in range(150, STEPS):
        restored.step(plateau_metric(t, mode))
        np.testing.assert_allclose(restored.get_last_lr(), uninterrupted[t], rtol=RTOL, atol=0)


def test_state_dict_is_a_snapshot() -> None:
    optimizer = DuckOptimizer()
    scheduler = ours.CosineAnnealingWarmRestarts(optimizer, T_0=3)
    state = scheduler.state_dict()
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert state["last_epoch"] == 0 and state["_last_lr"] == [0.1]
    assert "optimizer" not in state


def test_lambda_state_saves_callable_objects_but_not_functions() -> None:
    class Decay:
        def __init__(self) -> None:
            self.rate = 0.5

        def __call__(self, epoch: int) -> float:
            return self.rate**epoch

    optimizer = DuckOptimizer((0.1, 0.2))
    decay = Decay()
    scheduler = ours.LambdaLR(optimizer, [decay, lambda epoch: 1.0])
    decay.rate = 0.25
    state = pickle.loads(pickle.dumps(scheduler.state_dict()))
    assert state["lr_lambdas"] == [{"rate": 0.25}, None]
    fresh_decay = Decay()
    restored = ours.LambdaLR(DuckOptimizer((0.1, 0.2)), [fresh_decay, lambda epoch: 1.0])
    restored.load_state_dict(state)
    assert fresh_decay.rate == 0.25


# ---------------------------------------------------------------------------------------------
# Resuming with last_epoch: the lr of epoch last_epoch + 1, whatever lr the optimizer holds.

LAST_EPOCH_CASES = [
    pytest.param(lambda m, o, e: m.StepLR(o, 7, 0.5, last_epoch=e), id="StepLR"),
    pytest.param(lambda m, o, e: m.MultiStepLR(o, [5, 30], 0.5, last_epoch=e), id="MultiStepLR"),
    pytest.param(lambda m, o, e: m.ExponentialLR(o, 0.97, last_epoch=e), id="ExponentialLR"),
    pytest.param(lambda m, o, e: m.CosineAnnealingLR(o, 25, 0.01, last_epoch=e), id="Cosine"),
    pytest.param(lambda m, o, e: m.LinearLR(o, 0.2, 1.0, 40, last_epoch=e), id="LinearLR"),
    pytest.param(lambda m, o, e: m.ConstantLR(o, 0.5, 40, last_epoch=e), id="ConstantLR"),
    pytest.param(lambda m, o, e: m.PolynomialLR(o, 60, 2.0, last_epoch=e), id="PolynomialLR"),
    pytest.param(lambda m, o, e: m.LambdaLR(o, lambda t: 1 / (1 + t), e), id="LambdaLR"),
    pytest.param(
        lambda m, o, e: m.CosineAnnealingWarmRestarts(o, 2, 3, 0.001, last_epoch=e),
        id="CosineAnnealingWarmRestarts",
    ),
    pytest.param(
        lambda m, o, e: m.ScheduleLR(o, lambda t: 0.1 * 0.9 ** (t // 3), last_epoch=e),
        id="ScheduleLR",
    ),
]


@pytest.mark.parametrize("last_epoch", [0, 4, 29, 57])
@pytest.mark.parametrize("build", LAST_EPOCH_CASES)
def test_last_epoch_resumes_at_the_next_epoch(build: Any, last_epoch: int) -> None:
    optimizer = DuckOptimizer()
    scheduler = build(ours, optimizer, -1)
    uninterrupted = [optimizer.param_groups[0]["lr"]]
    for _ in range(80):
        optimizer.step()
        scheduler.step()
        uninterrupted.append(optimizer.param_groups[0]["lr"])

    fresh = DuckOptimizer()  # lr back at its initial value, as after a restart
    fresh.param_groups[0]["initial_lr"] = 0.1
    resumed = build(ours, fresh, last_epoch)
    assert resumed.last_epoch == last_epoch + 1
    lrs = [fresh.param_groups[0]["lr"]]
    for _ in range(last_epoch + 2, 81):
        fresh.step()
        resumed.step()
        lrs.append(fresh.param_groups[0]["lr"])
    np.testing.assert_allclose(lrs, uninterrupted[last_epoch + 1 :], rtol=1e-12, atol=0)


def test_last_epoch_without_initial_lr_is_an_error() -> None:
    with pytest.raises(KeyError, match="initial_lr"):
        ours.StepLR(DuckOptimizer(), step_size=3, last_epoch=5)


# ---------------------------------------------------------------------------------------------
# Where torch 2.13 goes wrong on resume. Each test asserts that ours continues the
# uninterrupted run, and shows what torch does with the same calls.


def torch_is_2_13() -> bool:
    return sys.modules["torch"].__version__.startswith("2.13")


def test_multisteplr_restored_into_fresh_optimizer_pytorch_29697() -> None:
    """The checkpoint has the scheduler's state but not the optimizer's (it is large)."""

    def lr_after_restore(module: Any, make_optimizer: Callable[[], Any]) -> tuple[float, float]:
        optimizer = make_optimizer()
        scheduler = module.MultiStepLR(optimizer, milestones=[3, 6], gamma=0.1)
        for _ in range(5):
            optimizer.step()
            scheduler.step()
        fresh = make_optimizer()
        restored = module.MultiStepLR(fresh, milestones=[3, 6], gamma=0.1)
        restored.load_state_dict(scheduler.state_dict())
        return fresh.param_groups[0]["lr"], restored.get_last_lr()[0]

    # Uninterrupted, epoch 5 is past one milestone: 0.1 * 0.1.
    assert lr_after_restore(ours, DuckOptimizer) == pytest.approx((0.01, 0.01), rel=RTOL)

    torch_lr_scheduler = pytest.importorskip("torch.optim.lr_scheduler")
    in_optimizer, reported = lr_after_restore(torch_lr_scheduler, torch_optimizer)
    if torch_is_2_13():  # torch reports 0.01 but trains with the initial 0.1
        assert reported == pytest.approx(0.01) and in_optimizer == pytest.approx(0.1)


def sequential(module: Any, optimizer: Any, last_epoch: int = -1) -> Any:
    warmup = module.ConstantLR(optimizer, factor=0.1, total_iters=3)
    decay = module.ExponentialLR(optimizer, gamma=0.9)
    return module.SequentialLR(optimizer, [warmup, decay], milestones=[3], last_epoch=last_epoch)


def test_sequentiallr_built_after_optimizer_state_loaded_pytorch_119168() -> None:
    def resumed_lrs(module: Any, make_optimizer: Callable[[], Any], copy_groups: Any) -> list:
        optimizer = make_optimizer()
        scheduler = sequential(module, optimizer)
        for _ in range(6):
            optimizer.step()
            scheduler.step()
        fresh = make_optimizer()
        copy_groups(optimizer, fresh)  # the optimizer's state first, then the scheduler
        restored = sequential(module, fresh)
        restored.load_state_dict(scheduler.state_dict())
        lrs = [fresh.param_groups[0]["lr"]]
        fresh.step()
        restored.step()
        return [*lrs, fresh.param_groups[0]["lr"]]

    def copy_duck_groups(source: Any, target: Any) -> None:
        target.param_groups = copy.deepcopy(source.param_groups)

    # Uninterrupted: 0.1 * 0.9**3 at epoch 6, then 0.1 * 0.9**4.
    expected = [0.1 * 0.9**3, 0.1 * 0.9**4]
    np.testing.assert_allclose(resumed_lrs(ours, DuckOptimizer, copy_duck_groups), expected)

    torch_lr_scheduler = pytest.importorskip("torch.optim.lr_scheduler")

    def copy_torch_state(source: Any, target: Any) -> None:
        target.load_state_dict(source.state_dict())

    np.testing.assert_allclose(resumed_lrs(ours, torch_optimizer, copy_torch_state), expected)
    theirs = resumed_lrs(torch_lr_scheduler, torch_optimizer, copy_torch_state)
    if torch_is_2_13():  # torch continues from the warmup's lr, 0.1 * 0.1
        np.testing.assert_allclose(theirs, [0.01, 0.009])


def test_sequentiallr_last_epoch_pytorch_162591() -> None:
    def lr_resumed_at(module: Any, make_optimizer: Callable[[], Any]) -> float:
        optimizer = make_optimizer()
        optimizer.param_groups[0]["initial_lr"] = 0.1
        sequential(module, optimizer, last_epoch=3)
        return optimizer.param_groups[0]["lr"]

    # last_epoch=3 resumes at epoch 4, one step into the decay: 0.1 * 0.9.
    assert lr_resumed_at(ours, DuckOptimizer) == pytest.approx(0.09, rel=RTOL)

    torch_lr_scheduler = pytest.importorskip("torch.optim.lr_scheduler")
    assert lr_resumed_at(ours, torch_optimizer) == pytest.approx(0.09, rel=RTOL)
    if torch_is_2_13():  # torch restarts the warmup
        assert lr_resumed_at(torch_lr_scheduler, torch_optimizer) == pytest.approx(0.01)


def test_cosine_warm_restarts_finds_every_cycle_start() -> None:
    # T_0=1, T_mult=10: cycles start at epochs 0, 1, 11, 111, 1111; at each the lr restarts.
    def lrs_at_starts(module: Any, optimizer: Any) -> list[float]:
        scheduler = module.CosineAnnealingWarmRestarts(optimizer, T_0=1, T_mult=10)
        values = []
        for epoch in (1, 11, 111, 1111):
            optimizer.step()
            scheduler.step(epoch)
            values.append(optimizer.param_groups[0]["lr"])
        return values

    assert lrs_at_starts(ours, DuckOptimizer()) == [0.1] * 4

    torch_lr_scheduler = pytest.importorskip("torch.optim.lr_scheduler")
    if torch_is_2_13():  # log(1000, 10) = 2.9999999999999996: epoch 111 is taken as an end
        assert lrs_at_starts(torch_lr_scheduler, torch_optimizer()) == [0.1, 0.1, 0.0, 0.1]


# ---------------------------------------------------------------------------------------------
# A param group added (optimizer.add_param_group) or removed after the scheduler was built.
# Many of torch 2.13's steps zip values kept per group since construction (base_lrs,
# lr_lambdas, max_lrs, ...) with the groups, strict=True: they raise ValueError, after writing
# some of the lrs. Ours raises the same exception at the same step and changes nothing; where
# torch goes on (schedulers that scale each group's current lr), ours gives torch's lrs.

GROUP_CHANGE_STEPS = 12
GROUPS_CHANGED = r"param groups changed after the scheduler was built"
BUILD_AFTER = r"(?i)build the scheduler after adding every param group"


@dataclass(frozen=True)
class GroupChange:
    id: str
    #: (scheduler module, optimizer) -> scheduler
    build: Callable[[Any, Any], Any]
    change: str  # "add" (a group with lr 0.7) or "remove" (the last group)
    at: int  # scheduler steps taken before the change
    #: torch 2.13's outcome: (the scheduler step that raises, counted from 1, exception type)
    raises: tuple[int, type[Exception]] | None
    step_args: tuple[Any, ...] = ()


def _group_change(id: str, build: Any, change: str, at: int, raises: Any, **options: Any) -> Any:
    return pytest.param(GroupChange(id, build, change, at, raises, **options), id=id)


GROUP_CHANGES = [
    # The chainable form scales each group's current lr: any number of groups works, in torch
    # too. An added group starts from its own lr (ConstantLR and LinearLR apply to it only the
    # factor still to come: it ends above the lr it was added with, as in torch).
    _group_change("StepLR-add", lambda m, o: m.StepLR(o, 3, 0.5), "add", 2, None),
    _group_change("StepLR-remove", lambda m, o: m.StepLR(o, 3, 0.5), "remove", 2, None),
    _group_change("MultiStepLR-add", lambda m, o: m.MultiStepLR(o, [2, 5], 0.5), "add", 2, None),
    _group_change("ConstantLR-add", lambda m, o: m.ConstantLR(o, 0.5, 4), "add", 2, None),
    _group_change("LinearLR-add", lambda m, o: m.LinearLR(o, 0.1, total_iters=5), "add", 2, None),
    _group_change("ExponentialLR-add", lambda m, o: m.ExponentialLR(o, 0.9), "add", 2, None),
    _group_change("PolynomialLR-add", lambda m, o: m.PolynomialLR(o, 6, 2.0), "add", 2, None),
    # CosineAnnealingLR uses base_lrs only in the step after the bottom of the cosine.
    _group_change(  # the reviewer's case: torch follows the cosine down, then raises
        "CosineAnnealingLR-add",
        lambda m, o: m.CosineAnnealingLR(o, T_max=5),
        "add",
        0,
        (6, ValueError),
    ),
    _group_change(
        "CosineAnnealingLR-remove",
        lambda m, o: m.CosineAnnealingLR(o, T_max=5),
        "remove",
        1,
        (6, ValueError),
    ),
    _group_change(  # added after the first bottom: raises after the next one
        "CosineAnnealingLR-add-late",
        lambda m, o: m.CosineAnnealingLR(o, T_max=3, eta_min=0.01),
        "add",
        4,
        (10, ValueError),
    ),
    # Every step uses the values kept per group: the first step after the change raises.
    _group_change(
        "LambdaLR-add", lambda m, o: m.LambdaLR(o, lambda e: 0.9**e), "add", 2, (3, ValueError)
    ),
    _group_change(
        "LambdaLR-remove",
        lambda m, o: m.LambdaLR(o, lambda e: 0.9**e),
        "remove",
        0,
        (1, ValueError),
    ),
    _group_change(
        "MultiplicativeLR-add",
        lambda m, o: m.MultiplicativeLR(o, lambda e: 0.9),
        "add",
        0,
        (1, ValueError),
    ),
    _group_change(
        "CosineAnnealingWarmRestarts-add",
        lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3),
        "add",
        2,
        (3, ValueError),
    ),
    _group_change(
        "CyclicLR-add",
        lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=3),
        "add",
        1,
        (2, ValueError),
    ),
    _group_change(
        "CyclicLR-no-momentum-remove",
        lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=3, cycle_momentum=False),
        "remove",
        0,
        (1, ValueError),
    ),
    # OneCycleLR reads bounds it stored in each group: an added group has none.
    _group_change("OneCycleLR-add", lambda m, o: m.OneCycleLR(o, 0.1, 20), "add", 2, (3, KeyError)),
    _group_change("OneCycleLR-remove", lambda m, o: m.OneCycleLR(o, 0.1, 20), "remove", 2, None),
    # A scalar min_lr is repeated for the new group; one per group raises at the first cut.
    _group_change(
        "ReduceLROnPlateau-add",
        lambda m, o: m.ReduceLROnPlateau(o, factor=0.5, patience=1),
        "add",
        2,
        None,
        step_args=(1.0,),
    ),
    _group_change(
        "ReduceLROnPlateau-min_lrs-add",
        lambda m, o: m.ReduceLROnPlateau(o, factor=0.5, patience=1, min_lr=[0.0, 0.0]),
        "add",
        0,
        (3, RuntimeError),
        step_args=(1.0,),
    ),
    # Composites raise where the scheduler they step does: SequentialLR at the milestone,
    # where the next scheduler starts from its closed form (base_lrs).
    _group_change(
        "SequentialLR-add",
        lambda m, o: m.SequentialLR(
            o, [m.LinearLR(o, 0.1, total_iters=4), m.CosineAnnealingLR(o, 20)], [4]
        ),
        "add",
        1,
        (4, ValueError),
    ),
    _group_change(
        "SequentialLR-OneCycleLR-add",
        lambda m, o: m.SequentialLR(o, [m.ConstantLR(o, 0.5, 2), m.OneCycleLR(o, 0.1, 30)], [4]),
        "add",
        0,
        (4, KeyError),
    ),
    _group_change(
        "ChainedScheduler-add",
        lambda m, o: m.ChainedScheduler([m.ConstantLR(o, 0.5, 3), m.ExponentialLR(o, 0.9)]),
        "add",
        2,
        None,
    ),
    _group_change(  # torch writes ExponentialLR's lrs, then LambdaLR raises
        "ChainedScheduler-LambdaLR-add",
        lambda m, o: m.ChainedScheduler([m.ExponentialLR(o, 0.9), m.LambdaLR(o, lambda e: 1.0)]),
        "add",
        1,
        (2, ValueError),
    ),
    _group_change(
        "ChainedScheduler-CosineAnnealingLR-remove",
        lambda m, o: m.ChainedScheduler([m.StepLR(o, 2, 0.5), m.CosineAnnealingLR(o, 3)]),
        "remove",
        0,
        (4, ValueError),
    ),
]


def change_groups(optimizer: Any, change: str) -> None:
    if change == "remove":
        optimizer.param_groups.pop()
    elif isinstance(optimizer, DuckOptimizer):
        optimizer.param_groups.append({"lr": 0.7, "momentum": MOMENTUM})
    else:
        torch = sys.modules["torch"]
        optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.7})


def hyperparameters(optimizer: Any) -> list[dict[str, Any]]:
    return copy.deepcopy(
        [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    )


def run_group_change(
    case: GroupChange, module: Any, optimizer: Any
) -> tuple[list[list[float]], tuple[int, Exception] | None]:
    """The lrs and momentums after each step, and the step that raised with its exception.

    Ours must change nothing in a step that raises: this checks it (torch's does change things).
    """
    scheduler = case.build(module, optimizer)
    values = []
    for step in range(1, GROUP_CHANGE_STEPS + 1):
        if step - 1 == case.at:
            change_groups(optimizer, case.change)
        optimizer.step()
        groups, state = hyperparameters(optimizer), scheduler.state_dict()
        try:
            scheduler.step(*case.step_args)
        except Exception as error:  # noqa: BLE001
            if module is ours:
                assert hyperparameters(optimizer) == groups
                assert scheduler.state_dict() == state
            return values, (step, error)
        values.append([float(g["lr"]) for g in optimizer.param_groups])
        values[-1] += [momentum_of(g) for g in optimizer.param_groups]
    return values, None


def assert_raised_as(outcome: tuple[int, Exception] | None, case: GroupChange) -> None:
    if case.raises is None:
        assert outcome is None, outcome
        return
    assert outcome is not None, f"no error, torch 2.13 raises {case.raises}"
    step, error = outcome
    assert (step, type(error)) == case.raises


@pytest.mark.parametrize("case", GROUP_CHANGES)
def test_param_group_change_matches_torch(case: GroupChange) -> None:
    torch_lr_scheduler = pytest.importorskip("torch.optim.lr_scheduler")
    reference, torch_outcome = run_group_change(
        case, torch_lr_scheduler, torch_optimizer((0.1, 0.2))
    )
    if torch_is_2_13():
        assert_raised_as(torch_outcome, case)
    mine, outcome = run_group_change(case, ours, torch_optimizer((0.1, 0.2)))
    assert len(mine) == len(reference)
    for step, (actual, expected) in enumerate(zip(mine, reference), start=1):
        np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=0, err_msg=f"step {step}")
    assert_raised_as(outcome, case)


@pytest.mark.parametrize("case", GROUP_CHANGES)
def test_param_group_change_raises_before_changing_anything(case: GroupChange) -> None:
    values, outcome = run_group_change(case, ours, DuckOptimizer((0.1, 0.2)))
    assert_raised_as(outcome, case)
    if outcome is not None:
        _, error = outcome
        assert len(values) == case.raises[0] - 1  # type: ignore[index]
        assert re.search(BUILD_AFTER, str(error))
        if isinstance(error, ValueError):
            assert re.search(GROUPS_CHANGED, str(error))
            assert ("added" if case.change == "add" else "removed") in str(error)


def test_cosine_annealing_lr_after_add_param_group() -> None:
    """The added group follows the cosine down from its own lr; then the step that needs the
    initial lrs raises, and the lrs stay as they were (the old behaviour: lr 0 for good)."""
    optimizer = DuckOptimizer((0.1,))
    scheduler = ours.CosineAnnealingLR(optimizer, T_max=5)
    change_groups(optimizer, "add")
    for t in range(1, 6):
        optimizer.step()
        scheduler.step()
        expected = [cosine(0.1, 0.0, t, 5), cosine(0.7, 0.0, t, 5)]
        np.testing.assert_allclose(scheduler.get_last_lr(), expected, rtol=1e-9, atol=1e-17)
    optimizer.step()
    with pytest.raises(ValueError, match="has 2 param groups now and had 1 then"):
        scheduler.step()
    assert scheduler.last_epoch == 5
    with pytest.raises(ValueError, match=GROUPS_CHANGED):  # and again: it does not go on
        scheduler.step()


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda o: ours.StepLR(o, 3), id="StepLR"),
        pytest.param(lambda o: ours.CosineAnnealingLR(o, 5), id="CosineAnnealingLR"),
        pytest.param(lambda o: ours.PolynomialLR(o, 6), id="PolynomialLR"),
    ],
)
def test_explicit_epoch_after_a_group_change_raises(build: Callable[[Any], Any]) -> None:
    # The closed form is computed from base_lrs: torch raises even where step() goes on.
    for make_optimizer in (DuckOptimizer, torch_optimizer):
        optimizer = make_optimizer((0.1,))
        scheduler = build(optimizer)
        change_groups(optimizer, "add")
        optimizer.step()
        groups = hyperparameters(optimizer)
        with pytest.warns(UserWarning, match="deprecated"):
            with pytest.raises(ValueError, match=GROUPS_CHANGED):
                scheduler.step(2)
        assert hyperparameters(optimizer) == groups and scheduler.last_epoch == 0


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda o: ours.ScheduleLR(o, lambda t: 0.1 / (1 + t)), id="ScheduleLR"),
        pytest.param(lambda o: ours.AdaptiveCosineAnnealingLR(o, 4), id="AdaptiveCosine"),
    ],
)
@pytest.mark.parametrize("change", ["add", "remove"])
def test_param_group_change_beyond_torch(build: Callable[[Any], Any], change: str) -> None:
    # Schedulers torch does not have keep one value per group too: they raise as LambdaLR does.
    optimizer = DuckOptimizer((0.1, 0.2))
    scheduler = build(optimizer)
    change_groups(optimizer, change)
    optimizer.step()
    groups, state = hyperparameters(optimizer), scheduler.state_dict()
    with pytest.raises(ValueError, match=GROUPS_CHANGED):
        scheduler.step(*([1.0] if isinstance(scheduler, ours.AdaptiveCosineAnnealingLR) else []))
    assert hyperparameters(optimizer) == groups and scheduler.state_dict() == state


# ---------------------------------------------------------------------------------------------
# Call order: optimizer.step() then scheduler.step().

ORDER_MESSAGE = r"before `optimizer.step\(\)`"


def test_warns_when_scheduler_steps_before_optimizer() -> None:
    optimizer = DuckOptimizer()
    scheduler = ours.StepLR(optimizer, step_size=2)
    with pytest.warns(UserWarning, match=ORDER_MESSAGE):
        scheduler.step()


def test_warns_for_warm_restarts_too() -> None:
    scheduler = ours.CosineAnnealingWarmRestarts(DuckOptimizer(), T_0=2)
    with pytest.warns(UserWarning, match=ORDER_MESSAGE):
        scheduler.step()


def test_no_warning_in_the_right_order() -> None:
    # pytest turns warnings into errors, so a stray warning fails this test.
    optimizer = DuckOptimizer()
    scheduler = ours.ExponentialLR(optimizer, gamma=0.9)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    assert optimizer.steps_taken == 3


def test_warns_when_optimizer_step_is_replaced_after_construction() -> None:
    optimizer = DuckOptimizer()
    scheduler = ours.ExponentialLR(optimizer, gamma=0.9)
    optimizer.step = lambda: None
    with pytest.warns(UserWarning, match="overridden"):
        scheduler.step()


def test_step_wrapper_passes_arguments_and_returns_the_result() -> None:
    optimizer = DuckOptimizer()
    ours.ExponentialLR(optimizer, gamma=0.9)
    gradients = [np.ones(3)]
    assert optimizer.step(gradients, closure=None) == ((gradients,), {"closure": None})
    assert optimizer.steps_taken == 1
    assert optimizer._opt_called is True


def test_step_is_wrapped_once() -> None:
    optimizer = DuckOptimizer()
    ours.ExponentialLR(optimizer, gamma=0.9)
    wrapper = optimizer.step
    ours.StepLR(optimizer, step_size=3)
    assert optimizer.step is wrapper
    optimizer.step()
    assert optimizer.steps_taken == 1


def test_step_is_wrapped_once_alongside_torch_schedulers() -> None:
    torch_lr_scheduler = pytest.importorskip("torch.optim.lr_scheduler")
    optimizer = torch_optimizer()
    torch_lr_scheduler.StepLR(optimizer, step_size=3)
    wrapper = optimizer.step
    ours.ExponentialLR(optimizer, gamma=0.9)
    assert optimizer.step is wrapper

    other = torch_optimizer()
    ours.ExponentialLR(other, gamma=0.9)
    wrapper = other.step
    theirs = torch_lr_scheduler.StepLR(other, step_size=3)
    assert other.step is wrapper
    other.step()
    theirs.step()  # torch's scheduler sees our wrapper's record: no warning


def test_step_wrapper_survives_deepcopy_and_pickle() -> None:
    optimizer = DuckOptimizer()
    ours.ExponentialLR(optimizer, gamma=0.9)
    for clone in (copy.deepcopy(optimizer), pickle.loads(pickle.dumps(optimizer))):
        clone.step()
        assert clone.steps_taken == 1 and clone._opt_called is True
    assert optimizer.steps_taken == 0 and not hasattr(optimizer, "_opt_called")


def test_optimizer_without_step_is_accepted() -> None:
    class GroupsOnly:
        def __init__(self) -> None:
            self.param_groups = [{"lr": 1.0}]

    holder = GroupsOnly()
    scheduler = ours.ExponentialLR(holder, gamma=0.5)
    scheduler.step()
    assert holder.param_groups[0]["lr"] == 0.5


def test_get_lr_outside_step_warns() -> None:
    scheduler = ours.StepLR(DuckOptimizer(), step_size=2)
    with pytest.warns(UserWarning, match="get_last_lr"):
        scheduler.get_lr()


def test_explicit_epoch_is_deprecated_and_uses_the_closed_form() -> None:
    optimizer = DuckOptimizer()
    scheduler = ours.MultiStepLR(optimizer, milestones=[2, 4], gamma=0.5)
    optimizer.step()
    with pytest.warns(UserWarning, match="deprecated"):
        scheduler.step(5)
    assert scheduler.get_last_lr() == [0.1 * 0.5**2]


def test_initial_lr_is_kept_from_a_previous_scheduler() -> None:
    optimizer = DuckOptimizer((0.1,))
    ours.ConstantLR(optimizer, factor=0.5)  # lr becomes 0.05, initial_lr stays 0.1
    second = ours.ExponentialLR(optimizer, gamma=0.9)
    assert optimizer.param_groups[0]["initial_lr"] == 0.1
    assert second.base_lrs == [0.1]


# ---------------------------------------------------------------------------------------------
# Adaptive cosine annealing.

PERIOD = 10


def test_adaptive_cosine_without_cuts_is_warm_restart_cosine() -> None:
    optimizer = DuckOptimizer((0.1, 0.02))
    scheduler = ours.AdaptiveCosineAnnealingLR(optimizer, period=PERIOD, eta_min=1e-3)
    for epoch in range(1, STEPS):
        optimizer.step()
        scheduler.step(1.0 / epoch)  # a falling loss
        expected = [cosine(base, 1e-3, epoch % PERIOD, PERIOD) for base in (0.1, 0.02)]
        np.testing.assert_allclose(scheduler.get_last_lr(), expected, rtol=RTOL, atol=0)
    assert scheduler.num_cuts == 0 and scheduler.max_lrs == [0.1, 0.02]


@pytest.mark.parametrize(("mode", "sign"), [("min", 1.0), ("max", -1.0)])
def test_adaptive_cosine_cuts_the_peak_when_the_metric_gets_worse(mode: str, sign: float) -> None:
    optimizer = DuckOptimizer((0.1,))
    scheduler = ours.AdaptiveCosineAnnealingLR(optimizer, period=PERIOD, factor=0.1, mode=mode)
    for epoch in range(1, 6 * PERIOD):
        optimizer.step()
        scheduler.step(sign * epoch)  # a rising loss, or a falling accuracy
        # Period k (epochs k*P .. k*P + P - 1) is cut once per worse period before it, and the
        # first period is only the reference: the peak is 0.1 * 0.1**(k - 1) from k = 1 on.
        period_index = epoch // PERIOD
        peak = 0.1 * 0.1 ** max(period_index - 1, 0)
        expected = cosine(peak, 0.0, epoch % PERIOD, PERIOD)
        assert scheduler.get_last_lr()[0] == pytest.approx(expected, rel=RTOL), epoch
    assert scheduler.num_cuts == 4


def test_adaptive_cosine_compares_period_means_not_single_epochs() -> None:
    optimizer = DuckOptimizer((1.0,))
    scheduler = ours.AdaptiveCosineAnnealingLR(optimizer, period=2, factor=0.5)
    # Period means: 2.0, then 1.5 (better, although its last epoch is worse than any before).
    for loss in [2.0, 2.0, 0.0, 3.0]:
        scheduler.step(loss)
    assert scheduler.num_cuts == 0
    for loss in [1.0, 2.5]:  # mean 1.75: worse than 1.5
        scheduler.step(loss)
    assert scheduler.num_cuts == 1 and scheduler.get_last_lr() == [0.5]


def test_adaptive_cosine_peak_never_falls_below_eta_min() -> None:
    optimizer = DuckOptimizer((0.1,))
    scheduler = ours.AdaptiveCosineAnnealingLR(optimizer, period=2, eta_min=0.05, factor=0.1)
    for epoch in range(1, 20):
        scheduler.step(float(epoch))
    assert scheduler.max_lrs == [0.05]
    assert scheduler.get_last_lr() == [pytest.approx(0.05)]


def test_adaptive_cosine_resume() -> None:
    losses = [1.0 + ((7 * epoch) % 11) / 10 for epoch in range(60)]

    def fresh() -> tuple[Any, Any]:
        optimizer = DuckOptimizer((0.1,))
        return optimizer, ours.AdaptiveCosineAnnealingLR(optimizer, period=4, eta_min=1e-3)

    optimizer, scheduler = fresh()
    uninterrupted = []
    for loss in losses:
        scheduler.step(loss)
        uninterrupted.append(scheduler.get_last_lr()[0])
    assert scheduler.num_cuts > 0

    optimizer, scheduler = fresh()
    for loss in losses[:23]:  # mid-period
        scheduler.step(loss)
    state = pickle.loads(pickle.dumps(scheduler.state_dict()))
    optimizer, restored = fresh()
    restored.load_state_dict(state)
    resumed = []
    for loss in losses[23:]:
        restored.step(loss)
        resumed.append(optimizer.param_groups[0]["lr"])
    assert resumed == uninterrupted[23:]


# ---------------------------------------------------------------------------------------------
# Bad input: clear errors at construction, naming the bad value.


def duck() -> DuckOptimizer:
    return DuckOptimizer()


class NoMomentum:
    def __init__(self) -> None:
        self.param_groups = [{"lr": 0.1}]
        self.defaults = {"lr": 0.1}


def other_optimizer_scheduler() -> Any:
    return ours.StepLR(DuckOptimizer(), 3)


BAD_INPUT = [
    # Zero or negative periods.
    (lambda: ours.StepLR(duck(), step_size=0), ValueError, "step_size must be a positive .* 0"),
    (lambda: ours.StepLR(duck(), step_size=-3), ValueError, "step_size .* -3"),
    (lambda: ours.StepLR(duck(), step_size=2.5), TypeError, "step_size must be an integer.*2.5"),
    (lambda: ours.CosineAnnealingLR(duck(), T_max=0), ValueError, "T_max must be > 0, got 0"),
    (lambda: ours.CosineAnnealingLR(duck(), T_max=-10), ValueError, "T_max .* -10"),
    (lambda: ours.CosineAnnealingWarmRestarts(duck(), T_0=0), ValueError, "T_0, but got 0"),
    (lambda: ours.CosineAnnealingWarmRestarts(duck(), 5, T_mult=0), ValueError, "T_mult.* 0"),
    (lambda: ours.ConstantLR(duck(), total_iters=0), ValueError, "total_iters .* 0"),
    (lambda: ours.LinearLR(duck(), total_iters=-1), ValueError, "total_iters .* -1"),
    (lambda: ours.PolynomialLR(duck(), total_iters=0), ValueError, "total_iters .* 0"),
    (lambda: ours.CyclicLR(duck(), 0.01, 0.1, step_size_up=0), ValueError, "step_size_up.* 0"),
    (
        lambda: ours.CyclicLR(duck(), 0.01, 0.1, step_size_down=-2),
        ValueError,
        "step_size_down .* -2",
    ),
    (lambda: ours.OneCycleLR(duck(), 0.1, total_steps=0), ValueError, "total_steps, but got 0"),
    (
        lambda: ours.OneCycleLR(duck(), 0.1, epochs=3, steps_per_epoch=0),
        ValueError,
        "steps_per_epoch, but got 0",
    ),
    (lambda: ours.OneCycleLR(duck(), 0.1), ValueError, "either total_steps OR"),
    (lambda: ours.AdaptiveCosineAnnealingLR(duck(), period=0), ValueError, "period .* 0"),
    # gamma <= 0 and other factors.
    (lambda: ours.StepLR(duck(), 3, gamma=0), ValueError, "gamma must be > 0, got 0"),
    (lambda: ours.MultiStepLR(duck(), [3], gamma=-0.5), ValueError, "gamma .* -0.5"),
    (lambda: ours.ExponentialLR(duck(), gamma=0.0), ValueError, "gamma .* 0.0"),
    (lambda: ours.CyclicLR(duck(), 0.01, 0.1, gamma=0), ValueError, "gamma .* 0"),
    (lambda: ours.ExponentialLR(duck(), gamma=math.nan), ValueError, "gamma must be finite"),
    (lambda: ours.ConstantLR(duck(), factor=0), ValueError, "factor .* 0"),
    (lambda: ours.ConstantLR(duck(), factor=1.5), ValueError, "factor .* 1.5"),
    (lambda: ours.LinearLR(duck(), start_factor=0), ValueError, "Starting .* 0"),
    (lambda: ours.LinearLR(duck(), end_factor=2.0), ValueError, "Ending .* 2.0"),
    (lambda: ours.PolynomialLR(duck(), power=-1.0), ValueError, "power must be >= 0, got -1.0"),
    (lambda: ours.ReduceLROnPlateau(duck(), factor=1.0), ValueError, "Factor .* 1.0"),
    (lambda: ours.ReduceLROnPlateau(duck(), factor=0), ValueError, "Factor .* 0"),
    (lambda: ours.ReduceLROnPlateau(duck(), patience=-1), ValueError, "patience .* -1"),
    (lambda: ours.ReduceLROnPlateau(duck(), mode="low"), ValueError, "mode 'low' is unknown"),
    (
        lambda: ours.ReduceLROnPlateau(duck(), threshold_mode="pct"),
        ValueError,
        "threshold mode 'pct'",
    ),
    (lambda: ours.ReduceLROnPlateau(duck(), min_lr=[0, 0]), ValueError, "expected 1 min_lrs"),
    (lambda: ours.AdaptiveCosineAnnealingLR(duck(), 3, factor=1.0), ValueError, "factor .* 1.0"),
    (lambda: ours.AdaptiveCosineAnnealingLR(duck(), 3, mode="up"), ValueError, "mode .* 'up'"),
    (lambda: ours.CyclicLR(duck(), 0.01, 0.1, mode="square"), ValueError, "'square'"),
    (lambda: ours.CyclicLR(duck(), 0.01, 0.1, scale_mode="epoch"), ValueError, "'epoch'"),
    (lambda: ours.CyclicLR(NoMomentum(), 0.01, 0.1), ValueError, "cycle_momentum=False"),
    (lambda: ours.OneCycleLR(NoMomentum(), 0.1, 10), ValueError, "cycle_momentum=False"),
    (lambda: ours.OneCycleLR(duck(), 0.1, 10, pct_start=1.5), ValueError, "pct_start, .* 1.5"),
    (lambda: ours.OneCycleLR(duck(), 0.1, 10, anneal_strategy="exp"), ValueError, "'exp'"),
    (lambda: ours.OneCycleLR(duck(), 0.1, 10, div_factor=0), ValueError, "div_factor .* 0"),
    (lambda: ours.MultiStepLR(duck(), [2.5]), TypeError, r"milestones\[0\] .* 2.5"),
    (lambda: ours.LambdaLR(duck(), [len, len]), ValueError, "Expected 1 lr_lambdas, but got 2"),
    (lambda: ours.LambdaLR(duck(), 0.5), TypeError, "lr_lambda should be a function"),
    (lambda: ours.ScheduleLR(duck(), 0.1), TypeError, "schedule must be callable.* 0.1"),
    (lambda: ours.StepLR(duck(), 3, last_epoch=-2), ValueError, "last_epoch .* -2"),
    # A warmup longer than the schedule.
    (
        lambda: ours.OneCycleLR(duck(), 0.1, 100, pct_start=0.6, three_phase=True),
        ValueError,
        "three_phase needs pct_start <= 0.5",
    ),
    # SequentialLR and ChainedScheduler.
    (
        lambda: (o := duck()) and ours.SequentialLR(o, [ours.StepLR(o, 3)] * 3, milestones=[8, 5]),
        ValueError,
        r"strictly increasing, got \[8, 5\]",
    ),
    (
        lambda: (o := duck()) and ours.SequentialLR(o, [ours.StepLR(o, 3)] * 3, milestones=[5, 5]),
        ValueError,
        r"strictly increasing, got \[5, 5\]",
    ),
    (
        lambda: (o := duck()) and ours.SequentialLR(o, [ours.StepLR(o, 3)] * 2, milestones=[0]),
        ValueError,
        r"milestones\[0\] must be a positive integer, got 0",
    ),
    (
        lambda: (o := duck()) and ours.SequentialLR(o, [ours.StepLR(o, 3)] * 2, milestones=[]),
        ValueError,
        "number of milestones to be equal to 0",
    ),
    (
        lambda: (o := duck()) and ours.SequentialLR(o, [other_optimizer_scheduler()], []),
        ValueError,
        "same optimizer",
    ),
    (
        lambda: (o := duck()) and ours.SequentialLR(o, [ours.ReduceLROnPlateau(o)], []),
        ValueError,
        "ReduceLROnPlateau",
    ),
    (lambda: ours.SequentialLR(duck(), [], []), ValueError, "at least one scheduler"),
    (lambda: ours.ChainedScheduler([]), ValueError, "at least one scheduler"),
    (
        lambda: (o := duck()) and ours.ChainedScheduler([ours.AdaptiveCosineAnnealingLR(o, 3)]),
        ValueError,
        "AdaptiveCosineAnnealingLR",
    ),
    (
        lambda: (
            (o := duck()) and ours.ChainedScheduler([ours.StepLR(o, 3), ours.StepLR(duck(), 3)])
        ),
        ValueError,
        "same optimizer",
    ),
]


@pytest.mark.parametrize(("make", "error", "message"), BAD_INPUT)
def test_bad_input(make: Callable[[], Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        make()


NOT_OPTIMIZERS = [
    pytest.param(3, id="int"),
    pytest.param(None, id="None"),
    pytest.param({"lr": 0.1}, id="a-param-group-itself"),
    pytest.param(type("Groups", (), {"param_groups": "lr"})(), id="groups-not-a-list"),
    pytest.param(type("Groups", (), {"param_groups": [0.1]})(), id="group-not-a-dict"),
]

EVERY_SCHEDULER = [
    pytest.param(lambda o: ours.LambdaLR(o, lambda t: 1.0), id="LambdaLR"),
    pytest.param(lambda o: ours.MultiplicativeLR(o, lambda t: 1.0), id="MultiplicativeLR"),
    pytest.param(lambda o: ours.StepLR(o, 3), id="StepLR"),
    pytest.param(lambda o: ours.MultiStepLR(o, [3]), id="MultiStepLR"),
    pytest.param(lambda o: ours.ConstantLR(o), id="ConstantLR"),
    pytest.param(lambda o: ours.LinearLR(o), id="LinearLR"),
    pytest.param(lambda o: ours.ExponentialLR(o, 0.9), id="ExponentialLR"),
    pytest.param(lambda o: ours.PolynomialLR(o), id="PolynomialLR"),
    pytest.param(lambda o: ours.CosineAnnealingLR(o, 10), id="CosineAnnealingLR"),
    pytest.param(lambda o: ours.CosineAnnealingWarmRestarts(o, 10), id="WarmRestarts"),
    pytest.param(lambda o: ours.CyclicLR(o, 0.01, 0.1), id="CyclicLR"),
    pytest.param(lambda o: ours.OneCycleLR(o, 0.1, 10), id="OneCycleLR"),
    pytest.param(lambda o: ours.ReduceLROnPlateau(o), id="ReduceLROnPlateau"),
    pytest.param(lambda o: ours.SequentialLR(o, [], []), id="SequentialLR"),
    pytest.param(
        lambda o: ours.ChainedScheduler([SimpleNamespace(optimizer=o)]), id="ChainedScheduler"
    ),
    pytest.param(lambda o: ours.ScheduleLR(o, lambda t: 0.1), id="ScheduleLR"),
    pytest.param(lambda o: ours.AdaptiveCosineAnnealingLR(o, 5), id="AdaptiveCosine"),
]


@pytest.mark.parametrize("not_optimizer", NOT_OPTIMIZERS)
@pytest.mark.parametrize("build", EVERY_SCHEDULER)
def test_not_an_optimizer(build: Callable[[Any], Any], not_optimizer: Any) -> None:
    with pytest.raises(TypeError, match="is not an optimizer"):
        build(not_optimizer)


def test_param_group_without_lr() -> None:
    class Groups:
        param_groups = [{"lr": 0.1}, {"momentum": 0.9}]

    with pytest.raises(TypeError, match=r"param_groups\[1\] of Groups has no 'lr'"):
        ours.StepLR(Groups(), 3)


# ---------------------------------------------------------------------------------------------
# plot().


def test_plot_a_schedule_writes_a_png(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")

    def schedule(step: int) -> float:
        return 0.1 / (1 + step)

    path = tmp_path / "lr.png"
    values = ours.plot(schedule, 50, str(path))
    assert values == [0.1 / (1 + step) for step in range(50)]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_a_scheduler_leaves_it_untouched() -> None:
    pytest.importorskip("matplotlib")
    optimizer = DuckOptimizer((0.1, 0.2))
    scheduler = ours.SequentialLR(
        optimizer,
        [ours.LinearLR(optimizer, 0.1, total_iters=5), ours.ExponentialLR(optimizer, 0.9)],
        milestones=[5],
    )
    optimizer.step()
    scheduler.step()
    before = (copy.deepcopy(optimizer.param_groups), scheduler.state_dict())

    values = ours.plot(scheduler, 12, group=1)

    assert (optimizer.param_groups, scheduler.state_dict()) == before
    assert optimizer.steps_taken == 1
    # The plotted values are what the scheduler goes on to do.
    expected = [scheduler.get_last_lr()[1]]
    for _ in range(11):
        optimizer.step()
        scheduler.step()
        expected.append(scheduler.get_last_lr()[1])
    assert values == expected


def test_plot_on_given_axes() -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    values = ours.plot(ours.StepLR(DuckOptimizer(), 3), 10, ax=ax, title="step")
    (line,) = ax.get_lines()
    assert list(line.get_ydata()) == values
    assert ax.get_title() == "step"


def test_plot_a_torch_scheduler() -> None:
    pytest.importorskip("matplotlib")
    torch_lr_scheduler = pytest.importorskip("torch.optim.lr_scheduler")
    optimizer = torch_optimizer()
    values = ours.plot(torch_lr_scheduler.OneCycleLR(optimizer, 0.1, total_steps=30), 31)
    assert values[0] == pytest.approx(0.1 / 25) and max(values) == pytest.approx(0.1)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / 25)


def test_plot_refuses_metric_driven_schedulers() -> None:
    pytest.importorskip("matplotlib")
    with pytest.raises(TypeError, match="monitored metric"):
        ours.plot(ours.ReduceLROnPlateau(DuckOptimizer()), 10)


def test_plot_without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install fusedoptim\[plot\]"):
        ours.plot(lambda step: 0.1, 10)


def _sequential_with_cyclers(optimizer: Any) -> Any:
    return ours.SequentialLR(
        optimizer,
        [
            ours.CyclicLR(optimizer, 0.01, 0.1, step_size_up=10),  # cycles the momentum
            ours.ExponentialLR(optimizer, 0.95),  # leaves it alone
            ours.OneCycleLR(optimizer, 0.1, total_steps=50),  # not started yet at the save
        ],
        milestones=[15, 40],
    )


def _chained_with_cyclers(optimizer: Any) -> Any:
    # The same inside a ChainedScheduler: composites at two levels.
    inner = _sequential_with_cyclers(optimizer)
    return ours.ChainedScheduler([inner, ours.ConstantLR(optimizer, 0.5, total_iters=30)])


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
@pytest.mark.parametrize("build", [_sequential_with_cyclers, _chained_with_cyclers])
def test_resumed_composite_puts_back_the_momentum_in_effect(kind: str, build: Any) -> None:
    """Loading a composite loads its schedulers, and each cycling one puts back its own last
    momentum, also one that has not started yet or is done; the composite must end with the
    momentum (or beta1) in effect at the save, so the resumed run is the uninterrupted one."""
    import fusedoptim

    def make() -> Any:
        if kind == "SGD":
            return fusedoptim.SGD([np.zeros(3)], lr=0.1, momentum=0.9)
        return fusedoptim.Adam([np.zeros(3)], lr=0.1, betas=(0.9, 0.999))

    def momentum(optimizer: Any) -> float:
        group = optimizer.param_groups[0]
        return group["momentum"] if kind == "SGD" else group["betas"][0]

    optimizer = make()
    scheduler = build(optimizer)
    for _ in range(20):
        optimizer.step([np.ones(3)])
        scheduler.step()
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_scheduler = scheduler.state_dict()
    uninterrupted = [(momentum(optimizer), optimizer.param_groups[0]["lr"])]
    for _ in range(25):
        optimizer.step([np.ones(3)])
        scheduler.step()
        uninterrupted.append((momentum(optimizer), optimizer.param_groups[0]["lr"]))
    for load_optimizer_first in (True, False):
        resumed = make()
        resumed_scheduler = build(resumed)
        if load_optimizer_first:
            resumed.load_state_dict(copy.deepcopy(saved_optimizer))
        resumed_scheduler.load_state_dict(copy.deepcopy(saved_scheduler))
        if not load_optimizer_first:
            resumed.load_state_dict(copy.deepcopy(saved_optimizer))
        run = [(momentum(resumed), resumed.param_groups[0]["lr"])]
        for _ in range(25):
            resumed.step([np.ones(3)])
            resumed_scheduler.step()
            run.append((momentum(resumed), resumed.param_groups[0]["lr"]))
        assert run == uninterrupted, load_optimizer_first


@pytest.mark.parametrize(("start_factor", "total_iters"), [(0.1, 4), (0.3, 6), (0.7, 3)])
def test_linear_lr_to_zero_never_goes_negative(start_factor: float, total_iters: int) -> None:
    """torch's LinearLR recursion can round its last factor to end_factor=0 below zero (about
    -5e-19 of the lr); fusedoptim's optimizers refuse a negative lr, so that factor is zero.
    Every other lr is torch's, bit for bit."""
    import fusedoptim

    optimizer = fusedoptim.SGD([np.zeros(3)], lr=0.1)
    scheduler = ours.LinearLR(optimizer, start_factor, end_factor=0.0, total_iters=total_iters)
    mine = []
    for _ in range(total_iters + 3):
        optimizer.step([np.ones(3)])  # refuses a negative lr
        scheduler.step()
        mine.append(optimizer.param_groups[0]["lr"])
    assert mine[total_iters - 1 :] == [0.0] * 4  # these three round below zero in torch
    torch = pytest.importorskip("torch")
    theirs_optimizer = torch.optim.SGD([torch.zeros(3, requires_grad=True)], lr=0.1)
    theirs = torch.optim.lr_scheduler.LinearLR(
        theirs_optimizer, start_factor, end_factor=0.0, total_iters=total_iters
    )
    expected = []
    for _ in range(total_iters + 3):
        theirs_optimizer.step()
        theirs.step()
        expected.append(theirs_optimizer.param_groups[0]["lr"])
    assert mine == [max(lr, 0.0) for lr in expected]
    assert min(expected) < 0  # the case the clamp is for


@pytest.mark.parametrize(
    ("total_steps", "pct_start", "three_phase"), [(10, 0.1, False), (20, 0.05, True)]
)
def test_one_cycle_warmup_of_no_length_is_refused_when_built(
    total_steps: int, pct_start: float, three_phase: bool
) -> None:
    """pct_start * total_steps == 1 ends the warmup where it starts: torch divides by zero at
    construction (ZeroDivisionError); here a ValueError says why, and nothing is written."""
    optimizer = SimpleNamespace(
        param_groups=[{"lr": 0.1, "momentum": 0.9}], defaults={"momentum": 0.9}
    )
    with pytest.raises(ValueError, match=r"pct_start \* total_steps is 1"):
        ours.OneCycleLR(
            optimizer, 0.1, total_steps=total_steps, pct_start=pct_start, three_phase=three_phase
        )
    assert optimizer.param_groups == [{"lr": 0.1, "momentum": 0.9}]
    torch = pytest.importorskip("torch")
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    with pytest.raises(ZeroDivisionError):
        torch.optim.lr_scheduler.OneCycleLR(
            theirs, 0.1, total_steps=total_steps, pct_start=pct_start, three_phase=three_phase
        )
    ours.OneCycleLR(optimizer, 0.1, total_steps=total_steps, pct_start=2 * pct_start)  # fine


def test_multistep_milestones_survive_a_saved_file(tmp_path: Any) -> None:
    """fusedoptim.save keeps dicts, not Counters: a MultiStepLR loaded from the file gets its
    Counter back, so the closed form (step(epoch)) works as before the save."""
    import fusedoptim

    optimizer = fusedoptim.SGD([np.zeros(3)], lr=1.0)
    scheduler = ours.MultiStepLR(optimizer, milestones=[2, 2, 5], gamma=0.5)
    for _ in range(3):
        optimizer.step([np.ones(3)])
        scheduler.step()
    fusedoptim.save(scheduler.state_dict(), tmp_path / "scheduler.npz")
    restored = ours.MultiStepLR(fusedoptim.SGD([np.zeros(3)], lr=1.0), milestones=[1])
    restored.load_state_dict(fusedoptim.load(tmp_path / "scheduler.npz"))
    assert restored.milestones == scheduler.milestones
    with pytest.warns(UserWarning):
        restored.step(6)  # the deprecated closed-form path reads milestones.elements()
    assert restored.get_last_lr() == [0.5**3]
