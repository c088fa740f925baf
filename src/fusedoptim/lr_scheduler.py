"""Learning-rate schedulers with the names, arguments, defaults and numbers of torch's.

Every scheduler here works on *any* object with torch-style ``param_groups`` (a list of dicts, each
with an ``'lr'``, plus ``'momentum'`` or ``'betas'`` for the schedulers that cycle momentum):
fusedoptim's optimizers, torch's own, or a plain class. The call order is torch's::

    >>> from fusedoptim import lr_scheduler
    >>> class Optimizer:  # the smallest thing a scheduler can drive
    ...     def __init__(self, lr):
    ...         self.param_groups = [{"lr": lr}]
    ...     def step(self):
    ...         pass
    >>> optimizer = Optimizer(lr=0.1)
    >>> scheduler = lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     lrs.append(scheduler.get_last_lr()[0])
    ...     optimizer.step()  # first the optimizer,
    ...     scheduler.step()  # then the scheduler
    >>> lrs
    [0.1, 0.1, 0.05, 0.05, 0.025]

The arithmetic is torch's, operation for operation (most schedulers update the lr *recursively*
from the optimizer's current lr, which is what lets several of them be chained on one optimizer),
so a run gives the same learning rates as torch 2.13 (tested to 1e-12 relative over 300 steps of
every scheduler and option; in practice bit-identical), quirks included:
``CosineAnnealingLR`` is not clamped after ``T_max`` (it climbs back up), ``ChainedScheduler``
multiplies the factors of its schedulers, ``MultiStepLR`` accepts milestones in any order and
repeated milestones compound.

Where this module deliberately differs from torch (each difference is tested):

* Arguments are checked at construction: zero or negative periods (``step_size``, ``T_max``,
  ``total_iters``, ...), ``gamma <= 0``, ``SequentialLR`` milestones that are not strictly
  increasing, a three-phase ``OneCycleLR`` whose warmup does not fit, something that is not an
  optimizer. Torch accepts several of these and fails later or silently.
* ``load_state_dict`` also puts the saved learning rates (and the momentum a cycling scheduler
  set) back into the optimizer. Torch trusts whatever lr the optimizer holds, so a scheduler
  restored into an optimizer whose state was not loaded, or a ``SequentialLR`` built after the
  optimizer state was loaded (its constructor resets the lr), continues from the wrong lr
  (pytorch/pytorch#29697, #119168).
* A scheduler built with ``last_epoch=N >= 0`` sets the lr of epoch ``N + 1`` from its closed
  form, whatever lr the optimizer holds; ``SequentialLR(last_epoch=N)`` replays its schedulers up
  to epoch ``N + 1`` instead of restarting the first one (pytorch/pytorch#162591).
* ``CosineAnnealingWarmRestarts.step(epoch)`` finds the current cycle exactly; torch's
  floating-point logarithm misses some cycle starts (``T_0=1, T_mult=10``, epoch 111 gives
  ``eta_min`` instead of the restart), and this scheduler also warns about the call order.
* ``state_dict()`` returns a copy, so a saved state does not change as training goes on.
* A param group added to (or removed from) the optimizer after the scheduler was built: where
  torch's step raises (``ValueError`` from a strict ``zip``, ``KeyError`` in ``OneCycleLR``,
  ``RuntimeError`` in ``ReduceLROnPlateau``), the same exception is raised at the same step,
  with a message that says what happened, and *before* anything changes; torch's has written
  some of the lrs by then. Where torch's goes on, the lrs are torch's.

Beyond torch: :class:`ScheduleLR` drives an optimizer with a pure schedule from
:mod:`fusedoptim.schedules`, :class:`AdaptiveCosineAnnealingLR` cuts the peak of a restarting
cosine when the monitored metric gets worse, and :func:`plot` draws any of them.
"""

from __future__ import annotations

import copy
import inspect
import math
import numbers
import reprlib
import types
import warnings
import weakref
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, MutableMapping, Sequence
from functools import partial
from typing import Any, Callable, SupportsFloat

__all__ = [
    "AdaptiveCosineAnnealingLR",
    "ChainedScheduler",
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "ExponentialLR",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "MultiplicativeLR",
    "OneCycleLR",
    "PolynomialLR",
    "ReduceLROnPlateau",
    "ScheduleLR",
    "SequentialLR",
    "StepLR",
    "plot",
]

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` is deprecated, as in torch: call "
    "`scheduler.step()` without it. While it is accepted, an explicit epoch uses the closed form "
    "of the schedule where there is one instead of the chainable form."
)

_ORDER_WARNING = (
    "Detected call of `lr_scheduler.step()` before `optimizer.step()`. Call them in the "
    "opposite order: `optimizer.step()` before `lr_scheduler.step()`. Otherwise the first value "
    "of the learning rate schedule is skipped. See "
    "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"
)

_OVERRIDDEN_WARNING = (
    "Seems like `optimizer.step()` has been overridden after learning rate scheduler "
    "initialization. Please, make sure to call `optimizer.step()` before `lr_scheduler.step()`. "
    "See https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"
)


# ---------------------------------------------------------------------------------------------
# Argument checks: each names the argument and shows the offending value.


def _check_optimizer(optimizer: object) -> None:
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, (list, tuple)) or not all(
        isinstance(group, MutableMapping) for group in groups
    ):
        raise TypeError(
            f"{type(optimizer).__name__} is not an optimizer: a scheduler needs an object with a "
            f"`param_groups` list of dicts that each have an 'lr', got {reprlib.repr(optimizer)}"
        )
    if not groups:
        raise ValueError(f"{type(optimizer).__name__} has no param_groups to schedule")
    for index, group in enumerate(groups):
        if "lr" not in group:
            raise TypeError(
                f"param_groups[{index}] of {type(optimizer).__name__} has no 'lr', so there is "
                f"no learning rate to schedule (keys: {sorted(group)})"
            )


def _check_real(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")


def _check_positive(name: str, value: object) -> None:
    _check_real(name, value)
    if not value > 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be > 0, got {value!r}")


def _check_non_negative(name: str, value: object) -> None:
    _check_real(name, value)
    if not value >= 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        relation = "a positive integer" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {relation}, got {value!r}")


def _check_last_epoch(last_epoch: object) -> None:
    _check_int("last_epoch", last_epoch, minimum=-1)


def _steps_with_metric(scheduler: object) -> bool:
    """Whether ``scheduler.step`` needs an argument (a monitored metric), as ReduceLROnPlateau's."""
    if isinstance(scheduler, (ReduceLROnPlateau, AdaptiveCosineAnnealingLR)):
        return True
    try:
        parameters = inspect.signature(scheduler.step).parameters.values()  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return False
    return any(
        parameter.default is inspect.Parameter.empty
        and parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
        for parameter in parameters
    )


def _check_schedulers(owner: str, optimizer: Any, schedulers: Sequence[Any]) -> None:
    if len(schedulers) < 1:
        raise ValueError(f"{owner} expects at least one scheduler, but got no scheduler.")
    for index, scheduler in enumerate(schedulers):
        if not hasattr(scheduler, "optimizer"):
            raise TypeError(
                f"{owner}: the scheduler at index {index} ({type(scheduler).__name__}) "
                "has no `optimizer` attribute"
            )
        if _steps_with_metric(scheduler):
            raise ValueError(
                f"{owner} does not support {type(scheduler).__name__} (at index {index}): its "
                "step() needs the monitored metric, which a composite scheduler cannot pass on"
            )
        if scheduler.optimizer is not optimizer:
            raise ValueError(
                f"{owner} expects all schedulers to belong to the same optimizer, but the "
                f"{type(scheduler).__name__} at index {index} drives another optimizer"
            )


# ---------------------------------------------------------------------------------------------
# Reading and writing param-group values. Values are usually floats; torch also allows 0-d
# tensors, which must be updated in place (a captured CUDA graph holds on to them).


def _copy_value(value: Any) -> Any:
    return value.clone() if hasattr(value, "clone") else value


def _group_values(optimizer: Any, key: str) -> list[Any]:
    return [_copy_value(group[key]) for group in optimizer.param_groups]


def _set_group_value(group: MutableMapping[str, Any], key: str, value: Any) -> None:
    current = group.get(key)
    if hasattr(current, "fill_"):
        current.fill_(float(value))
    else:
        group[key] = value


def _format_param(name: str, optimizer: Any, value: Any) -> list[Any]:
    """One value per param group: a scalar is repeated, a list must have one per group."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. {name} has "
                f"{len(value)} values, param_groups has {len(optimizer.param_groups)}."
            )
        return [_copy_value(item) for item in value]
    return [_copy_value(value) for _ in optimizer.param_groups]


def _uses_betas(optimizer: Any, owner: str) -> bool:
    """Whether momentum lives in ``betas[0]`` (Adam-like) or ``momentum`` (SGD-like)."""
    # torch asks optimizer.defaults; a duck-typed optimizer may only have its groups.
    defaults = getattr(optimizer, "defaults", None)
    keys = defaults if isinstance(defaults, MutableMapping) else optimizer.param_groups[0]
    if "momentum" not in keys and "betas" not in keys:
        raise ValueError(
            f"{owner}: optimizer must support momentum or beta1 with `cycle_momentum` option "
            f"enabled (its defaults have neither 'momentum' nor 'betas'; pass "
            "cycle_momentum=False)"
        )
    return "betas" in keys


def _set_momentum(group: MutableMapping[str, Any], value: float, use_beta1: bool) -> None:
    if use_beta1:
        group["betas"] = (value, *group["betas"][1:])
    else:
        group["momentum"] = value


# ---------------------------------------------------------------------------------------------
# Param groups added or removed after a scheduler was built. Most schedulers keep one value per
# group from their construction (base_lrs, lr_lambdas, max_lrs, ...); torch's step zips these
# with the optimizer's groups with strict=True and raises ValueError mid-step, after writing
# some of the lrs. Here each step checks first, so a step that raises changes nothing.


def _param_groups_changed(scheduler: Any, built_for: int) -> ValueError:
    name = type(scheduler).__name__
    count = len(scheduler.optimizer.param_groups)
    change = "added" if count > built_for else "removed"
    return ValueError(
        f"{name}: the optimizer's param groups changed after the scheduler was built: it has "
        f"{count} param groups now and had {built_for} then (a group was {change}). {name} "
        "keeps one value per param group from its construction, so it cannot schedule them "
        "(torch raises here too). Build the scheduler after adding every param group "
        "(optimizer.add_param_group), or build a new scheduler after changing them."
    )


def _check_scheduler_groups(scheduler: Any, epoch: Any = None) -> None:
    """Raise where ``scheduler``'s next step (``step(epoch)``) cannot handle the optimizer's
    current param groups; a scheduler from elsewhere (torch's) is not checked."""
    check = getattr(scheduler, "_check_param_groups", None)
    if check is not None:
        check(epoch)


# ---------------------------------------------------------------------------------------------
# Watching optimizer.step(), to warn when a scheduler steps before its optimizer ever did.


class _CountingStep:
    """Replaces ``optimizer.step`` on one instance and records that it was called.

    torch patches the bound method the same way; both use the attribute names
    ``_wrapped_by_lr_sched`` (on the wrapper) and ``_opt_called`` (on the optimizer), so torch's
    schedulers and these see each other's wrapper and never wrap twice. The wrapper keeps the
    class's function and a weak reference rather than the bound method, so it does not keep its
    optimizer alive through a cycle, and it pickles and deep-copies along with the optimizer.
    """

    _wrapped_by_lr_sched = True

    def __init__(
        self, optimizer: Any, function: Callable[..., Any] | None, plain: Callable[..., Any] | None
    ) -> None:
        self._optimizer = weakref.ref(optimizer)
        self._function = function  # called with the optimizer as first argument
        self._plain = plain  # a step that is not a method of the optimizer, called as is
        wrapped = function if function is not None else plain
        self.__name__ = getattr(wrapped, "__name__", "step")
        self.__doc__ = getattr(wrapped, "__doc__", None)

    @classmethod
    def around(cls, optimizer: Any, step: Callable[..., Any]) -> _CountingStep:
        function = getattr(step, "__func__", None)
        if function is not None and getattr(step, "__self__", None) is optimizer:
            return cls(optimizer, function, None)
        return cls(optimizer, None, step)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        optimizer = self._optimizer()
        optimizer._opt_called = True
        if self._function is not None:
            return self._function(optimizer, *args, **kwargs)
        return self._plain(*args, **kwargs)  # type: ignore[misc]

    def __reduce__(self) -> tuple[Any, ...]:
        return (_CountingStep, (self._optimizer(), self._function, self._plain))

    def __repr__(self) -> str:
        return f"<step of {type(self._optimizer()).__name__}, watched by a learning-rate scheduler>"


def _watch_optimizer_steps(optimizer: Any) -> None:
    step = getattr(optimizer, "step", None)
    if step is None or hasattr(step, "_wrapped_by_lr_sched"):
        return
    optimizer.step = _CountingStep.around(optimizer, step)


def _warn_if_optimizer_not_stepped(optimizer: Any) -> None:
    step = getattr(optimizer, "step", None)
    if step is None:
        return  # nothing to watch: an object with param_groups only
    if not hasattr(step, "_wrapped_by_lr_sched"):
        warnings.warn(_OVERRIDDEN_WARNING, UserWarning, stacklevel=3)
    elif not getattr(optimizer, "_opt_called", False):
        warnings.warn(_ORDER_WARNING, UserWarning, stacklevel=3)


# ---------------------------------------------------------------------------------------------
# The base class.


class LRScheduler:
    """Base class: sets ``initial_lr`` in each param group and steps the lr once at construction.

    A subclass implements ``get_lr()`` (the lrs at ``last_epoch``, usually from the optimizer's
    current lrs, so schedulers chain) and, where the schedule has one, ``_get_closed_form_lr()``
    (the lrs at ``last_epoch`` from ``base_lrs`` alone).

    Args:
        optimizer: an object with torch-style ``param_groups``.
        last_epoch: the index of the last epoch, for resuming; -1 (default) starts afresh and
            requires nothing, a value >= 0 requires ``initial_lr`` in every param group.
    """

    _get_lr_called_within_step: bool = False
    _is_initial: bool = False

    def __init__(self, optimizer: Any, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        _check_last_epoch(last_epoch)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", _copy_value(group["lr"]))
        else:
            for index, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{index}] when "
                        f"resuming a scheduler with last_epoch={last_epoch} >= 0: load the "
                        "optimizer's state first, or start with last_epoch=-1"
                    )
        self.base_lrs: list[Any] = _group_values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        _watch_optimizer_steps(optimizer)
        self._initial_step()

    def _initial_step(self) -> None:
        """The step taken at construction: sets the lrs of epoch ``last_epoch + 1``."""
        self._step_count = 0
        self._is_initial = True
        try:
            if self.last_epoch >= 0 and hasattr(self, "_get_closed_form_lr"):
                # Resuming from an epoch: the closed form does not depend on whatever lr the
                # optimizer holds now (torch's chainable form does; pytorch/pytorch#29697).
                self._step_count = 1
                self._update_lr(self.last_epoch + 1)
            else:
                self.step()
        finally:
            self._is_initial = False

    def state_dict(self) -> dict[str, Any]:
        """A copy of the scheduler's state: every attribute but the optimizer.

        Example:
            >>> from fusedoptim.lr_scheduler import ExponentialLR
            >>> class Optimizer:
            ...     param_groups = [{"lr": 1.0}]
            >>> scheduler = ExponentialLR(Optimizer(), gamma=0.5)
            >>> scheduler.state_dict()["last_epoch"]
            0
        """
        return self._copy_state(("optimizer",))

    def _copy_state(self, excluded: Iterable[str]) -> dict[str, Any]:
        excluded = set(excluded)
        return copy.deepcopy(
            {key: value for key, value in self.__dict__.items() if key not in excluded}
        )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict` and put its lrs back into the optimizer.

        The optimizer gets the lrs it had when the state was saved, so the order in which the
        optimizer's and the scheduler's states are loaded does not matter, and a fresh optimizer
        whose state is not loaded at all continues with the right lr too. When several
        schedulers step one optimizer, load them in the order they step.

        Example:
            >>> from fusedoptim.lr_scheduler import ExponentialLR
            >>> class Optimizer:
            ...     def __init__(self):
            ...         self.param_groups = [{"lr": 1.0}]
            >>> scheduler = ExponentialLR(Optimizer(), gamma=0.5)
            >>> scheduler.step()
            >>> scheduler.step()
            >>> saved = scheduler.state_dict()
            >>> restored = ExponentialLR(Optimizer(), gamma=0.5)  # a fresh optimizer, lr 1.0
            >>> restored.load_state_dict(saved)
            >>> restored.optimizer.param_groups[0]["lr"], restored.last_epoch
            (0.25, 2)
        """
        self.__dict__.update(copy.deepcopy(state_dict))
        self._restore_optimizer()

    def _restore_optimizer(self) -> None:
        last_lr = self.__dict__.get("_last_lr")
        if last_lr is None or len(last_lr) != len(self.optimizer.param_groups):
            return
        for group, lr in zip(self.optimizer.param_groups, last_lr):
            _set_group_value(group, "lr", _copy_value(lr))

    def get_last_lr(self) -> list[Any]:
        """The lrs the scheduler computed last, one per param group."""
        return list(self._last_lr)

    def get_lr(self) -> list[Any]:
        """The lrs at ``last_epoch``; called by :meth:`step` (use :meth:`get_last_lr`)."""
        raise NotImplementedError

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or step) and write the new lrs into the optimizer.

        Args:
            epoch: deprecated, as in torch: jump to this epoch, through the closed form where
                the schedule has one.
        """
        if self._step_count == 1:
            _warn_if_optimizer_not_stepped(self.optimizer)
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._check_param_groups(epoch)  # raises before anything changes
        self._step_count += 1
        self._update_lr(epoch)

    def _groups_needed(self, epoch: Any = None) -> int | None:
        """The number of param groups the next ``step(epoch)`` needs: the number the scheduler
        was built for where that step uses values saved per group at construction (as torch's
        does, whose step raises then), or None where it works from the groups' current lrs.

        Here: the closed form (an explicit epoch) uses ``base_lrs``; the chainable form does not.
        """
        if epoch is not None and hasattr(self, "_get_closed_form_lr"):
            return len(self.base_lrs)
        return None

    def _check_param_groups(self, epoch: Any = None) -> None:
        """Raise ValueError, before anything changes, where the next ``step(epoch)`` cannot
        schedule the optimizer's param groups because groups were added or removed since the
        scheduler was built."""
        needed = self._groups_needed(epoch)
        if needed is not None and needed != len(self.optimizer.param_groups):
            raise _param_groups_changed(self, needed)

    def _update_lr(self, epoch: int | None = None) -> None:
        previous_epoch = self.last_epoch
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                closed_form = getattr(self, "_get_closed_form_lr", None)
                values = closed_form() if closed_form is not None else self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        values = list(values)
        if len(values) != len(self.optimizer.param_groups):
            # A get_lr() that _groups_needed does not describe (a subclass's): torch's strict
            # zip raises here; undo the epoch and write nothing.
            self.last_epoch = previous_epoch
            raise _param_groups_changed(self, len(values))
        for group, lr in zip(self.optimizer.param_groups, values):
            _set_group_value(group, "lr", lr)
        self._last_lr = _group_values(self.optimizer, "lr")

    def _warn_if_get_lr_called_directly(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn(
                "To get the last learning rate computed by the scheduler, please use "
                "`get_last_lr()`.",
                UserWarning,
                stacklevel=3,
            )


# ---------------------------------------------------------------------------------------------
# Factor schedulers.


def _lambdas_per_group(optimizer: Any, lr_lambda: Any) -> list[Callable[[int], float]]:
    if isinstance(lr_lambda, (list, tuple)):
        if len(lr_lambda) != len(optimizer.param_groups):
            raise ValueError(
                f"Expected {len(optimizer.param_groups)} lr_lambdas, but got {len(lr_lambda)}"
            )
        lambdas = list(lr_lambda)
    else:
        lambdas = [lr_lambda] * len(optimizer.param_groups)
    for function in lambdas:
        if not callable(function):
            raise TypeError(f"lr_lambda should be a function, but got {type(function).__name__}")
    return lambdas


class _LambdaState:
    """Schedulers driven by user functions, one per param group: their construction, and
    state_dict support (the functions are not saved; the attributes of callable objects are, as
    in torch)."""

    lr_lambdas: list[Callable[[int], float]]

    def __init__(self, optimizer: Any, lr_lambda: Any, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        self.lr_lambdas = _lambdas_per_group(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)  # type: ignore[call-arg]

    def _groups_needed(self, epoch: Any = None) -> int | None:
        # One function per group, at every step (torch zips them with strict=True).
        return len(self.lr_lambdas)

    def state_dict(self) -> dict[str, Any]:
        state = self._copy_state(("optimizer", "lr_lambdas"))  # type: ignore[attr-defined]
        state["lr_lambdas"] = [
            None if isinstance(function, types.FunctionType) else copy.deepcopy(function.__dict__)
            for function in self.lr_lambdas
        ]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        lambda_states = state.pop("lr_lambdas")
        LRScheduler.load_state_dict(self, state)  # type: ignore[arg-type]
        for function, saved in zip(self.lr_lambdas, lambda_states):
            if saved is not None:
                function.__dict__.update(copy.deepcopy(saved))


class LambdaLR(_LambdaState, LRScheduler):
    r"""Set the lr to the initial lr times a function of the epoch.

    .. math:: \eta_t = \eta_0 \cdot \lambda(t)

    Args:
        optimizer: an object with torch-style ``param_groups``.
        lr_lambda: a function of the epoch, or a list with one per param group.
        last_epoch: the index of the last epoch (default -1).

    Example:
        >>> from fusedoptim.lr_scheduler import LambdaLR
        >>> class Optimizer:
        ...     param_groups = [{"lr": 0.1}]
        >>> scheduler = LambdaLR(Optimizer(), lambda epoch: 0.5**epoch)
        >>> scheduler.get_last_lr()
        [0.1]
    """

    def get_lr(self) -> list[Any]:
        self._warn_if_get_lr_called_directly()
        return [
            base_lr * function(self.last_epoch)
            for function, base_lr in zip(self.lr_lambdas, self.base_lrs)
        ]


class MultiplicativeLR(_LambdaState, LRScheduler):
    r"""Multiply the lr by a function of the epoch at every epoch but the first.

    .. math:: \eta_t = \eta_{t-1} \cdot \lambda(t)

    Args:
        optimizer: an object with torch-style ``param_groups``.
        lr_lambda: a function of the epoch, or a list with one per param group.
        last_epoch: the index of the last epoch (default -1).

    Example:
        >>> from fusedoptim.lr_scheduler import MultiplicativeLR
        >>> class Optimizer:
        ...     param_groups = [{"lr": 1.0}]
        >>> scheduler = MultiplicativeLR(Optimizer(), lambda epoch: 0.5)
        >>> scheduler.step(); scheduler.get_last_lr()
        [0.5]
    """

    def get_lr(self) -> list[Any]:
        self._warn_if_get_lr_called_directly()
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        return [
            group["lr"] * function(self.last_epoch)
            for function, group in zip(self.lr_lambdas, self.optimizer.param_groups)
        ]


class StepLR(LRScheduler):
    r"""Multiply the lr by ``gamma`` every ``step_size`` epochs.

    .. math:: \eta_t = \eta_0 \cdot \gamma^{\lfloor t / s \rfloor}

    Args:
        optimizer: an object with torch-style ``param_groups``.
        step_size: epochs between two decays (a positive integer).
        gamma: multiplicative factor (> 0, default 0.1).
        last_epoch: the index of the last epoch (default -1).

    Example:
        >>> from fusedoptim.lr_scheduler import StepLR
        >>> class Optimizer:
        ...     param_groups = [{"lr": 1.0}]
        >>> scheduler = StepLR(Optimizer(), step_size=2)
        >>> for _ in range(2):
        ...     scheduler.step()
        >>> scheduler.get_last_lr()
        [0.1]
    """

    def __init__(
        self, optimizer: Any, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        _check_int("step_size", step_size, minimum=1)
        _check_positive("gamma", gamma)
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_if_get_lr_called_directly()
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [
            base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs
        ]


class MultiStepLR(LRScheduler):
    r"""Multiply the lr by ``gamma`` at each milestone epoch.

    .. math:: \eta_t = \eta_0 \cdot \gamma^{|\{m \in M : m \le t\}|}

    As in torch, the milestones may come in any order, and a milestone given twice multiplies by
    ``gamma`` twice.

    Args:
        optimizer: an object with torch-style ``param_groups``.
        milestones: epoch indices (integers).
        gamma: multiplicative factor (> 0, default 0.1).
        last_epoch: the index of the last epoch (default -1).

    Example:
        >>> from fusedoptim.lr_scheduler import MultiStepLR
        >>> class Optimizer:
        ...     param_groups = [{"lr": 1.0}]
        >>> scheduler = MultiStepLR(Optimizer(), milestones=[1, 1], gamma=0.5)
        >>> scheduler.step(); scheduler.get_last_lr()
        [0.25]
    """

    def __init__(
        self, optimizer: Any, milestones: Iterable[int], gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        milestones = list(milestones)
        for index, milestone in enumerate(milestones):
            _check_int(f"milestones[{index}]", milestone, minimum=0)
        _check_positive("gamma", gamma)
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_if_get_lr_called_directly()
        if self.last_epoch not in self.milestones:
            return _group_values(self.optimizer, "lr")
        return [
            group["lr"] * self.gamma ** self.milestones[self.last_epoch]
            for group in self.optimizer.param_groups
        ]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        # A state that went through a format without Counters (fusedoptim.save, JSON) holds
        # the milestones as a plain dict of counts.
        if not isinstance(self.milestones, Counter):
            self.milestones = Counter(self.milestones)

    def _get_closed_form_lr(self) -> list[Any]:
        milestones = sorted(self.milestones.elements())
        return [
            base_lr * self.gamma ** bisect_right(milestones, self.last_epoch)
            for base_lr in self.base_lrs
        ]


class ConstantLR(LRScheduler):
    r"""Multiply the lr by ``factor`` for the first ``total_iters`` epochs.

    .. math:: \eta_t = \eta_0 \cdot (f \text{ if } t < T \text{ else } 1)

    Args:
        optimizer: an object with torch-style ``param_groups``.
        factor: the factor while it applies (0 < factor <= 1, default 1/3).
        total_iters: the number of epochs it applies for (a positive integer, default 5).
        last_epoch: the index of the last epoch (default -1).

    Example:
        >>> from fusedoptim.lr_scheduler import ConstantLR
        >>> class Optimizer:
        ...     param_groups = [{"lr": 0.3}]
        >>> ConstantLR(Optimizer(), factor=0.5, total_iters=2).get_last_lr()
        [0.15]
    """

    def __init__(
        self,
        optimizer: Any,
        factor: float = 1.0 / 3,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        _check_real("factor", factor)
        # torch accepts 0, then divides by it when the factor is lifted.
        if factor > 1.0 or factor <= 0:
            raise ValueError(
                f"Constant multiplicative factor expected to be in (0, 1], got {factor!r}"
            )
        _check_int("total_iters", total_iters, minimum=1)
        self.factor = factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_if_get_lr_called_directly()
        if self.last_epoch == 0:
            return [group["lr"] * self.factor for group in self.optimizer.param_groups]
        if self.last_epoch != self.total_iters:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * (1.0 / self.factor) for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [
            base_lr * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
            for base_lr in self.base_lrs
        ]


class LinearLR(LRScheduler):
    r"""Change the lr's factor linearly from ``start_factor`` to ``end_factor`` over
    ``total_iters`` epochs (the usual warmup).

    .. math:: \eta_t = \eta_0 \left(s + (e - s) \frac{\min(t, T)}{T}\right)

    Args:
        optimizer: an object with torch-style ``param_groups``.
        start_factor: factor at epoch 0 (0 < start_factor <= 1, default 1/3).
        end_factor: factor from epoch ``total_iters`` on (0 <= end_factor <= 1, default 1).
        total_iters: the length of the change (a positive integer, default 5).
        last_epoch: the index of the last epoch (default -1).

    Example:
        >>> from fusedoptim.lr_scheduler import LinearLR
        >>> class Optimizer:
        ...     param_groups = [{"lr": 1.0}]
        >>> scheduler = LinearLR(Optimizer(), start_factor=0.5, total_iters=2)
        >>> scheduler.step(); scheduler.get_last_lr()
        [0.75]
    """

    def __init__(
        self,
        optimizer: Any,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        _check_real("start_factor", start_factor)
        _check_real("end_factor", end_factor)
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError(
                "Starting multiplicative factor expected to be greater than 0 and less or equal "
                f"to 1, got {start_factor!r}"
            )
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError(
                f"Ending multiplicative factor expected to be between 0 and 1, got {end_factor!r}"
            )
        _check_int("total_iters", total_iters, minimum=1)
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_if_get_lr_called_directly()
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in self.optimizer.param_groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return _group_values(self.optimizer, "lr")
        change = self.end_factor - self.start_factor
        factor = 1.0 + change / (
            self.total_iters * self.start_factor + (self.last_epoch - 1) * change
        )
        # torch's recursion, bit for bit, except that a factor that rounding takes below zero
        # (the last step to end_factor=0, e.g. -5.6e-19 for start_factor=0.1, total_iters=4)
        # is zero: a negative lr is refused by the optimizers here, which check every new value.
        factor = max(factor, 0.0)
        return [group["lr"] * factor for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [
            base_lr
            * (
                self.start_factor
                + (self.end_factor - self.start_factor)
                * min(self.total_iters, self.last_epoch)
                / self.total_iters
            )
            for base_lr in self.base_lrs
        ]


class ExponentialLR(LRScheduler):
    r"""Multiply the lr by ``gamma`` every epoch.

    .. math:: \eta_t = \eta_0 \cdot \gamma^t

    Args:
        optimizer: an object with torch-style ``param_groups``.
        gamma: multiplicative factor per epoch (> 0).
        last_epoch: the index of the last epoch (default -1).

    Example:
        >>> from fusedoptim.lr_scheduler import ExponentialLR
        >>> class Optimizer:
        ...     param_groups = [{"lr": 1.0}]
        >>> scheduler = ExponentialLR(Optimizer(), gamma=0.5)
        >>> scheduler.step(); scheduler.step(); scheduler.get_last_lr()
        [0.25]
    """

    def __init__(self, optimizer: Any, gamma: float, last_epoch: int = -1) -> None:
        _check_positive("gamma", gamma)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_if_get_lr_called_directly()
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [base_lr * self.gamma**self.last_epoch for base_lr in self.base_lrs]


class PolynomialLR(LRScheduler):
    r"""Decay the lr polynomially to 0 over ``total_iters`` epochs.

    .. math:: \eta_t = \eta_0 \left(1 - \frac{\min(t, T)}{T}\right)^p

    Args:
        optimizer: an object with torch-style ``param_groups``.
        total_iters: the length of the decay (a positive integer, default 5).
        power: the exponent ``p`` (>= 0, default 1).
        last_epoch: the index of the last epoch (default -1).

    Example:
        >>> from fusedoptim.lr_scheduler import PolynomialLR
        >>> class Optimizer:
        ...     param_groups = [{"lr": 1.0}]
        >>> scheduler = PolynomialLR(Optimizer(), total_iters=4, power=2.0)
        >>> scheduler.step(); scheduler.step(); scheduler.get_last_lr()
        [0.25]
    """

    def __init__(
        self, optimizer: Any, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1
    ) -> None:
        _check_int("total_iters", total_iters, minimum=1)
        _check_non_negative("power", power)
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_if_get_lr_called_directly()
        if self._is_initial or self.last_epoch > self.total_iters:
            return _group_values(self.optimizer, "lr")
        decay_factor = (
            (1.0 - self.last_epoch / self.total_iters)
            / (1.0 - (self.last_epoch - 1) / self.total_iters)
        ) ** self.power
        return [group["lr"] * decay_factor for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [
            base_lr
            * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters) ** self.power
            for base_lr in self.base_lrs
        ]


class CosineAnnealingLR(LRScheduler):
    r"""Anneal the lr along a cosine from the initial lr down to ``eta_min`` over ``T_max`` epochs.

    .. math::
        \eta_t = \eta_{min} + \frac{1}{2}(\eta_0 - \eta_{min})
                 \left(1 + \cos\left(\frac{t \pi}{T_{max}}\right)\right)

    As in torch the curve is not clamped after ``T_max``: it climbs back to the initial lr at
    ``2 T_max``, and so on. For a decay that stays down, use
    :func:`fusedoptim.schedules.cosine_decay`.

    Args:
        optimizer: an object with torch-style ``param_groups``.
        T_max: half a period of the cosine, in epochs (> 0).
        eta_min: the minimum lr (default 0).
        last_epoch: the index of the last epoch (default -1).

    Example:
        >>> from fusedoptim.lr_scheduler import CosineAnnealingLR
        >>> class Optimizer:
        ...     param_groups = [{"lr": 1.0}]
        >>> scheduler = CosineAnnealingLR(Optimizer(), T_max=2)
        >>> scheduler.step(); scheduler.get_last_lr()
        [0.5]
    """

    def __init__(
        self, optimizer: Any, T_max: float, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        _check_positive("T_max", T_max)
        _check_real("eta_min", eta_min)
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_if_get_lr_called_directly()
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        if self._step_count == 1 and self.last_epoch > 0:
            return [
                self.eta_min
                + (base_lr - self.eta_min)
                * (1 + math.cos(self.last_epoch * math.pi / self.T_max))
                / 2
                for base_lr in self.base_lrs
            ]
        if (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            # The bottom of the cosine: the ratio below would divide by (nearly) zero.
            return [
                group["lr"] + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
                for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups)
            ]
        return [
            (1 + math.cos(math.pi * self.last_epoch / self.T_max))
            / (1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max))
            * (group["lr"] - self.eta_min)
            + self.eta_min
            for group in self.optimizer.param_groups
        ]

    def _get_closed_form_lr(self) -> list[Any]:
        return [
            self.eta_min
            + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
            for base_lr in self.base_lrs
        ]

    def _groups_needed(self, epoch: Any = None) -> int | None:
        if epoch is not None:
            return len(self.base_lrs)
        # Only the step after the bottom of the cosine uses base_lrs (as torch's, which raises
        # there and not before): the other steps scale each group's current lr. (get_lr's other
        # base_lrs branch, _step_count == 1, is not reached by step(), which counts first.)
        if not self._is_initial and (self.last_epoch - self.T_max) % (2 * self.T_max) == 0:
            return len(self.base_lrs)
        return None


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""Cosine annealing that restarts at the initial lr after ``T_0``, then ``T_0 T_mult``, ...
    epochs (SGDR).

    .. math::
        \eta_t = \eta_{min} + \frac{1}{2}(\eta_0 - \eta_{min})
                 \left(1 + \cos\left(\frac{T_{cur}}{T_i}\pi\right)\right)

    ``step(epoch)`` accepts fractional epochs, to anneal within an epoch::

        for epoch in range(epochs):
            for batch, data in enumerate(loader):
                ...
                scheduler.step(epoch + batch / len(loader))

    Args:
        optimizer: an object with torch-style ``param_groups``.
        T_0: epochs until the first restart (a positive integer).
        T_mult: factor by which each period is longer than the last (an integer >= 1,
            default 1).
        eta_min: the minimum lr (default 0).
        last_epoch: the index of the last epoch (default -1).

    Example:
        >>> from fusedoptim.lr_scheduler import CosineAnnealingWarmRestarts
        >>> class Optimizer:
        ...     param_groups = [{"lr": 1.0}]
        >>> scheduler = CosineAnnealingWarmRestarts(Optimizer(), T_0=2)
        >>> scheduler.step(1.0); scheduler.get_last_lr()
        [0.5]
        >>> scheduler.step(2.0); scheduler.get_last_lr()  # restart
        [1.0]
    """

    def __init__(
        self,
        optimizer: Any,
        T_0: int,
        T_mult: int = 1,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if isinstance(T_0, bool) or not isinstance(T_0, int) or T_0 <= 0:
            raise ValueError(f"Expected positive integer T_0, but got {T_0!r}")
        if isinstance(T_mult, bool) or not isinstance(T_mult, int) or T_mult < 1:
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult!r}")
        if isinstance(eta_min, bool) or not isinstance(eta_min, (float, int)):
            raise ValueError(
                f"Expected float or int eta_min, but got {eta_min!r} of type {type(eta_min)}"
            )
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur: float = last_epoch
        super().__init__(optimizer, last_epoch)

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            # Resuming: locate the cycle of the next epoch from scratch (torch's increment
            # wraps only once, which is wrong past the second cycle when T_mult > 1).
            self.step(self.last_epoch + 1 if self.last_epoch >= 0 else None)
        finally:
            self._is_initial = False

    def get_lr(self) -> list[Any]:
        self._warn_if_get_lr_called_directly()
        return [
            self.eta_min
            + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
            for base_lr in self.base_lrs
        ]

    def _groups_needed(self, epoch: Any = None) -> int | None:
        return len(self.base_lrs)  # every step is computed from base_lrs

    def _cycle_of(self, epoch: float) -> int:
        """The index n of the cycle that contains ``epoch`` (``T_mult > 1``, ``epoch >= T_0``)."""
        # torch takes int(log(...)) alone, which rounds 2.9999999999999996 down to 2 at some
        # cycle starts; the estimate is corrected against the exact integer cycle starts.
        n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))

        def start(cycle: int) -> int:
            return self.T_0 * (self.T_mult**cycle - 1) // (self.T_mult - 1)

        while start(n + 1) <= epoch:
            n += 1
        while n > 0 and start(n) > epoch:
            n -= 1
        return n

    def step(self, epoch: float | None = None) -> None:
        """Advance one epoch, or go to ``epoch`` (fractional epochs are allowed).

        Args:
            epoch: the epoch to go to (>= 0); None advances by one.
        """
        if self._step_count == 1:
            _warn_if_optimizer_not_stepped(self.optimizer)
        if epoch is not None and epoch < 0:
            raise ValueError(f"Expected non-negative epoch, but got {epoch}")
        self._check_param_groups(epoch)
        self._step_count += 1
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = self._cycle_of(epoch)
                    self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult**n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self._get_lr_called_within_step = True
        try:
            values = self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values):
            _set_group_value(group, "lr", lr)
        self._last_lr = _group_values(self.optimizer, "lr")


# ---------------------------------------------------------------------------------------------
# Cyclic schedulers, which also cycle momentum.


class CyclicLR(LRScheduler):
    r"""Cycle the lr between ``base_lr`` and ``max_lr`` (and momentum inversely), per batch.

    The cyclical learning rate policy of Smith, "Cyclical Learning Rates for Training Neural
    Networks" (2017): the lr rises linearly over ``step_size_up`` steps and falls over
    ``step_size_down``; the amplitude is scaled by ``1`` (``"triangular"``), halved every cycle
    (``"triangular2"``), multiplied by ``gamma**step`` (``"exp_range"``) or by ``scale_fn``.
    Step it after every batch. With ``cycle_momentum``, ``momentum`` (or ``betas[0]`` for
    Adam-like optimizers) moves between ``max_momentum`` and ``base_momentum``, opposite to the lr.

    Args:
        optimizer: an object with torch-style ``param_groups``.
        base_lr: lower bound of the lr (a number or one per group); the initial lr.
        max_lr: upper bound of the amplitude (a number or one per group).
        step_size_up: steps of the rising half (> 0, default 2000).
        step_size_down: steps of the falling half (> 0, default ``step_size_up``).
        mode: ``"triangular"`` (default), ``"triangular2"`` or ``"exp_range"``; ignored when
            ``scale_fn`` is given.
        gamma: the base of ``"exp_range"`` (> 0, default 1).
        scale_fn: a custom amplitude scale, a function of the cycle or step number.
        scale_mode: ``"cycle"`` (default) or ``"iterations"``: what ``scale_fn`` is given.
        cycle_momentum: cycle momentum too (default True).
        base_momentum: lower bound of the momentum (default 0.8).
        max_momentum: upper bound of the momentum (default 0.9).
        last_epoch: the index of the last batch (default -1).

    Example:
        >>> from fusedoptim.lr_scheduler import CyclicLR
        >>> class Optimizer:
        ...     param_groups = [{"lr": 0.0, "momentum": 0.9}]
        >>> scheduler = CyclicLR(Optimizer(), base_lr=0.1, max_lr=1.0, step_size_up=2)
        >>> scheduler.step()
        >>> scheduler.get_last_lr(), round(scheduler.optimizer.param_groups[0]["momentum"], 12)
        ([0.55], 0.85)
    """

    def __init__(
        self,
        optimizer: Any,
        base_lr: float | list[float],
        max_lr: float | list[float],
        step_size_up: float = 2000,
        step_size_down: float | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: str = "cycle",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.8,
        max_momentum: float | list[float] = 0.9,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        _check_last_epoch(last_epoch)
        _check_positive("step_size_up", step_size_up)
        if step_size_down is not None:
            _check_positive("step_size_down", step_size_down)
        _check_positive("gamma", gamma)
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError(f"mode is invalid and scale_fn is None: {mode!r}")
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"scale_mode must be 'cycle' or 'iterations', got {scale_mode!r}")
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"scale_fn must be callable, got {scale_fn!r}")
        self.optimizer = optimizer
        base_lrs = _format_param("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                _set_group_value(group, "lr", lr)
        self.max_lrs = _format_param("max_lr", optimizer, max_lr)
        step_size_up = float(step_size_up)
        step_size_down = float(step_size_down) if step_size_down is not None else step_size_up
        self.total_size = step_size_up + step_size_down
        self.step_ratio = step_size_up / self.total_size
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_ref: Callable[[float], float]
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_fn()
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _uses_betas(optimizer, "CyclicLR")
            self.base_momentums = _format_param("base_momentum", optimizer, base_momentum)
            self.max_momentums = _format_param("max_momentum", optimizer, max_momentum)
            if last_epoch == -1:
                for maximum, base, group in zip(
                    self.max_momentums, self.base_momentums, optimizer.param_groups
                ):
                    _set_momentum(group, maximum, self.use_beta1)
                    group["max_momentum"] = maximum
                    group["base_momentum"] = base
        super().__init__(optimizer, last_epoch)
        # As in torch: set after the constructor's step, which used the groups' initial_lr.
        self.base_lrs = base_lrs

    def _init_scale_fn(self) -> None:
        if self._scale_fn_custom is not None:
            return
        if self.mode == "triangular":
            self._scale_fn_ref = _triangular_scale
            self.scale_mode = "cycle"
        elif self.mode == "triangular2":
            self._scale_fn_ref = _triangular2_scale
            self.scale_mode = "cycle"
        elif self.mode == "exp_range":
            self._scale_fn_ref = partial(_exp_range_scale, self.gamma)
            self.scale_mode = "iterations"

    def _groups_needed(self, epoch: Any = None) -> int | None:
        return len(self.base_lrs)  # every step is computed from base_lrs and max_lrs

    def scale_fn(self, x: float) -> float:
        """The amplitude scale at cycle or step ``x``."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        return self._scale_fn_ref(x)

    def get_lr(self) -> list[Any]:
        self._warn_if_get_lr_called_directly()
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            scale_factor = x / self.step_ratio
        else:
            scale_factor = (x - 1) / (self.step_ratio - 1)
        scale_at = cycle if self.scale_mode == "cycle" else self.last_epoch
        lrs = []
        for base_lr, max_lr in zip(self.base_lrs, self.max_lrs):
            base_height = (max_lr - base_lr) * scale_factor
            lrs.append(base_lr + base_height * self.scale_fn(scale_at))
        if self.cycle_momentum:
            momentums = []
            for base_momentum, max_momentum in zip(self.base_momentums, self.max_momentums):
                base_height = (max_momentum - base_momentum) * scale_factor
                momentums.append(max_momentum - base_height * self.scale_fn(scale_at))
            for group, momentum in zip(self.optimizer.param_groups, momentums):
                _set_momentum(group, momentum, self.use_beta1)
            self._last_momentum = momentums
        return lrs

    def state_dict(self) -> dict[str, Any]:
        state = self._copy_state(("optimizer", "_scale_fn_ref", "_scale_fn_custom"))
        function = self._scale_fn_custom
        state["_scale_fn_custom"] = None
        if function is not None and not isinstance(function, types.FunctionType):
            state["_scale_fn_custom"] = copy.deepcopy(function.__dict__)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        saved_function = state.pop("_scale_fn_custom", None)
        super().load_state_dict(state)
        if saved_function is not None and self._scale_fn_custom is not None:
            self._scale_fn_custom.__dict__.update(copy.deepcopy(saved_function))
        self._init_scale_fn()

    def _restore_optimizer(self) -> None:
        super()._restore_optimizer()
        _restore_momentum(self)


def _triangular_scale(x: float) -> float:
    return 1.0


def _triangular2_scale(x: float) -> float:
    return 1 / (2.0 ** (x - 1))


def _exp_range_scale(gamma: float, x: float) -> float:
    return gamma**x


def _restore_momentum(scheduler: Any) -> None:
    momentums = scheduler.__dict__.get("_last_momentum")
    if not scheduler.cycle_momentum or momentums is None:
        return
    for group, momentum in zip(scheduler.optimizer.param_groups, momentums):
        _set_momentum(group, momentum, scheduler.use_beta1)


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy: lr up from ``max_lr / div_factor`` to ``max_lr``, then down far below.

    Smith and Topin, "Super-Convergence: Very Fast Training of Neural Networks Using Large
    Learning Rates" (2017). The lr anneals (cosine or linear) up for ``pct_start`` of
    ``total_steps``, then down to ``max_lr / div_factor / final_div_factor``; with
    ``three_phase`` it first comes back down to the initial lr symmetrically, then annihilates.
    With ``cycle_momentum``, ``momentum`` (or ``betas[0]`` for Adam-like optimizers) moves
    opposite to the lr between ``max_momentum`` and ``base_momentum``. Step it after every batch;
    stepping past ``total_steps`` raises.

    Args:
        optimizer: an object with torch-style ``param_groups``.
        max_lr: the peak lr (a number or one per group).
        total_steps: the number of steps in the cycle; or give ``epochs`` and
            ``steps_per_epoch``.
        epochs: the number of epochs, with ``steps_per_epoch``.
        steps_per_epoch: the number of steps per epoch, with ``epochs``.
        pct_start: the fraction of the cycle spent increasing the lr (a float in [0, 1],
            <= 0.5 with ``three_phase``; default 0.3).
        anneal_strategy: ``"cos"`` (default) or ``"linear"``.
        cycle_momentum: cycle momentum too (default True).
        base_momentum: lower bound of the momentum (default 0.85).
        max_momentum: upper bound of the momentum (default 0.95).
        div_factor: initial lr = ``max_lr / div_factor`` (> 0, default 25).
        final_div_factor: minimum lr = initial lr / ``final_div_factor`` (> 0, default 1e4).
        three_phase: use the three-phase variant (default False).
        last_epoch: the index of the last batch (default -1).

    Example:
        >>> from fusedoptim.lr_scheduler import OneCycleLR
        >>> class Optimizer:
        ...     param_groups = [{"lr": 0.0, "momentum": 0.9}]
        >>> scheduler = OneCycleLR(Optimizer(), max_lr=1.0, total_steps=10)
        >>> round(scheduler.get_last_lr()[0], 12)  # max_lr / div_factor
        0.04
    """

    def __init__(
        self,
        optimizer: Any,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        _check_last_epoch(last_epoch)
        self.optimizer = optimizer
        if total_steps is not None:
            if (
                isinstance(total_steps, bool)
                or not isinstance(total_steps, int)
                or total_steps <= 0
            ):
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps!r}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs!r}")
            if (
                isinstance(steps_per_epoch, bool)
                or not isinstance(steps_per_epoch, int)
                or steps_per_epoch <= 0
            ):
                raise ValueError(
                    f"Expected positive integer steps_per_epoch, but got {steps_per_epoch!r}"
                )
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start!r}")
        if three_phase and pct_start > 0.5:
            raise ValueError(
                f"three_phase needs pct_start <= 0.5: the warmup ({pct_start} of total_steps) "
                "and its mirror must fit in the schedule"
            )
        if float(pct_start * self.total_steps) == 1.0:
            # The warmup would end where it starts, at step 0: torch divides by zero there.
            raise ValueError(
                f"pct_start * total_steps is 1 (pct_start={pct_start!r}, total_steps="
                f"{self.total_steps}): the warmup phase would have no length; choose a "
                "pct_start that gives it at least 2 steps, or 0"
            )
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy!r}"
            )
        _check_positive("div_factor", div_factor)
        _check_positive("final_div_factor", final_div_factor)
        self._anneal_func_type = anneal_strategy
        if three_phase:
            self._schedule_phases = [
                {
                    "end_step": float(pct_start * self.total_steps) - 1,
                    "start_lr": "initial_lr",
                    "end_lr": "max_lr",
                    "start_momentum": "max_momentum",
                    "end_momentum": "base_momentum",
                },
                {
                    "end_step": float(2 * pct_start * self.total_steps) - 2,
                    "start_lr": "max_lr",
                    "end_lr": "initial_lr",
                    "start_momentum": "base_momentum",
                    "end_momentum": "max_momentum",
                },
                {
                    "end_step": self.total_steps - 1,
                    "start_lr": "initial_lr",
                    "end_lr": "min_lr",
                    "start_momentum": "max_momentum",
                    "end_momentum": "max_momentum",
                },
            ]
        else:
            self._schedule_phases = [
                {
                    "end_step": float(pct_start * self.total_steps) - 1,
                    "start_lr": "initial_lr",
                    "end_lr": "max_lr",
                    "start_momentum": "max_momentum",
                    "end_momentum": "base_momentum",
                },
                {
                    "end_step": self.total_steps - 1,
                    "start_lr": "max_lr",
                    "end_lr": "min_lr",
                    "start_momentum": "base_momentum",
                    "end_momentum": "max_momentum",
                },
            ]
        max_lrs = _format_param("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for index, group in enumerate(optimizer.param_groups):
                group["initial_lr"] = max_lrs[index] / div_factor
                group["max_lr"] = max_lrs[index]
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _uses_betas(optimizer, "OneCycleLR")
            max_momentums = _format_param("max_momentum", optimizer, max_momentum)
            base_momentums = _format_param("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for maximum, base, group in zip(
                    max_momentums, base_momentums, optimizer.param_groups
                ):
                    _set_momentum(group, maximum, self.use_beta1)
                    group["max_momentum"] = maximum
                    group["base_momentum"] = base
        super().__init__(optimizer, last_epoch)

    def _phase_at(self, step_num: float) -> tuple[dict[str, Any], float]:
        """The schedule phase that contains ``step_num``, and the step it starts at."""
        start_step = 0.0
        for index, phase in enumerate(self._schedule_phases):
            if step_num <= phase["end_step"] or index == len(self._schedule_phases) - 1:
                return phase, start_step
            start_step = phase["end_step"]
        raise AssertionError("unreachable")

    def _check_param_groups(self, epoch: Any = None) -> None:
        # Each group carries its own bounds ('initial_lr', 'max_lr', ...), set when the scheduler
        # was built: a group added later has none, and torch's step raises KeyError at it.
        step_num = self.last_epoch + 1 if epoch is None else epoch
        if self._is_initial or step_num > self.total_steps:
            return  # get_lr raises its own error past the last step, as torch's does first
        phase, _ = self._phase_at(step_num)
        keys = [phase["start_lr"], phase["end_lr"]]
        if self.cycle_momentum:
            keys += [phase["start_momentum"], phase["end_momentum"]]
            keys += ["betas"] if self.use_beta1 else []
        for index, group in enumerate(self.optimizer.param_groups):
            for key in keys:
                if key not in group:
                    raise KeyError(
                        f"OneCycleLR: param_groups[{index}] has no {key!r}, which the scheduler "
                        "sets in every param group when it is built: the group was added after "
                        "the scheduler was built (torch raises KeyError here too). Build the "
                        "scheduler after adding every param group (optimizer.add_param_group), "
                        "or build a new scheduler after adding one."
                    )

    def _anneal_func(self, start: float, end: float, pct: float) -> float:
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[Any]:
        self._warn_if_get_lr_called_directly()
        step_num = self.last_epoch
        if step_num > self.total_steps:
            raise ValueError(
                f"Tried to step {step_num} times. The specified number of total steps is "
                f"{self.total_steps}"
            )
        phase, start_step = self._phase_at(step_num)
        pct = (step_num - start_step) / (phase["end_step"] - start_step)
        lrs = []
        momentums = []
        for group in self.optimizer.param_groups:
            lrs.append(self._anneal_func(group[phase["start_lr"]], group[phase["end_lr"]], pct))
            if self.cycle_momentum:
                momentums.append(
                    self._anneal_func(
                        group[phase["start_momentum"]], group[phase["end_momentum"]], pct
                    )
                )
        # Written only once every group's values are known (step checked the groups first).
        if self.cycle_momentum:
            for group, momentum in zip(self.optimizer.param_groups, momentums):
                _set_momentum(group, momentum, self.use_beta1)
            self._last_momentum = momentums
        return lrs

    def _restore_optimizer(self) -> None:
        super()._restore_optimizer()
        _restore_momentum(self)


# ---------------------------------------------------------------------------------------------
# Composite schedulers.


def _momentum_cyclers(scheduler: Any) -> list[Any]:
    """The schedulers inside a composite (at any depth) that cycle the momentum."""
    found = []
    for inner in scheduler._schedulers:
        if isinstance(inner, _CompositeScheduler):
            found += _momentum_cyclers(inner)
        elif getattr(inner, "cycle_momentum", False):
            found.append(inner)
    return found


class _CompositeScheduler(LRScheduler):
    """A scheduler made of others (SequentialLR, ChainedScheduler): its state holds theirs.

    Where some of them cycle the momentum (CyclicLR, OneCycleLR), the state also holds the
    momentum (or ``betas[0]``) each group had when it was saved: loading the inner schedulers
    puts back each one's own last momentum, also that of one not started yet or already done,
    so the composite puts back the one that was in effect, last.
    """

    _schedulers: list[Any]

    def state_dict(self) -> dict[str, Any]:
        state = self._copy_state(("optimizer", "_schedulers"))
        state["_schedulers"] = [scheduler.state_dict() for scheduler in self._schedulers]
        cyclers = _momentum_cyclers(self)
        if cyclers:
            key = "betas" if cyclers[0].use_beta1 else "momentum"
            state["_optimizer_momentum"] = [
                copy.deepcopy(group[key][0] if key == "betas" else group[key])
                for group in self.optimizer.param_groups
            ]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        inner_states = state.pop("_schedulers")
        momentums = state.pop("_optimizer_momentum", None)
        for scheduler, inner in zip(self._schedulers, inner_states):
            scheduler.load_state_dict(inner)
        # Last, so that the optimizer ends with this scheduler's lr, not a sub-scheduler's.
        super().load_state_dict(state)
        cyclers = _momentum_cyclers(self)
        groups = self.optimizer.param_groups
        if cyclers and momentums is not None and len(momentums) == len(groups):
            for group, momentum in zip(groups, momentums):
                _set_momentum(group, copy.deepcopy(momentum), cyclers[0].use_beta1)


class SequentialLR(_CompositeScheduler):
    """Run schedulers one after another, switching at the milestone epochs.

    At milestone ``milestones[i]`` scheduler ``i + 1`` restarts from its epoch 0 (through its
    closed form where it has one), as in torch.

    Args:
        optimizer: the optimizer all the schedulers drive.
        schedulers: the schedulers, in order, all built on ``optimizer``.
        milestones: ``len(schedulers) - 1`` strictly increasing positive epochs.
        last_epoch: the index of the last epoch (default -1); a value >= 0 replays the
            schedulers up to epoch ``last_epoch + 1``.

    Example:
        >>> from fusedoptim.lr_scheduler import ExponentialLR, LinearLR, SequentialLR
        >>> class Optimizer:
        ...     param_groups = [{"lr": 1.0}]
        >>> optimizer = Optimizer()
        >>> warmup = LinearLR(optimizer, start_factor=0.5, total_iters=2)
        >>> decay = ExponentialLR(optimizer, gamma=0.5)
        >>> scheduler = SequentialLR(optimizer, [warmup, decay], milestones=[2])
        >>> lrs = [scheduler.get_last_lr()[0]]
        >>> for _ in range(4):
        ...     scheduler.step()
        ...     lrs.append(scheduler.get_last_lr()[0])
        >>> lrs
        [0.5, 0.75, 1.0, 0.5, 0.25]
    """

    def __init__(
        self,
        optimizer: Any,
        schedulers: Sequence[Any],
        milestones: Sequence[int],
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        _check_last_epoch(last_epoch)
        schedulers = list(schedulers)
        milestones = list(milestones)
        _check_schedulers(type(self).__name__, optimizer, schedulers)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more than "
                f"the number of milestone points, but got number of schedulers {len(schedulers)} "
                f"and the number of milestones to be equal to {len(milestones)}"
            )
        for index, milestone in enumerate(milestones):
            _check_int(f"milestones[{index}]", milestone, minimum=1)
        if any(later <= earlier for earlier, later in zip(milestones, milestones[1:])):
            raise ValueError(
                f"SequentialLR milestones must be strictly increasing, got {milestones}"
            )
        for index, group in enumerate(optimizer.param_groups):
            if "initial_lr" not in group:
                raise KeyError(
                    f"param_groups[{index}] has no 'initial_lr': build the schedulers on this "
                    "optimizer before the SequentialLR, and add every param group before the "
                    "schedulers (a group added after them is not scheduled)"
                )
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = 0
        self.optimizer = optimizer
        # Undo the steps the schedulers took when they were built, and start the first one.
        for group in optimizer.param_groups:
            _set_group_value(group, "lr", _copy_value(group["initial_lr"]))
        self.recursive_undo()
        index = bisect_right(self._milestones, 0)
        self._schedulers[index]._initial_step()
        self._last_lr = self._schedulers[index].get_last_lr()
        if last_epoch >= 0:
            self._replay(last_epoch + 1)

    def _replay(self, epochs: int) -> None:
        # The optimizer did step in the run being resumed: do not warn about the call order.
        had_flag = "_opt_called" in vars(self.optimizer)
        previous = getattr(self.optimizer, "_opt_called", None)
        self.optimizer._opt_called = True
        try:
            for _ in range(epochs):
                self.step()
        finally:
            if had_flag:
                self.optimizer._opt_called = previous
            else:
                del self.optimizer._opt_called

    def recursive_undo(self, scheduler: Any = None) -> None:
        """Undo the construction step of every (nested) scheduler."""
        target = self if scheduler is None else scheduler
        if hasattr(target, "_schedulers"):
            for inner in target._schedulers:
                self.recursive_undo(inner)
        elif hasattr(target, "last_epoch"):
            target.last_epoch -= 1

    def _next(self) -> tuple[Any, bool]:
        """The scheduler that the next step drives, and whether it starts at that step."""
        epoch = self.last_epoch + 1
        index = bisect_right(self._milestones, epoch)
        return self._schedulers[index], index > 0 and self._milestones[index - 1] == epoch

    def _check_param_groups(self, epoch: Any = None) -> None:
        scheduler, starts = self._next()
        _check_scheduler_groups(scheduler, 0 if starts else None)

    def step(self) -> None:  # type: ignore[override]
        """Advance one epoch, switching scheduler at a milestone."""
        self._check_param_groups()
        scheduler, starts = self._next()
        self.last_epoch += 1
        if starts:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_CompositeScheduler):
    """Step several schedulers together on one optimizer; their factors multiply.

    Each scheduler's step applies to the lr the previous one left, as chaining does in torch:
    ``ConstantLR(factor=0.5)`` chained with ``ExponentialLR(gamma=0.9)`` gives
    ``0.5 * 0.9**t`` of the initial lr.

    Args:
        schedulers: the schedulers, all on one optimizer.
        optimizer: that optimizer (default: the first scheduler's).

    Example:
        >>> from fusedoptim.lr_scheduler import ChainedScheduler, ConstantLR, ExponentialLR
        >>> class Optimizer:
        ...     param_groups = [{"lr": 1.0}]
        >>> optimizer = Optimizer()
        >>> scheduler = ChainedScheduler(
        ...     [ConstantLR(optimizer, factor=0.5, total_iters=4), ExponentialLR(optimizer, 0.5)]
        ... )
        >>> scheduler.step(); scheduler.get_last_lr()
        [0.25]
    """

    def __init__(self, schedulers: Sequence[Any], optimizer: Any = None) -> None:
        if optimizer is not None:
            _check_optimizer(optimizer)
        schedulers = list(schedulers)
        if len(schedulers) < 1:
            raise ValueError(
                "ChainedScheduler expects at least one scheduler to be chained, but got no "
                "scheduler."
            )
        if optimizer is None:
            optimizer = getattr(schedulers[0], "optimizer", None)
        _check_optimizer(optimizer)
        _check_schedulers(type(self).__name__, optimizer, schedulers)
        self._schedulers = schedulers
        self.optimizer = optimizer
        # torch's ChainedScheduler has no epoch counter; this one counts its steps.
        self.last_epoch = 0
        self._last_lr = _group_values(schedulers[-1].optimizer, "lr")

    def _check_param_groups(self, epoch: Any = None) -> None:
        for scheduler in self._schedulers:
            _check_scheduler_groups(scheduler)

    def step(self) -> None:  # type: ignore[override]
        """Step every scheduler, in order."""
        # All are checked first: torch's raises at the first scheduler that cannot step, after
        # the ones before it changed the lrs.
        self._check_param_groups()
        for scheduler in self._schedulers:
            scheduler.step()
        self.last_epoch += 1
        self._last_lr = _group_values(self._schedulers[-1].optimizer, "lr")


# ---------------------------------------------------------------------------------------------
# Schedulers driven by a monitored metric.


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` when a metric has stopped improving for ``patience`` epochs.

    Call ``step(metric)`` once per epoch with the monitored value (a validation loss, say).
    After more than ``patience`` epochs without improvement the lr is multiplied by ``factor``
    (not below ``min_lr``), then ``cooldown`` epochs pass before bad epochs count again. An
    improvement is a value below ``best * (1 - threshold)`` (``mode="min"``,
    ``threshold_mode="rel"``), below ``best - threshold`` (``"abs"``), or above
    ``best * (1 + threshold)`` / ``best + threshold`` in ``"max"`` mode.

    Args:
        optimizer: an object with torch-style ``param_groups``.
        mode: ``"min"`` (default) or ``"max"``.
        factor: the lr's factor at a reduction (0 < factor < 1, default 0.1).
        patience: bad epochs tolerated before a reduction (an integer >= 0, default 10).
        threshold: how much better counts as an improvement (>= 0, default 1e-4).
        threshold_mode: ``"rel"`` (default) or ``"abs"``.
        cooldown: epochs after a reduction during which bad epochs do not count (default 0).
        min_lr: lower bound of the lr (a number or one per group, default 0).
        eps: a reduction smaller than this is skipped (default 1e-8).

    Example:
        >>> from fusedoptim.lr_scheduler import ReduceLROnPlateau
        >>> class Optimizer:
        ...     param_groups = [{"lr": 1.0}]
        >>> scheduler = ReduceLROnPlateau(Optimizer(), patience=1, factor=0.5)
        >>> for loss in [1.0, 1.0, 1.0]:
        ...     scheduler.step(loss)
        >>> scheduler.get_last_lr()
        [0.5]
    """

    def __init__(
        self,
        optimizer: Any,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | list[float] = 0,
        eps: float = 1e-8,
    ) -> None:
        _check_optimizer(optimizer)
        _check_real("factor", factor)
        if factor >= 1.0 or factor <= 0:
            raise ValueError(f"Factor should be in (0, 1), got {factor!r}")
        _check_int("patience", patience, minimum=0)
        _check_int("cooldown", cooldown, minimum=0)
        _check_non_negative("threshold", threshold)
        _check_non_negative("eps", eps)
        self.factor = factor
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(
                    f"expected {len(optimizer.param_groups)} min_lrs, got {len(min_lr)}"
                )
            for index, value in enumerate(min_lr):
                _check_non_negative(f"min_lr[{index}]", value)
            self.default_min_lr: float | None = None
            self.min_lrs = list(min_lr)
        else:
            _check_non_negative("min_lr", min_lr)
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = _group_values(optimizer, "lr")
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics: SupportsFloat, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record one epoch's metric and reduce the lr if it has plateaued.

        Args:
            metrics: the monitored value.
            epoch: deprecated, as in torch.
        """
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        # The new state is worked out first and kept only if the step does not raise.
        best, num_bad_epochs = self.best, self.num_bad_epochs
        cooldown_counter = self.cooldown_counter
        if self._is_better(current, best):
            best, num_bad_epochs = current, 0
        else:
            num_bad_epochs += 1
        if cooldown_counter > 0:  # in cooldown: bad epochs do not count
            cooldown_counter -= 1
            num_bad_epochs = 0
        reduce = num_bad_epochs > self.patience
        if reduce:
            self._check_min_lrs()
            cooldown_counter, num_bad_epochs = self.cooldown, 0
        self.last_epoch = epoch
        self.best, self.num_bad_epochs = best, num_bad_epochs
        self.cooldown_counter = cooldown_counter
        if reduce:
            self._reduce_lr()
        self._last_lr = _group_values(self.optimizer, "lr")

    def _check_min_lrs(self) -> None:
        if len(self.optimizer.param_groups) != len(self.min_lrs) and self.default_min_lr is None:
            raise RuntimeError(
                f"The number of param groups in the optimizer "
                f"({len(self.optimizer.param_groups)}) differs from when ReduceLROnPlateau "
                f"was initialized ({len(self.min_lrs)}), usually because a param group was "
                "added: set `min_lrs` to one value per group, or build the scheduler after "
                "adding every param group (optimizer.add_param_group)."
            )

    def _reduce_lr(self) -> None:
        if len(self.optimizer.param_groups) != len(self.min_lrs):
            self._check_min_lrs()
            self.min_lrs = [self.default_min_lr] * len(self.optimizer.param_groups)
        for index, group in enumerate(self.optimizer.param_groups):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, self.min_lrs[index])
            if old_lr - new_lr > self.eps:
                _set_group_value(group, "lr", new_lr)

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min" and self.threshold_mode == "abs":
            return a < best - self.threshold
        if self.mode == "max" and self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        if mode not in {"min", "max"}:
            raise ValueError(f"mode {mode!r} is unknown! (use 'min' or 'max')")
        if threshold_mode not in {"rel", "abs"}:
            raise ValueError(f"threshold mode {threshold_mode!r} is unknown! (use 'rel' or 'abs')")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._init_is_better(
            mode=self.mode, threshold=self.threshold, threshold_mode=self.threshold_mode
        )


class AdaptiveCosineAnnealingLR(LRScheduler):
    r"""Cosine annealing with a restart every ``period`` epochs, whose peak is cut when the
    monitored metric got worse.

    Within a period the lr follows
    :math:`\eta_{min} + \frac{1}{2}(\eta_{max} - \eta_{min})(1 + \cos(\pi t / P))`,
    ``t = 0 .. P - 1``, the curve of ``CosineAnnealingWarmRestarts(T_0=period)``. At the end of
    each period the mean of its metrics is compared with the previous period's mean; if it is
    worse (higher in ``"min"`` mode, lower in ``"max"``), :math:`\eta_{max}` is multiplied by
    ``factor`` (not below ``eta_min``) before the next period starts. The first period only sets
    the reference. A common recipe for training that plateaus: the restarts explore, the cuts
    settle.

    Call ``step(metric)`` once per epoch, as with :class:`ReduceLROnPlateau`.

    Args:
        optimizer: an object with torch-style ``param_groups``; their lr is the first peak.
        period: epochs per cosine period (a positive integer).
        eta_min: the minimum lr (a number or one per group, >= 0, default 0).
        factor: the peak's factor at a cut (0 < factor < 1, default 0.1).
        mode: ``"min"`` for a loss (default), ``"max"`` for an accuracy.

    Example:
        >>> from fusedoptim.lr_scheduler import AdaptiveCosineAnnealingLR
        >>> class Optimizer:
        ...     param_groups = [{"lr": 1.0}]
        >>> scheduler = AdaptiveCosineAnnealingLR(Optimizer(), period=2, factor=0.1)
        >>> for loss in [1.0, 1.0, 2.0, 2.0]:  # the second period is worse: cut
        ...     scheduler.step(loss)
        >>> scheduler.max_lrs, scheduler.get_last_lr()
        ([0.1], [0.1])
    """

    def __init__(
        self,
        optimizer: Any,
        period: int,
        eta_min: float | list[float] = 0.0,
        factor: float = 0.1,
        mode: str = "min",
    ) -> None:
        _check_optimizer(optimizer)
        _check_int("period", period, minimum=1)
        _check_real("factor", factor)
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        eta_mins = _format_param("eta_min", optimizer, eta_min)
        for index, value in enumerate(eta_mins):
            _check_non_negative(f"eta_min[{index}]", value)
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", _copy_value(group["lr"]))
        self.base_lrs = _group_values(optimizer, "initial_lr")
        self.max_lrs = [float(lr) for lr in self.base_lrs]
        self.eta_mins = eta_mins
        self.period = period
        self.factor = factor
        self.mode = mode
        self.last_epoch = 0
        self.period_metrics: list[float] = []
        self.previous_mean: float | None = None
        self.num_cuts = 0
        self._apply(position=0)

    def _apply(self, position: int) -> None:
        cosine = (1 + math.cos(math.pi * position / self.period)) / 2
        for group, maximum, minimum in zip(
            self.optimizer.param_groups, self.max_lrs, self.eta_mins
        ):
            _set_group_value(group, "lr", minimum + (maximum - minimum) * cosine)
        self._last_lr = _group_values(self.optimizer, "lr")

    def _is_worse(self, mean: float, previous: float) -> bool:
        return mean > previous if self.mode == "min" else mean < previous

    def step(self, metrics: SupportsFloat) -> None:  # type: ignore[override]
        """Record one epoch's metric and set the lr of the next epoch.

        Args:
            metrics: the monitored value for the epoch that just ended.
        """
        if len(self.max_lrs) != len(self.optimizer.param_groups):
            raise _param_groups_changed(self, len(self.max_lrs))
        self.period_metrics.append(float(metrics))
        self.last_epoch += 1
        position = self.last_epoch % self.period
        if position == 0:
            mean = math.fsum(self.period_metrics) / len(self.period_metrics)
            if self.previous_mean is not None and self._is_worse(mean, self.previous_mean):
                self.max_lrs = [
                    max(maximum * self.factor, minimum)
                    for maximum, minimum in zip(self.max_lrs, self.eta_mins)
                ]
                self.num_cuts += 1
            self.previous_mean = mean
            self.period_metrics = []
        self._apply(position)


# ---------------------------------------------------------------------------------------------
# Pure schedules.


class ScheduleLR(LRScheduler):
    """Set the lr to ``schedule(epoch)``: drive an optimizer with a pure schedule.

    The schedule gives the lr itself, not a factor, so the lr the optimizer was built with is
    replaced from epoch 0 on. Because the lr at epoch ``n`` is a function of ``n`` alone,
    resuming needs nothing but ``last_epoch``.

    Args:
        optimizer: an object with torch-style ``param_groups``.
        schedule: a callable ``epoch -> lr`` (e.g. from :mod:`fusedoptim.schedules`), or a list
            with one per param group.
        last_epoch: the index of the last epoch (default -1).

    Example:
        >>> from fusedoptim import schedules
        >>> from fusedoptim.lr_scheduler import ScheduleLR
        >>> class Optimizer:
        ...     param_groups = [{"lr": 0.0}]
        >>> scheduler = ScheduleLR(Optimizer(), schedules.linear(0.0, 1.0, transition_steps=4))
        >>> scheduler.step(); scheduler.get_last_lr()
        [0.25]
    """

    def __init__(self, optimizer: Any, schedule: Any, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        if isinstance(schedule, (list, tuple)):
            if len(schedule) != len(optimizer.param_groups):
                raise ValueError(
                    f"Expected {len(optimizer.param_groups)} schedules (one per param group), "
                    f"but got {len(schedule)}"
                )
            schedules = list(schedule)
        else:
            schedules = [schedule] * len(optimizer.param_groups)
        for function in schedules:
            if not callable(function):
                raise TypeError(f"schedule must be callable (epoch -> lr), got {function!r}")
        self.schedules = schedules
        # The schedule does not use initial_lr, so resuming must not require it.
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", _copy_value(group["lr"]))
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_if_get_lr_called_directly()
        return self._get_closed_form_lr()

    def _get_closed_form_lr(self) -> list[Any]:
        return [float(schedule(self.last_epoch)) for schedule in self.schedules]

    def _groups_needed(self, epoch: Any = None) -> int | None:
        return len(self.schedules)  # one schedule per group

    def state_dict(self) -> dict[str, Any]:
        # The schedules are code, rebuilt by the program that resumes; only the epoch is state.
        return self._copy_state(("optimizer", "schedules"))


# ---------------------------------------------------------------------------------------------
# Plotting.


class _StandInOptimizer:
    """A copy of an optimizer's hyperparameters (no parameters) for a scheduler to drive."""

    def __init__(self, optimizer: Any) -> None:
        self.param_groups = [
            {key: copy.deepcopy(value) for key, value in group.items() if key != "params"}
            for group in optimizer.param_groups
        ]
        defaults = getattr(optimizer, "defaults", None)
        if isinstance(defaults, MutableMapping):
            self.defaults = copy.deepcopy(dict(defaults))
        self._opt_called = True  # no call-order warning: nothing is being trained

    def step(self) -> None:
        pass

    step._wrapped_by_lr_sched = True  # type: ignore[attr-defined]


def _is_scheduler(candidate: object) -> bool:
    return hasattr(candidate, "optimizer") and hasattr(candidate, "get_last_lr")


def _trajectory(scheduler_or_schedule: Any, steps: int, group: int) -> list[float]:
    if not _is_scheduler(scheduler_or_schedule):
        if not callable(scheduler_or_schedule):
            raise TypeError(
                "plot needs a scheduler or a schedule (a callable step -> lr), got "
                f"{reprlib.repr(scheduler_or_schedule)}"
            )
        return [float(scheduler_or_schedule(step)) for step in range(steps)]
    if _steps_with_metric(scheduler_or_schedule):
        raise TypeError(
            f"{type(scheduler_or_schedule).__name__} steps on a monitored metric, so it has no "
            "lr trajectory of its own to plot; record get_last_lr() during training instead"
        )
    # Step a copy whose optimizer is a stand-in: the caller's scheduler and optimizer stay as
    # they are, and the optimizer's parameters are never copied.
    original = scheduler_or_schedule.optimizer
    if not 0 <= group < len(original.param_groups):
        raise ValueError(
            f"group must index one of the {len(original.param_groups)} param groups, got {group}"
        )
    scheduler = copy.deepcopy(scheduler_or_schedule, {id(original): _StandInOptimizer(original)})
    values = [float(scheduler.get_last_lr()[group])]
    for _ in range(steps - 1):
        scheduler.step()
        values.append(float(scheduler.get_last_lr()[group]))
    return values


def plot(
    scheduler_or_schedule: Any,
    steps: int,
    path: str | None = None,
    *,
    group: int = 0,
    ax: Any = None,
    title: str | None = None,
) -> list[float]:
    """Draw the learning rate against the step, and return the values drawn.

    A scheduler is not changed: a copy of it is stepped (its optimizer's parameters are not
    copied). Value ``i`` is the lr after ``i`` scheduler steps, so value 0 is the lr right after
    construction. Needs matplotlib (``pip install fusedoptim[plot]``), imported only here.

    Args:
        scheduler_or_schedule: a scheduler from this module (not one that steps on a metric),
            or a schedule ``step -> lr`` such as those of :mod:`fusedoptim.schedules`.
        steps: the number of values to draw (a positive integer).
        path: where to save the figure (the format follows the extension); None saves nothing.
        group: the param group whose lr is drawn (default 0).
        ax: a matplotlib ``Axes`` to draw on (default: a new figure).
        title: the plot's title (default: the scheduler's class name).

    Returns:
        The ``steps`` learning rates, as floats.

    Example:
        >>> from fusedoptim import schedules
        >>> from fusedoptim.lr_scheduler import plot
        >>> values = plot(schedules.cosine_decay(1.0, decay_steps=4), 5)
        >>> [round(value, 3) for value in values]
        [1.0, 0.854, 0.5, 0.146, 0.0]
    """
    _check_int("steps", steps, minimum=1)
    _check_int("group", group, minimum=0)
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "fusedoptim.lr_scheduler.plot needs matplotlib: pip install fusedoptim[plot]"
        ) from error
    values = _trajectory(scheduler_or_schedule, steps, group)
    figure = None
    if ax is None:
        # A bare Figure needs no backend, so this works without a display and never switches
        # the backend of an interactive session.
        figure = Figure(figsize=(6.4, 3.6), dpi=100)
        ax = figure.add_subplot()
    ax.plot(range(steps), values, linewidth=1.8)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    if title is None:
        title = (
            type(scheduler_or_schedule).__name__
            if _is_scheduler(scheduler_or_schedule)
            else "learning-rate schedule"
        )
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if path is not None:
        if figure is not None:
            figure.tight_layout()
        ax.figure.savefig(path, dpi=150)
    return values
