"""The PyTorch drop-in: ``torch.optim`` optimizers whose step runs in fusedoptim's fused kernels.

Change one import and nothing else::

    from fusedoptim.torch import AdamW    # was: from torch.optim import AdamW

:class:`SGD`, :class:`Adagrad`, :class:`RMSprop`, :class:`Adadelta`, :class:`Adam` and
:class:`AdamW` subclass the ``torch.optim`` class of the same name. They take its arguments with its
defaults, validate them with its code, keep its state under its keys (``step`` as a 0-d tensor,
``exp_avg``, ...), and inherit ``state_dict``/``load_state_dict``, ``zero_grad``,
``add_param_group``, the hooks and everything ``torch.optim.lr_scheduler``,
``DistributedDataParallel`` and ``ZeroRedundancyOptimizer`` rely on. Only ``step`` differs: it
hands the CPU parameters, gradients and state to one ``fusedoptim._core`` call per parameter group
(per dtype within a group), which updates all of them in one OpenMP region with the GIL released.
Checkpoints move freely between these classes and ``torch.optim``.

What a step costs in Python, and why:

* Zero-copy NumPy views of the parameters and of the state are made once, per group, in a *plan*,
  together with a ``fusedoptim._core.Plan`` per dtype that checks them once (types, dtype,
  layout, no overlaps) and holds them. The plan is rebuilt only when something structural
  changes: the group's parameter list, a parameter's ``.data`` (seen as a changed address or
  strides, or a shape or dtype that the gradients no longer match: ``p.data = p.data.t()``
  keeps the address), the state (``load_state_dict``, or any write through
  ``optimizer.state``, which counts its writes), state created at a parameter's first step, or
  an option that needs other state.
* Gradients are new tensors after every ``zero_grad()``, so they are looked at each step and never
  kept: the optimizer holds no gradient between steps, exactly like ``torch.optim``. A group's
  gradients are checked together in a few C-level passes (plain CPU tensors of the parameter's
  dtype and shape, laid out like it, with memory, no negative bit: about 0.1 µs per tensor and
  test) and then go to the core as bare addresses (``data_ptr()``), which it checks only for
  alignment and overlap with what it writes. A gradient that fails is read through a checked
  NumPy view or a copy; one that cannot be read at all is refused.
* The ``step`` tensors of a group are 0-d views into one tensor per group, so counting a step for
  150 parameters is one vectorised NumPy assignment, not 150 tensor operations.

What is refused, with an error that says what to use instead, before anything is written (and
before any state is created): tensors on other devices than the CPU, sparse parameters and
gradients, integer, complex, ``float16`` and ``bfloat16`` parameters (half precision would need
float32 master state; train in float32, with ``torch.autocast`` for the forward pass, or use
``torch.optim``), parameters not aligned to their element size, parameters whose memory overlaps
another parameter's (in any group) and state tensors that share memory with another parameter or
its state, and ``differentiable=True`` / ``capturable=True`` (autograd through the step and
CUDA-graph capture are things these kernels do not do). Parameters are checked when they are
given, so most of these refusals come from the constructor or ``add_param_group``. ``foreach``
and ``fused`` (where torch's class takes it: not RMSprop and Adadelta) are accepted with any
value and stored as given: both ask for a multi-tensor implementation, which is the only one
here. Parameters that are dense but not contiguous
(``channels_last`` convolution weights, a transposed weight) are updated in place like contiguous
ones; a gradient whose layout differs from its parameter's, that is misaligned, or that shares
memory with a parameter or state its own kernel call updates (its group's, of its dtype), is read
through a copy (gradients are only read, so no update is lost). One that shares memory with what
another call updates (another group, or the other dtype of its group: float32 goes first) is read
in place when its call runs, as torch.optim's loop reads it when it gets to it.

The parameters' autograd version counters are bumped at each step, as PyTorch's own in-place
updates do, so a step taken while a graph still needs the old values is reported by autograd.
"""

from __future__ import annotations

import bisect
import functools
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

try:
    import torch
except ImportError as error:  # pragma: no cover - exercised only where torch is missing
    raise ImportError(
        "fusedoptim.torch needs PyTorch; install it with: pip install 'fusedoptim[torch]'"
    ) from error

from torch.autograd.graph import increment_version
from torch.optim import optimizer as _torch_optimizer

from . import _core

__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "RMSprop"]

# C-level accessors: map() over them runs no Python bytecode per tensor.
_DATA_PTR = torch.Tensor.data_ptr
_GET_GRAD = operator.attrgetter("grad")
_GET_DTYPE = operator.attrgetter("dtype")
_GET_SHAPE = operator.attrgetter("shape")
_IS_CPU = operator.attrgetter("is_cpu")
_IS_CONTIGUOUS = torch.Tensor.is_contiguous
_IS_NEG = torch.Tensor.is_neg
_STRIDE = torch.Tensor.stride
_FLOAT_DTYPES = (torch.float32, torch.float64)
_HALF_DTYPES = (torch.float16, torch.bfloat16)

# Errors the compiled core raises when it refuses an argument. It checks every array before it
# writes any, so after one of these nothing has changed and the call can be retried.
_CORE_REFUSALS = (TypeError, ValueError)

Group = dict[str, Any]
# A tensor that a step writes: its memory (first byte, past its last byte) and what it is, in
# the user's numbering: (group, parameter, state slot in _state_keys or -1 for the parameter).
_Written = tuple[tuple[int, int], tuple[int, int, int]]


# --------------------------------------------------------------------------------------------
# State that counts its writes.
# --------------------------------------------------------------------------------------------


class _Counter:
    """A mutable integer shared by an optimizer's state mapping and every per-parameter dict."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class _ParamState(dict):
    """One parameter's state: a plain ``dict`` that bumps a shared counter on every write.

    The cached plans hold views of the state tensors; the counter tells them that a tensor was
    replaced (``optimizer.state[p]['exp_avg'] = ...``) without comparing every entry each step.
    Pickles and deep-copies as a plain ``dict``.
    """

    __slots__ = ("_counter",)

    def __init__(self, counter: _Counter, items: Any = ()) -> None:
        super().__init__(items)
        self._counter = counter

    def __setitem__(self, key: Any, value: Any) -> None:
        self._counter.value += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._counter.value += 1
        super().__delitem__(key)

    def __ior__(self, other: Any) -> _ParamState:
        self._counter.value += 1
        return super().__ior__(other)

    def clear(self) -> None:
        self._counter.value += 1
        super().clear()

    def pop(self, *args: Any) -> Any:
        self._counter.value += 1
        return super().pop(*args)

    def popitem(self) -> tuple[Any, Any]:
        self._counter.value += 1
        return super().popitem()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._counter.value += 1
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._counter.value += 1
        super().update(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))


class _State(defaultdict):
    """``optimizer.state``: torch's ``defaultdict(dict)``, with write counting (see _ParamState).

    A per-parameter dict stored into it is wrapped on the way in, so writes through
    ``optimizer.state[p][key]`` are counted too. Pickles and deep-copies as
    ``defaultdict(dict)`` of plain dicts.
    """

    def __init__(self, *args: Any) -> None:
        # defaultdict's copy(), copy.copy() and | build the copy as type(self)(factory, items):
        # the factory is this class's own, so it is dropped and only the items count.
        if args and (len(args) == 2 or callable(args[0])):
            args = args[1:]
        if len(args) > 1:
            raise TypeError(f"_State takes a mapping of items, got {len(args)} arguments")
        items = args[0] if args else ()
        super().__init__()
        self.counter = _Counter()
        self.default_factory = self._new_param_state
        for key, value in dict(items).items():
            self[key] = value

    def _new_param_state(self) -> _ParamState:
        return _ParamState(self.counter)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.counter.value += 1
        if isinstance(value, dict) and not (
            isinstance(value, _ParamState) and value._counter is self.counter
        ):
            value = _ParamState(self.counter, value)
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self.counter.value += 1
        super().__delitem__(key)

    def clear(self) -> None:
        self.counter.value += 1
        super().clear()

    def pop(self, *args: Any) -> Any:
        self.counter.value += 1
        return super().pop(*args)

    def popitem(self) -> tuple[Any, Any]:
        self.counter.value += 1
        return super().popitem()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> _State:  # type: ignore[override]
        self.update(other)  # counted, and each dict wrapped, as by item assignment
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        plain = {key: dict(v) if isinstance(v, dict) else v for key, v in self.items()}
        return (defaultdict, (dict, plain))


# The optimizer's own writes (state created lazily, step tensors turned into views) go around the
# counters: they are reflected in the plan that makes them, so they must not invalidate plans.
def _own_param_state(state: _State, param: torch.Tensor) -> dict[str, Any]:
    entry = dict.get(state, param)
    if not isinstance(entry, dict):
        entry = _ParamState(state.counter)
        dict.__setitem__(state, param, entry)
    return entry


_put = dict.__setitem__


# --------------------------------------------------------------------------------------------
# Tensor checks and views.
# --------------------------------------------------------------------------------------------


def _dense_order(tensor: torch.Tensor) -> list[int] | None:
    """The dimension order in which ``tensor`` is contiguous, or None if it has gaps or overlaps.

    ``[0, 1, ..., n-1]`` for a contiguous tensor, ``[0, 2, 3, 1]`` for a ``channels_last`` one:
    ``tensor.permute(order)`` is then contiguous and its NumPy view covers exactly the tensor's
    memory, so an elementwise update through it updates the tensor.
    """
    if tensor.is_contiguous():
        return list(range(tensor.dim()))
    order = sorted(range(tensor.dim()), key=lambda d: (-tensor.stride(d), -tensor.size(d)))
    return order if tensor.permute(order).is_contiguous() else None


def _is_identity(order: Sequence[int]) -> bool:
    return all(d == i for i, d in enumerate(order))


def _numpy_view(tensor: torch.Tensor, order: Sequence[int] | None) -> np.ndarray:
    """A zero-copy, C-contiguous NumPy view of ``tensor`` in the dimension order ``order``."""
    tensor = tensor.detach()
    if order is not None and not _is_identity(order):
        tensor = tensor.permute(*order)
    return tensor.numpy()


def _span(tensor: torch.Tensor) -> tuple[int, int]:
    start = tensor.data_ptr()
    return start, start + tensor.numel() * tensor.element_size()


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[0] != a[1] and b[0] != b[1]


def _scalar(value: Any) -> float:
    """A hyperparameter as a Python float (PyTorch allows 1-element tensors for lr and betas)."""
    return value.item() if isinstance(value, torch.Tensor) else float(value)


def _step_dtype(group: dict[str, Any]) -> torch.dtype:
    """The dtype PyTorch 2.13 gives a new ``step`` tensor (``optimizer._get_scalar_dtype``)."""
    if group.get("fused"):
        return torch.float32
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


# torch.optim's global step hooks (private names of torch.optim.optimizer, torch 2.13).
_GLOBAL_STEP_HOOKS = (
    getattr(_torch_optimizer, "_global_optimizer_pre_hooks", None),
    getattr(_torch_optimizer, "_global_optimizer_post_hooks", None),
)


def _torchs_step_wrapper_only_when_needed(step: Callable[..., Any]) -> Callable[..., Any]:
    """``step`` under torch's step wrapper, bypassed while it would do nothing observable.

    ``torch.optim.Optimizer`` wraps every ``step`` to run the step hooks and to label the step
    for the profiler. The label costs a ``torch.ops.profiler`` call on entry and on exit even
    when no profiler is running: about 10 µs warm, and about 100 µs right after the kernels have
    swept the caches (a quarter of the step's time outside the kernels on the 149-tensor model
    of benchmarks/torch_model_step.py). So while no hook is registered (on the optimizer or
    globally) and no profiler is active, ``step`` runs bare, followed by
    ``_optimizer_step_code()`` as in torch's wrapper; otherwise torch's own wrapper runs it, so
    hooks and profiles behave exactly as with ``torch.optim``.
    """
    wrapped = torch.optim.Optimizer.profile_hook_step(step)
    pre_hooks, post_hooks = _GLOBAL_STEP_HOOKS
    profiling = torch.autograd._profiler_enabled

    @functools.wraps(step)
    def hooked_step(self: Any, *args: Any, **kwargs: Any) -> Any:
        if (
            self._optimizer_step_pre_hooks
            or self._optimizer_step_post_hooks
            or pre_hooks is None
            or post_hooks is None
            or pre_hooks
            or post_hooks
            or profiling()
        ):
            return wrapped(self, *args, **kwargs)
        out = step(self, *args, **kwargs)
        self._optimizer_step_code()
        return out

    # torch.optim.Optimizer.__init__ wraps a class's step unless it is marked as wrapped.
    hooked_step.hooked = True  # type: ignore[attr-defined]
    return hooked_step


# --------------------------------------------------------------------------------------------
# The per-group plan.
# --------------------------------------------------------------------------------------------


class _Plan:
    """What one parameter group looks like to the kernels, made when the group or state changes.

    ``tensors`` are the group's parameters sorted by dtype (stable), so each dtype is one slice
    ``slices[k]`` and one kernel call through ``cores[k]``, a ``fusedoptim._core.Plan`` that
    checked the slice's parameter and state arrays once and holds them; ``positions[j]`` is the
    index in ``group['params']`` of ``tensors[j]``. ``params`` and ``states[k]`` are the NumPy
    views the core plans hold (``states[k]`` has None where that parameter has no state yet, and
    is None when the group's options do not use key ``k``). ``steps`` is the int64 step count the
    kernels increment (``step_slices[k]`` its view for slice ``k``); ``step_values`` is a NumPy
    view of the tensor whose 0-d slices are the parameters' ``state['step']`` tensors.

    ``expected`` describes the parameters, so that a step can tell with a few C-level passes
    over its gradients whether all can be read in place through their addresses; ``subsets``
    does the same for the parameters that have gradients when some have none (frozen layers),
    keyed by their positions. ``data_ptrs``, ``strides``, ``shapes`` and ``dtypes`` are the
    parameters' at the time, in ``group['params']`` order (see :meth:`matches`); ``written``
    the memory of every parameter and state tensor the kernels write, for the overlap checks
    that span groups.
    """

    __slots__ = (
        "group",
        "source",
        "data_ptrs",
        "shapes",
        "strides",
        "dtypes",
        "written",
        "needs",
        "version",
        "counter",
        "tensors",
        "positions",
        "permuted",
        "params",
        "states",
        "steps",
        "step_storage",
        "step_values",
        "pending",
        "slices",
        "step_slices",
        "cores",
        "expected",
        "subsets",
    )

    group: dict[str, Any]
    source: list[torch.Tensor]
    data_ptrs: list[int]
    shapes: list[torch.Size]
    strides: list[tuple[int, ...]]
    dtypes: list[torch.dtype]
    written: list[_Written]
    needs: tuple[bool, ...]
    version: int
    counter: _Counter
    tensors: list[torch.Tensor]
    positions: list[int]
    permuted: dict[int, list[int]]
    params: list[np.ndarray]
    states: list[list[np.ndarray | None] | None]
    steps: np.ndarray
    step_storage: torch.Tensor | None
    step_values: np.ndarray | None
    pending: set[int]
    slices: list[tuple[int, int]]
    step_slices: list[np.ndarray]
    cores: list[_core.Plan]
    expected: _Expected
    subsets: dict[tuple[int, ...], _Expected]

    def matches(self, group: dict[str, Any], counter: _Counter, needs: tuple[bool, ...]) -> bool:
        """Whether the plan still describes ``group`` (cheap: a few C-level passes).

        A new ``.data`` can keep the address (``p.data = p.data.t()`` and ``.view(-1)`` reuse
        the old memory), and memory can move under unchanged metadata (``share_memory_()``).
        Address and strides decide which memory the update touches, in which order, so both are
        compared at every step (a C-level pass each, about 0.1 µs per tensor). A new shape or
        dtype at the same address and strides (``p.data = p.data[:1]``) is caught by
        :meth:`reshaped` when the gradients stop matching the plan: a gradient assigned after
        the change has the parameter's new shape and dtype (autograd checks), and comparing
        them at every step too would cost as much again as both passes here.
        """
        params = group["params"]
        if group is not self.group or needs != self.needs:
            return False
        # Another state object (optimizer.state replaced, or put back) has its own counter,
        # whose value may be the same as this one's: compare the counter, then its value.
        if counter is not self.counter or counter.value != self.version:
            return False
        if len(params) != len(self.source) or not all(map(operator.is_, params, self.source)):
            return False
        try:
            return (
                list(map(_DATA_PTR, params)) == self.data_ptrs
                and list(map(_STRIDE, params)) == self.strides
            )
        except RuntimeError:  # a parameter moved to a device without data pointers (meta)
            return False

    def reshaped(self) -> bool:
        """Whether a parameter's shape or dtype changed since the plan was made (see matches)."""
        return (
            list(map(_GET_SHAPE, self.source)) != self.shapes
            or list(map(_GET_DTYPE, self.source)) != self.dtypes
        )


class _PlanOutdated(Exception):
    """A parameter's shape or dtype changed at the same address: the plan must be made again."""


class _Expected:
    """What the gradients of some of a plan's parameters must look like to be read in place.

    Lists in the order of those parameters, so that a step compares each with one C-level
    pass over the gradients: their types (plain ``torch.Tensor``), dtypes, shapes and
    ``is_contiguous()``; ``strides`` holds, by position in the list, the strides of the
    parameters that are dense but not contiguous (their gradients must have the same);
    ``empty`` the positions of parameters without elements, whose gradients may have no memory.
    """

    __slots__ = ("plain", "dtypes", "shapes", "contiguous", "strides", "empty")

    def __init__(self, plan: _Plan, positions: Sequence[int]) -> None:
        tensors = [plan.tensors[j] for j in positions]
        self.plain = [torch.Tensor] * len(tensors)
        self.dtypes = [p.dtype for p in tensors]
        self.shapes = [p.shape for p in tensors]
        self.contiguous = [j not in plan.permuted for j in positions]
        self.strides = {i: p.stride() for i, p in enumerate(tensors) if not self.contiguous[i]}
        self.empty = {i for i, p in enumerate(tensors) if p.numel() == 0}

    def addresses(self, grads: list[Any]) -> list[int] | None:
        """The gradients' addresses if every one can be read in place, else None.

        A gradient qualifies when its memory is exactly what the kernel reads for its
        parameter: a plain CPU tensor of the parameter's dtype and shape, laid out like the
        parameter, with memory, and without a pending negation (``Tensor.is_neg()``).
        """
        try:
            if not (
                list(map(type, grads)) == self.plain
                and list(map(_GET_DTYPE, grads)) == self.dtypes
                and all(map(_IS_CPU, grads))
                and list(map(_GET_SHAPE, grads)) == self.shapes
                and list(map(_IS_CONTIGUOUS, grads)) == self.contiguous
                and not any(map(_IS_NEG, grads))
                and all(grads[i].stride() == stride for i, stride in self.strides.items())
            ):
                return None
            addresses = list(map(_DATA_PTR, grads))
        except RuntimeError:  # a tensor that refuses one of the questions (no storage, ...)
            return None
        # Address 0 means no memory, which only an empty gradient may have (a ZeroTensor or a
        # meta tensor claims elements it does not hold).
        if 0 in addresses and any(a == 0 and i not in self.empty for i, a in enumerate(addresses)):
            return None
        return addresses


class _Step:
    """One group's part of a step: its plan, its gradients and what the kernels get for them."""

    __slots__ = (
        "index", "group", "plan", "grads", "arguments", "complete", "new", "created", "states",
        "written", "cores",
    )  # fmt: skip

    def __init__(
        self,
        index: int,
        group: dict[str, Any],
        plan: _Plan,
        grads: list[torch.Tensor | None],
        arguments: list[Any],
        complete: bool,
        new: list[int],
    ) -> None:
        self.index = index  # of the group in param_groups
        self.group = group
        self.plan = plan
        self.grads = grads  # also keeps the gradients alive while the kernels read them
        self.arguments = arguments  # per gradient: its address, an array, or None
        self.complete = complete  # every parameter has a gradient
        self.new = new  # parameters whose state is created at this step
        # The state created for them, and the views, written memory and core plans this step
        # uses: the plan's own until _prepare_state makes new ones, which _commit_state
        # publishes.
        self.created: dict[int, list[tuple[str, torch.Tensor]]] = {}
        self.states = plan.states
        self.written = plan.written
        self.cores = plan.cores


class _Footprint:
    """The kernel calls of a step with several calls, whose written memory was checked.

    Each ``_core.Plan`` checks only its own arrays; across calls (groups, and dtypes within a
    group) ``_check_across_calls`` does, when the calls change. ``cores`` holds the core plans
    it checked (strong references: identities cannot be reused while it lives), so a step can
    tell with one pass whether they are still the ones it makes.
    """

    __slots__ = ("cores",)

    def __init__(self, steps: list[_Step]) -> None:
        self.cores = [item.cores for item in steps]

    def describes(self, steps: list[_Step]) -> bool:
        return len(self.cores) == len(steps) and all(
            map(operator.is_, self.cores, [item.cores for item in steps])
        )


# --------------------------------------------------------------------------------------------
# The shared implementation.
# --------------------------------------------------------------------------------------------


class _FusedStep:
    """What the six optimizers share: plans, checks and the ``step`` that runs the kernels.

    Mixed in before the ``torch.optim`` class, so everything but ``step`` (and a few overrides
    that keep the plans current) is PyTorch's own code.
    """

    # Set by each optimizer.
    _algorithm: ClassVar[str]  # the fusedoptim._core.Plan algorithm
    _state_keys: ClassVar[tuple[str, ...]]  # torch's state keys, in the core's slot order
    _has_step_state: ClassVar[bool] = True
    _device_alternative: ClassVar[str]

    param_groups: list[dict[str, Any]]
    state: Any
    defaults: dict[str, Any]

    # ---- construction and structural changes -----------------------------------------------------

    @classmethod
    def _refuse_flags(cls, differentiable: bool, capturable: bool = False) -> None:
        name = cls.__name__
        if differentiable:
            raise ValueError(
                f"fusedoptim.torch.{name} does not support differentiable=True: the fused kernels "
                "update the tensors outside autograd. Use "
                f"torch.optim.{name}(..., differentiable=True) to differentiate through the step."
            )
        if capturable:
            raise ValueError(
                f"fusedoptim.torch.{name} does not support capturable=True: it is for CUDA-graph "
                "capture, and these kernels update CPU tensors (torch.optim refuses it for CPU "
                f"tensors too). On a GPU use torch.optim.{name}(..., capturable=True)."
            )

    def _init_fused(self) -> None:
        # torch.optim sets this for fused=True so that GradScaler hands over its scale and
        # inf flag instead of unscaling the gradients; these kernels do not take them.
        self._step_supports_amp_scaling = False
        self._adopt_state()
        # add_param_group checked each group on its own while torch's __init__ added them (all
        # groups against all at each would cost time quadratic in the number of groups, which
        # is the number of parameters where each has its own learning rate); now all at once.
        self._check_disjoint(*self._params_and_keys())

    def _plans(self) -> dict[int, _Plan]:
        plans = self.__dict__.get("_fused_plans")
        if plans is None:
            plans = self.__dict__["_fused_plans"] = {}
        return plans

    def _forget_plans(self) -> None:
        self._plans().clear()
        self.__dict__.pop("_fused_footprint", None)

    def _params_and_keys(self) -> tuple[list[torch.Tensor], list[tuple[int, int, int]]]:
        """The parameters of all groups that are CPU tensors with memory, and where they are."""
        params, keys = [], []
        for index, group in enumerate(getattr(self, "param_groups", ())):
            for i, p in enumerate(group["params"]):
                if (
                    isinstance(p, torch.Tensor)
                    and p.device.type == "cpu"
                    and p.layout == torch.strided
                ):
                    params.append(p)
                    keys.append((index, i, -1))
        return params, keys

    def _adopt_state(self) -> _State:
        """Make ``self.state`` a write-counting :class:`_State` (after torch replaced it)."""
        state = self.state
        if type(state) is not _State:
            state = _State(state)
            self.state = state
            self._forget_plans()
        return state

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """``torch.optim.Optimizer.add_param_group``, refusing tensors the kernels cannot update.

        The checks run before the group is added, so a refused group leaves the optimizer as it
        was: each tensor on its own, then their memory, which must not overlap that of another
        parameter of the group. Memory shared with another group's parameter is refused by the
        constructor (which checks all its groups at its end) or, for a group added later, by
        the next step, before it writes anything. The same tensor in two groups is left to
        torch.optim's own check and message.
        """
        params = param_group.get("params")
        if isinstance(params, torch.Tensor):
            params = [params]
        elif params is not None and not isinstance(params, set):
            params = list(params)
        if params is not None and not isinstance(params, set):
            param_group["params"] = params
            index = len(getattr(self, "param_groups", ()))
            tensors, keys = [], []
            for i, item in enumerate(params):
                # (name, tensor) pairs are allowed by torch.optim and resolved by super().
                tensor = item[1] if isinstance(item, tuple) and len(item) == 2 else item
                if isinstance(tensor, torch.Tensor):
                    self._check_param(tensor, f"param_groups[{index}]['params'][{i}]")
                    tensors.append(tensor)
                    keys.append((index, i, -1))
            # Within the group here; against the other groups at the next step (see
            # _check_across_calls), since checking all groups at every add_param_group would
            # make adding one group per parameter quadratic.
            self._check_disjoint(tensors, keys)
            if {"differentiable", "capturable"} & param_group.keys():
                self._refuse_flags(
                    bool(param_group.get("differentiable")), bool(param_group.get("capturable"))
                )
        super().add_param_group(param_group)  # type: ignore[misc]
        self._forget_plans()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # load_state_dict ends here too: it installs the loaded state through __setstate__.
        super().__setstate__(state)  # type: ignore[misc]
        self.__dict__["_fused_plans"] = {}
        self.__dict__.pop("_fused_footprint", None)
        self._step_supports_amp_scaling = False
        self._adopt_state()

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Optimizer.state_dict``, with plain ``dict`` per-parameter state.

        The result loads into the ``torch.optim`` class of the same name (and is what
        ``torch.save`` / ``torch.load(weights_only=True)`` expect).
        """
        state_dict = super().state_dict()  # type: ignore[misc]
        state_dict["state"] = {
            key: dict(value) if isinstance(value, _ParamState) else value
            for key, value in state_dict["state"].items()
        }
        return state_dict

    # ---- checks ----------------------------------------------------------------------------------

    def _check_param(self, tensor: torch.Tensor, where: str) -> list[int]:
        """Refuse a parameter the kernels cannot update in place; return its dense order."""
        name = type(self).__name__
        if tensor.device.type != "cpu":
            raise ValueError(
                f"fusedoptim.torch.{name}: {where} is on device '{tensor.device}'; fusedoptim "
                f"updates CPU tensors. On that device use {self._device_alternative}."
            )
        if tensor.layout != torch.strided:
            raise ValueError(
                f"fusedoptim.torch.{name}: {where} has layout {tensor.layout}; fusedoptim updates "
                f"dense (strided) tensors. Use torch.optim.{name} for sparse parameters."
            )
        if tensor.dtype not in _FLOAT_DTYPES:
            if tensor.dtype in _HALF_DTYPES:
                detail = (
                    "half-precision parameters would need float32 master state, which fusedoptim "
                    "does not keep; keep the parameters in float32 (use torch.autocast for the "
                    f"forward pass) or use torch.optim.{name}"
                )
            elif tensor.dtype.is_complex:
                detail = f"complex parameters are not supported; use torch.optim.{name}"
            else:
                detail = "only floating-point parameters can be optimized"
            raise TypeError(
                f"fusedoptim.torch.{name}: {where} has dtype {tensor.dtype}; fusedoptim updates "
                f"float32 and float64 tensors: {detail}."
            )
        if tensor.numel() and tensor.data_ptr() % tensor.element_size():
            # The kernels load whole elements (and vectors of them) from aligned addresses;
            # torch.optim, element by element, does not care. A copy is aligned.
            raise ValueError(
                f"fusedoptim.torch.{name}: {where} starts at address {tensor.data_ptr():#x}, "
                f"which is not a multiple of its element size ({tensor.element_size()} bytes; a "
                "tensor made with torch.frombuffer(..., offset=...) can be). The fused kernels "
                "need aligned memory; give it an aligned copy (p.data = p.data.clone()) before "
                f"creating the optimizer, or use torch.optim.{name}."
            )
        order = _dense_order(tensor)
        if order is None:
            raise ValueError(
                f"fusedoptim.torch.{name}: {where} (shape {tuple(tensor.shape)}, stride "
                f"{tensor.stride()}) is not dense: its elements have gaps or overlap in memory. "
                "fusedoptim updates parameters in place and never a copy; make it a dense "
                "tensor (p.data = p.data.contiguous()) before creating the optimizer."
            )
        return order

    def _grad_error(self, grad: torch.Tensor, where: str) -> Exception | None:
        name = type(self).__name__
        if grad.layout != torch.strided:
            return RuntimeError(
                f"fusedoptim.torch.{name} does not support sparse gradients ({where} has a "
                f"{grad.layout} gradient); use torch.optim.{name} or torch.optim.SparseAdam."
            )
        if grad.device.type != "cpu":
            return ValueError(
                f"fusedoptim.torch.{name}: the gradient of {where} is on device '{grad.device}'; "
                f"fusedoptim updates CPU tensors. On that device use {self._device_alternative}."
            )
        return None

    # ---- plans -----------------------------------------------------------------------------------

    def _needs(self, group: dict[str, Any]) -> tuple[bool, ...]:
        """Which state keys the group's options use (all, unless overridden)."""
        return (True,) * len(self._state_keys)

    def _initial_value(self, key: str) -> float:
        return 0.0

    def _build_plan(self, index: int, group: dict[str, Any], state: _State) -> _Plan:
        """Validate the group's parameters and existing state and make their views.

        Writes nothing but the representation of existing state: ``step`` tensors become views
        into the group's step tensor, and state tensors laid out differently from their
        parameter are replaced by copies in the parameter's layout (same values).
        """
        params: list[torch.Tensor] = list(group["params"])
        where = [f"param_groups[{index}]['params'][{i}]" for i in range(len(params))]
        orders = [self._check_param(p, where[i]) for i, p in enumerate(params)]
        needs = self._needs(group)

        # Parameters sorted by dtype, so that each dtype is one slice and one kernel call.
        positions = sorted(range(len(params)), key=lambda i: params[i].dtype == torch.float64)
        plan = _Plan()
        plan.group = group
        plan.source = params
        plan.data_ptrs = list(map(_DATA_PTR, params))
        plan.strides = list(map(_STRIDE, params))
        plan.shapes = list(map(_GET_SHAPE, params))
        plan.dtypes = list(map(_GET_DTYPE, params))
        plan.needs = needs
        plan.positions = positions
        plan.tensors = [params[i] for i in positions]
        plan.permuted = {
            j: orders[i] for j, i in enumerate(positions) if not _is_identity(orders[i])
        }
        plan.params = [_numpy_view(p, orders[i]) for p, i in zip(plan.tensors, positions)]
        plan.expected = _Expected(plan, range(len(params)))
        plan.subsets = {}
        plan.slices = []
        start = 0
        for j in range(1, len(params) + 1):
            if j == len(params) or plan.tensors[j].dtype != plan.tensors[start].dtype:
                plan.slices.append((start, j))
                start = j
        plan.states = [[] if need else None for need in needs]
        plan.written = [(_span(params[i]), (index, i, -1)) for i in positions]
        plan.pending = set()
        # SGD without momentum keeps no state at all (torch.optim.SGD's state stays empty).
        keeps_state = self._has_step_state or any(needs)
        step_counts: list[float] = []
        step_dtype = None
        for j, (p, i) in enumerate(zip(plan.tensors, positions)):
            param_state = state[p] if p in state else None
            if not keeps_state:
                step_counts.append(0.0)
                continue
            if not self._is_initialised(param_state):
                plan.pending.add(j)
                for views in plan.states:
                    if views is not None:
                        views.append(None)
                step_counts.append(0.0)
                continue
            assert param_state is not None
            for k, (key, views) in enumerate(zip(self._state_keys, plan.states)):
                if views is None:
                    continue
                value = param_state.get(key)
                conformed = self._conform_state(p, key, value, where[i])
                if conformed is not value:
                    _put(param_state, key, conformed)
                views.append(_numpy_view(conformed, orders[i]))
                plan.written.append((_span(conformed), (index, i, k)))
            step = param_state.get("step", 1.0 if not self._has_step_state else 0.0)
            if isinstance(step, torch.Tensor):
                step_dtype = step_dtype or step.dtype
            step_counts.append(_scalar(step) if step is not None else 0.0)

        plan.steps = np.array(step_counts, dtype=np.float64).astype(np.int64)
        plan.step_storage = None
        plan.step_values = None
        if self._has_step_state:
            dtype = step_dtype if step_dtype in _FLOAT_DTYPES else _step_dtype(group)
            plan.step_storage = torch.tensor(step_counts, dtype=dtype)
            plan.step_values = plan.step_storage.numpy()
            for j, p in enumerate(plan.tensors):
                if j not in plan.pending:
                    _put(state[p], "step", plan.step_storage[j])
        plan.step_slices = [plan.steps[start:stop] for start, stop in plan.slices]
        # Parameters that share memory, or a state tensor assigned through optimizer.state that
        # is another parameter or its state. (The cores refuse these too, but name the arrays by
        # their index in one dtype's slice.)
        self._refuse_shared_memory(plan.written)
        plan.cores = self._cores_for(plan, plan.states)
        plan.version = state.counter.value
        plan.counter = state.counter
        return plan

    def _cores_for(
        self, plan: _Plan, states: list[list[np.ndarray | None] | None]
    ) -> list[_core.Plan]:
        """Each slice's ``_core.Plan``, which checks its arrays once and holds them."""
        cores = []
        for start, stop in plan.slices:
            if start == 0 and stop == len(plan.params):
                params, sliced = plan.params, states
            else:
                params = plan.params[start:stop]
                sliced = [None if s is None else s[start:stop] for s in states]
            cores.append(_core.Plan(self._algorithm, params, sliced, gradient_addresses=True))
        return cores

    def _is_initialised(self, param_state: dict[str, Any] | None) -> bool:
        return bool(param_state)

    def _conform_state(self, param: torch.Tensor, key: str, value: Any, where: str) -> torch.Tensor:
        """A state tensor the kernels can update with ``param``: the loaded one if it fits."""
        if value is None:
            return torch.full_like(param, self._initial_value(key))
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"fusedoptim.torch.{type(self).__name__}: state '{key}' of {where} is "
                f"{type(value).__name__}, not a tensor"
            )
        if value.shape != param.shape:
            raise ValueError(
                f"fusedoptim.torch.{type(self).__name__}: state '{key}' of {where} has shape "
                f"{tuple(value.shape)} but the parameter has shape {tuple(param.shape)}"
            )
        fits = (
            value.device == param.device
            and value.dtype == param.dtype
            and value.layout == torch.strided
            and value.stride() == param.stride()
            and not (value.numel() and value.data_ptr() % value.element_size())
            and not _overlaps(_span(value), _span(param))
        )
        if fits:
            return value
        # Optimizer state is the optimizer's own: re-laying it out loses nothing.
        return torch.empty_like(param).copy_(value.detach())

    def _check_disjoint(
        self, params: Sequence[torch.Tensor], keys: Sequence[tuple[int, int, int]]
    ) -> None:
        """Refuse parameters whose memory overlaps (``keys`` say where they are, see _Written)."""
        self._refuse_shared_memory(list(zip(map(_span, params), keys)))

    def _refuse_shared_memory(self, entries: Sequence[_Written]) -> None:
        """Refuse two tensors a step writes whose memory overlaps, naming both.

        Of two that overlap, the error names the later in the user's order first. Sorted by
        address, two tensors overlap only if some neighbours do.
        """
        spans = sorted(entry for entry in entries if entry[0][0] != entry[0][1])
        for (a, a_key), (b, b_key) in zip(spans, spans[1:]):
            if _overlaps(a, b):
                first, second = sorted((a_key, b_key))
                state = first[2] >= 0 or second[2] >= 0
                hint = " (assign a copy to optimizer.state: .clone())" if state else ""
                raise ValueError(
                    f"fusedoptim.torch.{type(self).__name__}: {self._name(second)} shares "
                    f"memory with {self._name(first)}; the step updates every parameter and its "
                    f"state in place, so each needs memory of its own{hint}."
                )

    def _name(self, key: tuple[int, int, int]) -> str:
        index, i, k = key
        name = f"param_groups[{index}]['params'][{i}]"
        return name if k < 0 else f"state '{self._state_keys[k]}' of {name}"

    def _prepare_state(self, item: _Step) -> None:
        """Make the state of ``item.new``'s parameters, as torch.optim does at their first step.

        Made, not yet published: the tensors, their views and the core plans that hold them are
        kept in ``item``, and go into ``optimizer.state`` and the plan (:meth:`_commit_state`)
        only once the group's kernels have run. So a step refused by a later check, in this
        group or another, leaves ``optimizer.state`` as it was (an SGD momentum buffer created
        by a refused step would count as started at the next).
        """
        plan = item.plan
        states = [None if views is None else list(views) for views in plan.states]
        written = list(plan.written)
        index = item.index
        for j in item.new:
            p, i = plan.tensors[j], plan.positions[j]
            order = plan.permuted.get(j)
            created = []
            for k, (key, views) in enumerate(zip(self._state_keys, states)):
                if views is None:
                    continue
                value = torch.full_like(p, self._initial_value(key))
                created.append((key, value))
                views[j] = _numpy_view(value, order)
                written.append((_span(value), (index, i, k)))
            item.created[j] = created
            # The count the kernel starts from: entries of the plan's own arrays that no
            # published tensor shows yet.
            if plan.step_values is not None:
                plan.step_values[j] = 0
            plan.steps[j] = 0
        item.states = states
        item.written = written
        item.cores = self._cores_for(plan, states)

    def _commit_state(self, item: _Step, state: _State) -> None:
        """Publish the state :meth:`_prepare_state` made, after the kernels updated it."""
        plan = item.plan
        for j, created in item.created.items():
            param_state = _own_param_state(state, plan.tensors[j])
            if plan.step_storage is not None:
                _put(param_state, "step", plan.step_storage[j])
            for key, value in created:
                _put(param_state, key, value)
        plan.states = item.states
        plan.written = item.written
        plan.cores = item.cores
        plan.pending.difference_update(item.created)

    # ---- gradients -------------------------------------------------------------------------------

    def _gradients(self, plan: _Plan, grads: list[torch.Tensor | None]) -> tuple[list[Any], bool]:
        """What the kernels read for each gradient, and whether every parameter has one.

        Gradients go to the core as addresses when they can be read in place (see
        :meth:`_Expected.addresses`). Autograd makes every gradient so, and checks dtype, shape
        and device when ``.grad`` is assigned, but ``.grad.data = ...``, ``resize_`` and
        ``set_`` can change them afterwards, so all is checked at each step, for the whole
        group at once in a few C-level passes (about 0.1 µs per tensor and test). Where that
        fails, each gradient is looked at on its own (:meth:`_gradient`). The compiled core
        still refuses an address that is misaligned or overlaps any array the update writes;
        the step then retries through :meth:`_careful_grad_views`, which copies. Before looking
        at gradients one by one, it raises :class:`_PlanOutdated` if a parameter's shape or
        dtype changed (a gradient assigned since has the new ones, so it fails here).
        """
        addresses = plan.expected.addresses(grads)
        if addresses is not None:
            return addresses, True
        present = tuple(j for j, grad in enumerate(grads) if grad is not None)
        if len(present) == len(grads):
            if plan.reshaped():
                raise _PlanOutdated
            return [self._gradient(plan, j, grad) for j, grad in enumerate(grads)], True
        # Some parameters have no gradient: usually the same ones at every step.
        expected = plan.subsets.get(present)
        if expected is None:
            if len(plan.subsets) >= 8:
                plan.subsets.clear()
            expected = plan.subsets[present] = _Expected(plan, present)
        addresses = expected.addresses([grads[j] for j in present])
        arguments: list[Any] = [None] * len(grads)
        if addresses is not None:
            for j, address in zip(present, addresses):
                arguments[j] = address
        else:
            if plan.reshaped():
                raise _PlanOutdated
            for j in present:
                arguments[j] = self._gradient(plan, j, grads[j])
        return arguments, False

    def _gradient(self, plan: _Plan, j: int, grad: torch.Tensor) -> Any:
        """One gradient for the kernels: its address if it can be read in place, else an array."""
        expected = plan.expected
        try:
            if (
                type(grad) is torch.Tensor
                and grad.dtype == expected.dtypes[j]
                and grad.is_cpu
                and grad.shape == expected.shapes[j]
                and not grad.is_neg()
                and grad.is_contiguous() == expected.contiguous[j]
                and (expected.contiguous[j] or grad.stride() == expected.strides[j])
            ):
                address = grad.data_ptr()
                if address or j in expected.empty:
                    return address
        except RuntimeError:
            pass
        return self._careful_grad_view(plan, j, grad)

    def _careful_grad_views(
        self,
        plan: _Plan,
        grads: list[torch.Tensor | None],
        states: list[list[np.ndarray | None] | None] | None = None,
        copy: bool = False,
    ) -> list[Any]:
        """Checked NumPy views of every gradient (None where there is none); see below.

        A gradient that overlaps memory its own kernel call writes (any parameter or state of
        its dtype's slice of the group, ``states`` being the views the calls use: the plan's
        unless state is being created) is read
        through a copy. One that overlaps another call's memory is read in place, when its own
        call runs, as torch.optim reads it when it gets to it (the calls run in group order).
        """
        views: list[Any] = [None] * len(grads)
        states = plan.states if states is None else states
        for start, stop in plan.slices:
            spans = [_span(plan.tensors[j]) for j in range(start, stop)]
            for state_views in states:
                if state_views is not None:
                    spans += [_span_of_view(v) for v in state_views[start:stop] if v is not None]
            spans = sorted(span for span in spans if span[0] != span[1])
            ends = [end for _, end in spans]  # sorted too: a call's memory is disjoint
            for j in range(start, stop):
                grad = grads[j]
                if grad is None:
                    continue
                try:  # whatever has no plain memory is copied or refused by the view below
                    plain = grad.layout == torch.strided and grad.is_cpu and grad.numel()
                    span = _span(grad) if plain and not grad._is_zerotensor() else (0, 0)
                except RuntimeError:
                    span = (0, 0)
                k = bisect.bisect_right(ends, span[0])
                overlaps = span[0] != span[1] and k < len(spans) and spans[k][0] < span[1]
                views[j] = self._careful_grad_view(plan, j, grad, copy or overlaps)
        return views

    def _careful_grad_view(
        self, plan: _Plan, j: int, grad: torch.Tensor, copy: bool = False
    ) -> np.ndarray:
        """A NumPy view of one gradient, or of a copy where the kernels cannot read it in place.

        A gradient is only read, so reading it through a copy loses nothing: that is what
        happens to a gradient laid out differently from its parameter, sharing memory with it or
        its state, or holding a pending negation or no memory at all (``torch._neg_view``,
        ``torch._efficientzerotensor``). Sparse gradients, gradients on other devices and
        gradients whose dtype or shape is not the parameter's are refused. With ``copy`` every
        gradient is read through a copy (the last resort when the core refuses a gradient the
        careful path let through).
        """
        index = self._group_index(plan.group)
        p = plan.tensors[j]
        where = f"param_groups[{index}]['params'][{plan.positions[j]}]"
        error = self._grad_error(grad, where)
        if error is not None:
            raise error
        grad = grad.detach()
        if grad.dtype != p.dtype or grad.shape != p.shape:
            raise ValueError(
                f"fusedoptim.torch.{type(self).__name__}: the gradient of {where} has dtype "
                f"{grad.dtype} and shape {tuple(grad.shape)}, the parameter {p.dtype} and "
                f"{tuple(p.shape)}"
            )
        misaligned = grad.numel() and grad.data_ptr() % grad.element_size()
        if (
            copy
            or misaligned
            or grad.is_neg()
            or grad._is_zerotensor()
            or grad.stride() != p.stride()
        ):
            return _numpy_view(torch.empty_like(p).copy_(grad), plan.permuted.get(j))
        spans = [_span(p)]
        spans += [_span_of_view(s[j]) for s in plan.states if s and s[j] is not None]
        if any(_overlaps(_span(grad), s) for s in spans):
            grad = torch.empty_like(p).copy_(grad)
        return _numpy_view(grad, plan.permuted.get(j))

    def _group_index(self, group: dict[str, Any]) -> int:
        for index, candidate in enumerate(self.param_groups):
            if candidate is group:
                return index
        return -1

    # ---- the step --------------------------------------------------------------------------------

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform a single optimization step (one fused kernel call per group and dtype).

        Args:
            closure (Callable, optional): A closure that reevaluates the model and returns the
                loss.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        state = self.state if type(self.state) is _State else self._adopt_state()
        plans = self._plans()
        steps: list[_Step] = []
        # Phase 1, for every group: checks and what the kernels read. Nothing is written, so a
        # refusal leaves parameters and state as they were.
        for index, group in enumerate(self.param_groups):
            if group.get("differentiable") or group.get("capturable"):
                self._refuse_flags(bool(group.get("differentiable")), bool(group.get("capturable")))
            needs = self._needs(group)
            plan = plans.get(index)
            if plan is None or not plan.matches(group, state.counter, needs):
                plan = plans[index] = self._build_plan(index, group, state)
            grads = list(map(_GET_GRAD, plan.tensors))
            try:
                arguments, complete = self._gradients(plan, grads)
            except _PlanOutdated:
                plan = plans[index] = self._build_plan(index, group, state)
                grads = list(map(_GET_GRAD, plan.tensors))
                arguments, complete = self._gradients(plan, grads)
            new = [j for j in plan.pending if grads[j] is not None] if plan.pending else []
            steps.append(_Step(index, group, plan, grads, arguments, complete, new))

        # Phase 2: lazy state, made but not published (phase 3 does that, after the kernels),
        # and the step counts the kernels see.
        calls = 0
        for item in steps:
            plan = item.plan
            if item.new:
                self._prepare_state(item)
            if plan.step_values is not None:
                # The step tensors are the authority (a user may have edited them in place).
                plan.steps[:] = plan.step_values
            calls += len(plan.slices)

        # With several kernel calls, anything that a later call refuses must be found before
        # the first call writes: the core checks each call without writing, and what spans
        # calls is checked here. (A single call checks everything before it writes anyway.)
        # Across calls last, so that it sees every call's memory as the checks left it.
        if calls > 1:
            for item in steps:
                self._run(item, check_only=True)
            self._check_across_calls(steps)

        # Phase 3: the kernels, and the state they created.
        for item in steps:
            plan = item.plan
            # Autograd must know the parameters change in place, as after torch's own step.
            # Told before the kernels run, while the parameters are in cache from the checks:
            # after the kernels' pass over memory this costs nearly three times as much. Not
            # checked yet is only what the core checks itself when there is a single call (a
            # step count it cannot take: negative, or at the largest int64); that would stop
            # the step with the counters one ahead, which can only make autograd refuse a
            # backward through values that did not change.
            if item.complete:
                increment_version(plan.tensors)
            else:
                increment_version([p for p, g in zip(plan.tensors, item.grads) if g is not None])
            self._run(item, check_only=False)
            if item.created:
                self._commit_state(item, state)
            if plan.step_values is not None:
                plan.step_values[:] = plan.steps
        return loss

    step = _torchs_step_wrapper_only_when_needed(step)

    def _run(self, item: _Step, check_only: bool) -> None:
        """The group's kernel calls (one per dtype), or with ``check_only`` their checks."""
        plan, group = item.plan, item.group
        whole = len(plan.slices) == 1
        for k, (start, stop) in enumerate(plan.slices):
            for attempt in range(3):
                arguments = item.arguments if whole else item.arguments[start:stop]
                try:
                    self._kernel(group, item.cores[k], arguments, plan.step_slices[k], check_only)
                    break
                except _CORE_REFUSALS:
                    if attempt == 2:
                        raise
                    # The core refused before writing anything, most likely a gradient that
                    # overlaps an array the call writes. First the careful path, which copies
                    # such gradients (or raises a precise error); then, as a last resort, copies
                    # of all of them, which overlap nothing.
                    item.arguments = self._careful_grad_views(
                        plan, item.grads, item.states, attempt == 1
                    )

    def _check_across_calls(self, steps: list[_Step]) -> None:
        """For a step of several kernel calls, what no single call's core can see.

        The memory the calls write must be disjoint: parameters are checked when they are
        given, but a state tensor assigned through ``optimizer.state`` can be another group's
        parameter or state, and a group added later can hold another group's parameter. That is
        refused, naming both. The written memory is collected when the calls change (a plan was
        made, state was created); a steady-state step only sees that its calls are the same
        ones. (A gradient that overlaps memory another call writes is read in place: the calls
        run in group order, so it reads what torch.optim's group-by-group loop reads, the other
        group's parameter already updated or not yet.)
        """
        footprint = self.__dict__.get("_fused_footprint")
        if footprint is None or not footprint.describes(steps):
            self._refuse_shared_memory([entry for item in steps for entry in item.written])
            self.__dict__["_fused_footprint"] = _Footprint(steps)

    def _kernel(
        self, group: Group, core: _core.Plan, grads: list[Any], steps: np.ndarray, check_only: bool
    ) -> None:
        """One ``fusedoptim._core.Plan`` call: ``grads`` are addresses, arrays or None, ``steps``
        the int64 step counts the kernel increments."""
        raise NotImplementedError


def _span_of_view(view: np.ndarray) -> tuple[int, int]:
    start = view.__array_interface__["data"][0]
    return start, start + view.nbytes


# --------------------------------------------------------------------------------------------
# The optimizers.
# --------------------------------------------------------------------------------------------

_COMMON_DOC = """
    Same arguments, defaults, validation, state and ``state_dict`` as ``torch.optim.{name}``
    (its documentation describes the algorithm and every argument); only :meth:`step` runs in
    fusedoptim's fused kernels, updating CPU ``float32``/``float64`` tensors in place.
    ``foreach`` and ``fused`` (where torch's class has it) accept any value;
    ``differentiable=True``{capturable} is refused.
"""


class SGD(_FusedStep, torch.optim.SGD):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum: ``torch.optim.SGD``.

    .. math::
        g \leftarrow \pm\nabla + \lambda\theta, \quad
        b \leftarrow \mu b + (1 - \tau) g \;(b_1 = g), \quad
        \theta \leftarrow \theta - \gamma\,(g + \mu b \text{ if Nesterov else } b)
    {common}
    State: ``momentum_buffer`` when ``momentum != 0`` (no ``step``, as in torch).

    Example:
        >>> import torch
        >>> from fusedoptim.torch import SGD
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = SGD([w], lr=0.1, momentum=0.9)
        >>> w.grad = torch.full((3,), 0.5)
        >>> opt.step()
        >>> w.detach()
        tensor([0.9500, 0.9500, 0.9500])
    """

    _algorithm = "sgd"
    _state_keys = ("momentum_buffer",)
    _has_step_state = False
    _device_alternative = "torch.optim.SGD(..., fused=True)"

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float | torch.Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        self._refuse_flags(differentiable)
        super().__init__(
            params, lr, momentum, dampening, weight_decay, nesterov,
            maximize=maximize, foreach=foreach, differentiable=differentiable, fused=fused,
        )  # fmt: skip
        self._init_fused()

    def _needs(self, group: dict[str, Any]) -> tuple[bool, ...]:
        return (group["momentum"] != 0,)

    def _is_initialised(self, param_state: dict[str, Any] | None) -> bool:
        # torch.optim.SGD starts the buffer at the first step with a gradient, as a copy of it;
        # the kernel does the same when the step count it is given becomes 1.
        return bool(param_state) and param_state.get("momentum_buffer") is not None

    def _kernel(
        self, group: Group, core: _core.Plan, grads: list[Any], steps: np.ndarray, check_only: bool
    ) -> None:
        core.sgd(
            grads, steps, True,
            _scalar(group["lr"]), _scalar(group["momentum"]), _scalar(group["dampening"]),
            bool(group["nesterov"]), _scalar(group["weight_decay"]), bool(group["maximize"]),
            check_only,
        )  # fmt: skip


class Adagrad(_FusedStep, torch.optim.Adagrad):
    r"""AdaGrad: ``torch.optim.Adagrad``.

    .. math::
        g \leftarrow \pm\nabla + \lambda\theta, \quad
        s \leftarrow s + g^2, \quad
        \theta \leftarrow \theta - \frac{\gamma}{1 + (t - 1)\eta}\, \frac{g}{\sqrt{s} + \epsilon}
    {common}
    State: ``step``, ``sum`` (created for every parameter at construction, as in torch).

    Example:
        >>> import torch
        >>> from fusedoptim.torch import Adagrad
        >>> w = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
        >>> opt = Adagrad([w], lr=0.1)
        >>> w.grad = torch.full((2,), 2.0, dtype=torch.float64)
        >>> opt.step()
        >>> w.detach()
        tensor([0.9000, 0.9000], dtype=torch.float64)
    """

    _algorithm = "adagrad"
    _state_keys = ("sum",)
    _device_alternative = "torch.optim.Adagrad(..., foreach=True)"

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        self._refuse_flags(differentiable)
        super().__init__(
            params, lr, lr_decay, weight_decay, initial_accumulator_value, eps, foreach,
            maximize=maximize, differentiable=differentiable, fused=fused,
        )  # fmt: skip
        self._init_fused()

    def _initial_value(self, key: str) -> float:
        # torch.optim.Adagrad reads the optimizer's default, not the group's.
        return float(self.defaults["initial_accumulator_value"])

    def share_memory(self) -> None:
        """Move the ``sum`` state to shared memory (new storage: the cached views are dropped)."""
        super().share_memory()
        self._forget_plans()

    def _kernel(
        self, group: Group, core: _core.Plan, grads: list[Any], steps: np.ndarray, check_only: bool
    ) -> None:
        core.adagrad(
            grads, steps, True,
            _scalar(group["lr"]), _scalar(group["lr_decay"]), _scalar(group["weight_decay"]),
            _scalar(group["eps"]), bool(group["maximize"]), check_only,
        )  # fmt: skip


class RMSprop(_FusedStep, torch.optim.RMSprop):
    r"""RMSprop, plain or centered, with momentum: ``torch.optim.RMSprop``.

    .. math::
        g \leftarrow \pm\nabla + \lambda\theta, \quad
        v \leftarrow \alpha v + (1 - \alpha) g^2, \quad
        d = \sqrt{v - \bar g^2} + \epsilon \text{ (centered, } \bar g \leftarrow
        \alpha \bar g + (1 - \alpha) g\text{) else } \sqrt{v} + \epsilon \\
        b \leftarrow \mu b + g / d,\; \theta \leftarrow \theta - \gamma b
        \text{ (momentum) else } \theta \leftarrow \theta - \gamma g / d
    {common}
    State: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered).

    Example:
        >>> import torch
        >>> from fusedoptim.torch import RMSprop
        >>> w = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
        >>> opt = RMSprop([w], lr=0.01, alpha=0.75)
        >>> w.grad = torch.ones(2, dtype=torch.float64)
        >>> opt.step()
        >>> w.detach()
        tensor([0.9800, 0.9800], dtype=torch.float64)
    """

    _algorithm = "rmsprop"
    _state_keys = ("square_avg", "momentum_buffer", "grad_avg")
    _device_alternative = "torch.optim.RMSprop(..., foreach=True)"

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        self._refuse_flags(differentiable, capturable)
        super().__init__(
            params, lr, alpha, eps, weight_decay, momentum, centered, capturable, foreach,
            maximize, differentiable,
        )  # fmt: skip
        self._init_fused()

    def _needs(self, group: dict[str, Any]) -> tuple[bool, ...]:
        return (True, group["momentum"] > 0, bool(group["centered"]))

    def _kernel(
        self, group: Group, core: _core.Plan, grads: list[Any], steps: np.ndarray, check_only: bool
    ) -> None:
        core.rmsprop(
            grads, steps, True,
            _scalar(group["lr"]), _scalar(group["alpha"]), _scalar(group["eps"]),
            _scalar(group["weight_decay"]), _scalar(group["momentum"]), bool(group["centered"]),
            bool(group["maximize"]), check_only,
        )  # fmt: skip


class Adadelta(_FusedStep, torch.optim.Adadelta):
    r"""AdaDelta: ``torch.optim.Adadelta``.

    .. math::
        g \leftarrow \pm\nabla + \lambda\theta, \quad
        v \leftarrow \rho v + (1 - \rho) g^2, \quad
        \Delta = \frac{\sqrt{u + \epsilon}}{\sqrt{v + \epsilon}}\, g, \quad
        u \leftarrow \rho u + (1 - \rho)\Delta^2, \quad \theta \leftarrow \theta - \gamma\Delta
    {common}
    State: ``step``, ``square_avg``, ``acc_delta``.

    Example:
        >>> import torch
        >>> from fusedoptim.torch import Adadelta
        >>> w = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
        >>> opt = Adadelta([w], lr=1.0, rho=0.0, eps=0.0)
        >>> w.grad = torch.ones(1, dtype=torch.float64)
        >>> opt.step()
        >>> w.detach()  # the first step of AdaDelta with eps=0 does not move
        tensor([1.], dtype=torch.float64)
    """

    _algorithm = "adadelta"
    _state_keys = ("square_avg", "acc_delta")
    _device_alternative = "torch.optim.Adadelta(..., foreach=True)"

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        self._refuse_flags(differentiable, capturable)
        super().__init__(
            params, lr, rho, eps, weight_decay, foreach,
            capturable=capturable, maximize=maximize, differentiable=differentiable,
        )  # fmt: skip
        self._init_fused()

    def _kernel(
        self, group: Group, core: _core.Plan, grads: list[Any], steps: np.ndarray, check_only: bool
    ) -> None:
        core.adadelta(
            grads, steps, True,
            _scalar(group["lr"]), _scalar(group["rho"]), _scalar(group["eps"]),
            _scalar(group["weight_decay"]), bool(group["maximize"]), check_only,
        )  # fmt: skip


class _AdamKernel(_FusedStep):
    _algorithm = "adam"
    _state_keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def _needs(self, group: dict[str, Any]) -> tuple[bool, ...]:
        return (True, True, bool(group["amsgrad"]))

    def _kernel(
        self, group: Group, core: _core.Plan, grads: list[Any], steps: np.ndarray, check_only: bool
    ) -> None:
        beta1, beta2 = group["betas"]
        core.adam(
            grads, steps, True,
            _scalar(group["lr"]), _scalar(beta1), _scalar(beta2), _scalar(group["eps"]),
            _scalar(group["weight_decay"]), bool(group["amsgrad"]), bool(group["maximize"]),
            bool(group.get("decoupled_weight_decay", False)), check_only,
        )  # fmt: skip


class Adam(_AdamKernel, torch.optim.Adam):
    r"""Adam, with AMSGrad and optionally decoupled weight decay: ``torch.optim.Adam``.

    .. math::
        g \leftarrow \pm\nabla + \lambda\theta, \quad
        m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad
        v \leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
        \hat v = \max(\hat v, v) \text{ (amsgrad) else } v, \quad
        \theta \leftarrow \theta - \frac{\gamma}{1 - \beta_1^t}\,
        \frac{m}{\sqrt{\hat v / (1 - \beta_2^t)} + \epsilon}
    {common}
    State: ``step``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (amsgrad).

    Example:
        >>> import torch
        >>> from fusedoptim.torch import Adam
        >>> w = torch.nn.Parameter(torch.zeros(2))
        >>> opt = Adam([w], lr=0.1)
        >>> w.grad = torch.tensor([1.0, -1.0])
        >>> opt.step()
        >>> w.detach()  # the first Adam step moves each element by lr against its gradient
        tensor([-0.1000,  0.1000])
    """

    _device_alternative = "torch.optim.Adam(..., fused=True)"

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        self._refuse_flags(differentiable, capturable)
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad,
            foreach=foreach, maximize=maximize, capturable=capturable,
            differentiable=differentiable, fused=fused,
            decoupled_weight_decay=decoupled_weight_decay,
        )  # fmt: skip
        self._init_fused()


class AdamW(_AdamKernel, torch.optim.AdamW):
    r"""AdamW, Adam with decoupled weight decay: ``torch.optim.AdamW``.

    .. math::
        \theta \leftarrow \theta(1 - \gamma\lambda), \quad g \leftarrow \pm\nabla, \quad
        m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad
        v \leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
        \hat v = \max(\hat v, v) \text{ (amsgrad) else } v, \quad
        \theta \leftarrow \theta - \frac{\gamma}{1 - \beta_1^t}\,
        \frac{m}{\sqrt{\hat v / (1 - \beta_2^t)} + \epsilon}
    {common}
    State: ``step``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (amsgrad).

    Example:
        >>> import torch
        >>> from fusedoptim.torch import AdamW
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = AdamW(model.parameters(), lr=1e-2)
        >>> loss = model(torch.ones(8, 4)).pow(2).mean()
        >>> loss.backward()
        >>> opt.step()
        >>> opt.zero_grad()
        >>> sorted(opt.state[model.weight])
        ['exp_avg', 'exp_avg_sq', 'step']
        >>> opt.state[model.weight]["step"]
        tensor(1.)
    """

    _device_alternative = "torch.optim.AdamW(..., fused=True)"

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        self._refuse_flags(differentiable, capturable)
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad,
            maximize=maximize, foreach=foreach, capturable=capturable,
            differentiable=differentiable, fused=fused,
        )  # fmt: skip
        self._init_fused()


def _format_docs(classes: Iterable[type]) -> None:
    for cls in classes:
        capturable = "" if cls is SGD or cls is Adagrad else " or ``capturable=True``"
        common = _COMMON_DOC.format(name=cls.__name__, capturable=capturable)
        cls.__doc__ = (cls.__doc__ or "").replace("{common}", common)


_format_docs((SGD, Adagrad, RMSprop, Adadelta, Adam, AdamW))
