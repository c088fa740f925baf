"""The NumPy reference implementations agree with torch.optim, for parameters and state.

The real ``torch.optim`` classes run with ``foreach=False`` (the single-tensor for-loop code
that :mod:`fusedoptim.reference` mirrors) on copies of the same parameters and are fed the same
gradients through ``p.grad``. Every optimizer x every option branch (see ``OPTION_AXES`` in
conftest.py) x float32/float64 runs 20 steps.

Tolerances: the reference rounds every operation separately, while torch's CPU kernels fuse the
multiply-add of ``Tensor.add(other, alpha=...)`` where the CPU has FMA and evaluate
``addcdiv_(b, c, value=s)`` as ``(s * b) / c`` instead of ``s * (b / c)``. Each such step
differs by about one ulp; 20 steps of ~10 operations, fed back through the state, keep float64
far inside 1e-12 relative and float32 (ulp 6e-8) inside 1e-5. The absolute tolerance is the same
relative tolerance times the array's largest entry, so entries passing near zero are judged
against the array's scale. A wrong formula, a wrong branch or a swapped option changes results
at the 1e-2 level, far above these tolerances.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fusedoptim import reference

torch = pytest.importorskip("torch")

STEPS = 20
SHAPES = [(7,), (3, 5), (1,)]

TORCH_CLASS_NAME = {
    "sgd": "SGD",
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adadelta": "Adadelta",
    "adam": "Adam",
    "adamw": "AdamW",
}


def _torch_optimizer(case: Any, params: list[Any]) -> Any:
    """The torch.optim optimizer for ``case``, on its single-tensor code path."""
    options = dict(case.options)
    if "beta1" in options:
        options["betas"] = (options.pop("beta1"), options.pop("beta2"))
    optimizer_class = getattr(torch.optim, TORCH_CLASS_NAME[case.name])
    return optimizer_class(params, foreach=False, **options)


def _run_torch(case: Any, initial_params: list[np.ndarray], grad_sequence: list[Any]) -> Any:
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in initial_params]
    optimizer = _torch_optimizer(case, params)
    for grads in grad_sequence:
        for param, grad in zip(params, grads):
            param.grad = None if grad is None else torch.from_numpy(grad.copy())
        optimizer.step()
    return params, optimizer


def _torch_result(initial: Any, params: list[Any], optimizer: Any, state_key: dict) -> Any:
    """torch's parameters and state as a conftest ``Problem`` shaped like ``initial``.

    Where torch holds no state for a parameter (it never stepped it), ``initial``'s arrays stay.
    """
    result = initial.copy()
    result.params = [p.detach().numpy().copy() for p in params]
    for slot in initial.case.used_slots:
        for i, param in enumerate(params):
            if state_key[slot] in optimizer.state[param]:
                result.states[slot][i] = optimizer.state[param][state_key[slot]].numpy().copy()
    return result


def test_reference_matches_torch(
    optimizer_case,
    dtype,
    rng,
    make_problem,
    random_grads,
    run_steps,
    assert_problems_close,
    torch_state_key,
):
    problem = make_problem(optimizer_case, SHAPES, dtype, rng)
    initial_params = [p.copy() for p in problem.params]
    grad_sequence = [random_grads(SHAPES, dtype, rng) for _ in range(STEPS)]

    initial = problem.copy()
    run_steps(reference, problem, grad_sequence)
    torch_params, optimizer = _run_torch(optimizer_case, initial_params, grad_sequence)

    expected = _torch_result(initial, torch_params, optimizer, torch_state_key)
    assert_problems_close(problem, expected, context=optimizer_case.id)

    # The reference keeps exactly the state torch keeps for this branch: nothing missing
    # (compared above) and nothing that torch would not have (e.g. a momentum buffer at
    # momentum 0).
    torch_keys = set(optimizer.state[torch_params[0]]) - {"step"}
    assert torch_keys == {torch_state_key[slot] for slot in optimizer_case.used_slots}
    # And the parameters did move: the comparison above is not between two untouched copies.
    for before, after in zip(initial_params, problem.params):
        assert np.max(np.abs(after - before)) > 1e-3


def test_reference_skips_tensors_without_grad_like_torch(
    optimizer_name,
    dtype,
    rng,
    make_problem,
    random_grads,
    default_case_for,
    run_steps,
    assert_problems_close,
    torch_state_key,
):
    # torch.optim skips a parameter whose .grad is None; the reference skips grads[i] is None.
    # Only a parameter that never gets a gradient can be compared this way: torch counts steps
    # per parameter, the reference takes one step number for all tensors.
    case = default_case_for(optimizer_name)
    problem = make_problem(case, SHAPES, dtype, rng)
    initial_params = [p.copy() for p in problem.params]
    initial = problem.copy()
    grad_sequence = []
    for _ in range(5):
        grads: list[Any] = random_grads(SHAPES, dtype, rng)
        grads[1] = None
        grad_sequence.append(grads)

    run_steps(reference, problem, grad_sequence)
    torch_params, optimizer = _run_torch(case, initial_params, grad_sequence)

    # torch never stepped it either (Adagrad creates its state up front, the others lazily).
    assert float(optimizer.state[torch_params[1]].get("step", 0)) == 0
    expected = _torch_result(initial, torch_params, optimizer, torch_state_key)
    assert_problems_close(problem, expected, context=case.id)
    # The skipped tensor is not merely close but untouched.
    for label, array in initial.named_arrays():
        if label.endswith("[1]"):
            np.testing.assert_array_equal(dict(problem.named_arrays())[label], array)
