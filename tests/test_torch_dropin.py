"""fusedoptim.torch against torch.optim: same numbers, same state, same API, clear refusals.

Every comparison runs the ``torch.optim`` class of the same name on its single-tensor ("for-loop")
path (``foreach=False``) as the ground truth, from the same initial weights and data.

Tolerances: both libraries compute in the parameter's dtype, but not with the same sequence of
IEEE operations (torch uses ``lerp`` and ``addcdiv``, the kernels a fixed order with per-step
scalars computed in double), so results differ by an ulp here and there, and training feeds those
differences back through the model. After 50 steps of a small tanh network they stay below 1e-6
(float32) and 1e-13 (float64) of each tensor's scale; the tests allow 1e-5 and 1e-12, while a wrong
formula, branch, step count or bias correction moves the results by 1e-3 or more.
"""

from __future__ import annotations

import copy
import io
import pickle
import subprocess
import sys
from collections import defaultdict
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import fusedoptim.torch as ft  # noqa: E402

RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}
DTYPES = [torch.float32, torch.float64]
DTYPE_IDS = ["float32", "float64"]
STEPS = 50

# Each optimizer with options that switch on every branch of its update rule at least once.
OPTION_CASES: list[tuple[str, dict[str, Any]]] = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "maximize": True}),
    ("Adagrad", {"lr": 0.05}),
    ("Adagrad", {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 0.01}),
    ("Adagrad", {"lr": 0.05, "initial_accumulator_value": 0.1, "maximize": True}),
    ("RMSprop", {"lr": 0.003}),
    ("RMSprop", {"lr": 0.003, "momentum": 0.5, "weight_decay": 0.01}),
    ("RMSprop", {"lr": 0.003, "centered": True}),
    ("RMSprop", {"lr": 0.003, "centered": True, "momentum": 0.5, "maximize": True}),
    ("Adadelta", {"lr": 0.5}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "weight_decay": 0.01, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01}),
    (
        "Adam",
        {"lr": 0.01, "betas": (0.8, 0.95), "decoupled_weight_decay": True, "weight_decay": 0.1},
    ),
    ("Adam", {"lr": 0.01, "maximize": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.0, "maximize": True}),
]


def _case_id(case: tuple[str, dict[str, Any]]) -> str:
    name, options = case
    parts = [name] + [
        key if value is True else f"{key}{value}" for key, value in options.items() if key != "lr"
    ]
    return "-".join(parts)


# The most stateful configuration of each optimizer, for the tests about something else.
FULL_OPTIONS: dict[str, dict[str, Any]] = {
    "SGD": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    "Adagrad": {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 0.01},
    "RMSprop": {"lr": 0.003, "momentum": 0.5, "centered": True, "weight_decay": 0.01},
    "Adadelta": {"lr": 0.5, "weight_decay": 0.01},
    "Adam": {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01},
    "AdamW": {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1},
}
NAMES = list(FULL_OPTIONS)


# --------------------------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------------------------


def make_model(dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.nn.Module:
    """A small network with weights, biases, a norm and an embedding-like table."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 16),
        torch.nn.LayerNorm(16),
        torch.nn.Tanh(),
        torch.nn.Linear(16, 8),
        torch.nn.Tanh(),
        torch.nn.Linear(8, 1),
    )
    return model.to(dtype)


def make_data(dtype: torch.dtype, steps: int = STEPS, seed: int = 1) -> list[tuple[Any, Any]]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(steps, 32, 6, generator=generator, dtype=torch.float64)
    targets = torch.sin(inputs.sum(-1, keepdim=True)) + 0.1 * torch.randn(
        steps, 32, 1, generator=generator, dtype=torch.float64
    )
    return [(x.to(dtype), y.to(dtype)) for x, y in zip(inputs, targets)]


def loss_of(model: torch.nn.Module, batch: tuple[Any, Any], maximize: bool) -> Any:
    x, y = batch
    loss = torch.nn.functional.mse_loss(model(x), y)
    # With maximize=True the optimizer climbs, so give it the negated loss to climb.
    return -loss if maximize else loss


def train(
    model: torch.nn.Module,
    optimizer: Any,
    data: list[tuple[Any, Any]],
    maximize: bool = False,
) -> list[float]:
    losses = []
    for batch in data:
        optimizer.zero_grad()
        loss = loss_of(model, batch, maximize)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def pair(
    name: str, options: dict[str, Any], dtype: torch.dtype, seed: int = 0
) -> tuple[torch.nn.Module, Any, torch.nn.Module, Any]:
    """(torch model, torch.optim optimizer, fusedoptim model, fusedoptim optimizer)."""
    reference_model, model = make_model(dtype, seed), make_model(dtype, seed)
    reference = getattr(torch.optim, name)(reference_model.parameters(), foreach=False, **options)
    ours = getattr(ft, name)(model.parameters(), **options)
    return reference_model, reference, model, ours


def assert_close(actual: Any, expected: Any, dtype: torch.dtype, what: str) -> None:
    """Equal to ``RTOL[dtype]`` of the tensor's scale (so entries near zero are judged fairly)."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    scale = expected.abs().max().item() if expected.numel() else 1.0
    tolerance = RTOL[dtype]
    torch.testing.assert_close(
        actual, expected, rtol=tolerance, atol=tolerance * max(scale, 1e-30), msg=what
    )


def assert_same_state(ours: Any, reference: Any, dtype: torch.dtype) -> None:
    """Same state keys in the same order, same types, values within tolerance."""
    ours_state, reference_state = ours.state_dict(), reference.state_dict()
    assert ours_state["state"].keys() == reference_state["state"].keys()
    for index, expected in reference_state["state"].items():
        actual = ours_state["state"][index]
        assert list(actual) == list(expected), f"state keys of parameter {index}"
        for key, want in expected.items():
            got = actual[key]
            assert type(got) is type(want), (index, key)
            if key == "step":
                assert got.dtype == want.dtype and got.dim() == 0, (index, key)
                assert got.item() == want.item(), (index, key)
            else:
                assert_close(got, want, dtype, f"state[{index}][{key!r}]")
    for got_group, want_group in zip(ours_state["param_groups"], reference_state["param_groups"]):
        assert got_group.keys() == want_group.keys()
        differing = {k for k in want_group if got_group[k] != want_group[k]}
        assert differing <= {"foreach"}, differing


def assert_same_params(model: torch.nn.Module, reference: torch.nn.Module, dtype: Any) -> None:
    for (name, got), want in zip(model.named_parameters(), reference.parameters()):
        assert_close(got.detach(), want.detach(), dtype, name)


def snapshot(model: torch.nn.Module, optimizer: Any) -> dict[str, Any]:
    """Deep copies of every parameter and every state entry, to prove nothing changed."""
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "state": copy.deepcopy(optimizer.state_dict()["state"]),
    }


def assert_unchanged(before: dict[str, Any], model: torch.nn.Module, optimizer: Any) -> None:
    after = snapshot(model, optimizer)
    for got, want in zip(after["params"], before["params"]):
        assert torch.equal(got, want)
    assert after["state"].keys() == before["state"].keys()
    for index, entries in before["state"].items():
        assert after["state"][index].keys() == entries.keys()
        for key, want in entries.items():
            assert torch.equal(after["state"][index][key], want), (index, key)


def roundtrip(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Through ``torch.save`` / ``torch.load(weights_only=True)``, as a checkpoint goes."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# --------------------------------------------------------------------------------------------
# Same numbers, same state.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("torch_dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", OPTION_CASES, ids=_case_id)
def test_fifty_steps_match_torch_for_loop(
    case: tuple[str, dict[str, Any]], torch_dtype: torch.dtype
) -> None:
    name, options = case
    maximize = options.get("maximize", False)
    data = make_data(torch_dtype)
    reference_model, reference, model, ours = pair(name, options, torch_dtype)
    expected_losses = train(reference_model, reference, data, maximize)
    losses = train(model, ours, data, maximize)
    # The run must have moved: a no-op optimizer would pass the comparisons below otherwise.
    assert abs(expected_losses[-1] - expected_losses[0]) > 1e-3
    assert_close(
        torch.tensor(losses, dtype=torch.float64),
        torch.tensor(expected_losses, dtype=torch.float64),
        torch_dtype,
        "losses",
    )
    assert_same_params(model, reference_model, torch_dtype)
    assert_same_state(ours, reference, torch_dtype)


@pytest.mark.parametrize("name", NAMES)
def test_state_layout_is_torchs(name: str) -> None:
    """Keys, key order, ``step`` as a 0-d tensor of torch's dtype, group keys: all as torch's."""
    data = make_data(torch.float32, steps=3)
    reference_model, reference, model, ours = pair(name, FULL_OPTIONS[name], torch.float32)
    reference = getattr(torch.optim, name)(reference_model.parameters(), **FULL_OPTIONS[name])
    train(reference_model, reference, data)
    train(model, ours, data)
    assert ours.state_dict()["param_groups"] == reference.state_dict()["param_groups"]
    for p, q in zip(model.parameters(), reference_model.parameters()):
        got, want = ours.state[p], reference.state[q]
        assert list(got) == list(want)
        assert all(type(got[key]) is type(want[key]) for key in want)
        if "step" in want:
            assert got["step"].shape == () and got["step"].dtype == want["step"].dtype
            assert got["step"].item() == want["step"].item() == 3
    assert isinstance(ours, getattr(torch.optim, name))


def test_step_dtype_follows_default_dtype_like_torch() -> None:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        reference_model, reference, model, ours = pair("Adam", {"lr": 0.01}, torch.float64)
        data = make_data(torch.float64, steps=2)
        train(reference_model, reference, data)
        train(model, ours, data)
    finally:
        torch.set_default_dtype(previous)
    step = ours.state[next(model.parameters())]["step"]
    assert (
        step.dtype
        == torch.float64
        == reference.state[next(reference_model.parameters())]["step"].dtype
    )


@pytest.mark.parametrize("name", NAMES)
def test_checkpoints_both_ways_mid_run(name: str) -> None:
    """torch.optim for 10 steps -> fusedoptim for 10 -> torch.optim for 10 == torch for 30."""
    options = FULL_OPTIONS[name]
    dtype = torch.float64
    data = make_data(dtype, steps=30)
    expected_model = make_model(dtype)
    expected = getattr(torch.optim, name)(expected_model.parameters(), foreach=False, **options)
    train(expected_model, expected, data)

    model = make_model(dtype)
    first = getattr(torch.optim, name)(model.parameters(), foreach=False, **options)
    train(model, first, data[:10])

    second = getattr(ft, name)(model.parameters(), **options)
    second.load_state_dict(roundtrip(first.state_dict()))
    train(model, second, data[10:20])

    third = getattr(torch.optim, name)(model.parameters(), foreach=False, **options)
    third.load_state_dict(roundtrip(second.state_dict()))
    train(model, third, data[20:])

    assert_same_params(model, expected_model, dtype)
    assert_same_state(third, expected, dtype)


def test_checkpoint_of_a_fresh_optimizer_with_partial_state() -> None:
    """Parameters that never had a gradient have no state, in both libraries, across a load."""
    dtype = torch.float64
    model = make_model(dtype)
    frozen = list(model.parameters())[0]
    frozen.requires_grad_(False)
    data = make_data(dtype, steps=4)
    expected_model = copy.deepcopy(model)
    expected = torch.optim.AdamW(expected_model.parameters(), foreach=False)
    train(expected_model, expected, data)

    ours = ft.AdamW(model.parameters())
    train(model, ours, data[:2])
    assert frozen not in ours.state or not ours.state[frozen]
    resumed = ft.AdamW(model.parameters())
    resumed.load_state_dict(roundtrip(ours.state_dict()))
    train(model, resumed, data[2:])
    assert_same_params(model, expected_model, dtype)
    assert_same_state(resumed, expected, dtype)


def test_state_dict_holds_plain_dicts_and_pickles() -> None:
    model = make_model()
    ours = ft.Adam(model.parameters())
    train(model, ours, make_data(torch.float32, steps=2))
    state_dict = ours.state_dict()
    assert all(type(entry) is dict for entry in state_dict["state"].values())
    restored = pickle.loads(pickle.dumps(state_dict))
    assert all(type(entry) is dict for entry in restored["state"].values())
    clone = copy.deepcopy(ours)
    assert type(clone) is ft.Adam and len(clone.state) == len(ours.state)


# --------------------------------------------------------------------------------------------
# The rest of the torch.optim API.
# --------------------------------------------------------------------------------------------


def test_lr_scheduler_drives_it_like_torch() -> None:
    """OneCycleLR changes lr and (for Adam) betas every step; the runs stay identical."""
    dtype = torch.float64
    data = make_data(dtype)
    reference_model, reference, model, ours = pair("AdamW", {"lr": 0.01}, dtype)
    for m, opt in ((reference_model, reference), (model, ours)):
        scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=STEPS)
        for batch in data:
            opt.zero_grad()
            loss_of(m, batch, False).backward()
            opt.step()
            scheduler.step()
    assert ours.param_groups[0]["lr"] == reference.param_groups[0]["lr"]
    assert_same_params(model, reference_model, dtype)
    assert_same_state(ours, reference, dtype)


def test_closure_hooks_and_zero_grad() -> None:
    model = make_model()
    ours = ft.SGD(model.parameters(), lr=0.1, momentum=0.9)
    calls: list[str] = []
    ours.register_step_pre_hook(lambda opt, args, kwargs: calls.append("pre"))
    ours.register_step_post_hook(lambda opt, args, kwargs: calls.append("post"))
    batch = make_data(torch.float32, steps=1)[0]

    def closure() -> Any:
        calls.append("closure")
        assert torch.is_grad_enabled()
        ours.zero_grad()
        loss = loss_of(model, batch, False)
        loss.backward()
        return loss

    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        loss = ours.step(closure)
    assert calls == ["pre", "closure", "post"]
    assert isinstance(loss, torch.Tensor) and loss.requires_grad
    assert all(not torch.equal(p, q) for p, q in zip(model.parameters(), before))
    ours.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_global_hooks_changed_arguments_and_profiler_see_the_step_as_with_torch() -> None:
    """The step skips torch's step wrapper only while it would do nothing: check when it must."""
    model = make_model()
    ours = ft.SGD(model.parameters(), lr=0.1)
    batch = make_data(torch.float32, steps=1)[0]
    calls: list[str] = []

    def closure() -> Any:
        calls.append("closure")
        ours.zero_grad()
        loss = loss_of(model, batch, False)
        loss.backward()
        return loss

    from torch.optim.optimizer import (
        register_optimizer_step_post_hook,
        register_optimizer_step_pre_hook,
    )

    # Each kind of hook on its own (any one of them must route the step through torch's
    # wrapper), with the closure passed to step() except where a pre-hook passes it.
    registrations = [
        (
            lambda: register_optimizer_step_pre_hook(
                lambda opt, args, kwargs: calls.append(f"global pre {type(opt).__name__}")
            ),
            (closure,),
        ),
        (
            lambda: register_optimizer_step_post_hook(
                lambda opt, args, kwargs: calls.append(f"global post {type(opt).__name__}")
            ),
            (closure,),
        ),
        (
            lambda: ours.register_step_post_hook(lambda opt, args, kwargs: calls.append("post")),
            (closure,),
        ),
        (
            lambda: ours.register_step_pre_hook(lambda opt, args, kwargs: ((opt, closure), {})),
            (),
        ),
    ]
    losses = []
    for register, arguments in registrations:
        handle = register()
        try:
            losses.append(ours.step(*arguments))
        finally:
            handle.remove()
    assert calls == [
        *("global pre SGD", "closure"),
        *("closure", "global post SGD"),
        *("closure", "post"),
        "closure",
    ]
    assert all(isinstance(loss, torch.Tensor) for loss in losses)

    before = [p.detach().clone() for p in model.parameters()]
    with torch.profiler.profile() as profile:
        ours.step()
    assert "Optimizer.step#SGD.step" in {event.name for event in profile.events()}
    assert all(not torch.equal(p, q) for p, q in zip(model.parameters(), before))


def test_add_param_group_mid_run_matches_torch() -> None:
    dtype = torch.float64
    data = make_data(dtype, steps=10)
    reference_model, reference, model, ours = pair("Adam", {"lr": 0.01}, dtype)
    for m, opt in ((reference_model, reference), (model, ours)):
        head = list(m.parameters())[-2:]
        body = list(m.parameters())[:-2]
        # Rebuild with two groups: the head joins later, with its own lr and weight decay.
        opt.param_groups.clear()
        opt.state.clear()
        opt.add_param_group({"params": body})
        for p in head:
            p.requires_grad_(False)
        train(m, opt, data[:5])
        for p in head:
            p.requires_grad_(True)
        opt.add_param_group({"params": head, "lr": 0.02, "weight_decay": 0.1})
        train(m, opt, data[5:])
    assert len(ours.param_groups) == 2
    assert_same_params(model, reference_model, dtype)
    assert_same_state(ours, reference, dtype)


def test_parameters_without_grad_are_skipped_like_torch() -> None:
    dtype = torch.float64
    data = make_data(dtype, steps=6)
    reference_model, reference, model, ours = pair("Adam", {"lr": 0.01}, dtype)
    for m, opt in ((reference_model, reference), (model, ours)):
        last = list(m.parameters())[-1]
        for index, batch in enumerate(data):
            opt.zero_grad()
            loss_of(m, batch, False).backward()
            if index % 2:
                last.grad = None  # this parameter skips every other step
            opt.step()
    last_state = ours.state[list(model.parameters())[-1]]
    assert last_state["step"].item() == 3
    assert_same_params(model, reference_model, dtype)
    assert_same_state(ours, reference, dtype)


def test_groups_of_mixed_dtypes_and_hyperparameters() -> None:
    """A group with float32 and float64 parameters (two kernel calls) and a second group."""

    def build(cls: Any, foreach: dict[str, Any]) -> tuple[list[Any], Any]:
        torch.manual_seed(3)
        params = [
            torch.nn.Parameter(torch.randn(5, 3, dtype=torch.float64)),
            torch.nn.Parameter(torch.randn(7)),
            torch.nn.Parameter(torch.randn(2, 2, dtype=torch.float64)),
            torch.nn.Parameter(torch.randn(4)),
        ]
        groups = [{"params": params[:3]}, {"params": params[3:], "lr": 0.05, "weight_decay": 0.0}]
        return params, cls(groups, lr=0.01, weight_decay=0.1, **foreach)

    reference_params, reference = build(torch.optim.AdamW, {"foreach": False})
    params, ours = build(ft.AdamW, {})
    generator = torch.Generator().manual_seed(4)
    for _ in range(20):
        grads = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in params]
        for group in (params, reference_params):
            for p, g in zip(group, grads):
                p.grad = g.clone()
        reference.step()
        ours.step()
    for p, q in zip(params, reference_params):
        assert_close(p.detach(), q.detach(), p.dtype, "param")
    assert_same_state(ours, reference, torch.float32)


def test_dense_non_contiguous_parameters_are_updated_in_place() -> None:
    """A channels_last convolution and a transposed weight: updated like torch, in place."""

    def build() -> torch.nn.Module:
        torch.manual_seed(5)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(16, 3)
        ).to(memory_format=torch.channels_last)
        linear = model[3]
        linear.weight = torch.nn.Parameter(linear.weight.detach().t().contiguous().t())
        return model

    reference_model, model = build(), build()
    assert not model[0].weight.is_contiguous() and not model[3].weight.is_contiguous()
    reference = torch.optim.Adam(reference_model.parameters(), lr=0.01, foreach=False)
    ours = ft.Adam(model.parameters(), lr=0.01)
    pointers = [p.data_ptr() for p in model.parameters()]
    generator = torch.Generator().manual_seed(6)
    x = torch.randn(8, 3, 4, 4, generator=generator).to(memory_format=torch.channels_last)
    y = torch.randn(8, 3, generator=generator)
    for m, opt in ((reference_model, reference), (model, ours)):
        for _ in range(10):
            opt.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            opt.step()
    assert [p.data_ptr() for p in model.parameters()] == pointers
    assert_same_params(model, reference_model, torch.float32)
    assert_same_state(ours, reference, torch.float32)


def test_scalar_and_empty_parameters() -> None:
    shapes = [(), (0,), (3, 0), (1, 1), (5,)]

    def build(cls: Any, **flags: Any) -> tuple[list[Any], Any]:
        params = [torch.nn.Parameter(torch.ones(shape, dtype=torch.float64)) for shape in shapes]
        return params, cls(params, lr=0.1, amsgrad=True, **flags)

    params, ours = build(ft.Adam)
    reference_params, reference = build(torch.optim.Adam, foreach=False)
    for step in range(3):
        for p, q in zip(params, reference_params):
            p.grad = torch.full(p.shape, 0.5 - step, dtype=torch.float64)
            q.grad = p.grad.clone()
        ours.step()
        reference.step()
    for p, q in zip(params, reference_params):
        assert_close(p.detach(), q.detach(), torch.float64, f"shape {tuple(p.shape)}")
    assert_same_state(ours, reference, torch.float64)


def test_gradient_laid_out_unlike_its_parameter_is_read_correctly() -> None:
    generator = torch.Generator().manual_seed(7)
    weight = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    p, q = torch.nn.Parameter(weight.clone()), torch.nn.Parameter(weight.clone())
    ours = ft.SGD([p], lr=0.1, momentum=0.9)
    reference = torch.optim.SGD([q], lr=0.1, momentum=0.9, foreach=False)
    for _ in range(3):
        grad = torch.randn(6, 4, generator=generator, dtype=torch.float64).t()  # transposed
        p.grad, q.grad = grad, grad.clone()
        ours.step()
        reference.step()
    assert_close(p.detach(), q.detach(), torch.float64, "param")


def test_gradient_sharing_memory_with_its_parameter_is_read_before_the_update() -> None:
    weight = torch.randn(5, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    p, q = torch.nn.Parameter(weight.clone()), torch.nn.Parameter(weight.clone())
    ours = ft.SGD([p], lr=0.1)
    reference = torch.optim.SGD([q], lr=0.1, foreach=False)
    p.grad, q.grad = p.detach(), q.detach()  # the gradient of sum(p**2) / 2, aliasing p
    ours.step()
    reference.step()
    assert_close(p.detach(), weight * 0.9, torch.float64, "param")
    assert_close(p.detach(), q.detach(), torch.float64, "param vs torch")


def _gradient_kinds(optimizer: Any) -> list[list[str]]:
    """Record how the gradients of each kernel call reach the core: 'address', 'array', None."""
    calls: list[list[str]] = []
    kernel = optimizer._kernel

    def recording(group: Any, core: Any, grads: list[Any], steps: Any, check_only: bool) -> None:
        if not check_only:
            kinds = [
                None if g is None else "address" if isinstance(g, int) else "array" for g in grads
            ]
            calls.append(kinds)  # type: ignore[arg-type]
        kernel(group, core, grads, steps, check_only)

    optimizer._kernel = recording  # an instance attribute: step() looks it up first
    return calls


@pytest.mark.parametrize("torch_dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", NAMES)
def test_gradients_by_address_give_the_bits_of_gradients_by_array(
    name: str, torch_dtype: torch.dtype
) -> None:
    """The step's fast path (addresses) against its careful path (checked NumPy views)."""
    data = make_data(torch_dtype, steps=8)
    _, _, model, ours = pair(name, FULL_OPTIONS[name], torch_dtype)
    arrays_model = make_model(torch_dtype)
    by_array = getattr(ft, name)(arrays_model.parameters(), **FULL_OPTIONS[name])
    by_array._gradients = lambda plan, grads: (  # every gradient through a NumPy view
        by_array._careful_grad_views(plan, grads),
        all(g is not None for g in grads),
    )
    kinds, array_kinds = _gradient_kinds(ours), _gradient_kinds(by_array)
    train(model, ours, data)
    train(arrays_model, by_array, data)
    assert len(kinds) == len(array_kinds) == len(data)
    assert all(kind == "address" for call in kinds for kind in call)
    assert all(kind == "array" for call in array_kinds for kind in call)
    for p, q in zip(model.parameters(), arrays_model.parameters()):
        assert torch.equal(p, q)
    ours_state, array_state = ours.state_dict()["state"], by_array.state_dict()["state"]
    for index, entries in array_state.items():
        for key, value in entries.items():
            assert torch.equal(ours_state[index][key], value), (index, key)


def _neg_view(grad: Any) -> Any:
    return torch._neg_view(grad.neg())  # the same values, held negated with the negative bit


UNUSUAL_GRADIENTS: dict[str, Any] = {
    "transposed": lambda g, params, j: g.t().contiguous().t(),
    "view-into-a-buffer": lambda g, params, j: torch.cat(
        [torch.zeros(3, dtype=g.dtype), g.flatten()]
    )[3:].view_as(g),
    "negative-bit": lambda g, params, j: _neg_view(g),
    "requires-grad": lambda g, params, j: g.clone().requires_grad_(),
    "subclass": lambda g, params, j: torch.nn.Parameter(g.clone()),
    "another-parameter": lambda g, params, j: params[j - 1].detach(),
    "own-parameter": lambda g, params, j: params[j].detach(),
    "zero-tensor": lambda g, params, j: torch._efficientzerotensor(g.shape, dtype=g.dtype),
}


@pytest.mark.parametrize("kind", list(UNUSUAL_GRADIENTS))
def test_gradient_replaced_mid_run_by_an_unusual_tensor_is_read_correctly(kind: str) -> None:
    """After steps on the fast path, one gradient becomes a tensor it cannot read by address."""
    dtype = torch.float64
    data = make_data(dtype, steps=6)
    reference_model, reference, model, ours = pair("Adam", FULL_OPTIONS["Adam"], dtype)
    make = UNUSUAL_GRADIENTS[kind]
    for index, batch in enumerate(data):
        for m, opt in ((reference_model, reference), (model, ours)):
            opt.zero_grad()
            loss_of(m, batch, False).backward()
            if index in (3, 4):
                params = list(m.parameters())
                j = 2  # the LayerNorm weight
                unusual = make(params[j].grad, params, j)
                if m is model:
                    params[j].grad = unusual
                else:  # torch.optim gets the same values as a plain tensor
                    params[j].grad = torch.zeros_like(params[j]) + unusual.detach()
            opt.step()
    assert_same_params(model, reference_model, dtype)
    assert_same_state(ours, reference, dtype)


def test_parameters_without_grad_keep_the_others_on_the_fast_path() -> None:
    """Frozen parameters (no gradient) are skipped; the others still go by address."""
    dtype = torch.float64
    data = make_data(dtype, steps=5)
    reference_model, reference, model, ours = pair("AdamW", {"lr": 0.01}, dtype)
    kinds = _gradient_kinds(ours)
    for m in (reference_model, model):
        list(m.parameters())[0].requires_grad_(False)
        list(m.parameters())[3].requires_grad_(False)
    train(reference_model, reference, data)
    train(model, ours, data)
    for call in kinds:
        assert call[0] is None and call[3] is None
        assert all(kind == "address" for j, kind in enumerate(call) if j not in (0, 3))
    assert_same_params(model, reference_model, dtype)
    assert_same_state(ours, reference, dtype)


def test_plans_are_kept_across_steps_and_rebuilt_when_the_group_changes() -> None:
    """The checked ``_core.Plan`` is reused step after step and remade after structural changes."""
    dtype = torch.float64
    data = make_data(dtype, steps=12)
    reference_model, reference, model, ours = pair("Adam", FULL_OPTIONS["Adam"], dtype)

    def core() -> Any:
        return ours._fused_plans[0].cores[0]

    def both(action: Any) -> None:
        for m, opt in ((reference_model, reference), (model, ours)):
            action(m, opt)

    both(lambda m, opt: train(m, opt, data[:2]))
    first = core()
    train(reference_model, reference, data[2:3])
    train(model, ours, data[2:3])
    assert core() is first  # an ordinary step reuses it

    changes = [
        # load_state_dict replaces every state tensor
        lambda m, opt: opt.load_state_dict(roundtrip(opt.state_dict())),
        # new storage for a parameter
        lambda m, opt: setattr(list(m.parameters())[1], "data", list(m.parameters())[1].data * 0.5),
        # a state tensor replaced through optimizer.state
        lambda m, opt: opt.state[list(m.parameters())[2]].__setitem__(
            "exp_avg", torch.full_like(list(m.parameters())[2], 0.01)
        ),
        # an option that needs other state (amsgrad off: max_exp_avg_sq no longer used)
        lambda m, opt: opt.param_groups[0].__setitem__("amsgrad", False),
    ]
    for index, change in enumerate(changes):
        before = core()
        both(change)
        train(reference_model, reference, data[3 + index : 4 + index])
        train(model, ours, data[3 + index : 4 + index])
        assert core() is not before, index
    before = core()
    extra = [torch.nn.Parameter(torch.ones(3, dtype=dtype)) for _ in range(2)]
    for opt, p in zip((reference, ours), extra):
        opt.add_param_group({"params": [p], "lr": 0.1})
        p.grad = torch.full((3,), 0.5, dtype=dtype)
    train(reference_model, reference, data[8:])
    train(model, ours, data[8:])
    assert core() is not before and len(ours._fused_plans) == 2
    assert_same_params(model, reference_model, dtype)
    assert_same_state(ours, reference, dtype)
    assert_close(extra[1].detach(), extra[0].detach(), dtype, "added group")


def test_grad_scaler_with_fused_true_unscales_for_it() -> None:
    """GradScaler hands the scale to torch's fused kernels, but unscales first for these.

    SGD, because its update is proportional to the gradient: a step on scaled gradients would
    be 1024 times too large (Adam's would hardly show it).
    """
    dtype = torch.float32
    data = make_data(dtype, steps=5)
    options = {"lr": 0.01, "momentum": 0.9}
    reference_model, reference, _, _ = pair("SGD", options, dtype)
    model = make_model(dtype)
    ours = ft.SGD(model.parameters(), fused=True, **options)
    for m, opt in ((reference_model, reference), (model, ours)):
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        for batch in data:
            opt.zero_grad()
            scaler.scale(loss_of(m, batch, False)).backward()
            scaler.step(opt)
            scaler.update()
    assert_same_params(model, reference_model, dtype)


def test_replaced_data_and_replaced_state_are_seen() -> None:
    """``p.data = ...`` and writes into ``optimizer.state`` take effect as in torch."""
    dtype = torch.float64
    data = make_data(dtype, steps=9)
    reference_model, reference, model, ours = pair("Adam", {"lr": 0.01}, dtype)
    for m, opt in ((reference_model, reference), (model, ours)):
        train(m, opt, data[:3])
        first = list(m.parameters())[0]
        first.data = first.data.clone() * 0.5  # new storage
        train(m, opt, data[3:6])
        opt.state[first]["exp_avg"] = torch.zeros_like(first)
        opt.state[first]["step"] = torch.tensor(100.0)
        train(m, opt, data[6:8])
        opt.state = defaultdict(dict)  # the usual way to reset an optimizer
        train(m, opt, data[8:])
    assert_same_params(model, reference_model, dtype)
    assert_same_state(ours, reference, dtype)


# A new .data at the parameter's address: the step must see its new shape and strides.
SAME_ADDRESS_CHANGES: dict[str, Any] = {
    "transposed": lambda data: data.t(),
    "flattened": lambda data: data.view(-1),
    "narrowed": lambda data: data.view(-1)[:2],
    "permuted": lambda data: data.view(2, 1, 2).permute(2, 1, 0),
    "first-row": lambda data: data[:1],  # the same strides: only the shape tells
}


@pytest.mark.parametrize(
    ("name", "change"),
    [*(("SGD", change) for change in SAME_ADDRESS_CHANGES), ("Adam", "transposed")],
)
def test_new_data_at_the_same_address_is_seen(name: str, change: str) -> None:
    """``p.data = p.data.t()`` keeps the address: the plan must be remade all the same.

    A plan kept for the old shape and strides would update the wrong elements (transposed) or
    refuse a valid gradient (flattened), or update elements no longer in the parameter (first
    row). The gradient is a contiguous tensor of the new shape, assigned after the change, as a
    user does. Adam's state, made before the change, follows it as in torch (where the shape
    stays: state of another shape is refused by torch.optim too).
    """
    results = []
    for module in (torch.optim, ft):
        weight = torch.nn.Parameter(torch.arange(4.0, dtype=torch.float64).view(2, 2))
        extra = {"foreach": False} if module is torch.optim else {}
        optimizer = getattr(module, name)([weight], lr=1.0, **extra)
        weight.grad = torch.full((2, 2), 0.5, dtype=torch.float64)
        optimizer.step()
        weight.data = SAME_ADDRESS_CHANGES[change](weight.data)
        for step in range(2):
            grad = torch.arange(weight.numel(), dtype=torch.float64) * (step + 1)
            weight.grad = grad.view(weight.shape)
            optimizer.step()
        results.append(weight.detach().clone())
    expected, actual = results
    assert actual.shape == expected.shape and actual.stride() == expected.stride()
    assert_close(actual, expected, torch.float64, change)


def test_new_dtype_at_the_same_address_is_seen() -> None:
    """``p.data = p.data.view(torch.complex64)`` keeps address, shape and strides: still seen.

    Complex parameters are refused, here as at construction; the step must not go on updating
    the memory as float64.
    """
    weight = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    optimizer = ft.SGD([weight], lr=0.1)
    weight.grad = torch.ones(4, dtype=torch.float64)
    optimizer.step()
    weight.data = weight.data.view(torch.complex64)
    assert weight.shape == (4,) and weight.stride() == (1,)
    weight.grad = torch.ones(4, dtype=torch.complex64)
    before = weight.detach().clone()
    with pytest.raises(TypeError, match=r"params'\]\[0\] has dtype torch.complex64"):
        optimizer.step()
    assert torch.equal(weight.detach(), before)


def test_step_edited_in_place_is_honoured() -> None:
    dtype = torch.float64
    data = make_data(dtype, steps=4)
    reference_model, reference, model, ours = pair("Adam", {"lr": 0.01}, dtype)
    for m, opt in ((reference_model, reference), (model, ours)):
        train(m, opt, data[:2])
        for state in opt.state.values():
            state["step"].fill_(40.0)
        train(m, opt, data[2:])
    assert_same_params(model, reference_model, dtype)
    assert_same_state(ours, reference, dtype)


def test_adagrad_share_memory_keeps_updating_the_state() -> None:
    dtype = torch.float64
    data = make_data(dtype, steps=6)
    reference_model, reference, model, ours = pair("Adagrad", {"lr": 0.05}, dtype)
    for m, opt in ((reference_model, reference), (model, ours)):
        train(m, opt, data[:3])
        opt.share_memory()
        train(m, opt, data[3:])
    assert_same_params(model, reference_model, dtype)
    assert_same_state(ours, reference, dtype)


def test_version_counter_is_bumped_so_autograd_sees_the_change() -> None:
    weight = torch.nn.Parameter(torch.ones(3))
    ours = ft.SGD([weight], lr=0.1)
    weight.grad = torch.ones(3)
    loss = (weight * weight).sum()  # saves weight for backward
    ours.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("flags", [{"foreach": True}, {"fused": True}, {"fused": False}])
def test_foreach_and_fused_are_accepted_and_change_nothing(flags: dict[str, Any]) -> None:
    dtype = torch.float32
    data = make_data(dtype, steps=10)
    reference_model, reference, _, _ = pair("AdamW", {"lr": 0.01}, dtype)
    model = make_model(dtype)
    ours = ft.AdamW(model.parameters(), lr=0.01, **flags)
    assert ours.param_groups[0][next(iter(flags))] == next(iter(flags.values()))
    assert ours._step_supports_amp_scaling is False  # GradScaler must unscale for us
    train(reference_model, reference, data)
    train(model, ours, data)
    assert_same_params(model, reference_model, dtype)


def test_fused_and_foreach_together_are_refused_as_in_torch() -> None:
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        ft.Adam(make_model().parameters(), fused=True, foreach=True)


def test_tensor_learning_rate_is_accepted_like_torch() -> None:
    dtype = torch.float64
    data = make_data(dtype, steps=5)
    reference_model, reference, model, ours = pair(
        "Adam", {"lr": torch.tensor(0.01, dtype=dtype)}, dtype
    )
    train(reference_model, reference, data)
    train(model, ours, data)
    assert_same_params(model, reference_model, dtype)


# --------------------------------------------------------------------------------------------
# Refusals: a clear error, and nothing changed.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_other_devices_are_refused_naming_the_alternative(name: str) -> None:
    # "meta" stands for any non-CPU device (CUDA is not available where the tests run).
    weight = torch.nn.Parameter(torch.zeros(3, device="meta"))
    with pytest.raises(ValueError, match=rf"on device 'meta'.*torch\.optim\.{name}\("):
        getattr(ft, name)([weight])


@pytest.mark.parametrize(
    ("bad_dtype", "message"),
    [
        (torch.int64, "only floating-point parameters"),
        (torch.bool, "only floating-point parameters"),
        (torch.complex64, "complex parameters are not supported"),
        (torch.float16, "half-precision parameters would need float32 master state"),
        (torch.bfloat16, "half-precision parameters would need float32 master state"),
    ],
    ids=str,
)
def test_unsupported_dtypes_are_refused(bad_dtype: torch.dtype, message: str) -> None:
    good = torch.nn.Parameter(torch.zeros(3))
    bad = torch.zeros(3, dtype=bad_dtype)
    with pytest.raises(TypeError, match=rf"params'\]\[1\] has dtype {bad_dtype}.*{message}"):
        ft.AdamW([good, bad])


def test_parameters_with_gaps_are_refused() -> None:
    strided = torch.nn.Parameter(torch.zeros(4, 6)[:, ::2])
    with pytest.raises(ValueError, match=r"\[0\] \(shape \(4, 3\), stride \(6, 2\)\) is not dense"):
        ft.SGD([strided], lr=0.1)


def test_sparse_parameters_are_refused() -> None:
    sparse = torch.zeros(4, 4).to_sparse().requires_grad_()
    with pytest.raises(ValueError, match="has layout torch.sparse_coo"):
        ft.SGD([sparse], lr=0.1)


def test_overlapping_parameters_are_refused_at_construction() -> None:
    base = torch.zeros(10)
    first, second = torch.nn.Parameter(base[:6]), torch.nn.Parameter(base[4:])
    with pytest.raises(
        ValueError, match=r"\[0\]\['params'\]\[1\] shares memory with .*\[0\]\['params'\]\[0\]"
    ):
        ft.SGD([first, second], lr=0.1)
    # In different groups: refused by the constructor, after torch.optim added them all.
    with pytest.raises(
        ValueError, match=r"\[1\]\['params'\]\[0\] shares memory with .*\[0\]\['params'\]\[0\]"
    ):
        ft.SGD([{"params": [first]}, {"params": [second]}], lr=0.1)
    # Added later: refused by the next step, before it writes (checking every group at each
    # add_param_group would make adding one group per parameter quadratic).
    optimizer = ft.SGD([first], lr=0.1)
    optimizer.add_param_group({"params": [second]})
    first.grad, second.grad = torch.ones(6), torch.ones(6)
    with pytest.raises(
        ValueError, match=r"\[1\]\['params'\]\[0\] shares memory with .*\[0\]\['params'\]\[0\]"
    ):
        optimizer.step()
    assert torch.equal(base, torch.zeros(10))
    # The same tensor in two groups is torch.optim's own refusal, with its own message.
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        optimizer.add_param_group({"params": [first]})


def test_parameter_moved_onto_another_groups_memory_is_refused_at_step() -> None:
    """Overlaps that arise after construction (a new ``.data``) are refused before any write."""
    base = torch.zeros(10)
    first, second = torch.nn.Parameter(base[:5]), torch.nn.Parameter(torch.zeros(5))
    optimizer = ft.Adam([{"params": [first]}, {"params": [second]}], lr=0.1)
    first.grad, second.grad = torch.ones(5), torch.ones(5)
    second.data = base[3:8]
    with pytest.raises(
        ValueError, match=r"\[1\]\['params'\]\[0\] shares memory with .*\[0\]\['params'\]\[0\]"
    ):
        optimizer.step()
    assert torch.equal(base, torch.zeros(10))
    assert not optimizer.state


def _misaligned(count: int) -> Any:
    """A float32 tensor two bytes off its element alignment (as ``torch.frombuffer`` makes)."""
    return torch.frombuffer(bytearray(4 * count + 4), dtype=torch.float32, offset=2, count=count)


def test_misaligned_parameters_are_refused_at_construction() -> None:
    """The kernels need aligned memory: refused when the parameter is given, with the fix."""
    weight = torch.nn.Parameter(_misaligned(10))
    assert weight.data_ptr() % 4
    with pytest.raises(
        ValueError,
        match=r"params'\]\[0\] starts at address 0x[0-9a-f]+, which is not a multiple of its "
        r"element size \(4 bytes.*p\.data = p\.data\.clone\(\)",
    ):
        ft.SGD([weight], lr=0.1)
    optimizer = ft.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1)
    with pytest.raises(ValueError, match=r"param_groups\[1\]\['params'\]\[0\] starts at address"):
        optimizer.add_param_group({"params": [weight]})
    assert len(optimizer.param_groups) == 1
    # The fix the message gives works, with torch.optim's numbers.
    weight.data = weight.data.clone()
    reference = torch.nn.Parameter(weight.detach().clone())
    optimizer, expected = ft.SGD([weight], lr=0.1), torch.optim.SGD([reference], lr=0.1)
    weight.grad, reference.grad = torch.ones(10), torch.ones(10)
    optimizer.step()
    expected.step()
    assert torch.equal(weight.detach(), reference.detach())


def test_misaligned_state_and_gradients_are_read_through_copies() -> None:
    """State and gradients may be misaligned: loaded state is copied, gradients read via copies."""
    dtype = torch.float32
    weight, reference = torch.nn.Parameter(torch.ones(10)), torch.nn.Parameter(torch.ones(10))
    optimizer = ft.Adam([weight], lr=0.1)
    expected = torch.optim.Adam([reference], lr=0.1, foreach=False)
    for opt, p in ((optimizer, weight), (expected, reference)):
        p.grad = torch.ones(10)
        opt.step()
        opt.state[p]["exp_avg"] = _misaligned(10).fill_(0.25)
        grad = _misaligned(10)
        grad.copy_(torch.linspace(-1.0, 1.0, 10))
        p.grad = grad
        opt.step()
    assert_close(weight.detach(), reference.detach(), dtype, "param")
    assert_same_state(optimizer, expected, dtype)


@pytest.mark.parametrize("name", NAMES)
def test_differentiable_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"does not support differentiable=True.*torch\.optim\."):
        getattr(ft, name)(make_model().parameters(), differentiable=True)


@pytest.mark.parametrize("name", ["RMSprop", "Adadelta", "Adam", "AdamW"])
def test_capturable_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="does not support capturable=True"):
        getattr(ft, name)(make_model().parameters(), capturable=True)


def _two_group_run(name: str) -> tuple[torch.nn.Module, Any]:
    """A model whose two halves are two groups, after two steps (so there is state)."""
    model = make_model(torch.float64)
    params = list(model.parameters())
    optimizer = getattr(ft, name)(
        [{"params": params[:4]}, {"params": params[4:]}], **FULL_OPTIONS[name]
    )
    train(model, optimizer, make_data(torch.float64, steps=2))
    optimizer.zero_grad()
    loss_of(model, make_data(torch.float64, steps=1, seed=9)[0], False).backward()
    return model, optimizer


@pytest.mark.parametrize("name", NAMES)
def test_sparse_gradient_is_refused_and_nothing_changes(name: str) -> None:
    model, optimizer = _two_group_run(name)
    last = list(model.parameters())[-1]
    last.grad = last.grad.to_sparse()  # in the second group: the first must not move either
    before = snapshot(model, optimizer)
    with pytest.raises(RuntimeError, match=rf"{name} does not support sparse gradients"):
        optimizer.step()
    assert_unchanged(before, model, optimizer)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda g: torch.zeros(g.numel(), dtype=g.dtype),
            r"has dtype torch.float64 and shape \(\d+,\)",
        ),
        (lambda g: g.float(), "has dtype torch.float32 and shape"),
    ],
    ids=["shape", "dtype"],
)
def test_gradient_changed_behind_autograds_back_is_refused_and_nothing_changes(
    change: Any, message: str
) -> None:
    """``p.grad.data = ...`` skips autograd's checks of shape and dtype; the step does not."""
    model, optimizer = _two_group_run("AdamW")
    weight = list(model.parameters())[0]  # in the first group: the second must not move either
    weight.grad.data = change(weight.grad)
    before = snapshot(model, optimizer)
    with pytest.raises(ValueError, match=rf"param_groups\[0\]\['params'\]\[0\] {message}"):
        optimizer.step()
    assert_unchanged(before, model, optimizer)


def test_step_count_the_core_refuses_in_a_later_group_changes_nothing() -> None:
    """What only the core checks (here a negative step) is checked for every call first."""
    model, optimizer = _two_group_run("Adam")
    optimizer.state[list(model.parameters())[-1]]["step"].fill_(-5.0)  # in the second group
    before = snapshot(model, optimizer)
    with pytest.raises(ValueError, match="step counts cannot be negative"):
        optimizer.step()
    assert_unchanged(before, model, optimizer)


@pytest.mark.parametrize("grouping", ["two groups", "one group"])
@pytest.mark.parametrize("name", ["RMSprop", "Adadelta", "Adam", "AdamW"])
def test_refused_step_creates_no_state(name: str, grouping: str) -> None:
    """State torch.optim would create at a parameter's first step is not created by a refusal.

    The core refuses the negative step count of ``b`` only when it runs; ``a``'s state, due at
    this step, must not exist after the refusal, in ``a``'s group or with ``a`` in ``b``'s.
    """
    a = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    b = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    groups = [{"params": [a]}, {"params": [b]}] if grouping == "two groups" else [a, b]
    optimizer = getattr(ft, name)(groups, lr=0.1)
    b.grad = torch.ones(3, dtype=torch.float64)
    optimizer.step()
    optimizer.state[b]["step"].fill_(-5.0)
    a.grad = torch.ones(3, dtype=torch.float64)
    b_state = copy.deepcopy(dict(optimizer.state[b]))
    with pytest.raises(ValueError, match="step counts cannot be negative"):
        optimizer.step()
    assert a not in optimizer.state or not optimizer.state[a]
    assert torch.equal(a.detach(), torch.ones(3, dtype=torch.float64))
    assert optimizer.state[b].keys() == b_state.keys()
    assert all(torch.equal(optimizer.state[b][key], b_state[key]) for key in b_state)
    # Once the step count is fixed, a's first step is a first step, as in torch.optim.
    optimizer.state[b]["step"].fill_(1.0)
    optimizer.step()
    assert optimizer.state[a]["step"].item() == 1


def test_refused_step_leaves_sgd_momentum_unstarted() -> None:
    """SGD with dampening: a buffer created by a refused step would count as started later."""
    options = {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}

    def run(module: Any) -> tuple[Any, Any]:
        a = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
        b = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
        extra = {"foreach": False} if module is torch.optim else {}
        optimizer = module.SGD([{"params": [a]}, {"params": [b]}], **options, **extra)
        b.grad = torch.full((3,), 2.0, dtype=torch.float64)
        optimizer.step()
        a.grad = torch.full((3,), 3.0, dtype=torch.float64)
        if module is ft:  # a step refused after a's buffer would have been made
            buffer = optimizer.state[b]["momentum_buffer"]
            optimizer.state[b]["momentum_buffer"] = a.detach()  # another group's parameter
            with pytest.raises(ValueError, match="shares memory"):
                optimizer.step()
            assert a not in optimizer.state or not optimizer.state[a]
            optimizer.state[b]["momentum_buffer"] = buffer
        optimizer.step()
        optimizer.step()
        return a, b

    (a, b), (ref_a, ref_b) = run(ft), run(torch.optim)
    assert_close(a.detach(), ref_a.detach(), torch.float64, "a")
    assert_close(b.detach(), ref_b.detach(), torch.float64, "b")


STATE_ALIASES: dict[str, tuple[Any, str]] = {
    # (groups of the parameters a, b, c; the expected message)
    "another group": (
        lambda a, b, c: [{"params": [a, b]}, {"params": [c]}],
        r"state 'exp_avg' of param_groups\[1\]\['params'\]\[0\] shares memory with "
        r"param_groups\[0\]\['params'\]\[0\]",
    ),
    # c is float32 between two float64 parameters: the second float64 slice index is 1, not 2.
    "its group, numbered across dtypes": (
        lambda a, b, c: [{"params": [a, c, b]}],
        r"state 'exp_avg' of param_groups\[0\]\['params'\]\[2\] shares memory with "
        r"param_groups\[0\]\['params'\]\[0\]",
    ),
}


@pytest.mark.parametrize("case", list(STATE_ALIASES))
def test_state_sharing_another_parameters_memory_is_refused_before_any_write(case: str) -> None:
    """``optimizer.state[b]['exp_avg'] = a.data``: refused, naming both in the user's numbering."""
    make_groups, message = STATE_ALIASES[case]
    a = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    b = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    c = torch.nn.Parameter(torch.ones(2))
    optimizer = ft.Adam(make_groups(a, b, c), lr=0.1)
    for p in (a, b, c):
        p.grad = torch.ones_like(p)
    optimizer.step()
    target = b if case != "another group" else c
    if target is c:  # a float32 view of a's float64 memory, shaped like c
        optimizer.state[c]["exp_avg"] = a.detach().view(torch.float32)[:2]
    else:
        optimizer.state[b]["exp_avg"] = a.detach()
    before = {p: (p.detach().clone(), copy.deepcopy(dict(optimizer.state[p]))) for p in (a, b, c)}
    with pytest.raises(ValueError, match=message):
        optimizer.step()
    for p, (value, state) in before.items():
        assert torch.equal(p.detach(), value)
        assert all(torch.equal(optimizer.state[p][key], state[key]) for key in state)


@pytest.mark.parametrize("where", ["another group", "another dtype of its group"])
def test_gradient_sharing_memory_with_a_parameter_another_call_updates_is_read_in_turn(
    where: str,
) -> None:
    """A gradient overlapping a parameter that another kernel call updates is read in place.

    The calls run in group order, float32 before float64 within a group, each after the one
    before has written. Across groups that is torch.optim's loop, so the numbers are its own:
    ``b`` (group 1) reads ``a`` (group 0) updated. ``c``, whose gradient is itself, makes the
    core refuse ``b``'s call once (it then reads its own group's overlaps through a copy),
    which must not change what ``b`` reads.
    """

    def run(module: Any) -> list[torch.Tensor]:
        a = torch.nn.Parameter(torch.arange(1.0, 5.0))  # float32: the first kernel call
        b = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
        c = torch.nn.Parameter(torch.full((3,), 2.0, dtype=torch.float64))
        groups = [{"params": [a]}, {"params": [b, c]}] if where == "another group" else [a, b, c]
        optimizer = module.SGD(groups, lr=0.5)
        a.grad = torch.ones(4)
        b.grad = a.detach().view(torch.float64)  # a's bytes
        c.grad = c.detach()
        optimizer.step()
        return [p.detach() for p in (a, b, c)]

    fused, reference = run(ft), run(torch.optim)
    assert all(map(torch.equal, fused, reference))
    assert not torch.equal(reference[1], torch.zeros(2, dtype=torch.float64))


def test_parameter_on_another_device_is_refused_at_step_and_nothing_changes() -> None:
    model, optimizer = _two_group_run("AdamW")
    before = snapshot(model, optimizer)
    # A parameter on another device swapped into the second group after construction.
    group = optimizer.param_groups[1]["params"]
    original, group[1] = group[1], torch.nn.Parameter(torch.zeros(1, device="meta"))
    with pytest.raises(ValueError, match=r"param_groups\[1\]\['params'\]\[1\] is on device 'meta'"):
        optimizer.step()
    group[1] = original
    assert_unchanged(before, model, optimizer)


def test_flags_loaded_into_a_group_are_refused_at_step() -> None:
    model, optimizer = _two_group_run("Adam")
    before = snapshot(model, optimizer)
    optimizer.param_groups[1]["capturable"] = True
    with pytest.raises(ValueError, match="does not support capturable=True"):
        optimizer.step()
    assert_unchanged(before, model, optimizer)


def test_refused_group_is_not_added() -> None:
    model = make_model()
    optimizer = ft.Adam(model.parameters())
    with pytest.raises(TypeError, match=r"param_groups\[1\]\['params'\]\[0\] has dtype"):
        optimizer.add_param_group({"params": [torch.zeros(3, dtype=torch.float16)]})
    assert len(optimizer.param_groups) == 1


# --------------------------------------------------------------------------------------------
# Packaging.
# --------------------------------------------------------------------------------------------


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_importing_fusedoptim_does_not_import_torch() -> None:
    result = _run_python(
        "import sys, fusedoptim, fusedoptim.functional\n"
        "assert 'torch' not in sys.modules, 'fusedoptim imported torch'\n"
    )
    assert result.returncode == 0, result.stderr


def test_missing_torch_gives_an_install_hint() -> None:
    result = _run_python(
        "import sys\n"
        "sys.modules['torch'] = None  # what an interpreter without torch does on import\n"
        "try:\n"
        "    import fusedoptim.torch\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'fusedoptim[torch]'" in result.stdout


def test_module_name_does_not_shadow_torch() -> None:
    assert ft.torch is torch
    assert ft.AdamW.__module__ == "fusedoptim.torch"


@pytest.mark.parametrize("name", ft.__all__)
def test_signatures_and_defaults_are_torchs(name: str) -> None:
    import inspect

    ours = inspect.signature(getattr(ft, name))
    theirs = inspect.signature(getattr(torch.optim, name))
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
        (p.name, p.kind, p.default) for p in theirs.parameters.values()
    ]


def test_refused_call_copies_only_what_overlaps_its_own_memory() -> None:
    """The core refuses group 1 (``c``'s gradient is ``d``, which the same call updates): the
    retry copies that gradient, but ``b``'s, which is group 0's parameter, is still read in
    place after group 0's update, as torch.optim's loop reads it."""

    def run(module: Any) -> list[torch.Tensor]:
        a = torch.nn.Parameter(torch.arange(1.0, 5.0))
        b = torch.nn.Parameter(torch.zeros(4))
        c = torch.nn.Parameter(torch.full((3,), 2.0))
        d = torch.nn.Parameter(torch.full((3,), 5.0))
        optimizer = module.SGD([{"params": [a]}, {"params": [b, c, d]}], lr=0.5)
        a.grad, b.grad, c.grad, d.grad = torch.ones(4), a.detach(), d.detach(), torch.ones(3)
        optimizer.step()
        return [p.detach() for p in (a, b, c, d)]

    fused, reference = run(ft), run(torch.optim)
    assert all(map(torch.equal, fused, reference))


def test_misaligned_gradient_is_copied_without_copying_the_others() -> None:
    """A misaligned gradient is copied on the careful path, so the retry does not fall back to
    copying every gradient, which would read ``a`` before group 0 updated it."""

    def run(module: Any) -> list[torch.Tensor]:
        a = torch.nn.Parameter(torch.arange(1.0, 5.0))
        b = torch.nn.Parameter(torch.zeros(4))
        c = torch.nn.Parameter(torch.zeros(4))
        optimizer = module.SGD([{"params": [a]}, {"params": [b, c]}], lr=0.5)
        misaligned = torch.frombuffer(bytearray(18), dtype=torch.float32, offset=2, count=4)
        a.grad, b.grad, c.grad = torch.ones(4), a.detach(), misaligned.fill_(1.0)
        optimizer.step()
        return [p.detach() for p in (a, b, c)]

    fused, reference = run(ft), run(torch.optim)
    assert all(map(torch.equal, fused, reference))


def _adam_pair() -> list[tuple[Any, Any]]:
    """The same one-parameter Adam in torch and in fusedoptim.torch."""
    pairs = []
    for cls in (torch.optim.Adam, ft.Adam):
        p = torch.tensor([0.5, -1.5], requires_grad=True)
        pairs.append((p, cls([p], lr=0.1)))
    return pairs


def _step(p: Any, optimizer: Any, grad: list[float]) -> None:
    p.grad = torch.tensor(grad)
    optimizer.step()


def test_a_state_object_put_back_is_used_again_as_in_torch() -> None:
    """Each state object counts its own writes; a plan made with one must not be taken for
    valid with another whose count happens to be equal (a scratch state swapped in and the
    saved one put back, or another optimizer's state)."""
    results = []
    for p, optimizer in _adam_pair():
        for _ in range(3):
            _step(p, optimizer, [1.0, -2.0])
        saved = optimizer.state
        optimizer.state = defaultdict(dict)
        _step(p, optimizer, [0.5, 3.0])
        optimizer.state = saved
        _step(p, optimizer, [0.5, 3.0])
        results.append((p.detach().clone(), dict(optimizer.state[p])))
    (theirs, their_state), (mine, my_state) = results
    assert torch.equal(mine, theirs)
    assert float(my_state["step"]) == float(their_state["step"]) == 4
    assert torch.equal(my_state["exp_avg"], their_state["exp_avg"])


def test_state_or_assignment_is_seen_as_in_torch() -> None:
    """optimizer.state |= {p: {...}} replaces p's state, as item assignment does."""
    results = []
    for p, optimizer in _adam_pair():
        _step(p, optimizer, [1.0, 1.0])
        optimizer.state |= {
            p: {
                "step": torch.tensor(1.0),
                "exp_avg": torch.full((2,), -5.0),
                "exp_avg_sq": torch.ones(2),
            }
        }
        _step(p, optimizer, [1.0, 1.0])
        results.append((p.detach().clone(), optimizer.state[p]["exp_avg"].clone()))
    (theirs, their_avg), (mine, my_avg) = results
    assert torch.equal(mine, theirs) and torch.equal(my_avg, their_avg)


def test_copies_of_the_state_work_as_in_torch() -> None:
    """state.copy(), copy.copy(state), state | {} and {} | state raised TypeError (defaultdict
    builds its copies through the class's constructor); they are mappings of the state as on
    torch's defaultdict, and a copy put back continues as it does in torch."""
    results = []
    for p, optimizer in _adam_pair():
        _step(p, optimizer, [1.0, 1.0])
        copies = [
            optimizer.state.copy(),
            copy.copy(optimizer.state),
            optimizer.state | {},
            {} | optimizer.state,
        ]
        for copied in copies:
            assert isinstance(copied, defaultdict) and list(copied) == [p]
            assert float(copied[p]["step"]) == 1
        _step(p, optimizer, [1.0, -1.0])
        optimizer.state = copies[0]  # put back
        _step(p, optimizer, [2.0, 1.0])
        results.append((p.detach().clone(), float(optimizer.state[p]["step"])))
    assert results[1][1] == results[0][1]
    assert torch.equal(results[1][0], results[0][0])
