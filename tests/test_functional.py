"""The compiled kernels (through ``fusedoptim.functional``) agree with the NumPy reference.

Every optimizer x every option branch (``OPTION_AXES`` in conftest.py) x float32/float64 x
tensor sizes 0, 1, 7 and 1000 (empty, a lone scalar tail, a tail shorter than any vector width,
several vector blocks plus a tail) x one tensor or three of different sizes runs 20 steps with
fresh random gradients, and the parameters AND every state array are compared.

Tolerances (``RTOL`` in conftest.py, reasoned there): float64 1e-12 and float32 1e-5 relative,
with an absolute part of the same size relative to the array's largest entry. Kernels and
reference follow the same operation order in the storage dtype; the margin is for compilers and
platforms that round a fused multiply-add or a bias correction differently.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fusedoptim import functional, reference

STEPS = 20
SIZES = (0, 1, 7, 1000)
LARGE_SIZE = 1_000_003  # an odd size: several parallel chunks and a scalar tail


def _shapes(size: int, tensors: int) -> list[tuple[int, ...]]:
    """One tensor of ``size`` elements, or three of different sizes (one of them 2-D)."""
    if tensors == 1:
        return [(size,)]
    return [(size,), (3, size + 1), (2 * size + 5,)]


def _copy_grads(grad_sequence: list[list[Any]]) -> list[list[Any]]:
    return [[None if g is None else g.copy() for g in grads] for grads in grad_sequence]


def _assert_grads_unchanged(before: list[list[Any]], after: list[list[Any]]) -> None:
    for grads_before, grads_after in zip(before, after):
        for g_before, g_after in zip(grads_before, grads_after):
            if g_before is not None:
                assert g_before.tobytes() == g_after.tobytes(), "a gradient was modified"


@pytest.mark.parametrize("tensors", [1, 3], ids=["one-tensor", "three-tensors"])
@pytest.mark.parametrize("size", SIZES, ids=[f"size{n}" for n in SIZES])
def test_functional_matches_reference(
    optimizer_case,
    dtype,
    size,
    tensors,
    rng,
    make_problem,
    random_grads,
    run_steps,
    assert_problems_close,
):
    shapes = _shapes(size, tensors)
    expected = make_problem(optimizer_case, shapes, dtype, rng)
    actual = expected.copy()
    grad_sequence = [random_grads(shapes, dtype, rng) for _ in range(STEPS)]
    pristine_grads = _copy_grads(grad_sequence)

    run_steps(reference, expected, grad_sequence)
    run_steps(functional, actual, grad_sequence)

    assert_problems_close(actual, expected, context=optimizer_case.id)
    _assert_grads_unchanged(pristine_grads, grad_sequence)


def test_functional_matches_reference_on_a_large_tensor(
    optimizer_name,
    dtype,
    rng,
    default_case_for,
    make_problem,
    random_grads,
    run_steps,
    assert_problems_close,
):
    # Few steps: this is about chunking a long tensor across threads and vector blocks; the
    # 20-step runs above cover the arithmetic.
    case = default_case_for(optimizer_name)
    shapes = [(LARGE_SIZE,)]
    expected = make_problem(case, shapes, dtype, rng)
    actual = expected.copy()
    grad_sequence = [random_grads(shapes, dtype, rng) for _ in range(3)]

    run_steps(reference, expected, grad_sequence)
    run_steps(functional, actual, grad_sequence)

    assert_problems_close(actual, expected, context=case.id)


def test_non_finite_gradients_propagate_like_the_reference(
    optimizer_case, dtype, rng, make_problem, random_grads, run_steps, assert_problems_close
):
    shapes = [(33,), (5,)]
    expected = make_problem(optimizer_case, shapes, dtype, rng)
    actual = expected.copy()
    grad_sequence = [random_grads(shapes, dtype, rng) for _ in range(4)]
    # NaN, +Inf and -Inf enter on step 2 (so they also travel through the state into steps 3
    # and 4), at positions in the vector body and in the scalar tail of the 33-element tensor.
    bad_positions = {3: np.nan, 17: np.inf, 32: -np.inf}
    for position, value in bad_positions.items():
        grad_sequence[1][0][position] = value

    # The reference computes inf - inf, inf / inf, ... on purpose here: silence NumPy's
    # "invalid value" warnings, which the pytest configuration turns into errors.
    with np.errstate(all="ignore"):
        run_steps(reference, expected, grad_sequence)
    run_steps(functional, actual, grad_sequence)

    expected_arrays = dict(expected.named_arrays())
    for label, got in actual.named_arrays():
        want = expected_arrays[label]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"NaN in {label}")
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want), err_msg=label)
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg=label)
    assert_problems_close(actual, expected, context=optimizer_case.id)
    # The test is only meaningful if the bad values reached the parameters.
    assert not np.isfinite(expected.params[0][list(bad_positions)]).any()
    assert np.isfinite(expected.params[1]).all()


def test_tensors_without_grad_are_skipped(
    optimizer_case, dtype, rng, make_problem, random_grads, run_steps, assert_problems_close
):
    shapes = [(9,), (4, 3), (11,)]
    expected = make_problem(optimizer_case, shapes, dtype, rng)
    initial = expected.copy()
    actual = expected.copy()
    grad_sequence = []
    for _ in range(3):
        grads: list[Any] = random_grads(shapes, dtype, rng)
        grads[1] = None
        grad_sequence.append(grads)
    # A skipped tensor's state entries may be None as well.
    for slot in optimizer_case.used_slots:
        actual.states[slot][1] = None

    run_steps(reference, expected, grad_sequence)
    run_steps(functional, actual, grad_sequence)

    np.testing.assert_array_equal(actual.params[1], initial.params[1])
    for slot in optimizer_case.used_slots:
        actual.states[slot][1] = initial.states[slot][1]
    assert_problems_close(actual, expected, context=optimizer_case.id)


def test_all_grads_none_changes_nothing(
    optimizer_case, rng, make_problem, snapshot, call_optimizer
):
    problem = make_problem(optimizer_case, [(5,), (6,)], np.float64, rng)
    before = snapshot(problem)
    call_optimizer(functional, problem, [None, None], 1)
    assert snapshot(problem) == before


def test_tuples_are_accepted_like_lists(optimizer_name, rng, default_case_for, make_problem):
    case = default_case_for(optimizer_name)
    shapes = [(8,), (13,)]
    as_lists = make_problem(case, shapes, np.float64, rng)
    as_tuples = as_lists.copy()
    grads = [rng.standard_normal(shape) for shape in shapes]
    options = dict(case.options)
    if case.takes_step:
        options["step"] = 1
    function = getattr(functional, case.name)

    function(as_lists.params, grads, *(as_lists.states[s] for s in case.state_slots), **options)
    function(
        tuple(as_tuples.params),
        tuple(grads),
        *(
            None if as_tuples.states[s] is None else tuple(as_tuples.states[s])
            for s in case.state_slots
        ),
        **options,
    )

    for (label, a), (_, b) in zip(as_lists.named_arrays(), as_tuples.named_arrays()):
        assert a.tobytes() == b.tobytes(), label


def test_steps_after_the_first_use_the_given_step(
    stepped_optimizer_case,
    dtype,
    rng,
    make_problem,
    random_grads,
    run_steps,
    assert_problems_close,
):
    # Resuming at step 7 (as after loading a checkpoint): the step drives Adam's bias
    # corrections, AdaGrad's lr decay and SGD's first-momentum-step rule, so a kernel that
    # ignored it and counted from 1 would differ from the reference here.
    case = stepped_optimizer_case
    shapes = [(10,)]
    expected = make_problem(case, shapes, dtype, rng)
    actual = expected.copy()
    grad_sequence = [random_grads(shapes, dtype, rng) for _ in range(3)]

    run_steps(reference, expected, grad_sequence, first_step=7)
    run_steps(functional, actual, grad_sequence, first_step=7)

    assert_problems_close(actual, expected, context=case.id)


def test_unused_state_lists_are_left_alone(
    optimizer_case_with_unused_state, rng, make_problem, random_grads, call_optimizer
):
    # A state list the options do not need (momentum buffers at momentum 0, grad_avgs when not
    # centered, max_exp_avg_sqs without amsgrad) may be passed anyway and is not written.
    case = optimizer_case_with_unused_state
    unused = [slot for slot in case.state_slots if not case.needs(slot)]
    shapes = [(6,), (2, 2)]
    problem = make_problem(case, shapes, np.float64, rng)
    for slot in unused:
        problem.states[slot] = [rng.standard_normal(shape) for shape in shapes]
    untouched = {slot: [a.copy() for a in problem.states[slot]] for slot in unused}

    call_optimizer(functional, problem, random_grads(shapes, np.float64, rng), 1)

    for slot in unused:
        for before, after in zip(untouched[slot], problem.states[slot]):
            assert before.tobytes() == after.tobytes(), slot
