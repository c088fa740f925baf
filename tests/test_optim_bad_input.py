"""Bad input gets a clear error and changes nothing.

Each case asserts the exception type, a message that says what is wrong (and how to fix it
where there is a fix), and that the parameters, the state and the param groups are bitwise what
they were before the call. Cases that fail in a later parameter group check that earlier groups
were not updated either (the optimizer makes one core call per group).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from fusedoptim import optim

NAMES = ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW"]
STATEFUL = {
    "SGD": {"momentum": 0.9},
    "Adagrad": {},
    "RMSprop": {"momentum": 0.9, "centered": True},
    "Adadelta": {},
    "Adam": {"amsgrad": True},
    "AdamW": {},
}


class Param:
    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.grad: np.ndarray | None = None


def _params(dtype: Any = np.float64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.asarray(rng.standard_normal(s), dtype=dtype) for s in [(3, 2), (4,), (2, 2)]]


def _grads(params: list[np.ndarray], seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.asarray(rng.standard_normal(p.shape), dtype=p.dtype) for p in params]


def _snapshot(opt: optim.Optimizer, params: list[Any]) -> Any:
    """Everything a failed call must leave alone, as bytes."""
    arrays = [(p.data if isinstance(p, Param) else p).tobytes() for p in params]
    state = {
        index: {key: np.asarray(value).tobytes() for key, value in entry.items()}
        for index, entry in opt.state_dict()["state"].items()
    }
    groups = [
        {key: copy.copy(value) for key, value in group.items() if key != "params"}
        for group in opt.param_groups
    ]
    return arrays, state, groups, [list(map(id, g["params"])) for g in opt.param_groups]


def _two_groups(name: str, params: list[Any]) -> optim.Optimizer:
    """An optimizer with two groups that has taken two steps, so it has state to damage."""
    opt = getattr(optim, name)(
        [{"params": params[:2]}, {"params": params[2:], "lr": 0.001}], lr=0.01, **STATEFUL[name]
    )
    arrays = [p.data if isinstance(p, Param) else p for p in params]
    for seed in (1, 2):
        if isinstance(params[0], Param):
            for param, grad in zip(params, _grads(arrays, seed)):
                param.grad = grad
            opt.step()
        else:
            opt.step(_grads(arrays, seed))
    return opt


# --------------------------------------------------------------------------------------------
# Construction.


@pytest.mark.parametrize("name", NAMES)
def test_empty_parameter_list(name: str) -> None:
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        getattr(optim, name)([])


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda p: [p[0], p[1], p[0]], ValueError, r"parameter 2 is the same array as parameter 0"),
        (
            lambda p: [{"params": [p[0]]}, {"params": [p[1], p[0]]}],
            ValueError,
            r"parameter 2 is the same array as parameter 0",
        ),
        (lambda p: [p[0], p[0].reshape(-1)], ValueError, r"shares memory with parameter 0"),
        (lambda p: [np.arange(4)], TypeError, r"dtype int64.*float32 and float64"),
        (lambda p: [np.zeros(3, dtype=np.float16)], TypeError, r"dtype <f2"),
        (lambda p: [np.zeros(3, dtype=">f8")], TypeError, r"non-native byte order"),
        (lambda p: [np.zeros((4, 4))[:, 1]], ValueError, r"not C-contiguous.*ascontiguousarray"),
        (lambda p: [np.zeros((3, 4)).T], ValueError, r"not C-contiguous.*ascontiguousarray"),
        (lambda p: [np.broadcast_to(np.zeros(1), (3,))], ValueError, r"not C-contiguous"),
        (lambda p: [np.frombuffer(b"\0" * 16)], ValueError, r"read-only.*writeable"),
        (lambda p: [[1.0, 2.0]], TypeError, r"must be a numpy.ndarray"),
        (lambda p: p[0], TypeError, r"wrap a single array in a list"),
        (lambda p: [p[0], Param(p[1])], TypeError, r"use one kind"),
        (lambda p: [Param([1.0])], TypeError, r"parameter 0\.data must be a numpy\.ndarray"),
        (lambda p: [{"params": {p[0].tobytes()}}], TypeError, r"ordered collections"),
    ],
    ids=[
        "same-array-twice",
        "same-array-in-two-groups",
        "overlapping-view",
        "int64",
        "float16",
        "big-endian",
        "column-slice",
        "transpose",
        "broadcast",
        "read-only",
        "list",
        "single-array",
        "mixed-kinds",
        "object-with-list-data",
        "set",
    ],
)
def test_bad_parameters_are_refused(make: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        optim.Adam(make(_params()))


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("SGD", {"lr": -1.0}, r"Invalid learning rate: -1\.0"),
        ("SGD", {"lr": float("nan")}, r"Invalid learning rate: nan"),
        ("SGD", {"momentum": -0.5}, r"Invalid momentum value: -0\.5"),
        ("SGD", {"weight_decay": -1e-4}, r"Invalid weight_decay value: -0\.0001"),
        ("SGD", {"nesterov": True}, r"Nesterov momentum requires a momentum and zero dampening"),
        (
            "SGD",
            {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
            r"Nesterov momentum requires a momentum and zero dampening.*dampening=0\.1",
        ),
        ("Adagrad", {"lr_decay": -1}, r"Invalid lr_decay value: -1"),
        ("Adagrad", {"initial_accumulator_value": -2}, r"initial_accumulator_value value: -2"),
        ("Adagrad", {"eps": -1e-10}, r"Invalid epsilon value: -1e-10"),
        ("RMSprop", {"alpha": -0.1}, r"Invalid alpha value: -0\.1"),
        ("RMSprop", {"momentum": -1}, r"Invalid momentum value: -1"),
        ("Adadelta", {"rho": 1.5}, r"Invalid rho value: 1\.5"),
        ("Adam", {"betas": (1.0, 0.999)}, r"Invalid beta parameter at index 0: 1\.0"),
        ("Adam", {"betas": (0.9, -0.1)}, r"Invalid beta parameter at index 1: -0\.1"),
        ("AdamW", {"weight_decay": -0.01}, r"Invalid weight_decay value: -0\.01"),
    ],
)
def test_bad_hyperparameters_show_the_value(name: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        getattr(optim, name)(_params(), **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lr": "0.1"}, r"must be a real number, got '0\.1'"),
        ({"amsgrad": "yes"}, r"amsgrad must be a bool"),
        ({"betas": 0.9}, r"betas must be a pair"),
    ],
)
def test_hyperparameters_of_the_wrong_type(options: dict, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        optim.Adam(_params(), **options)


@pytest.mark.parametrize(
    ("group", "error", "message"),
    [
        ("existing", ValueError, r"parameter 4 is the same array as parameter 1"),
        ("bad-lr", ValueError, r"Invalid learning rate: -2"),
        ("int", TypeError, r"parameter 4 has dtype int64"),
        ("no-params", ValueError, r"'params'"),
    ],
)
def test_add_param_group_refused_changes_nothing(group: str, error: type, message: str) -> None:
    params = _params()
    opt = _two_groups("Adam", params)
    before = _snapshot(opt, params)
    new = {
        "existing": {"params": [np.zeros(2), params[1]]},
        "bad-lr": {"params": [np.zeros(2)], "lr": -2},
        "int": {"params": [np.zeros(2), np.zeros(2, dtype=np.int64)]},
        "no-params": {"lr": 0.1},
    }[group]
    with pytest.raises(error, match=message):
        opt.add_param_group(new)
    assert _snapshot(opt, params) == before
    assert len(opt.param_groups) == 2
    opt.step(_grads(params))  # still works


# --------------------------------------------------------------------------------------------
# step().


def _bad_grads(kind: str, params: list[np.ndarray]) -> Any:
    grads: list[Any] = _grads(params, seed=9)
    last = len(params) - 1  # in the second group: the first group's call must not run either
    if kind == "shape":
        grads[last] = np.zeros((4,))
    elif kind == "dtype":
        grads[last] = grads[last].astype(np.float32)
    elif kind == "non-contiguous":
        grads[last] = np.zeros((2, 4))[:, ::2]
    elif kind == "list":
        grads[last] = [[0.0, 0.0], [0.0, 0.0]]
    elif kind == "alias":
        grads[last] = params[last]
    elif kind == "alias-view":
        grads[last] = params[last].reshape(-1).reshape(params[last].shape)  # a view, not the array
    elif kind == "too-few":
        grads = grads[:-1]
    elif kind == "too-many":
        grads = [*grads, np.zeros(1)]
    elif kind == "none":
        grads = None
    elif kind == "array":
        grads = grads[0]
    return grads


BAD_GRADS = [
    ("shape", ValueError, r"gradient for parameter 2 has shape \(4,\) but its parameter has "
     r"shape \(2, 2\)"),
    ("dtype", TypeError, r"gradient for parameter 2 has dtype <f4 but its parameter has dtype "
     r"float64"),
    ("non-contiguous", ValueError, r"gradient for parameter 2 is not C-contiguous"),
    ("list", TypeError, r"gradient for parameter 2 must be a numpy.ndarray or None, got list"),
    ("alias", ValueError, r"gradient for parameter 2 shares memory with its parameter"),
    ("alias-view", ValueError, r"gradient for parameter 2 shares memory with its parameter"),
    ("too-few", ValueError, r"step\(\) got 2 gradients for 3 parameters"),
    ("too-many", ValueError, r"step\(\) got 4 gradients for 3 parameters"),
    ("none", TypeError, r"step\(\) needs the gradients"),
    ("array", TypeError, r"wrap a single gradient in a list"),
]  # fmt: skip


@pytest.mark.parametrize("groups", [1, 2], ids=["one-group", "two-groups"])
@pytest.mark.parametrize(("kind", "error", "message"), BAD_GRADS, ids=[c[0] for c in BAD_GRADS])
@pytest.mark.parametrize("name", NAMES)
def test_bad_gradients_change_nothing(
    name: str, kind: str, error: type, message: str, groups: int
) -> None:
    params = _params()
    if groups == 2:
        opt = _two_groups(name, params)
    else:
        opt = getattr(optim, name)(params, lr=0.01, **STATEFUL[name])
        opt.step(_grads(params))
    before = _snapshot(opt, params)
    with pytest.raises(error, match=message):
        opt.step(_bad_grads(kind, params))
    assert _snapshot(opt, params) == before


@pytest.mark.parametrize("name", NAMES)
def test_bad_gradient_before_state_exists_creates_no_state(name: str) -> None:
    params = _params()
    opt = getattr(optim, name)(params, lr=0.01, **STATEFUL[name])
    before = _snapshot(opt, params)
    with pytest.raises(ValueError, match="has shape"):
        opt.step(_bad_grads("shape", params))
    assert _snapshot(opt, params) == before
    assert len(opt.state) == (3 if name == "Adagrad" else 0)


@pytest.mark.parametrize("name", NAMES)
def test_parameter_object_data_replaced_by_another_shape(name: str) -> None:
    arrays = _params()
    params = [Param(a) for a in arrays]
    opt = _two_groups(name, params)
    for param, grad in zip(params, _grads(arrays, 5)):
        param.grad = grad
    original = params[2].data
    params[2].data = np.zeros((5,))
    before = _snapshot(opt, params)
    with pytest.raises(ValueError, match=r"parameter 2\.data is now an array of shape \(5,\)"):
        opt.step()
    assert _snapshot(opt, params) == before
    params[2].data = original
    opt.step()  # back to a valid state: steps again


def test_parameter_object_data_replaced_by_same_shape_is_followed() -> None:
    """Replacing ``.data`` with an array of the same shape and dtype is fine (as
    ``p.data = ...`` in PyTorch): the optimizer updates the new array and keeps the state."""
    arrays = _params()
    params = [Param(a) for a in arrays]
    opt = _two_groups("Adam", params)
    old = params[0].data
    old_bytes = old.tobytes()
    params[0].data = old.copy()
    for param, grad in zip(params, _grads(arrays, 5)):
        param.grad = grad
    opt.step()
    assert old.tobytes() == old_bytes
    assert params[0].data.tobytes() != old_bytes
    assert int(opt.state[params[0]]["step"]) == 3


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (lambda: np.zeros((3, 2), dtype=np.float32), ValueError, r"dtype float32"),
        (lambda: np.zeros((2, 3)).T, ValueError, r"not C-contiguous"),
        (lambda: [[0.0] * 2] * 3, TypeError, r"parameter 0\.data must be a numpy\.ndarray"),
    ],
    ids=["dtype", "non-contiguous", "list"],
)
def test_parameter_object_data_replaced_by_bad_array(data: Any, error: type, message: str) -> None:
    arrays = _params()
    params = [Param(a) for a in arrays]
    opt = _two_groups("Adam", params)
    params[0].data = data()
    for param, grad in zip(params, _grads(arrays, 5)):
        param.grad = grad
    before = _snapshot(opt, params[1:])
    with pytest.raises(error, match=message):
        opt.step()
    assert _snapshot(opt, params[1:]) == before


def test_parameter_object_bad_grad_and_grads_argument() -> None:
    arrays = _params()
    params = [Param(a) for a in arrays]
    opt = _two_groups("Adam", params)
    for param, grad in zip(params, _grads(arrays, 5)):
        param.grad = grad
    params[2].grad = np.zeros(3)
    before = _snapshot(opt, params)
    with pytest.raises(ValueError, match=r"parameter 2\.grad has shape \(3,\)"):
        opt.step()
    with pytest.raises(TypeError, match=r"call step\(\) without gradients"):
        opt.step(_grads(arrays))
    assert _snapshot(opt, params) == before


def test_bad_hyperparameter_set_through_param_groups() -> None:
    params = _params()
    opt = _two_groups("Adam", params)
    opt.param_groups[1]["lr"] = -0.5
    before = _snapshot(opt, params)
    with pytest.raises(ValueError, match=r"Invalid learning rate: -0\.5"):
        opt.step(_grads(params))
    assert _snapshot(opt, params) == before


def test_unknown_array_put_into_param_groups_directly() -> None:
    params = _params()
    opt = _two_groups("SGD", params)
    opt.param_groups[0]["params"].append(np.zeros(2))
    with pytest.raises(ValueError, match=r"add_param_group"):
        opt.step(_grads(params) + [np.zeros(2)])


# --------------------------------------------------------------------------------------------
# load_state_dict().


def _other(name: str, **options: Any) -> dict[str, Any]:
    params = _params()
    opt = getattr(optim, name)([{"params": params[:2]}, {"params": params[2:]}], lr=0.01, **options)
    opt.step(_grads(params))
    return opt.state_dict()


def _reshaped_state() -> dict[str, Any]:
    state = _other("Adam")
    state["state"][0]["exp_avg"] = np.zeros((2, 3))
    return state


def _wrong_group_sizes() -> dict[str, Any]:
    state = _other("Adam")
    groups = state["param_groups"]
    groups[0]["params"], groups[1]["params"] = [0], [1, 2]
    return state


def _one_group() -> dict[str, Any]:
    params = _params()
    opt = optim.Adam(params)
    opt.step(_grads(params))
    return opt.state_dict()


BAD_STATE_DICTS = [
    ("from-sgd", lambda: _other("SGD", momentum=0.9), r"lacks \['betas'"),
    ("from-rmsprop", lambda: _other("RMSprop"), r"lacks \['betas'"),
    ("one-group", _one_group, r"different number of parameter groups"),
    ("group-sizes", _wrong_group_sizes, r"doesn't match the size of optimizer's group"),
    ("other-shape", _reshaped_state, r"shape \(2, 3\) but the parameter has shape \(3, 2\)"),
    ("not-a-dict", lambda: [1, 2], r"'state' and 'param_groups'"),
    ("bad-lr", lambda: {**_other("Adam"), "param_groups": [
        {**g, "lr": -1.0} for g in _other("Adam")["param_groups"]]},
     r"loaded param group 0: Invalid learning rate: -1\.0"),
    ("bad-step", lambda: _with_state(0, "step", -3), r"non-negative integer"),
    ("unknown-id", lambda: _with_state(7, "step", 1), r"parameter id 7"),
    ("missing-key", lambda: _without(0, "exp_avg_sq"), r"lacks \['exp_avg_sq'\]"),
]  # fmt: skip


def _with_state(index: int, key: str, value: Any) -> dict[str, Any]:
    state = _other("Adam")
    state["state"].setdefault(index, dict(state["state"][0]))[key] = value
    return state


def _without(index: int, key: str) -> dict[str, Any]:
    state = _other("Adam")
    del state["state"][index][key]
    return state


@pytest.mark.parametrize(
    ("case", "make", "message"), BAD_STATE_DICTS, ids=[c[0] for c in BAD_STATE_DICTS]
)
def test_bad_state_dict_changes_nothing(case: str, make: Any, message: str) -> None:
    params = _params()
    opt = _two_groups("Adam", params)
    before = _snapshot(opt, params)
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(make())
    assert _snapshot(opt, params) == before
    opt.step(_grads(params))


@pytest.mark.parametrize(
    ("target", "source", "message"),
    [
        ("SGD", "Adam", r"lacks \['momentum'"),
        ("Adadelta", "RMSprop", r"lacks \['rho'\]"),
        ("Adagrad", "Adadelta", r"lacks \['lr_decay'"),
        ("RMSprop", "SGD", r"lacks \['alpha'"),
    ],
)
def test_state_dict_from_another_optimizer(target: str, source: str, message: str) -> None:
    params = _params()
    opt = _two_groups(target, params)
    before = _snapshot(opt, params)
    with pytest.raises(ValueError, match=message + r".*another optimizer"):
        opt.load_state_dict(_other(source, **STATEFUL[source]))
    assert _snapshot(opt, params) == before


def test_state_with_keys_of_another_optimizer() -> None:
    """Hyperparameters alone can match (the state is what differs): refused by state key."""
    state = _other("SGD", momentum=0.9)
    state["state"][0]["exp_avg"] = np.zeros((3, 2))
    params = _params()
    opt = _two_groups("SGD", params)
    before = _snapshot(opt, params)
    with pytest.raises(ValueError, match=r"has \['exp_avg'\], which SGD does not keep"):
        opt.load_state_dict(state)
    assert _snapshot(opt, params) == before


# --------------------------------------------------------------------------------------------
# Memory shared across core calls. Each param group (and each dtype within one) is its own core
# call, which checks only its own arrays; the optimizer checks across them before any writes.


def _aliasing_cases() -> list[tuple[str, Any]]:
    def state_is_other_groups_param() -> tuple[optim.Optimizer, list[np.ndarray], list[Any]]:
        a, b = np.ones(4), np.ones(4)
        opt = optim.Adam([{"params": [a]}, {"params": [b]}], lr=0.1)
        opt.step([np.ones(4), np.ones(4)])
        opt.state[b]["exp_avg"] = a
        return opt, [a, b], [np.ones(4), np.ones(4)]

    def state_is_other_dtypes_param() -> tuple[optim.Optimizer, list[np.ndarray], list[Any]]:
        a, b = np.ones(4, np.float32), np.ones(2)
        opt = optim.Adam([a, b], lr=0.1)
        opt.step([np.ones(4, np.float32), np.ones(2)])
        opt.state[b]["exp_avg"] = a.view(np.float64)
        return opt, [a, b], [np.ones(4, np.float32), np.ones(2)]

    def grad_is_other_groups_param() -> tuple[optim.Optimizer, list[np.ndarray], list[Any]]:
        a, b = np.ones(4), np.ones(4)
        opt = optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.5, momentum=0.9)
        opt.step([np.ones(4), np.ones(4)])
        return opt, [a, b], [np.ones(4), a]

    def grad_is_other_dtypes_param() -> tuple[optim.Optimizer, list[np.ndarray], list[Any]]:
        a, b = np.ones(4, np.float32), np.ones(2)
        opt = optim.SGD([a, b], lr=0.5)
        return opt, [a, b], [np.ones(4, np.float32), a.view(np.float64)]

    def grad_is_other_groups_state() -> tuple[optim.Optimizer, list[np.ndarray], list[Any]]:
        a, b = np.ones(4), np.ones(4)
        opt = optim.Adam([{"params": [a]}, {"params": [b]}], lr=0.1)
        opt.step([np.ones(4), np.ones(4)])
        return opt, [a, b], [opt.state[b]["exp_avg_sq"], np.ones(4)]

    return [
        ("state-is-other-groups-param", state_is_other_groups_param),
        ("state-is-other-dtypes-param", state_is_other_dtypes_param),
        ("grad-is-other-groups-param", grad_is_other_groups_param),
        ("grad-is-other-dtypes-param", grad_is_other_dtypes_param),
        ("grad-is-other-groups-state", grad_is_other_groups_state),
    ]


_STATE_ALIAS = "state\\['exp_avg'\\] of parameter 1 shares memory with parameter 0"
ALIASING = {
    "state-is-other-groups-param": _STATE_ALIAS,
    "state-is-other-dtypes-param": _STATE_ALIAS,
    "grad-is-other-groups-param": "gradient for parameter 1 shares memory with parameter 0, which",
    "grad-is-other-dtypes-param": "gradient for parameter 1 shares memory with parameter 0, which",
    "grad-is-other-groups-state": (
        "gradient for parameter 0 shares memory with state\\['exp_avg_sq'\\] of parameter 1"
    ),
}


@pytest.mark.parametrize(("case", "make"), _aliasing_cases(), ids=[c[0] for c in _aliasing_cases()])
def test_memory_shared_across_groups_and_dtypes_is_refused(case: str, make: Any) -> None:
    opt, params, grads = make()
    before = (
        [p.tobytes() for p in params],
        {
            i: {k: np.asarray(v).tobytes() for k, v in s.items()}
            for i, s in opt.state_dict()["state"].items()
        },
    )
    with pytest.raises(ValueError, match=ALIASING[case]):
        opt.step(grads)
    after = (
        [p.tobytes() for p in params],
        {
            i: {k: np.asarray(v).tobytes() for k, v in s.items()}
            for i, s in opt.state_dict()["state"].items()
        },
    )
    assert after == before


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("groups", [1, 2], ids=["one-group", "two-groups"])
def test_gradient_aliasing_another_parameter_before_state_exists(name: str, groups: int) -> None:
    """The first step creates state; a gradient that is another parameter is refused first,
    with the parameters numbered as the user numbers them (across groups)."""
    a, b, c = np.ones(3), np.full(3, 2.0), np.full(3, 3.0)
    spec = [{"params": [a]}, {"params": [b, c]}] if groups == 2 else [a, b, c]
    opt = getattr(optim, name)(spec, lr=0.1, **STATEFUL[name])
    state_before = opt.state_dict()["state"]
    with pytest.raises(ValueError, match="gradient for parameter 2 shares memory with parameter 1"):
        opt.step([np.ones(3), np.ones(3), b])
    assert (a == 1).all() and (b == 2).all() and (c == 3).all()
    assert opt.state_dict()["state"].keys() == state_before.keys()  # AdaGrad's eager state only


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: setattr(p.flags, "writeable", False), "parameter 0 is read-only"),
        (lambda p: setattr(p, "shape", (2, 2)), "parameter 0 was changed in place to shape"),
    ],
    ids=["made-read-only", "reshaped-in-place"],
)
@pytest.mark.parametrize("groups", [1, 2], ids=["one-group", "two-groups"])
def test_parameter_changed_in_place_after_construction(
    change: Any, message: str, groups: int
) -> None:
    p, q = np.ones(4), np.ones(4)
    opt = optim.SGD([{"params": [p]}, {"params": [q]}] if groups == 2 else [p, q], lr=0.1)
    opt.step([np.ones(4), np.ones(4)])
    change(p)
    with pytest.raises(ValueError, match=message):
        opt.step([np.ones(p.shape), np.ones(4)])
    assert (p == 0.9).all() and (q == 0.9).all()


def test_parameter_whose_dtype_is_reassigned_in_place() -> None:
    p = np.ones(4)
    opt = optim.SGD([p], lr=0.1)
    opt.step([np.ones(4)])
    p.dtype = np.float32  # the same bytes, read as twice as many float32
    before = p.tobytes()
    with pytest.raises(ValueError, match="parameter 0 was changed in place to shape \\(8,\\)"):
        opt.step([np.ones(8, np.float32)])
    assert p.tobytes() == before


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("fraction", id="Fraction-rounding-to-1"),
        pytest.param("longdouble", id="longdouble-beyond-float64"),
    ],
)
def test_hyperparameters_checked_as_the_float64_the_core_receives(value: str) -> None:
    from fractions import Fraction

    beta1 = Fraction(10**20 - 1, 10**20) if value == "fraction" else 0.9
    lr = np.longdouble("1e400") if value == "longdouble" else 1e-3
    if value == "longdouble" and not np.isinf(float(lr)):
        pytest.skip("numpy.longdouble is float64 on this platform")
    with pytest.raises(ValueError, match="Invalid (beta parameter at index 0|learning rate)"):
        optim.Adam([np.ones(2)], lr=lr, betas=(beta1, 0.999))
    w = np.ones(2)
    opt = optim.Adam([w], lr=1e-3)
    opt.param_groups[0]["betas"] = (beta1, 0.999)
    opt.param_groups[0]["lr"] = lr
    with pytest.raises(ValueError, match="Invalid"):
        opt.step([np.ones(2)])
    assert (w == 1).all()


def test_same_empty_array_twice_is_refused() -> None:
    p = np.zeros(0)
    with pytest.raises(ValueError, match="parameter 1 is the same array as parameter 0"):
        optim.Adam([p, p])
    opt = optim.SGD([{"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="is the same array as parameter 0"):
        opt.add_param_group({"params": [p]})
    optim.Adam([np.zeros(0), np.zeros(0)])  # two empty arrays are two parameters


def test_removed_group_key_is_a_value_error_naming_it() -> None:
    w = np.ones(2)
    opt = optim.Adam([w])
    opt.step([np.ones(2)])
    del opt.param_groups[0]["eps"]
    before = w.copy()
    with pytest.raises(ValueError, match="param_groups\\[0\\] lacks \\['eps'\\]"):
        opt.step([np.ones(2)])
    assert (w == before).all()


def test_new_group_whose_parameter_is_another_groups_state_is_refused() -> None:
    a = np.ones(4, np.float32)
    opt = optim.Adam([a], lr=0.1)
    opt.step([np.ones(4, np.float32)])
    with pytest.raises(ValueError, match="parameter 1 shares memory with state\\['exp_avg'\\]"):
        opt.add_param_group({"params": [opt.state[a]["exp_avg"]]})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("name", ["SGD", "RMSprop", "Adadelta", "Adam"])  # lazy state
@pytest.mark.parametrize("groups", [1, 2], ids=["one-group", "two-groups"])
def test_parameter_changed_in_place_before_its_state_exists(name: str, groups: int) -> None:
    """The first step creates state and the core plan from the arrays as they are then: a
    parameter made read-only (or reshaped) since it was given is refused before that."""
    a, b = np.ones(4), np.ones(4)
    spec = [{"params": [a]}, {"params": [b]}] if groups == 2 else [a, b]
    opt = getattr(optim, name)(spec, lr=0.1, **STATEFUL[name])
    b.flags.writeable = False
    with pytest.raises(ValueError, match="parameter 1 is read-only"):
        opt.step([np.ones(4), np.ones(4)])
    assert (a == 1).all() and len(opt.state) == 0
    b.flags.writeable = True
    a.shape = (2, 2)
    with pytest.raises(ValueError, match="parameter 0 was changed in place to shape \\(2, 2\\)"):
        opt.step([np.ones((2, 2)), np.ones(4)])
    assert (b == 1).all() and len(opt.state) == 0


def test_strided_gradient_spanning_another_parameter_says_it_is_not_contiguous() -> None:
    base = np.zeros(20)
    a, b = base[0:8], base[10:14]
    opt = optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1)
    with pytest.raises(ValueError, match="gradient for parameter 1 is not C-contiguous"):
        opt.step([np.ones(8), base[1::5]])  # its extent spans parameter 0
    with pytest.raises(ValueError, match="gradient for parameter 1 shares memory with parameter 0"):
        opt.step([np.ones(8), base[2:6]])
    assert (base == 0).all()


@pytest.mark.parametrize("change", ["step-count", "data-moved"])
def test_later_group_with_state_still_missing_is_checked_before_any_group_is_written(
    change: str,
) -> None:
    """A group that still lacks state for some tensor was checked in Python only, which missed
    what the core checks (a refused step count, a parameter whose memory moved): the first
    group was written, then the core refused the second. Now nothing is written."""
    a, b, c = np.ones(3), np.ones(3), np.ones(3)
    opt = optim.Adam([{"params": [a]}, {"params": [b, c]}], lr=0.1)
    opt.step([np.ones(3), np.ones(3), None])  # c has no state yet
    if change == "step-count":
        opt.state[b]["step"][...] = -1  # written into the live count
        match = r"state\['step'\] of parameter 1 is -1: step counts cannot be negative"
    else:
        address = b.ctypes.data
        b.resize(10**6, refcheck=False)
        b.resize(3, refcheck=False)
        if b.ctypes.data == address:
            pytest.skip("the allocator gave the same memory back")
        match = "data moved"
    saved = [a.copy(), opt.state[a]["exp_avg"].copy(), int(opt.state[a]["step"])]
    with pytest.raises(ValueError, match=match):
        opt.step([np.ones(3), np.ones(3), None])
    assert np.array_equal(a, saved[0]) and np.array_equal(opt.state[a]["exp_avg"], saved[1])
    assert int(opt.state[a]["step"]) == saved[2]


def test_parameter_or_state_sharing_memory_with_a_step_count_is_refused() -> None:
    """The core increments every state['step'] it steps: a parameter that is a view of one
    would be corrupted, then every later step refused. Refused when the group is added. (A
    state array assigned a view of a count is harmless: the assignment rebuilds the plans,
    which give the counts new memory.)"""
    w = np.ones(3)
    opt = optim.Adam([w], lr=0.1)
    opt.step([np.ones(3)])
    with pytest.raises(ValueError, match=r"shares memory with state\['step'\] of parameter 0"):
        opt.add_param_group({"params": [opt.state[w]["step"].view(np.float64)]})
    assert len(opt.param_groups) == 1 and int(opt.state[w]["step"]) == 1
    opt.step([np.ones(3)])
    assert int(opt.state[w]["step"]) == 2
