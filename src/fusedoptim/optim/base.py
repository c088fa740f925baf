"""The :class:`Optimizer` base class: parameter groups, state, ``state_dict`` and the step plan.

The subclasses in this package (:class:`~fusedoptim.SGD`, :class:`~fusedoptim.Adam`, ...) only
declare their hyperparameters, their state and one call into the compiled core. Everything else
lives here, organised so that a steady-state :meth:`Optimizer.step` does no Python work per
tensor:

* For each parameter group the optimizer keeps a *plan*: the list of parameter arrays, one list
  per kind of state (``exp_avg``, ...), an ``int64`` array of per-parameter step counts that
  the compiled core increments itself, and a ``fusedoptim._core.Plan`` that has checked the
  parameter and state arrays once (their types, shapes and that none overlaps another).
  ``step()`` slices the user's gradient list (or gathers the ``.grad`` attributes with ``map``)
  and hands it to **one** call of that ``Plan`` per group (and dtype), which checks the
  gradients, and that no parameter was changed in place, in C++ before touching any array.
  With several calls (groups, dtypes) or state still to create, a ``_core.Footprint`` of
  everything the calls write is also checked against the gradients first.
* The plan is rebuilt only when something structural changes: a parameter group is added or
  replaced, ``load_state_dict`` runs, a parameter object's ``.data`` is replaced, the state is
  edited through ``opt.state``, or an option that needs more state (``amsgrad``, ``momentum``,
  ``centered``) is switched on. Creating state remakes the ``_core.Plan`` of the tensors' bucket.
* State is created lazily, when PyTorch creates it (at a parameter's first step with a
  gradient; AdaGrad at construction). A per-plan count of parameters that still lack state keeps
  that slow path off the steady-state path.

A ``_core.Plan`` holds its arrays by reference and does not check its state arrays again (its
parameters' NumPy structs it reads at every call), so anything that swaps an array goes through
a rebuild; in-place writes to the arrays' values need none.

A step either happens completely or not at all: every check that can fail runs before the first
array is written, so a bad gradient, a replaced ``.data`` or a bad hyperparameter raises and
leaves parameters and state as they were.
"""

from __future__ import annotations

import copy
import math
import operator
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any, ClassVar

import numpy as np

from fusedoptim import _core
from fusedoptim._checks import MAX_STEP
from fusedoptim._core import fast_step, same_items, same_values

__all__ = ["Optimizer"]

# C-level accessors: ``list(map(_GET_GRAD, objects))`` gathers 500 gradients without running a
# line of Python per tensor.
_GET_GRAD = operator.attrgetter("grad")
_GET_DATA = operator.attrgetter("data")

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Keys PyTorch keeps in its param groups that select an implementation (CUDA graphs, foreach,
# fused kernels, autograd through the step). They mean nothing here, so fusedoptim's groups do
# not have them; a state_dict converted from PyTorch may carry them and they are dropped on load.
TORCH_ONLY_GROUP_KEYS = frozenset({"foreach", "fused", "capturable", "differentiable"})


# --------------------------------------------------------------------------------------------
# Shared docstring text, written once and formatted into each optimizer's docstring.
# --------------------------------------------------------------------------------------------
DOC_ARGS = {
    "params": (
        "params (iterable): the parameters to optimize: NumPy arrays (float32 or float64,\n"
        "            C-contiguous, writeable; updated in place), objects with ``.data`` and\n"
        "            ``.grad`` arrays, ``(name, parameter)`` pairs, or dicts defining parameter\n"
        "            groups (``{'params': [...], 'lr': ...}``) with their own hyperparameters"
    ),
    "maximize": (
        "maximize (bool, optional): maximize the objective instead of minimizing it\n"
        "            (default: False)"
    ),
    "usage": (
        "Call :meth:`step` with the gradients, ``opt.step([g1, g2, ...])``: one entry per\n"
        "    parameter in the order given (across groups), ``None`` to skip a parameter; or with\n"
        "    no gradients when the parameters are objects whose ``.grad`` holds them. Groups,\n"
        "    ``state``, ``state_dict()`` / ``load_state_dict()``, ``add_param_group()`` and\n"
        "    ``zero_grad()`` work as in ``torch.optim`` (see\n"
        "    :class:`fusedoptim.optim.Optimizer`); the update runs in the compiled core, one call\n"
        "    per parameter group."
    ),
}


def format_doc(template: str) -> str:
    """Fill the ``{params}``, ``{maximize}`` and ``{usage}`` markers of an optimizer docstring.

    Plain ``str.replace`` rather than ``str.format``: the docstrings hold LaTeX, full of braces.
    """
    for key, text in DOC_ARGS.items():
        template = template.replace("{" + key + "}", text)
    return template


# --------------------------------------------------------------------------------------------
# Option checks. The range checks are shared with fusedoptim.functional (fusedoptim._checks),
# so that the classes and the functional API accept the same values, with PyTorch's messages.
# --------------------------------------------------------------------------------------------
def check_bool(value: Any, name: str) -> None:
    """Refuse an option that is not a bool (``centered="no"`` would otherwise be truthy)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")


# --------------------------------------------------------------------------------------------
# Array checks with messages that say how to fix the problem.
# --------------------------------------------------------------------------------------------
def _describe(value: Any) -> str:
    kind = type(value)
    return (
        f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__name__
    )


def check_param_array(array: Any, label: str) -> None:
    """Raise a TypeError/ValueError explaining why ``array`` cannot be optimized in place."""
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"{label} must be a numpy.ndarray of float32 or float64, or an object with .data "
            f"and .grad arrays, got {_describe(array)}"
        )
    if array.dtype not in _FLOAT_DTYPES:
        hint = (
            "it has non-native byte order: convert it with p = p.astype(p.dtype.newbyteorder('='))"
            if array.dtype.kind == "f" and array.dtype.itemsize in (4, 8)
            else "convert it, e.g. p = p.astype(np.float32), and optimize the converted array"
        )
        raise TypeError(
            f"{label} has dtype {array.dtype.str if array.dtype.kind == 'f' else array.dtype}; "
            f"fusedoptim optimizes float32 and float64 arrays: {hint}"
        )
    if not array.flags.c_contiguous:
        raise ValueError(
            f"{label} is not C-contiguous (a slice, a transpose or a Fortran-ordered array): the "
            "optimizer updates arrays in place and cannot work on a copy, so make the parameter "
            "itself contiguous, p = np.ascontiguousarray(p), and use that array in your model"
        )
    if not array.flags.aligned:
        raise ValueError(f"{label} is not aligned in memory: pass a copy, p = p.copy()")
    if not array.flags.writeable:
        raise ValueError(
            f"{label} is read-only (flags.writeable is False): the optimizer updates parameters "
            "in place; pass a writeable array, e.g. p = p.copy()"
        )


def check_grad_array(grad: Any, param: np.ndarray, label: str) -> None:
    """Raise unless ``grad`` is a valid gradient for ``param`` (``None`` is valid: skipped)."""
    if grad is None:
        return
    if not isinstance(grad, np.ndarray):
        raise TypeError(f"{label} must be a numpy.ndarray or None, got {_describe(grad)}")
    if grad.shape != param.shape:
        raise ValueError(
            f"{label} has shape {grad.shape} but its parameter has shape {param.shape}"
        )
    if grad.dtype != param.dtype:
        raise TypeError(
            f"{label} has dtype {grad.dtype.str if grad.dtype.kind == 'f' else grad.dtype} but "
            f"its parameter has dtype {param.dtype}: cast it, g = g.astype(np.{param.dtype})"
        )
    if not grad.flags.c_contiguous:
        raise ValueError(
            f"{label} is not C-contiguous: pass np.ascontiguousarray(g) (a copy is fine for a "
            "gradient)"
        )
    if not grad.flags.aligned:
        raise ValueError(f"{label} is not aligned in memory: pass a copy, g.copy()")
    if np.may_share_memory(grad, param):
        raise ValueError(f"{label} shares memory with its parameter: pass a separate array")


def _memory_span(array: np.ndarray) -> tuple[int, int]:
    start = array.__array_interface__["data"][0]
    return start, start + array.nbytes


def check_no_overlap(arrays: Sequence[np.ndarray], labels: Callable[[int], str]) -> None:
    """Refuse two parameters that are the same array or share memory (views of each other).

    Parameters are C-contiguous, so each occupies one interval of memory and sorting the
    intervals finds any overlap in O(n log n).
    """
    spans = sorted(
        (*_memory_span(array), index) for index, array in enumerate(arrays) if array.size
    )
    # Arrays without elements occupy no memory, but one given twice is still given twice.
    first_seen: dict[int, int] = {}
    for index, array in enumerate(arrays):
        if not array.size:
            first = first_seen.setdefault(id(array), index)
            if first != index:
                raise ValueError(
                    f"{labels(index)} is the same array as {labels(first)}: each array can be "
                    "optimized only once, by one optimizer group"
                )
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            first, second = sorted((first, second))
            same = arrays[first] is arrays[second]
            raise ValueError(
                f"{labels(second)} "
                + ("is the same array as " if same else "shares memory with ")
                + f"{labels(first)}: each array can be optimized only once, by one optimizer "
                "group"
            )


# --------------------------------------------------------------------------------------------
# State containers.
# --------------------------------------------------------------------------------------------
class _ParamState(dict):
    """One parameter's state (``{'step': ..., 'exp_avg': ...}``): a dict that notices edits.

    The plans cache the state arrays, so an edit made through ``opt.state[p][...] = ...`` marks
    the optimizer for a rebuild. The optimizer's own writes use ``dict.__setitem__`` directly.
    """

    __slots__ = ("_owner",)

    def __init__(self, owner: Optimizer) -> None:
        super().__init__()
        self._owner = owner

    def _touch(self) -> None:
        self._owner._dirty = True

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._touch()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._touch()

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().update(*args, **kwargs)
        self._touch()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._touch()
        return super().setdefault(key, default)

    def pop(self, *args: Any) -> Any:  # type: ignore[override]
        self._touch()
        return super().pop(*args)

    def popitem(self) -> tuple[Any, Any]:
        self._touch()
        return super().popitem()

    def clear(self) -> None:
        super().clear()
        self._touch()

    def __ior__(self, other: Any) -> _ParamState:  # type: ignore[override]
        self.update(other)
        return self


class _Entry:
    """What the optimizer knows about one parameter: the object, its state, its registration."""

    __slots__ = ("param", "state", "shape", "dtype")

    def __init__(self, param: Any, state: _ParamState, shape: tuple, dtype: np.dtype) -> None:
        self.param = param
        self.state = state
        self.shape = shape
        self.dtype = dtype


class StateMap(MutableMapping):
    """``opt.state``: per-parameter state keyed by parameter *identity*.

    NumPy arrays are unhashable (and ``==`` compares elements), so a plain dict cannot be keyed
    by them; this mapping looks parameters up by ``id`` (it holds a reference to each, so the ids
    stay unique) and otherwise behaves like ``torch.optim.Optimizer.state``: ``opt.state[p]`` is
    the dict of ``p``'s state (empty until the state is created) and iteration yields the
    parameters that have state.
    """

    def __init__(self) -> None:
        self._entries: dict[int, _Entry] = {}

    def _entry(self, param: Any) -> _Entry:
        entry = self._entries.get(id(param))
        if entry is None or entry.param is not param:
            raise KeyError("not a parameter of this optimizer")
        return entry

    def __getitem__(self, param: Any) -> _ParamState:
        return self._entry(param).state

    def __setitem__(self, param: Any, value: Mapping[str, Any]) -> None:
        state = self._entry(param).state
        items = dict(value)  # first: value may be this very dict (opt.state[p] |= {...})
        dict.clear(state)
        state.update(items)  # marks the optimizer for a rebuild

    def __delitem__(self, param: Any) -> None:
        self._entry(param).state.clear()

    def __contains__(self, param: object) -> bool:
        entry = self._entries.get(id(param))
        return entry is not None and entry.param is param and bool(entry.state)

    def __iter__(self) -> Iterator[Any]:
        return (entry.param for entry in list(self._entries.values()) if entry.state)

    def __len__(self) -> int:
        return sum(1 for entry in self._entries.values() if entry.state)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"<param {k}>: {v!r}" for k, v in enumerate(self.values())) + "}"


# --------------------------------------------------------------------------------------------
# The plan.
# --------------------------------------------------------------------------------------------
class _Bucket:
    """The tensors of one group that go to one core call (one dtype: the core refuses mixes)."""

    __slots__ = (
        "positions",
        "take",
        "arrays",
        "states",
        "entries",
        "steps",
        "missing",
        "core_plan",
        "run",
    )

    positions: list[int] | None  # positions inside the group; None: the whole group, in order
    take: Callable[[Sequence[Any]], Sequence[Any]] | None  # picks this bucket's gradients
    arrays: list[np.ndarray]
    states: dict[str, list[np.ndarray | None]]
    entries: list[_Entry]
    steps: np.ndarray  # int64, one count per tensor, incremented by the core
    missing: int  # tensors still lacking some state they need
    core_plan: _core.Plan  # arrays and the state the group's options use, checked once
    run: Callable[..., None]  # core_plan's method for the algorithm (core_plan.adam, ...)


class _Plan:
    """Everything one parameter group's step needs, prepared once."""

    __slots__ = (
        "group",
        "params",
        "arrays",
        "start",
        "stop",
        "kinds",
        "buckets",
        "checked",
        "checked_types",
        "args",
    )

    group: dict[str, Any]
    params: list[Any]  # snapshot of group["params"], to notice edits
    arrays: list[np.ndarray]
    start: int
    stop: int
    kinds: tuple[str, ...]
    buckets: list[_Bucket]
    checked: tuple | None  # the hyperparameter values last checked (a copy)
    checked_types: tuple | None  # and their types
    args: tuple  # the core call's hyperparameter arguments, made from the checked values


_SEQUENCES = (list, tuple)  # the gradient containers the short step path takes


def _take_one(position: int) -> Callable[[Sequence[Any]], tuple[Any]]:
    return lambda seq: (seq[position],)


# --------------------------------------------------------------------------------------------
# The base class.
# --------------------------------------------------------------------------------------------
class Optimizer:
    """Base class of fusedoptim's optimizers, with the ``torch.optim.Optimizer`` interface.

    Subclasses set :attr:`_algorithm` (the ``_core.Plan`` algorithm), :attr:`_state_kinds`
    (array state, in the order the core takes it), :attr:`_keeps_step` and implement
    :meth:`_check_hyperparameters`, :meth:`_needed_kinds` and :meth:`_update` (one core call).
    Users do not instantiate this class directly.

    Attributes:
        defaults: the constructor's hyperparameters, applied to groups that do not set them.
        param_groups: list of dicts, one per group: ``'params'`` plus the hyperparameters.
            Mutable: a changed ``lr`` or ``weight_decay`` applies from the next :meth:`step`.
        state: per-parameter state, ``opt.state[p]['exp_avg']`` (keyed by identity).

    Thread safety: :meth:`step`, :meth:`zero_grad`, :meth:`state_dict`,
    :meth:`load_state_dict` and :meth:`add_param_group` hold a lock, so two threads calling
    ``step()`` on one optimizer take turns instead of corrupting state.

    Example:
        >>> import numpy as np
        >>> import fusedoptim
        >>> w = np.ones(3)
        >>> opt = fusedoptim.SGD([w], lr=0.5)
        >>> isinstance(opt, fusedoptim.optim.Optimizer)
        True
        >>> opt.step([np.array([1.0, 0.0, -1.0])])
        >>> w
        array([0.5, 1. , 1.5])
    """

    # The update the compiled core runs ("sgd", "adagrad", "rmsprop", "adadelta" or "adam").
    _algorithm: ClassVar[str]
    # Array state kinds, in the order the core takes them (e.g. exp_avg, exp_avg_sq, ...).
    _state_kinds: ClassVar[tuple[str, ...]] = ()
    # Whether state holds a 'step' count (every optimizer here but SGD).
    _keeps_step: ClassVar[bool] = True
    # Whether state is created for every parameter at construction (AdaGrad, as in PyTorch).
    _eager_state: ClassVar[bool] = False
    # State kinds a parameter's state must have once it exists (the others depend on options).
    _required_kinds: ClassVar[tuple[str, ...]] = ()
    # Group keys that checkpoints of older PyTorch versions may lack, with the values that
    # torch's ``__setstate__`` gives them when it loads one (so fusedoptim loads what torch does).
    _legacy_group_defaults: ClassVar[Mapping[str, Any]] = {"maximize": False}

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self._check_hyperparameters(defaults)
        self.defaults: dict[str, Any] = defaults
        self._state = StateMap()
        self.param_groups: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._plans: list[_Plan] = []
        self._plan_groups: list[dict[str, Any]] = []
        self._num_params = 0
        self._objects: bool | None = None  # parameter objects (True) or plain arrays (False)
        self._dirty = False
        # The plans list for which _fast_step may run (one plan, one bucket, all state), set by a
        # step that found it so; a rebuild makes a new list and add_param_group lengthens it.
        self._fast: list[_Plan] | None = None
        # Everything the current plans write, for checks that span several core calls (made
        # when first needed after the plans change; see _written_footprint).
        self._footprint: tuple[_core.Footprint, list[tuple[str | None, int]]] | None = None

        if isinstance(params, (np.ndarray, dict, str)) or not isinstance(params, Iterable):
            raise TypeError(
                "params must be an iterable of arrays, parameter objects, (name, array) pairs "
                f"or param-group dicts, got {_describe(params)}"
                + (
                    ": wrap a single array in a list, e.g. [w]"
                    if isinstance(params, np.ndarray)
                    else ""
                )
            )
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self._add_param_group(group)
        if self._eager_state:
            for plan in self._plans:
                for bucket in plan.buckets:
                    self._create_state(plan, bucket, range(len(bucket.arrays)))

    # ---------------------------------------------------------------- subclass interface
    @staticmethod
    def _check_hyperparameters(group: Mapping[str, Any]) -> None:
        """Raise if a hyperparameter in ``group`` is out of range (PyTorch's messages)."""
        raise NotImplementedError

    def _needed_kinds(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        """The state kinds a step with this group's options uses."""
        return self._state_kinds

    def _new_state(self, group: Mapping[str, Any], kind: str, param: np.ndarray) -> np.ndarray:
        """A fresh state array of ``kind`` for ``param`` (zeros unless overridden)."""
        return np.zeros_like(param)

    def _core_arguments(self, group: Mapping[str, Any]) -> tuple:
        """The hyperparameter arguments of ``plan.<algorithm>`` for ``group``, in the core's order.

        Made once per change of the group's hyperparameters (after they pass the checks), and
        passed to every step's core call: ``run(grads, steps, True, *arguments, check_only)``,
        which updates the plan's parameters and state and increments ``steps`` where a gradient
        is given (with ``check_only`` it checks the gradients and writes nothing).
        """
        raise NotImplementedError

    # ---------------------------------------------------------------- public API
    @property
    def state(self) -> StateMap:
        """Per-parameter state, keyed by parameter identity (see :class:`StateMap`)."""
        return self._state

    @state.setter
    def state(self, value: Mapping[Any, Any]) -> None:
        """Replace the whole state, as assigning ``opt.state`` does in PyTorch: each parameter
        gets ``value[p]`` (a mapping), or no state where ``value`` has none, so
        ``opt.state = collections.defaultdict(dict)`` resets every parameter's state. Keys
        must be this optimizer's parameters; nothing changes if one is not."""
        if not isinstance(value, Mapping):
            raise TypeError(
                f"state must be a mapping of parameters to dicts, got {_describe(value)}"
            )
        items = list(value.items())
        with self._lock:
            for param, param_state in items:
                try:
                    self._state._entry(param)
                except KeyError:
                    raise ValueError(
                        f"state has a key that is not a parameter of this optimizer: "
                        f"{_describe(param)}"
                    ) from None
                if not isinstance(param_state, Mapping):
                    raise TypeError(
                        f"the state of a parameter must be a mapping, got {_describe(param_state)}"
                    )
            for entry in self._state._entries.values():
                dict.clear(entry.state)
            for param, param_state in items:
                self._state[param] = param_state
            self._dirty = True

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            for key in sorted(group):
                if key not in ("params", "param_names"):
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group (a dict with ``'params'`` and optional hyperparameters).

        Hyperparameters the dict does not set take the optimizer's :attr:`defaults`. As in
        PyTorch, the dict itself is appended to :attr:`param_groups` (so later edits to it
        apply). Nothing changes if the group is refused: an array already optimized (in any
        group) or sharing memory with another parameter or its state, a bad array or a bad
        hyperparameter.

        Example:
            >>> import numpy as np
            >>> import fusedoptim
            >>> opt = fusedoptim.SGD([np.zeros(2)], lr=0.1)
            >>> opt.add_param_group({"params": [np.zeros(3)], "lr": 0.01})
            >>> [group["lr"] for group in opt.param_groups]
            [0.1, 0.01]
        """
        with self._lock:
            self._add_param_group(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the ``.grad`` of every parameter object (to ``None``, or zeros in place).

        With plain arrays the optimizer holds no gradients (they are passed to :meth:`step`),
        so this does nothing; it is accepted so that torch-style loops run unchanged.

        Example:
            >>> import numpy as np
            >>> import fusedoptim
            >>> class Param:
            ...     def __init__(self, data):
            ...         self.data, self.grad = data, None
            >>> p = Param(np.zeros(2)); p.grad = np.ones(2)
            >>> opt = fusedoptim.SGD([p], lr=0.1)
            >>> opt.zero_grad(set_to_none=False); p.grad
            array([0., 0.])
            >>> opt.zero_grad(); p.grad is None
            True
        """
        with self._lock:
            if not self._objects:
                return
            for group in self.param_groups:
                for param in group["params"]:
                    if set_to_none:
                        param.grad = None
                    elif param.grad is not None:
                        param.grad[...] = 0

    def step(
        self,
        grads: Sequence[np.ndarray | None] | Callable[[], Any] | None = None,
        closure: Callable[[], Any] | None = None,
    ) -> Any:
        """Perform one optimization step and return the closure's loss (``None`` without one).

        Args:
            grads: with plain-array parameters, the gradients: one entry per parameter, in
                the order the parameters were given (across groups); ``None`` skips that
                parameter (no update, no state, no step count), as PyTorch skips a missing
                ``.grad``. Leave it out for parameter objects, whose ``.grad`` is read. A
                callable passed here is taken as the closure (``opt.step(closure)`` as in
                PyTorch).
            closure: called first (before anything is read); its return value is returned.

        Raises:
            TypeError, ValueError: a missing, extra or malformed gradient; a gradient or state
                array that shares memory with an array the step writes (in any group); a
                parameter changed in place since it was given (read-only, reshaped, another
                dtype) or a parameter object whose ``.data`` no longer matches; a bad or
                missing hyperparameter in ``param_groups``. Nothing has been changed when
                this happens.

        Example:
            >>> import numpy as np
            >>> import fusedoptim
            >>> w, b = np.ones(2), np.zeros(1)
            >>> opt = fusedoptim.SGD([w, b], lr=0.1)
            >>> opt.step([np.array([1.0, 2.0]), None])  # b gets no gradient this step
            >>> w, b
            (array([0.9, 0.8]), array([0.]))
        """
        if closure is None and self._fast is not None and grads.__class__ in _SEQUENCES:
            with self._lock:  # the common step, through the fewest layers of Python (_fast_step)
                if self._fast is None or not self._fast_step(grads):
                    self._step(grads, try_fast=False)
            return None
        if closure is None and callable(grads) and not isinstance(grads, Sequence):
            grads, closure = None, grads
        loss = closure() if closure is not None else None
        with self._lock:
            self._step(grads)  # type: ignore[arg-type]
        return loss

    def state_dict(self) -> dict[str, Any]:
        """Return the optimizer's state in PyTorch's layout, as copies (NumPy arrays).

        ``{'state': {index: {'step': ..., 'exp_avg': ...}}, 'param_groups': [{..., 'params':
        [index, ...]}]}``: parameters are numbered in order across groups; ``state`` holds the
        parameters that have state. Unlike PyTorch, which returns references to its live
        tensors, the arrays here are copies, so the dict is a snapshot that later steps do not
        change. ``step`` is a 0-d ``int64`` array.

        Example:
            >>> import numpy as np
            >>> import fusedoptim
            >>> opt = fusedoptim.Adam([np.zeros(2)], lr=0.1)
            >>> opt.step([np.ones(2)])
            >>> sd = opt.state_dict()
            >>> sorted(sd["state"][0]), int(sd["state"][0]["step"]), sd["param_groups"][0]["params"]
            (['exp_avg', 'exp_avg_sq', 'step'], 1, [0])
        """
        with self._lock:
            state: dict[int, dict[str, Any]] = {}
            groups = []
            index = 0
            for group in self.param_groups:
                packed = {key: value for key, value in group.items() if key != "params"}
                ids = []
                for param in group["params"]:
                    # A parameter appended to group['params'] directly is not registered yet
                    # (the next step checks it): it has no state, as in torch.
                    entry = self.state._entries.get(id(param))
                    if entry is not None and entry.param is param and entry.state:
                        state[index] = {
                            key: _copy_state_value(key, value) for key, value in entry.state.items()
                        }
                    ids.append(index)
                    index += 1
                packed["params"] = ids
                groups.append(packed)
            return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load state from :meth:`state_dict` (or :func:`fusedoptim.load`), following PyTorch.

        The saved groups are matched to this optimizer's groups by order (their number and
        sizes must agree), saved state to parameters by index; hyperparameters are restored
        from the saved groups. State arrays are copied (never aliased) and cast to the
        parameter's dtype. Everything is checked before anything changes: a state_dict from
        another optimizer class or another model raises ``ValueError`` and leaves this optimizer
        as it was.

        Example:
            >>> import numpy as np
            >>> import fusedoptim
            >>> w1, w2 = np.zeros(2), np.zeros(2)
            >>> opt1 = fusedoptim.Adam([w1], lr=0.1)
            >>> opt1.step([np.ones(2)])
            >>> opt2 = fusedoptim.Adam([w2], lr=0.5)
            >>> opt2.load_state_dict(opt1.state_dict())
            >>> opt2.param_groups[0]["lr"], int(opt2.state[w2]["step"])
            (0.1, 1)
        """
        with self._lock:
            self._load_state_dict(state_dict)

    # ---------------------------------------------------------------- groups
    def _label(self, index: int, group: Mapping[str, Any] | None = None, position: int = 0) -> str:
        """'parameter 3' or "parameter 3 ('fc.weight')", for error messages."""
        names = group.get("param_names") if group is not None else None
        if names is not None and position < len(names):
            return f"parameter {index} ({names[position]!r})"
        return f"parameter {index}"

    def _add_param_group(self, param_group: dict[str, Any]) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {_describe(param_group)}")
        if "params" not in param_group:
            raise ValueError("param_group must have a 'params' entry")
        raw = param_group["params"]
        if isinstance(raw, np.ndarray) or _is_param_object(raw):
            raw = [raw]
        elif isinstance(raw, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        elif isinstance(raw, (str, dict)) or not isinstance(raw, Iterable):
            raise TypeError(f"param_group['params'] must be an iterable, got {_describe(raw)}")
        else:
            raw = list(raw)

        params, names = [], []
        for item in raw:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                names.append(item[0])
                params.append(item[1])
            else:
                params.append(item)
        if names and len(names) != len(params):
            raise ValueError(
                "all optimizer params should be with/without names. Some param names are missing"
            )
        if self.param_groups and bool(names) != ("param_names" in self.param_groups[0]):
            raise ValueError(
                "all optimizer param groups should be with/without names. "
                f"cannot add param group {'with' if names else 'without'} names to the optimizer"
            )

        objects = self._objects
        for position, param in enumerate(params):
            label = self._label(self._num_params + position, {"param_names": names}, position)
            is_object = not isinstance(param, np.ndarray)
            if is_object and not _is_param_object(param):
                raise TypeError(
                    f"{label} must be a numpy.ndarray of float32 or float64, or an object with "
                    f".data and .grad arrays, got {_describe(param)}"
                )
            if objects is None:
                objects = is_object
            elif objects != is_object:
                raise TypeError(
                    f"{label} is {'a parameter object' if is_object else 'a plain array'} but "
                    f"the optimizer's other parameters are "
                    f"{'parameter objects' if objects else 'plain arrays'}: use one kind"
                )
            array = param.data if is_object else param
            check_param_array(array, f"{label}{'.data' if is_object else ''}")

        # Key order as PyTorch's (it shows in state_dict): the caller's keys, the names, then
        # the defaults the caller did not set.
        group = {key: value for key, value in param_group.items() if key != "param_names"}
        group["params"] = params
        if names:
            group["param_names"] = names
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_hyperparameters(group)

        existing = [
            param.data if objects else param
            for other in self.param_groups
            for param in other["params"]
        ]
        first_new = len(existing)

        def label(index: int) -> str:
            if index < first_new:
                return self._flat_label(index)
            return self._label(index, {"param_names": names}, index - first_new)

        check_no_overlap(existing + [param.data if objects else param for param in params], label)

        # Stage the new entries and the plan, so that a failure here changes nothing.
        new_group = group
        entries = dict(self.state._entries)
        for param in params:
            array = param.data if objects else param
            entries[id(param)] = _Entry(param, _ParamState(self), array.shape, array.dtype)
        previous, self._objects = self._objects, objects
        try:
            plan = self._build_plan(new_group, self._num_params, entries)
            self._make_core_plans(plan)
            # A new parameter may be another group's state array (check_no_overlap above
            # compares parameters only).
            footprint = self._checked_footprint([*self._plans, plan])
        finally:
            self._objects = previous

        # Checked: commit. As in PyTorch, the caller's dict becomes the group.
        param_group.update(new_group)
        plan.group = param_group
        self._objects = objects
        self.state._entries = entries
        self.param_groups.append(param_group)
        self._commit_plan(plan)
        self._plans.append(plan)
        self._plan_groups.append(param_group)
        self._num_params += len(params)
        self._footprint = footprint

    def _flat_label(self, index: int) -> str:
        """The label of the parameter with flat ``index`` (walks the groups: errors only)."""
        start = 0
        for group in self.param_groups:
            count = len(group["params"])
            if index < start + count:
                return self._label(index, group, index - start)
            start += count
        return self._label(index)

    # ---------------------------------------------------------------- plans
    def _build_plan(
        self,
        group: dict[str, Any],
        start: int,
        entries: Mapping[int, _Entry] | None = None,
    ) -> _Plan:
        """Prepare (and check) one group's plan without changing anything.

        ``entries`` maps ``id(param)`` to the parameter's entry; the optimizer's own unless
        ``load_state_dict`` is staging new state.
        """
        entries = self.state._entries if entries is None else entries
        params = list(group["params"])
        objects = self._objects
        plan = _Plan()
        plan.group = group
        plan.params = params
        plan.start, plan.stop = start, start + len(params)
        plan.kinds = tuple(self._needed_kinds(group))
        plan.checked = plan.checked_types = None
        plan.args = ()
        plan_entries = []
        arrays = []
        for position, param in enumerate(params):
            label = self._label(start + position, group, position)
            entry = entries.get(id(param))
            if entry is None or entry.param is not param:
                raise ValueError(
                    f"{label} was put into param_groups directly; add new parameters with "
                    "add_param_group()"
                )
            array = param.data if objects else param
            if objects:
                check_param_array(array, f"{label}.data")
            if array.shape != entry.shape or array.dtype != entry.dtype:
                raise ValueError(
                    f"{label}{'.data' if objects else ''} is now an array of shape "
                    f"{array.shape} and dtype {array.dtype}, but the optimizer was given shape "
                    f"{entry.shape} and dtype {entry.dtype}: replacing .data must keep its shape "
                    "and dtype (create a new optimizer for a model whose shapes changed)"
                )
            arrays.append(array)
            plan_entries.append(entry)
        plan.arrays = arrays

        # One bucket per dtype, in order of first appearance; usually a single one.
        by_dtype: dict[np.dtype, list[int]] = {}
        for position, array in enumerate(arrays):
            by_dtype.setdefault(array.dtype, []).append(position)
        plan.buckets = []
        for positions in by_dtype.values():
            bucket = _Bucket()
            if len(by_dtype) == 1:
                bucket.positions, bucket.take = None, None
            else:
                bucket.positions = positions
                bucket.take = (
                    operator.itemgetter(*positions)
                    if len(positions) > 1
                    else _take_one(positions[0])
                )
            bucket.arrays = [arrays[p] for p in positions]
            bucket.entries = [plan_entries[p] for p in positions]
            bucket.states = {kind: [] for kind in self._state_kinds}
            bucket.steps = np.zeros(len(positions), dtype=np.int64)
            bucket.missing = 0
            for j, p in enumerate(positions):
                state = bucket.entries[j].state
                label = self._label(start + p, group, p)
                for kind in self._state_kinds:
                    value = state.get(kind)
                    if value is not None:
                        _check_state_array(value, arrays[p], f"state[{kind!r}] of {label}")
                    bucket.states[kind].append(value)
                if self._keeps_step:
                    if "step" in state:
                        bucket.steps[j] = _as_step(state["step"], f"state['step'] of {label}")
                    complete = "step" in state and all(kind in state for kind in plan.kinds)
                else:
                    # SGD keeps no count in its state: an existing momentum buffer means the
                    # next step is not the first (the core copies the gradient at step 1).
                    bucket.steps[j] = 1 if "momentum_buffer" in state else 0
                    complete = all(kind in state for kind in plan.kinds)
                bucket.missing += not complete
            plan.buckets.append(bucket)
        return plan

    def _make_core_plans(self, plan: _Plan, buckets: Iterable[_Bucket] | None = None) -> None:
        """(Re)make the ``_core.Plan`` of ``buckets`` (default: all of ``plan``'s).

        Each holds the bucket's arrays and the state the group's options use, which the core
        checks here, once. Callers run their own checks first, for their clearer messages.
        """
        for bucket in plan.buckets if buckets is None else buckets:
            states = [
                bucket.states[kind] if kind in plan.kinds else None for kind in self._state_kinds
            ]
            bucket.core_plan = _core.Plan(self._algorithm, bucket.arrays, states)
            bucket.run = getattr(bucket.core_plan, self._algorithm)

    def _commit_plan(self, plan: _Plan) -> None:
        """Point each ``state['step']`` at the plan's live count (a 0-d view)."""
        if not self._keeps_step:
            return
        for bucket in plan.buckets:
            steps = bucket.steps
            for j, entry in enumerate(bucket.entries):
                if "step" in entry.state:
                    dict.__setitem__(entry.state, "step", steps[j, ...])

    def _rebuild(self) -> None:
        """Rebuild every plan (checking everything first), after a structural change."""
        if not self.param_groups:
            raise ValueError("optimizer has no parameter groups")
        starts, start = [], 0
        for index, group in enumerate(self.param_groups):
            if not isinstance(group, dict) or "params" not in group:
                raise TypeError(f"param_groups[{index}] must be a dict with a 'params' entry")
            absent = [key for key in self.defaults if key not in group]
            if absent:
                raise ValueError(f"param_groups[{index}] lacks {absent}")
            self._check_hyperparameters(group)
            starts.append(start)
            start += len(group["params"])
        plans = [self._build_plan(group, s) for group, s in zip(self.param_groups, starts)]
        check_no_overlap([array for plan in plans for array in plan.arrays], self._flat_label)
        footprint = self._checked_footprint(plans)
        for plan in plans:
            self._make_core_plans(plan)
        for plan in plans:
            self._commit_plan(plan)
        self._plans = plans
        self._plan_groups = list(self.param_groups)
        self._num_params = start
        self._dirty = False
        self._footprint = footprint

    def _needs_rebuild(self) -> bool:
        """Whether a group, a group's parameter list or a parameter's ``.data`` was replaced.

        The lists are compared by identity in C (``_core.same_items``), which touches none of the
        parameter objects: the steady-state step costs the same for 5 tensors as for 500.
        """
        groups = self.param_groups
        if self._dirty or not isinstance(groups, list) or not same_items(groups, self._plan_groups):
            return True
        for plan in self._plans:
            params = plan.group.get("params") if isinstance(plan.group, dict) else None
            if not isinstance(params, (list, tuple)) or not same_items(params, plan.params):
                return True
            if self._objects and not same_items(list(map(_GET_DATA, params)), plan.arrays):
                return True
        return False

    def _current_plans(self) -> list[_Plan]:
        """The plans, rebuilt if needed, with every group's hyperparameters checked.

        A group's hyperparameters are checked again (and its core arguments remade) only when one
        has changed: a scheduler sets ``lr`` every step, and the checks cost more than comparing
        the values with a copy of those last checked. An option that needs other state (turning
        ``amsgrad`` on, say) rebuilds the plans.
        """
        if self._needs_rebuild():
            self._rebuild()
        for plan in self._plans:
            if not self._refresh_hyperparameters(plan):
                self._rebuild()  # new plans, whose hyperparameters are then checked afresh
                return self._current_plans()
        return self._plans

    def _refresh_hyperparameters(self, plan: _Plan) -> bool:
        """Check ``plan``'s group's hyperparameters and remake its core arguments if one changed.

        Returns False when the new values need other state (a rebuild); raises if one is bad.
        """
        group = plan.group
        if same_values(group, self.defaults, plan.checked, plan.checked_types):
            return True  # the common case, in C: nothing changed since the last check
        try:
            values: tuple | None = tuple(map(group.__getitem__, self.defaults))
        except Exception:  # a removed key: the check says which
            values = None
        if values is not None:
            try:
                # An equal value of another type (amsgrad=0 for False) is a change, checked too.
                if values == plan.checked and tuple(map(type, values)) == plan.checked_types:
                    return True
            except Exception:  # a value that does not compare: check it
                pass
        if values is None:
            absent = [key for key in self.defaults if key not in group]
            if absent:
                index = next(i for i, other in enumerate(self._plans) if other is plan)
                raise ValueError(
                    f"param_groups[{index}] lacks {absent}: every group needs all of "
                    f"{list(self.defaults)}"
                )
            current: Mapping[str, Any] = group
            snapshot = types = None
        else:
            # Check and convert a copy: another thread editing the group, or a list in it,
            # meanwhile cannot slip an unchecked value into the arguments. (A value that could
            # not be copied is used as it is, and checked again at every step.)
            snapshot = _snapshot(values)
            types = tuple(map(type, values))
            current = {
                key: value if isinstance(copied, _NeverEqual) else copied
                for key, value, copied in zip(self.defaults, values, snapshot)
            }
        try:
            self._check_hyperparameters(current)
            kinds = tuple(self._needed_kinds(current))
            arguments = self._core_arguments(current)
        except KeyError as error:  # a key deleted from self.defaults, which lists what to check
            raise ValueError(
                f"optimizer.defaults lacks {error.args[0]!r}: {type(self).__name__} checks the "
                "hyperparameters its defaults name, and needs all of them there"
            ) from None
        if kinds != plan.kinds:
            return False
        plan.args = arguments
        plan.checked, plan.checked_types = snapshot, types
        return True

    def _fast_step(self, grads: Any) -> bool:
        """The common step in one call to the core: one group, one dtype, plain arrays, all state.

        Run on a cold cache (after a forward and backward pass), every line of Python costs its
        misses, so this path checks, in C (``_core.fast_step``), only what can have changed since
        the last step, the same things as the full path: that ``_fast`` is still the current
        plans and nothing marked them dirty, that ``param_groups``, the group's ``params`` list
        and its hyperparameters are unchanged (new hyperparameter values are checked by
        :meth:`_refresh_hyperparameters`, as on the full path), and that ``grads`` is a list or
        tuple with one entry per parameter. It returns False to leave anything else to the full
        path; a failed core call has written nothing, so the full path then runs from the start
        and raises with its clearer message.
        """
        return fast_step(self, grads)

    # ---------------------------------------------------------------- the step
    def _step(self, grads: Sequence[np.ndarray | None] | None, try_fast: bool = True) -> None:
        if try_fast and self._fast is not None and self._fast_step(grads):
            return
        self._fast = None
        # Phase 1: check everything; nothing is written until every check has passed.
        plans = self._current_plans()

        if self._objects:
            if grads is not None:
                raise TypeError(
                    "this optimizer's parameters are objects whose .grad is read: call step() "
                    "without gradients"
                )
            group_grads = [list(map(_GET_GRAD, plan.params)) for plan in plans]
        else:
            if grads is None:
                raise TypeError(
                    "step() needs the gradients: opt.step([g1, g2, ...]), one array (or None) "
                    "per parameter, in the order the parameters were given"
                )
            if isinstance(grads, np.ndarray) or not isinstance(grads, (list, tuple)):
                if isinstance(grads, np.ndarray) or not isinstance(grads, Iterable):
                    raise TypeError(
                        "grads must be a list or tuple of arrays (one per parameter), got "
                        f"{_describe(grads)}"
                        + (
                            ": wrap a single gradient in a list, [g]"
                            if isinstance(grads, np.ndarray)
                            else ""
                        )
                    )
                grads = list(grads)
            if len(grads) != self._num_params:
                raise ValueError(
                    f"step() got {len(grads)} gradients for {self._num_params} parameters: pass "
                    "one array (or None) per parameter, in the order the parameters were given "
                    "(across param groups)"
                )
            if len(plans) == 1:
                group_grads = [grads]
            else:
                group_grads = [grads[plan.start : plan.stop] for plan in plans]

        # A core plan checks a call's gradients before writing anything (its parameters and
        # state were checked when it was made), so a single call needs no checks here. With
        # several calls a bad gradient in a later one must be found before the first one
        # writes: each plan checks its gradients without writing (check_only), which also sees
        # what a Python screen cannot, such as a gradient that is a view of another tensor's
        # state. Creating state is a change too, so it waits for the checks.
        if len(plans) > 1 or len(plans[0].buckets) != 1 or plans[0].buckets[0].missing:
            # A core call checks its gradients against the arrays it writes itself; across
            # calls, and before state is created, this does.
            self._check_grads_against_footprint(
                [grad for plan_grads in group_grads for grad in plan_grads]
                if self._objects
                else grads
            )
            calls = sum(len(plan.buckets) for plan in plans)
            for plan, plan_grads in zip(plans, group_grads):
                if any(bucket.missing for bucket in plan.buckets):
                    # The core sees the tensors without state only after it is created: check
                    # here what it would (a parameter changed in place since it was given, a
                    # step count it refuses), and the others with the core.
                    self._check_params_unchanged(plan)
                    self._check_grads(plan, plan_grads)
                    self._check_step_counts(plan)
                    self._run_buckets(plan, plan_grads, check_only=True)
                elif calls > 1:
                    self._run_buckets(plan, plan_grads, check_only=True)

        # Phase 2: apply.
        for plan, plan_grads in zip(plans, group_grads):
            self._run_buckets(plan, plan_grads, check_only=False)

        # Next time, the short path if this step's shape allows it.
        if not self._objects and len(plans) == 1 and len(plans[0].buckets) == 1:
            if not plans[0].buckets[0].missing:
                self._fast = plans

    def _has_state(self, plan: _Plan, bucket: _Bucket, j: int) -> bool:
        """Whether tensor ``j`` of ``bucket`` has all the state the group's options use."""
        if self._keeps_step and "step" not in bucket.entries[j].state:
            return False
        return all(bucket.states[kind][j] is not None for kind in plan.kinds)

    def _run_buckets(self, plan: _Plan, plan_grads: Sequence[Any], check_only: bool) -> None:
        """One core call per bucket of the group; state still missing is created first.

        With ``check_only``, a bucket whose state is still missing for some tensors checks the
        others (their gradients, parameters and step counts, as the core would when it runs);
        the tensors without state are checked by :meth:`_check_grads` and
        :meth:`_check_params_unchanged`, and get a fresh core plan when their state is made.
        """
        args = plan.args
        for bucket in plan.buckets:
            bucket_grads = plan_grads if bucket.take is None else bucket.take(plan_grads)
            if bucket.missing and not check_only:
                self._create_state(
                    plan, bucket, [j for j, grad in enumerate(bucket_grads) if grad is not None]
                )
            elif bucket.missing:
                bucket_grads = [
                    grad if self._has_state(plan, bucket, j) else None
                    for j, grad in enumerate(bucket_grads)
                ]
            try:
                bucket.run(bucket_grads, bucket.steps, True, *args, check_only)
            except (TypeError, ValueError) as error:
                # Say which parameter, in the user's numbering, when we can.
                self._check_grads(plan, plan_grads, cause=error)
                self._check_params_unchanged(plan, cause=error)
                self._check_step_counts(plan, cause=error)
                flat: list[Any] = [None] * self._num_params
                flat[plan.start : plan.stop] = plan_grads
                try:
                    self._check_grads_against_footprint(flat)
                except ValueError as relabelled:
                    raise relabelled from error
                raise

    def _check_grads(
        self, plan: _Plan, grads: Sequence[Any], cause: BaseException | None = None
    ) -> None:
        """Check one group's gradients one by one; raise with the parameter's label."""
        group = plan.group
        if len(grads) != len(plan.arrays):  # parameter objects cannot get here
            raise ValueError(f"expected {len(plan.arrays)} gradients, got {len(grads)}")
        for position, (grad, array) in enumerate(zip(grads, plan.arrays)):
            label = self._label(plan.start + position, group, position)
            label = f"{label}.grad" if self._objects else f"gradient for {label}"
            try:
                check_grad_array(grad, array, label)
            except (TypeError, ValueError) as error:
                raise error from cause

    def _check_params_unchanged(self, plan: _Plan, cause: BaseException | None = None) -> None:
        """Raise, with the parameter's label, if an array was changed in place since the plan
        checked it (made read-only, given another dtype or shape): the core refuses those."""
        entries = self.state._entries
        for position, (param, array) in enumerate(zip(plan.params, plan.arrays)):
            entry = entries[id(param)]
            label = self._label(plan.start + position, plan.group, position)
            label = f"{label}.data" if self._objects else label
            try:
                check_param_array(array, label)
                if array.shape != entry.shape or array.dtype != entry.dtype:
                    raise ValueError(
                        f"{label} was changed in place to shape {array.shape} and dtype "
                        f"{array.dtype}, but the optimizer was given shape {entry.shape} and "
                        f"dtype {entry.dtype}"
                    )
            except (TypeError, ValueError) as error:
                raise error from cause

    def _check_step_counts(self, plan: _Plan, cause: BaseException | None = None) -> None:
        """Raise, with the parameter's label, for a step count the core would refuse (one
        written into ``state['step']``: negative, or the largest int64, which cannot be
        incremented)."""
        if not self._keeps_step:
            return  # SGD's counts are its own (a first-step flag), never the user's
        largest = np.iinfo(np.int64).max
        for bucket in plan.buckets:
            positions = range(len(bucket.arrays)) if bucket.positions is None else bucket.positions
            for j, position in enumerate(positions):
                if "step" not in bucket.entries[j].state:
                    continue  # made at 0 with the rest of its state
                count = int(bucket.steps[j])
                if count < 0 or count == largest:
                    label = self._label(plan.start + position, plan.group, position)
                    label = f"{label}.data" if self._objects else label
                    raise ValueError(
                        f"the state['step'] of {label} is {count}: "
                        + (
                            "step counts cannot be negative"
                            if count < 0
                            else "it cannot be incremented past the largest int64"
                        )
                    ) from cause

    def _written_footprint(
        self, plans: Sequence[_Plan]
    ) -> tuple[Any, list[tuple[str | None, int]]]:
        """The arrays that the plans' core calls write (parameters, the state their options use
        and the step counts), as a ``_core.Footprint``, with (state kind or None, parameter
        index) for each."""
        written: list[np.ndarray] = []
        where: list[tuple[str | None, int]] = []
        for plan in plans:
            for bucket in plan.buckets:
                positions = (
                    range(len(bucket.arrays)) if bucket.positions is None else bucket.positions
                )
                for j, position in enumerate(positions):
                    index = plan.start + position
                    written.append(bucket.arrays[j])
                    where.append((None, index))
                    for kind in plan.kinds:
                        state = bucket.states[kind][j]
                        if state is not None:
                            written.append(state)
                            where.append((kind, index))
                    if self._keeps_step:  # the count the core increments (state['step'])
                        written.append(bucket.steps[j : j + 1])
                        where.append(("step", index))
        return _core.Footprint(written), where

    def _written_label(self, where: tuple[str | None, int]) -> str:
        kind, index = where
        label = self._flat_label(index)
        if kind is None:
            return f"{label}.data" if self._objects else label
        return f"state[{kind!r}] of {label}"

    def _checked_footprint(
        self, plans: Sequence[_Plan]
    ) -> tuple[Any, list[tuple[str | None, int]]]:
        """The plans' footprint, after refusing two written arrays that share memory (a state
        array that is another parameter, or another parameter's state: one group's core call
        sees only its own arrays)."""
        footprint = self._written_footprint(plans)
        pair = footprint[0].overlap()
        if pair is not None:
            first, second = (self._written_label(footprint[1][k]) for k in pair)
            raise ValueError(
                f"{second} shares memory with {first}: the optimizer writes both, so each must be "
                "an array of its own"
            )
        return footprint

    def _check_grads_against_footprint(self, grads: Sequence[Any]) -> None:
        """Refuse a gradient that shares memory with any array the step writes."""
        if self._footprint is None:
            self._footprint = self._checked_footprint(self._plans)
        footprint, where = self._footprint
        hit = footprint.first_read_overlap(grads)
        if hit is not None:
            label = self._flat_label(hit[0])
            label = f"{label}.grad" if self._objects else f"gradient for {label}"
            param_index = hit[0]
            for plan in self._plans:  # a layout problem first, if it has one (not contiguous)
                if plan.start <= param_index < plan.stop:
                    check_grad_array(
                        grads[param_index], plan.arrays[param_index - plan.start], label
                    )
            if where[hit[1]] == (None, hit[0]):  # as check_grad_array says it
                raise ValueError(f"{label} shares memory with its parameter: pass a separate array")
            raise ValueError(
                f"{label} shares memory with {self._written_label(where[hit[1]])}, which the "
                "step writes: pass a separate array"
            )

    def _create_state(self, plan: _Plan, bucket: _Bucket, positions: Iterable[int]) -> None:
        """Create the missing state of the given tensors (PyTorch's lazy initialization)."""
        group, kinds = plan.group, plan.kinds
        created = False
        for j in positions:
            state = bucket.entries[j].state
            if self._keeps_step and "step" not in state:
                # New state starts at step 0 ('step' first, as in PyTorch's dicts).
                bucket.steps[j] = 0
                dict.__setitem__(state, "step", bucket.steps[j, ...])
            for kind in kinds:
                if bucket.states[kind][j] is None:
                    array = self._new_state(group, kind, bucket.arrays[j])
                    bucket.states[kind][j] = array
                    created = True
                    dict.__setitem__(state, kind, array)
                    if kind == "momentum_buffer" and not self._keeps_step:
                        # SGD: a new buffer takes PyTorch's `buf is None` path, a copy of the
                        # gradient, which the core does when the step it takes is the first.
                        bucket.steps[j] = 0
        bucket.missing = sum(
            not self._has_state(plan, bucket, j) for j in range(len(bucket.entries))
        )
        if created:
            self._make_core_plans(plan, [bucket])
            self._footprint = None

    # ---------------------------------------------------------------- loading
    def _load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        name = type(self).__name__
        if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(
                "expected a state_dict with 'state' and 'param_groups' entries (from "
                "Optimizer.state_dict() or fusedoptim.load())"
            )
        saved_groups = state_dict["param_groups"]
        saved_state = state_dict["state"]
        if not isinstance(saved_groups, Sequence) or not isinstance(saved_state, Mapping):
            raise ValueError("state_dict['param_groups'] must be a list and ['state'] a dict")
        groups = self.param_groups
        if len(groups) != len(saved_groups):
            raise ValueError(
                "loaded state dict has a different number of parameter groups "
                f"({len(saved_groups)}, this optimizer has {len(groups)})"
            )
        saved_groups = [
            {**saved, **{k: v for k, v in self._legacy_group_defaults.items() if k not in saved}}
            if isinstance(saved, Mapping)
            else saved
            for saved in saved_groups
        ]
        for index, (group, saved) in enumerate(zip(groups, saved_groups)):
            if not isinstance(saved, Mapping) or not isinstance(saved.get("params"), Sequence):
                raise ValueError(f"loaded param group {index} is not a dict with a 'params' list")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size "
                    f"of optimizer's group: group {index} has {len(saved['params'])} parameters "
                    f"saved, {len(group['params'])} here"
                )
            absent = [key for key in self.defaults if key not in saved]
            if absent:
                raise ValueError(
                    f"loaded param group {index} lacks {absent}: is this state_dict from another "
                    f"optimizer than {name}?"
                )

        # New groups: the saved hyperparameters with this optimizer's params (PyTorch's rule).
        new_groups = []
        id_map: dict[Any, tuple[Any, dict[str, Any], int, int]] = {}
        flat = 0
        for index, (group, saved) in enumerate(zip(groups, saved_groups)):
            new_group = {
                key: _copy_plain(value)
                for key, value in saved.items()
                if key not in ("params", "param_names") and key not in TORCH_ONLY_GROUP_KEYS
            }
            self._fix_loaded_group(new_group)
            try:
                self._check_hyperparameters(new_group)
            except (TypeError, ValueError) as error:
                raise type(error)(f"loaded param group {index}: {error}") from None
            new_group["params"] = group["params"]
            if "param_names" in saved:
                new_group["param_names"] = list(saved["param_names"])
            elif "param_names" in group:
                new_group["param_names"] = group["param_names"]
            for position, (key, param) in enumerate(zip(saved["params"], group["params"])):
                if key in id_map:
                    raise ValueError(f"loaded state dict lists parameter id {key!r} twice")
                id_map[key] = (param, new_group, position, flat)
                flat += 1
            new_groups.append(new_group)

        # New state, cast to each parameter's dtype and copied.
        allowed = set(self._state_kinds) | ({"step"} if self._keeps_step else set())
        staged: dict[int, _Entry] = {}
        for key, saved in saved_state.items():
            if key not in id_map:
                raise ValueError(
                    f"loaded state dict has state for parameter id {key!r}, which no param group "
                    "lists"
                )
            param, new_group, position, flat = id_map[key]
            label = self._label(flat, new_group, position)
            if not isinstance(saved, Mapping):
                raise ValueError(f"loaded state for {label} is not a dict")
            unknown = sorted(map(str, set(saved) - allowed))
            if unknown:
                raise ValueError(
                    f"loaded state for {label} has {unknown}, which {name} does not keep: is this "
                    "state_dict from another optimizer?"
                )
            entry = self.state._entry(param)
            array = param.data if self._objects else param
            state = _ParamState(self)
            for kind, value in saved.items():
                if kind == "momentum_buffer" and value is None:
                    continue  # older PyTorch saved SGD's absent buffer as None
                if kind == "step":
                    value = np.array(_as_step(value, f"loaded state['step'] of {label}"))
                else:
                    value = _load_state_array(value, array, f"loaded state[{kind!r}] of {label}")
                dict.__setitem__(state, kind, value)
            if state and self._keeps_step and "step" not in state:
                raise ValueError(f"loaded state for {label} has no 'step'")
            required = self._required_kinds
            absent = [kind for kind in required if kind not in state]
            if state and absent:
                raise ValueError(
                    f"loaded state for {label} lacks {absent}: is this state_dict from another "
                    "optimizer?"
                )
            staged[id(param)] = _Entry(param, state, entry.shape, entry.dtype)
        # PyTorch replaces the whole state: parameters the state_dict has no state for start
        # afresh.
        for entry in self.state._entries.values():
            if id(entry.param) not in staged:
                staged[id(entry.param)] = _Entry(
                    entry.param, _ParamState(self), entry.shape, entry.dtype
                )
        new_entries = staged

        plans, start = [], 0
        for new_group in new_groups:
            plans.append(self._build_plan(new_group, start, new_entries))
            self._make_core_plans(plans[-1])
            start += len(new_group["params"])
        footprint = self._checked_footprint(plans)

        # Everything checked: apply.
        self.state._entries = new_entries
        self.param_groups[:] = new_groups
        for plan in plans:
            self._commit_plan(plan)
        self._plans = plans
        self._plan_groups = list(new_groups)
        self._dirty = False
        self._footprint = footprint

    def _fix_loaded_group(self, group: dict[str, Any]) -> None:
        """Adjust a loaded group's hyperparameters (AdamW forces decoupled weight decay)."""


# --------------------------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------------------------
def _is_param_object(value: Any) -> bool:
    return (
        not isinstance(value, (np.ndarray, str, bytes, tuple, list, dict))
        and hasattr(value, "data")
        and hasattr(value, "grad")
    )


def _as_step(value: Any, label: str) -> int:
    """A step count from an int, a float with an integral value (PyTorch's) or a 0-d array."""
    message = f"{label} must be a non-negative integer of at most 2**62, got {value!r}"
    if isinstance(value, int) and not isinstance(value, bool):
        number = value  # exactly, however large
    else:
        try:
            array = np.asarray(value)
        except Exception as error:  # pragma: no cover - asarray accepts nearly anything
            raise ValueError(message) from error
        if array.shape != () or array.dtype.kind not in "iuf":
            raise ValueError(message)
        if array.dtype.kind == "f":
            real = float(array)
            if not (math.isfinite(real) and real == int(real)):
                raise ValueError(message)
            number = int(real)
        else:
            number = int(array)  # exactly: an int64 count is not rounded through a float
    if not 0 <= number <= MAX_STEP:
        raise ValueError(message)
    return number


def _check_state_array(value: Any, param: np.ndarray, label: str) -> None:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{label} must be a numpy.ndarray, got {_describe(value)}")
    if value.shape != param.shape or value.dtype != param.dtype:
        raise ValueError(
            f"{label} has shape {value.shape} and dtype {value.dtype}; its parameter has shape "
            f"{param.shape} and dtype {param.dtype}"
        )
    if not (value.flags.c_contiguous and value.flags.writeable and value.flags.aligned):
        raise ValueError(f"{label} must be a C-contiguous, aligned, writeable array")
    if np.may_share_memory(value, param):
        raise ValueError(f"{label} shares memory with its parameter")


def _load_state_array(value: Any, param: np.ndarray, label: str) -> np.ndarray:
    """Copy a saved state array, cast to the parameter's dtype; refuse another shape."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{label} must hold real numbers, got dtype {array.dtype}")
    if array.shape != param.shape:
        raise ValueError(
            f"{label} has shape {array.shape} but the parameter has shape {param.shape}: is this "
            "state_dict from another model?"
        )
    return np.array(array, dtype=param.dtype, order="C", copy=True)


def _copy_state_value(key: str, value: Any) -> Any:
    if key == "step":
        return np.array(int(value), dtype=np.int64)
    return value.copy() if isinstance(value, np.ndarray) else value


def _snapshot(value: Any) -> Any:
    """A copy of hyperparameter values that an in-place edit of the originals does not change.

    ``group["betas"][0] = 0.8`` on a list edits the list the last check saw; comparing the live
    values with this copy notices it. Immutable values are kept as they are; another object is
    deep-copied, or, if it cannot be, stands for a value that equals nothing (so it is checked
    again at every step).
    """
    kind = type(value)
    if kind is list or kind is tuple:
        return kind(map(_snapshot, value))
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (bool, int, float, complex, str, bytes, np.generic)) or value is None:
        return value
    try:
        return copy.deepcopy(value)
    except Exception:
        return _NeverEqual()


class _NeverEqual:
    """Stands in a snapshot for a value that could not be copied: it equals nothing."""

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return False


def _copy_plain(value: Any) -> Any:
    """Copy a hyperparameter value from a saved group (lists become independent lists)."""
    if isinstance(value, list):
        return [_copy_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_copy_plain(item) for item in value)
    if isinstance(value, np.ndarray):
        return value.copy()
    return value
