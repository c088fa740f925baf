"""fusedoptim.schedules: pure schedules against their formulas and torch, and ScheduleLR.

The formulas here are written from each schedule's definition (its docstring), independently of
the implementation; where a torch scheduler computes the same curve, the two are compared for
300 steps.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from fusedoptim import lr_scheduler, schedules

STEPS = 300
RTOL = 1e-12


class DuckOptimizer:
    def __init__(self, lrs: tuple[float, ...] = (0.1,)) -> None:
        self.param_groups = [{"lr": lr} for lr in lrs]

    def step(self) -> None:
        pass


def values(schedule: Callable[[int], float], steps: int = STEPS) -> np.ndarray:
    return np.array([schedule(step) for step in range(steps)])


# ---------------------------------------------------------------------------------------------
# Against the formulas.


def test_constant() -> None:
    assert np.all(values(schedules.constant(0.3)) == 0.3)


@pytest.mark.parametrize("begin", [0, 17])
def test_linear(begin: int) -> None:
    schedule = schedules.linear(0.5, 0.1, transition_steps=40, transition_begin=begin)
    for step in range(STEPS):
        if step <= begin:
            expected = 0.5
        elif step >= begin + 40:
            expected = 0.1
        else:
            expected = 0.5 + (0.1 - 0.5) * (step - begin) / 40
        assert schedule(step) == pytest.approx(expected, rel=RTOL), step
    # Both ends are exact, not merely close.
    assert schedule(begin) == 0.5 and schedule(begin + 40) == 0.1


def test_linear_warmup_from_zero_is_exact_at_both_ends() -> None:
    schedule = schedules.linear(0.0, 0.3, transition_steps=7)
    assert schedule(0) == 0.0 and schedule(7) == 0.3 and schedule(100) == 0.3


@pytest.mark.parametrize(("power", "begin"), [(1.0, 0), (2.0, 0), (0.5, 10), (3.0, 25)])
def test_polynomial(power: float, begin: int) -> None:
    schedule = schedules.polynomial(1.0, 0.01, power, transition_steps=100, transition_begin=begin)
    for step in range(STEPS):
        elapsed = min(max(step - begin, 0), 100)
        expected = (1.0 - 0.01) * (1 - elapsed / 100) ** power + 0.01
        assert schedule(step) == pytest.approx(expected, rel=RTOL), step


@pytest.mark.parametrize("staircase", [False, True])
@pytest.mark.parametrize("begin", [0, 30])
def test_exponential(staircase: bool, begin: int) -> None:
    schedule = schedules.exponential(
        0.2, transition_steps=20, decay_rate=0.5, transition_begin=begin, staircase=staircase
    )
    for step in range(STEPS):
        exponent = max(step - begin, 0) / 20
        if staircase:
            exponent = math.floor(exponent)
        assert schedule(step) == pytest.approx(0.2 * 0.5**exponent, rel=RTOL), step


def test_exponential_end_value_is_a_floor_for_decay_and_a_ceiling_for_growth() -> None:
    decay = schedules.exponential(1.0, 10, decay_rate=0.5, end_value=0.1)
    assert min(values(decay)) == 0.1 and decay(10) == 0.5
    growth = schedules.exponential(0.01, 10, decay_rate=2.0, end_value=1.0)
    assert max(values(growth)) == 1.0 and growth(10) == 0.02


def test_step_decay() -> None:
    schedule = schedules.step_decay(0.1, step_size=30, gamma=0.5)
    expected = [0.1 * 0.5 ** (step // 30) for step in range(STEPS)]
    np.testing.assert_allclose(values(schedule), expected, rtol=RTOL, atol=0)


@pytest.mark.parametrize(("end_value", "exponent"), [(0.0, 1.0), (0.001, 1.0), (0.01, 2.0)])
def test_cosine_decay_is_clamped_after_decay_steps(end_value: float, exponent: float) -> None:
    schedule = schedules.cosine_decay(0.1, decay_steps=120, end_value=end_value, exponent=exponent)
    for step in range(STEPS):
        fraction = min(step, 120) / 120
        factor = (0.5 * (1 + math.cos(math.pi * fraction))) ** exponent
        expected = end_value + (0.1 - end_value) * factor
        assert schedule(step) == pytest.approx(expected, rel=RTOL, abs=1e-18), step
    assert schedule(120) == pytest.approx(end_value, abs=1e-18)
    assert all(schedule(step) == schedule(120) for step in range(120, STEPS))


@pytest.mark.parametrize("warmup_steps", [0, 1, 25])
def test_warmup_cosine_decay(warmup_steps: int) -> None:
    schedule = schedules.warmup_cosine_decay(
        init_value=0.001, peak_value=0.1, warmup_steps=warmup_steps, decay_steps=200, end_value=1e-4
    )
    for step in range(STEPS):
        if step < warmup_steps:
            expected = 0.001 + (0.1 - 0.001) * step / warmup_steps
        else:
            fraction = min(step - warmup_steps, 200 - warmup_steps) / (200 - warmup_steps)
            expected = 1e-4 + (0.1 - 1e-4) * (1 + math.cos(math.pi * fraction)) / 2
        assert schedule(step) == pytest.approx(expected, rel=RTOL), step
    assert schedule(warmup_steps) == 0.1  # the peak, exactly
    assert max(values(schedule)) == 0.1


def test_join_counts_each_piece_from_its_boundary() -> None:
    first, second, third = (schedules.linear(0.0, 1.0, 10), schedules.constant(7.0), math.sqrt)
    schedule = schedules.join([first, second, third], boundaries=[10, 25])
    for step in range(60):
        if step < 10:
            expected = first(step)
        elif step < 25:
            expected = 7.0
        else:
            expected = math.sqrt(step - 25)
        assert schedule(step) == expected, step


def test_join_of_one_schedule_is_that_schedule() -> None:
    piece = schedules.exponential(1.0, 3, 0.9)
    joined = schedules.join([piece], [])
    assert [joined(step) for step in range(50)] == [piece(step) for step in range(50)]


def test_schedules_are_pure_and_picklable() -> None:
    schedule = schedules.warmup_cosine_decay(0.0, 1.0, 10, 100, 0.01)
    forward = [schedule(step) for step in range(120)]
    backward = [schedule(step) for step in reversed(range(120))][::-1]
    assert forward == backward
    clone = pickle.loads(pickle.dumps(schedule))
    assert clone == schedule and [clone(step) for step in range(120)] == forward
    # The repr shows the parameters, so a logged schedule can be rebuilt.
    assert "decay_steps=90" in repr(schedule) and "boundaries=(10,)" in repr(schedule)


# ---------------------------------------------------------------------------------------------
# Against torch's schedulers that compute the same curves.


def torch_trajectory(build: Callable[[Any, Any], Any], lr: float) -> np.ndarray:
    torch = pytest.importorskip("torch")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = build(torch.optim.lr_scheduler, optimizer)
    lrs = []
    for step in range(STEPS):
        if step:
            optimizer.step()
            scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return np.array(lrs)


TORCH_EQUIVALENTS = [
    pytest.param(
        lambda m, o: m.StepLR(o, step_size=30, gamma=0.5),
        schedules.step_decay(0.1, step_size=30, gamma=0.5),
        STEPS,
        id="step_decay-StepLR",
    ),
    pytest.param(
        lambda m, o: m.ExponentialLR(o, gamma=0.99),
        schedules.exponential(0.1, transition_steps=1, decay_rate=0.99),
        STEPS,
        id="exponential-ExponentialLR",
    ),
    pytest.param(
        lambda m, o: m.PolynomialLR(o, total_iters=200, power=2.0),
        schedules.polynomial(0.1, 0.0, 2.0, transition_steps=200),
        STEPS,
        id="polynomial-PolynomialLR",
    ),
    pytest.param(
        lambda m, o: m.LinearLR(o, start_factor=0.25, end_factor=0.5, total_iters=80),
        schedules.linear(0.025, 0.05, transition_steps=80),
        STEPS,
        id="linear-LinearLR",
    ),
    pytest.param(
        # torch's cosine climbs back after T_max; the schedules agree up to T_max.
        lambda m, o: m.CosineAnnealingLR(o, T_max=250, eta_min=0.001),
        schedules.cosine_decay(0.1, decay_steps=250, end_value=0.001),
        251,
        id="cosine_decay-CosineAnnealingLR",
    ),
    pytest.param(
        lambda m, o: m.SequentialLR(
            o,
            [m.LinearLR(o, start_factor=0.1, total_iters=30), m.CosineAnnealingLR(o, 270, 1e-4)],
            milestones=[30],
        ),
        schedules.warmup_cosine_decay(0.01, 0.1, warmup_steps=30, decay_steps=300, end_value=1e-4),
        STEPS,
        id="warmup_cosine_decay-SequentialLR",
    ),
]


@pytest.mark.parametrize(("build", "schedule", "steps"), TORCH_EQUIVALENTS)
def test_matches_torch(build: Any, schedule: Callable[[int], float], steps: int) -> None:
    reference = torch_trajectory(build, 0.1)[:steps]
    np.testing.assert_allclose(values(schedule, steps), reference, rtol=RTOL, atol=1e-18)


# ---------------------------------------------------------------------------------------------
# Bad arguments: errors at construction that show the value.

BAD_ARGUMENTS = [
    (lambda: schedules.constant("0.1"), TypeError, "value must be a real number, got '0.1'"),
    (lambda: schedules.constant(math.inf), ValueError, "value must be finite, got inf"),
    (lambda: schedules.linear(0.0, 1.0, 0), ValueError, "transition_steps must be positive, got 0"),
    (lambda: schedules.linear(0.0, 1.0, -5), ValueError, "transition_steps .* -5"),
    (lambda: schedules.linear(0.0, 1.0, 2.5), TypeError, "transition_steps .* integer, got 2.5"),
    (lambda: schedules.linear(0.0, 1.0, 10, -1), ValueError, "transition_begin must be >= 0"),
    (lambda: schedules.polynomial(1.0, 0.0, 0.0, 10), ValueError, "power must be > 0, got 0.0"),
    (lambda: schedules.polynomial(1.0, 0.0, math.nan, 10), ValueError, "power must be finite"),
    (lambda: schedules.exponential(1.0, 0, 0.5), ValueError, "transition_steps .* 0"),
    (lambda: schedules.exponential(1.0, 10, 0.0), ValueError, "decay_rate must be > 0, got 0.0"),
    (lambda: schedules.exponential(1.0, 10, -0.5), ValueError, "decay_rate .* -0.5"),
    (lambda: schedules.step_decay(1.0, 0), ValueError, "step_size must be positive, got 0"),
    (lambda: schedules.step_decay(1.0, 10, gamma=0), ValueError, "gamma must be > 0, got 0"),
    (lambda: schedules.step_decay(1.0, 10, gamma=-2), ValueError, "gamma .* -2"),
    (lambda: schedules.cosine_decay(1.0, 0), ValueError, "decay_steps must be positive, got 0"),
    (lambda: schedules.cosine_decay(1.0, True), TypeError, "decay_steps .* integer, got True"),
    (lambda: schedules.cosine_decay(1.0, 10, exponent=0), ValueError, "exponent .* 0"),
    (
        lambda: schedules.warmup_cosine_decay(0.0, 1.0, warmup_steps=120, decay_steps=100),
        ValueError,
        r"warmup_steps \(120\) must be shorter than decay_steps \(100\)",
    ),
    (
        lambda: schedules.warmup_cosine_decay(0.0, 1.0, warmup_steps=100, decay_steps=100),
        ValueError,
        r"warmup_steps \(100\) must be shorter",
    ),
    (
        lambda: schedules.warmup_cosine_decay(0.0, 1.0, warmup_steps=-1, decay_steps=100),
        ValueError,
        "warmup_steps must be >= 0, got -1",
    ),
    (lambda: schedules.join([], []), ValueError, "at least one schedule"),
    (lambda: schedules.join([0.1], []), TypeError, r"schedules\[0\] must be callable.*0.1"),
    (
        lambda: schedules.join([math.sqrt, math.sqrt], []),
        ValueError,
        r"2 schedules need 1 boundaries, got 0: \[\]",
    ),
    (
        lambda: schedules.join([math.sqrt] * 3, [20, 10]),
        ValueError,
        r"strictly increasing, got \[20, 10\]",
    ),
    (
        lambda: schedules.join([math.sqrt] * 3, [10, 10]),
        ValueError,
        r"strictly increasing, got \[10, 10\]",
    ),
    (
        lambda: schedules.join([math.sqrt] * 2, [0]),
        ValueError,
        r"boundaries\[0\] must be positive, got 0",
    ),
]


@pytest.mark.parametrize(("make", "error", "message"), BAD_ARGUMENTS)
def test_bad_arguments(make: Callable[[], Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        make()


# ---------------------------------------------------------------------------------------------
# ScheduleLR: a schedule driving an optimizer.


def test_schedule_lr_sets_the_schedule_value_at_every_step() -> None:
    schedule = schedules.warmup_cosine_decay(0.0, 0.1, warmup_steps=20, decay_steps=250)
    optimizer = DuckOptimizer((0.5,))  # the optimizer's own lr is replaced from step 0
    scheduler = lr_scheduler.ScheduleLR(optimizer, schedule)
    for step in range(STEPS):
        if step:
            optimizer.step()
            scheduler.step()
        assert optimizer.param_groups[0]["lr"] == schedule(step)
        assert scheduler.get_last_lr() == [schedule(step)]
        assert scheduler.last_epoch == step


def test_schedule_lr_one_schedule_per_group() -> None:
    first = schedules.step_decay(0.1, 10)
    second = schedules.linear(0.0, 0.01, 50)
    optimizer = DuckOptimizer((1.0, 1.0))
    scheduler = lr_scheduler.ScheduleLR(optimizer, [first, second])
    for step in range(1, 100):
        optimizer.step()
        scheduler.step()
        assert scheduler.get_last_lr() == [first(step), second(step)]


def test_schedule_lr_resumes_from_last_epoch_alone() -> None:
    schedule = schedules.cosine_decay(0.1, 200, end_value=0.001)
    optimizer = DuckOptimizer()
    resumed = lr_scheduler.ScheduleLR(optimizer, schedule, last_epoch=76)  # no state, no lr
    assert optimizer.param_groups[0]["lr"] == schedule(77)
    optimizer.step()
    resumed.step()
    assert optimizer.param_groups[0]["lr"] == schedule(78)


def test_schedule_lr_state_dict_holds_only_the_epoch() -> None:
    schedule = schedules.exponential(0.1, 5, 0.5)
    optimizer = DuckOptimizer()
    scheduler = lr_scheduler.ScheduleLR(optimizer, schedule)
    for _ in range(12):
        optimizer.step()
        scheduler.step()
    state = pickle.loads(pickle.dumps(scheduler.state_dict()))
    assert "schedules" not in state
    fresh = DuckOptimizer()
    restored = lr_scheduler.ScheduleLR(fresh, schedule)
    restored.load_state_dict(state)
    assert fresh.param_groups[0]["lr"] == schedule(12)
    fresh.step()
    restored.step()
    assert fresh.param_groups[0]["lr"] == schedule(13)


def test_schedule_lr_inside_sequential_lr() -> None:
    optimizer = DuckOptimizer((0.1,))
    warmup = lr_scheduler.LinearLR(optimizer, start_factor=0.5, total_iters=4)
    tail = lr_scheduler.ScheduleLR(optimizer, schedules.step_decay(0.05, 3))
    scheduler = lr_scheduler.SequentialLR(optimizer, [warmup, tail], milestones=[4])
    lrs = [optimizer.param_groups[0]["lr"]]
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    expected = [0.1 * (0.5 + 0.5 * t / 4) for t in range(4)]
    expected += [0.05 * 0.1 ** ((t - 4) // 3) for t in range(4, 11)]
    np.testing.assert_allclose(lrs, expected, rtol=RTOL)


def test_schedule_lr_on_a_torch_optimizer() -> None:
    torch = pytest.importorskip("torch")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = schedules.linear(0.0, 0.2, 10)
    scheduler = lr_scheduler.ScheduleLR(optimizer, schedule)
    for step in range(1, 15):
        optimizer.step()
        scheduler.step()
        assert optimizer.param_groups[0]["lr"] == schedule(step)


def test_schedule_lr_bad_arguments() -> None:
    with pytest.raises(ValueError, match="Expected 2 schedules .* got 1"):
        lr_scheduler.ScheduleLR(DuckOptimizer((0.1, 0.2)), [schedules.constant(0.1)])
    with pytest.raises(TypeError, match="is not an optimizer"):
        lr_scheduler.ScheduleLR([{"lr": 0.1}], schedules.constant(0.1))


def test_plot_a_schedule_returns_its_values() -> None:
    pytest.importorskip("matplotlib")
    schedule = schedules.warmup_cosine_decay(0.0, 0.1, 10, 100, 0.001)
    assert lr_scheduler.plot(schedule, 120) == [schedule(step) for step in range(120)]
