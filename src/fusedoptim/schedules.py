"""Pure learning-rate schedules: functions ``step -> value``.

A schedule is any callable that maps a step count (``0, 1, 2, ...``) to a number. The ones built
here are small frozen objects: they hold no state, so the value at step ``n`` is a function of ``n``
alone. That is what makes resuming trivial (a restarted run asks for step ``n`` and gets the value
the uninterrupted run had) and what lets them compose with :func:`join`. Every constructor checks
its arguments at once and names the offending value, so a typo fails where it was made rather than
thousands of steps later.

Drive an optimizer with one through :class:`fusedoptim.lr_scheduler.ScheduleLR`::

    >>> from fusedoptim import schedules
    >>> schedule = schedules.warmup_cosine_decay(
    ...     init_value=0.0, peak_value=0.1, warmup_steps=10, decay_steps=100, end_value=0.001
    ... )
    >>> [round(schedule(step), 4) for step in (0, 5, 10, 55, 100, 150)]
    [0.0, 0.05, 0.1, 0.0505, 0.001, 0.001]

The names and conventions follow optax's schedules (``transition_begin``, ``staircase``,
``decay_steps`` counting the warmup), not torch's epoch-based schedulers.
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

__all__ = [
    "Schedule",
    "constant",
    "cosine_decay",
    "exponential",
    "join",
    "linear",
    "polynomial",
    "step_decay",
    "warmup_cosine_decay",
]

#: What every schedule is: a callable from a step count to a value.
Schedule = Callable[[float], float]


# ---------------------------------------------------------------------------------------------
# Argument checks. Each names the argument and shows the bad value, as torch and optax do.


def _check_real(name: str, value: object) -> float:
    # bool is an Integral; True as a learning rate is almost certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _check_positive(name: str, value: object) -> float:
    value = _check_real(name, value)
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def _check_count(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        relation = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {relation}, got {value!r}")
    return int(value)


def _elapsed(step: float, begin: int) -> float:
    """Steps since ``begin``, never negative: before it a schedule holds its initial value."""
    return max(float(step) - begin, 0.0)


# ---------------------------------------------------------------------------------------------
# The schedules. Frozen dataclasses rather than closures: they pickle (checkpoints, worker
# processes), compare equal when built alike, and print their parameters.


@dataclass(frozen=True)
class _Constant:
    value: float

    def __call__(self, step: float) -> float:
        return self.value


@dataclass(frozen=True)
class _Polynomial:
    init_value: float
    end_value: float
    power: float
    transition_steps: int
    transition_begin: int

    def __call__(self, step: float) -> float:
        done = min(_elapsed(step, self.transition_begin), self.transition_steps)
        remaining = 1.0 - done / self.transition_steps
        return (self.init_value - self.end_value) * remaining**self.power + self.end_value


@dataclass(frozen=True)
class _Linear:
    init_value: float
    end_value: float
    transition_steps: int
    transition_begin: int

    def __call__(self, step: float) -> float:
        fraction = min(_elapsed(step, self.transition_begin) / self.transition_steps, 1.0)
        # This form of the interpolation is exact at both ends (fraction 0 and 1).
        return (1.0 - fraction) * self.init_value + fraction * self.end_value


@dataclass(frozen=True)
class _Exponential:
    init_value: float
    transition_steps: int
    decay_rate: float
    transition_begin: int
    staircase: bool
    end_value: float | None

    def __call__(self, step: float) -> float:
        exponent = _elapsed(step, self.transition_begin) / self.transition_steps
        if self.staircase:
            exponent = math.floor(exponent)
        value = self.init_value * self.decay_rate**exponent
        if self.end_value is None:
            return value
        # end_value is a floor for a decay and a ceiling for a growth.
        if self.decay_rate < 1.0:
            return max(value, self.end_value)
        return min(value, self.end_value)


@dataclass(frozen=True)
class _StepDecay:
    init_value: float
    step_size: int
    gamma: float

    def __call__(self, step: float) -> float:
        return self.init_value * self.gamma ** math.floor(max(float(step), 0.0) / self.step_size)


@dataclass(frozen=True)
class _CosineDecay:
    init_value: float
    decay_steps: int
    end_value: float
    exponent: float

    def __call__(self, step: float) -> float:
        # Clamped at decay_steps, unlike torch's CosineAnnealingLR which rises again after T_max.
        done = min(max(float(step), 0.0), self.decay_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * done / self.decay_steps))
        return self.end_value + (self.init_value - self.end_value) * cosine**self.exponent


@dataclass(frozen=True)
class _Join:
    schedules: tuple[Schedule, ...]
    boundaries: tuple[int, ...]

    def __call__(self, step: float) -> float:
        index = bisect_right(self.boundaries, step)
        # Each piece counts its own steps from the boundary where it takes over.
        offset = self.boundaries[index - 1] if index > 0 else 0
        return self.schedules[index](step - offset)


# ---------------------------------------------------------------------------------------------
# Public constructors.


def constant(value: float) -> Schedule:
    """The same value at every step.

    Args:
        value: the value returned at every step.

    Example:
        >>> from fusedoptim.schedules import constant
        >>> constant(0.1)(1000)
        0.1
    """
    return _Constant(_check_real("value", value))


def polynomial(
    init_value: float,
    end_value: float,
    power: float,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    r"""Polynomial decay from ``init_value`` to ``end_value`` over ``transition_steps`` steps.

    .. math::
        v(t) = (v_0 - v_\infty) \left(1 - \frac{\min(\max(t - b, 0), T)}{T}\right)^p + v_\infty

    Args:
        init_value: value up to and at step ``transition_begin``.
        end_value: value from step ``transition_begin + transition_steps`` on.
        power: the exponent ``p`` (> 0); 1 is a straight line.
        transition_steps: the length ``T`` of the transition (> 0).
        transition_begin: the step ``b`` where the transition starts (>= 0, default 0).

    Example:
        >>> from fusedoptim.schedules import polynomial
        >>> schedule = polynomial(1.0, 0.0, power=2.0, transition_steps=10)
        >>> schedule(0), schedule(5), schedule(10), schedule(20)
        (1.0, 0.25, 0.0, 0.0)
    """
    return _Polynomial(
        _check_real("init_value", init_value),
        _check_real("end_value", end_value),
        _check_positive("power", power),
        _check_count("transition_steps", transition_steps, minimum=1),
        _check_count("transition_begin", transition_begin, minimum=0),
    )


def linear(
    init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """A straight line from ``init_value`` to ``end_value`` over ``transition_steps`` steps.

    Held at ``init_value`` before ``transition_begin`` and at ``end_value`` after the transition;
    :func:`polynomial` with ``power=1``, computed so that both ends are exact.

    Args:
        init_value: value up to and at step ``transition_begin``.
        end_value: value from step ``transition_begin + transition_steps`` on.
        transition_steps: the length of the transition (> 0).
        transition_begin: the step where the transition starts (>= 0, default 0).

    Example:
        >>> from fusedoptim.schedules import linear
        >>> warmup = linear(0.0, 0.1, transition_steps=4)
        >>> [warmup(step) for step in range(6)]
        [0.0, 0.025, 0.05, 0.07500000000000001, 0.1, 0.1]
    """
    return _Linear(
        _check_real("init_value", init_value),
        _check_real("end_value", end_value),
        _check_count("transition_steps", transition_steps, minimum=1),
        _check_count("transition_begin", transition_begin, minimum=0),
    )


def exponential(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    r"""Exponential decay (or growth): ``init_value * decay_rate ** ((t - b) / transition_steps)``.

    Args:
        init_value: value up to and at step ``transition_begin``.
        transition_steps: steps over which the value is multiplied by ``decay_rate`` once (> 0).
        decay_rate: the factor per ``transition_steps`` steps (> 0; < 1 decays, > 1 grows).
        transition_begin: the step where the decay starts (>= 0, default 0).
        staircase: if True, the exponent is floored, so the value changes every
            ``transition_steps`` steps instead of at every step (default False).
        end_value: optional floor (for a decay) or ceiling (for a growth) on the value.

    Example:
        >>> from fusedoptim.schedules import exponential
        >>> schedule = exponential(1.0, transition_steps=10, decay_rate=0.5)
        >>> schedule(0), schedule(10), schedule(20)
        (1.0, 0.5, 0.25)
        >>> exponential(1.0, 10, 0.5, staircase=True)(19)
        0.5
    """
    checked_end = None if end_value is None else _check_real("end_value", end_value)
    return _Exponential(
        _check_real("init_value", init_value),
        _check_count("transition_steps", transition_steps, minimum=1),
        _check_positive("decay_rate", decay_rate),
        _check_count("transition_begin", transition_begin, minimum=0),
        bool(staircase),
        checked_end,
    )


def step_decay(init_value: float, step_size: int, gamma: float = 0.1) -> Schedule:
    r"""Multiply by ``gamma`` every ``step_size`` steps: ``init * gamma ** floor(t / step_size)``.

    The pure form of :class:`fusedoptim.lr_scheduler.StepLR`.

    Args:
        init_value: value for the first ``step_size`` steps.
        step_size: steps between two decays (> 0).
        gamma: multiplicative factor at each decay (> 0, default 0.1).

    Example:
        >>> from fusedoptim.schedules import step_decay
        >>> schedule = step_decay(1.0, step_size=30, gamma=0.5)
        >>> schedule(29), schedule(30), schedule(60)
        (1.0, 0.5, 0.25)
    """
    return _StepDecay(
        _check_real("init_value", init_value),
        _check_count("step_size", step_size, minimum=1),
        _check_positive("gamma", gamma),
    )


def cosine_decay(
    init_value: float, decay_steps: int, end_value: float = 0.0, exponent: float = 1.0
) -> Schedule:
    r"""Half a cosine from ``init_value`` down to ``end_value`` over ``decay_steps`` steps.

    .. math::
        v(t) = v_\infty + (v_0 - v_\infty)
               \left(\tfrac{1}{2}\left(1 + \cos\frac{\pi \min(t, T)}{T}\right)\right)^{e}

    Held at ``end_value`` after ``decay_steps`` (torch's ``CosineAnnealingLR`` instead climbs back
    up after ``T_max``).

    Args:
        init_value: value at step 0.
        decay_steps: the length ``T`` of the decay (> 0).
        end_value: value from step ``decay_steps`` on (default 0).
        exponent: the exponent ``e`` of the cosine factor (> 0, default 1).

    Example:
        >>> from fusedoptim.schedules import cosine_decay
        >>> schedule = cosine_decay(1.0, decay_steps=100, end_value=0.1)
        >>> schedule(0), round(schedule(50), 12), schedule(100), schedule(500)
        (1.0, 0.55, 0.1, 0.1)
    """
    return _CosineDecay(
        _check_real("init_value", init_value),
        _check_count("decay_steps", decay_steps, minimum=1),
        _check_real("end_value", end_value),
        _check_positive("exponent", exponent),
    )


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Run ``schedules`` one after another, switching at ``boundaries``.

    Schedule ``i + 1`` takes over at step ``boundaries[i]`` and is evaluated at
    ``step - boundaries[i]``: each piece counts its own steps from where it starts, so pieces are
    written as if each began at step 0.

    Args:
        schedules: the pieces, at least one, each a callable ``step -> value``.
        boundaries: ``len(schedules) - 1`` strictly increasing positive steps.

    Example:
        >>> from fusedoptim.schedules import cosine_decay, join, linear
        >>> schedule = join([linear(0.0, 1.0, 10), cosine_decay(1.0, 90)], boundaries=[10])
        >>> schedule(5), schedule(10), schedule(100)
        (0.5, 1.0, 0.0)
    """
    schedules = tuple(schedules)
    boundaries = tuple(boundaries)
    if not schedules:
        raise ValueError("join needs at least one schedule, got none")
    for index, schedule in enumerate(schedules):
        if not callable(schedule):
            raise TypeError(
                f"schedules[{index}] must be callable (step -> value), got {schedule!r}"
            )
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"join needs one boundary between each pair of schedules: {len(schedules)} schedules "
            f"need {len(schedules) - 1} boundaries, got {len(boundaries)}: {list(boundaries)}"
        )
    for index, boundary in enumerate(boundaries):
        _check_count(f"boundaries[{index}]", boundary, minimum=1)
    if any(later <= earlier for earlier, later in zip(boundaries, boundaries[1:])):
        raise ValueError(f"boundaries must be strictly increasing, got {list(boundaries)}")
    return _Join(schedules, tuple(int(boundary) for boundary in boundaries))


def warmup_cosine_decay(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    """Linear warmup from ``init_value`` to ``peak_value``, then cosine decay to ``end_value``.

    The warmup takes ``warmup_steps`` steps; the cosine takes the rest of ``decay_steps``, which
    counts the warmup (as optax does), so the schedule reaches ``end_value`` at step
    ``decay_steps`` and stays there. It is :func:`join` of :func:`linear` and
    :func:`cosine_decay`.

    Args:
        init_value: value at step 0.
        peak_value: value at step ``warmup_steps``, the end of the warmup.
        warmup_steps: length of the warmup (>= 0 and < ``decay_steps``).
        decay_steps: total length of warmup plus decay (> 0).
        end_value: value from step ``decay_steps`` on (default 0).
        exponent: exponent of the cosine factor (> 0, default 1).

    Example:
        >>> from fusedoptim.schedules import warmup_cosine_decay
        >>> schedule = warmup_cosine_decay(0.0, 1.0, warmup_steps=10, decay_steps=110)
        >>> schedule(0), schedule(5), schedule(10), round(schedule(60), 12), schedule(110)
        (0.0, 0.5, 1.0, 0.5, 0.0)
    """
    warmup_steps = _check_count("warmup_steps", warmup_steps, minimum=0)
    decay_steps = _check_count("decay_steps", decay_steps, minimum=1)
    if warmup_steps >= decay_steps:
        raise ValueError(
            f"warmup_steps ({warmup_steps}) must be shorter than decay_steps ({decay_steps}), "
            "which counts the warmup: nothing would be left for the cosine decay"
        )
    peak_value = _check_real("peak_value", peak_value)
    decay = cosine_decay(peak_value, decay_steps - warmup_steps, end_value, exponent)
    if warmup_steps == 0:
        return decay
    warmup = linear(init_value, peak_value, warmup_steps)
    return join([warmup, decay], [warmup_steps])
