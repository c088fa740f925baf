"""Hyperparameter checks shared by the functional API and the optimizer classes.

Messages follow torch.optim's wording ("Invalid learning rate: -1.0") so that users who know torch
recognise them, and always show the offending value. NaN fails every check because every check is
written as ``not (low <= value)``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def check_lr(lr: float) -> None:
    if not 0.0 <= _real("learning rate", lr) < math.inf:
        raise ValueError(f"Invalid learning rate: {lr}")


def check_non_negative(name: str, value: float) -> None:
    """``value >= 0`` and finite, e.g. weight_decay, momentum, eps, lr_decay."""
    if not (0.0 <= _real(name, value) < math.inf):
        raise ValueError(f"Invalid {name} value: {value}")


def check_unit_interval(name: str, value: float, *, closed: bool = False) -> None:
    """``0 <= value < 1`` (or ``<= 1`` when closed), e.g. betas, rho, alpha, dampening."""
    real = _real(name, value)
    ok = 0.0 <= real <= 1.0 if closed else 0.0 <= real < 1.0
    if not ok:
        bound = "]" if closed else ")"
        raise ValueError(f"Invalid {name} value: {value} (must be in [0, 1{bound})")


def check_betas(betas: tuple[float, float]) -> None:
    if len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for index, beta in enumerate(betas):
        if not 0.0 <= _real(f"beta parameter at index {index}", beta) < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index}: {beta}")


# Step counts are int64 in the compiled core; leave room for the increments of a long run.
MAX_STEP = 2**62


def check_step(step: int) -> None:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(
            f"step must be an int (the 1-based number of the step being taken), got {step!r}"
        )
    if not 1 <= step <= MAX_STEP:
        raise ValueError(f"Invalid step: {step} (steps are 1-based and at most 2**62)")


def check_flag(name: str, value: object) -> bool:
    """A boolean option: ``True``/``False`` (or NumPy's), never a truthy string or number."""
    if value is True or value is False:
        return value
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_nesterov(nesterov: bool, momentum: float, dampening: float) -> None:
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(
            "Nesterov momentum requires a momentum and zero dampening "
            f"(got momentum={momentum}, dampening={dampening})"
        )


def _real(name: str, value: object) -> float:
    """``value`` as the float64 the compiled core receives, which is what the checks test: a
    ``Fraction`` just below 1 or a ``numpy.longdouble`` beyond float64's range would pass a test
    in its own type and round to an out-of-range float64 (1.0, inf) on the way in."""
    if type(value) is float:  # the common case, without the costlier ABC checks below
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"Invalid {name}: {value} does not fit in a float64") from None
