"""Results do not depend on the thread count, the instruction-set variant, or concurrent callers.

The build compiles with ``-ffp-contract=off`` and splits work only between elements, so every
thread count and every kernel variant (baseline, AVX2, AVX-512) must give the same bits, not
merely close values. The variant is chosen once at import (``FUSEDOPTIM_ISA`` forces one), so
each variant runs in its own subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fusedoptim
from fusedoptim import functional

ROOT = Path(__file__).resolve().parents[1]
LARGE_SIZE = 1_000_003
THREAD_COUNTS = (1, 2, 3)  # 3 > cores on small machines: uneven split points on purpose


@pytest.fixture
def restore_threads():
    """Put the process-wide thread count back after a test that changes it."""
    original = fusedoptim.get_num_threads()
    yield
    fusedoptim.set_num_threads(original)


def _odd_sizes(rng: np.random.Generator, count: int = 50) -> list[tuple[int, ...]]:
    # Odd sizes up to ~8k: ~200k elements in all, so the call is split between threads at
    # points inside and between tensors, and no tensor is a whole number of vectors.
    return [(int(2 * rng.integers(0, 4000) + 1),) for _ in range(count)]


def _same_bits(got: np.ndarray, want: np.ndarray, label: str) -> None:
    """Bitwise equality, except that any NaN equals any NaN (payloads are not part of the API)."""
    assert got.dtype == want.dtype and got.shape == want.shape, label
    nan_got, nan_want = np.isnan(got), np.isnan(want)
    np.testing.assert_array_equal(nan_got, nan_want, err_msg=f"NaN positions differ in {label}")
    unsigned = np.uint32 if got.dtype == np.float32 else np.uint64
    differ = got[~nan_got].view(unsigned) != want[~nan_want].view(unsigned)
    assert not differ.any(), f"{label}: {int(differ.sum())} elements differ in their bits"


@pytest.mark.parametrize("layout", ["one-large-tensor", "fifty-odd-tensors"])
def test_thread_count_does_not_change_a_bit(
    layout,
    optimizer_name,
    dtype,
    rng,
    default_case_for,
    make_problem,
    random_grads,
    run_steps,
    restore_threads,
):
    case = default_case_for(optimizer_name)
    shapes = [(LARGE_SIZE,)] if layout == "one-large-tensor" else _odd_sizes(rng)
    initial = make_problem(case, shapes, dtype, rng)
    grad_sequence = [random_grads(shapes, dtype, rng) for _ in range(3)]

    results = {}
    for threads in THREAD_COUNTS:
        fusedoptim.set_num_threads(threads)
        problem = initial.copy()
        run_steps(functional, problem, grad_sequence)
        results[threads] = problem

    for threads in THREAD_COUNTS[1:]:
        single = dict(results[1].named_arrays())
        for label, array in results[threads].named_arrays():
            _same_bits(array, single[label], f"{threads} threads vs 1: {label}")
    # Sanity: the steps did update the parameters.
    assert not np.array_equal(results[1].params[0], initial.params[0])


def test_num_threads_round_trip(restore_threads):
    # Without OpenMP the kernels always run on one thread, whatever was asked (documented).
    openmp = fusedoptim.build_info()["openmp"]
    for threads in (1, 2, 5):
        fusedoptim.set_num_threads(threads)
        assert fusedoptim.get_num_threads() == (threads if openmp else 1)
        assert fusedoptim.build_info()["num_threads"] == (threads if openmp else 1)


@pytest.mark.parametrize("bad", [0, -1])
def test_set_num_threads_refuses_less_than_one(bad, restore_threads):
    before = fusedoptim.get_num_threads()
    with pytest.raises(ValueError, match=f"n must be >= 1 and < 2\\*\\*31, got {bad}"):
        fusedoptim.set_num_threads(bad)
    assert fusedoptim.get_num_threads() == before


def test_build_info_describes_the_build():
    info = fusedoptim.build_info()
    assert {"isa", "isa_supported", "openmp", "compiler", "flags", "num_threads"} <= info.keys()
    assert isinstance(info["isa_supported"], list)
    assert "baseline" in info["isa_supported"]
    assert set(info["isa_supported"]) <= {"baseline", "avx2", "avx512"}
    assert info["isa"] in info["isa_supported"]
    assert isinstance(info["openmp"], bool)
    assert isinstance(info["compiler"], str) and info["compiler"]
    assert isinstance(info["flags"], str)
    assert info["num_threads"] == fusedoptim.get_num_threads()
    if not info["openmp"]:
        assert info["num_threads"] == 1
    # The import picks the best variant the CPU supports unless FUSEDOPTIM_ISA forces one.
    if not os.environ.get("FUSEDOPTIM_ISA"):
        assert info["isa"] == info["isa_supported"][-1]


# --------------------------------------------------------------------------------------------
# Instruction-set variants, each forced in a subprocess.

# Runs every optimizer (the cases are passed in as JSON) on fixed data and saves every parameter
# and state array. Sizes cover the vector body, short tails and a call large enough to use
# several threads; a NaN and an Inf in one gradient check that every variant propagates them
# alike (e.g. the NaN-propagating max of amsgrad). Cases marked "special" (every option branch,
# on smaller sizes) also put, in a 16-aligned block of the last gradient, values whose squares
# span each dtype's range and beyond: +-0, subnormals, and magnitudes up to squares that
# overflow (in float32 the largest, 1e39, is itself +inf: an infinite gradient at every step),
# shuffled so that every 16-lane vector mixes them. On AVX-512, float32 square roots run mostly on
# the FMA units (kernels/sqrt_avx512.hpp) and hand zeros, tiny, subnormal, infinite and NaN inputs
# to the hardware instruction lane by lane; all of it must give the baseline's bits.
CHILD_SCRIPT = r"""
import json, sys
import numpy as np
import fusedoptim
from fusedoptim import functional

cases, out_path, forced = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
isa = fusedoptim.build_info()["isa"]
if isa != forced:
    sys.exit(f"FUSEDOPTIM_ISA={forced} but build_info() reports isa={isa}")
shuffle = np.random.default_rng(11).permutation
special = {
    dtype: shuffle(np.concatenate([[0.0, -0.0], np.logspace(*ends, 126)]))
    for dtype, ends in (("float32", (-45, 39)), ("float64", (-320, 308)))
}
results = {}
for index, case in enumerate(cases):
    sizes = case.get("sizes", [100_003, 1, 7, 33, 4099])
    for dtype in ("float32", "float64"):
        rng = np.random.default_rng(7)
        params = [rng.standard_normal(n).astype(dtype) for n in sizes]
        states = [[np.zeros(n, dtype) for n in sizes] if used else None for used in case["used"]]
        for step in (1, 2, 3):
            grads = [rng.standard_normal(n).astype(dtype) for n in sizes]
            if case.get("special"):
                block = grads[-1][16 : 16 + special[dtype].size]
                block[:] = special[dtype] * np.sign(block)
                if step == 2:
                    grads[-1][16 + special[dtype].size + 3] = np.nan
            elif step == 2:
                grads[0][[5, 70_001]] = np.nan, np.inf
            options = dict(case["options"])
            if case["takes_step"]:
                options["step"] = step
            getattr(functional, case["name"])(params, grads, *states, **options)
        prefix = f"{index}-{case['name']}-{dtype}"
        for i, array in enumerate(params):
            results[f"{prefix}-params{i}"] = array
        for s, arrays in enumerate(states):
            for i, array in enumerate(arrays or []):
                results[f"{prefix}-state{s}-{i}"] = array
np.savez(out_path, **results)
"""


def _run_child(isa: str, cases: list[dict[str, Any]], out_path: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FUSEDOPTIM_ISA": isa}
    return subprocess.run(
        [sys.executable, "-c", CHILD_SCRIPT, json.dumps(cases), out_path, isa],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def child_cases(default_case_for, every_option_case) -> list[dict[str, Any]]:
    """The default case of every optimizer on the large sizes, then every option branch of every
    optimizer with the special values, as JSON-ready dicts for the child script."""
    names = ("sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw")
    chosen = [(default_case_for(name), {}) for name in names]
    chosen += [(case, {"sizes": [20_011, 33, 4099], "special": True}) for case in every_option_case]
    # A call of many small tensors large enough (300,450 elements: 150,225 per thread on two
    # threads) that the kernels take their long-range path on each 2,003-element piece.
    chosen += [
        (default_case_for(name), {"sizes": [2_003] * 150, "special": True}) for name in names
    ]
    # One range long enough on its own (150,001 elements per thread on two threads).
    chosen += [
        (default_case_for(name), {"sizes": [33, 300_001], "special": True}) for name in names
    ]
    return [
        {
            "name": case.name,
            "options": case.options,
            "used": [case.needs(slot) for slot in case.state_slots],
            "takes_step": case.takes_step,
            **extra,
        }
        for case, extra in chosen
    ]


@pytest.fixture(scope="module")
def baseline_results(child_cases, tmp_path_factory) -> dict[str, np.ndarray]:
    """The child's arrays with the baseline kernels forced (which the child checks it got)."""
    out_path = str(tmp_path_factory.mktemp("isa") / "baseline.npz")
    child = _run_child("baseline", child_cases, out_path)
    assert child.returncode == 0, child.stderr
    with np.load(out_path) as saved:
        return dict(saved)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_every_supported_isa_gives_the_baseline_bits(isa, child_cases, baseline_results, tmp_path):
    if isa not in fusedoptim.build_info()["isa_supported"]:
        pytest.skip(f"this CPU or build does not support {isa}")
    out_path = str(tmp_path / f"{isa}.npz")
    child = _run_child(isa, child_cases, out_path)
    assert child.returncode == 0, child.stderr
    with np.load(out_path) as saved:
        results = dict(saved)
    assert results.keys() == baseline_results.keys()
    assert any(np.isnan(a).any() for a in results.values()), "the NaN gradient went nowhere"
    for label, want in baseline_results.items():
        _same_bits(results[label], want, f"{isa} vs baseline: {label}")


@pytest.mark.parametrize("name", ["sse9", "AVX2", "native"])
def test_unknown_isa_name_fails_the_import(name, child_cases, tmp_path):
    child = _run_child(name, child_cases, str(tmp_path / "unused.npz"))
    assert child.returncode != 0
    assert f"ImportError: FUSEDOPTIM_ISA={name} is not a kernel variant of this build" in (
        child.stderr
    )


def test_compiled_but_unsupported_isa_fails_the_import(child_cases, tmp_path):
    info = fusedoptim.build_info()
    unsupported = [isa for isa in info.get("isa_compiled", []) if isa not in info["isa_supported"]]
    if not unsupported:
        pytest.skip("this CPU supports every compiled variant")
    child = _run_child(unsupported[0], child_cases, str(tmp_path / "unused.npz"))
    assert child.returncode != 0
    assert f"FUSEDOPTIM_ISA={unsupported[0]} is not supported by this CPU" in child.stderr


# --------------------------------------------------------------------------------------------
# The kernels release the GIL, so Python threads can run them at the same time on different
# tensors; the results must be those of sequential calls. (Whether two calls did overlap is a
# matter of timing, which these tests never assert.)


def test_concurrent_calls_from_python_threads_match_sequential_calls():
    size = 2_000_000
    steps = 5

    def make_work(seed: int) -> dict[str, Any]:
        local = np.random.default_rng(seed)
        return {
            "params": [local.standard_normal(size).astype(np.float32)],
            "exp_avgs": [np.zeros(size, np.float32)],
            "exp_avg_sqs": [np.zeros(size, np.float32)],
            "grads": [[local.standard_normal(size).astype(np.float32)] for _ in range(steps)],
        }

    def run(work: dict[str, Any]) -> None:
        for step, grads in enumerate(work["grads"], start=1):
            functional.adam(
                work["params"], grads, work["exp_avgs"], work["exp_avg_sqs"], None,
                step=step, lr=0.01, weight_decay=0.01,
            )  # fmt: skip

    sequential = [make_work(1), make_work(2)]
    for work in sequential:
        run(work)

    concurrent = [make_work(1), make_work(2)]
    errors: list[BaseException] = []

    def target(work: dict[str, Any]) -> None:
        try:
            run(work)
        except BaseException as error:  # surfaced in the main thread below
            errors.append(error)

    threads = [threading.Thread(target=target, args=(work,)) for work in concurrent]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)

    for want, got in zip(sequential, concurrent):
        for key in ("params", "exp_avgs", "exp_avg_sqs"):
            _same_bits(got[key][0], want[key][0], key)


# --------------------------------------------------------------------------------------------
# How a call's elements are shared between threads (TeamBalance, csrc/include/fusedoptim/
# runtime.hpp): by the speed each thread showed at the calling thread's earlier calls. Timings
# are made up by tests/team_balance.cpp, so these tests are exact and take no time; that the
# split never changes a bit is what the thread-count tests above check, whatever split the
# machine's speed led to.


def _program_lines(tmp_path_factory, name: str, *flags: str) -> dict[str, list[float]]:
    """Builds tests/<name>.cpp against csrc/include and runs it: its lines, as name -> numbers.
    Skipped without a C++ compiler or the source checkout, or when it cannot be built with the
    extra flags given (``-fopenmp`` without OpenMP); without extra flags a failed build fails."""
    source = ROOT / f"tests/{name}.cpp"
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None or not source.exists():
        pytest.skip("needs a C++ compiler and the source checkout")
    program = tmp_path_factory.mktemp(name) / name
    command = [compiler, "-O2", "-std=c++17", *flags, f"-I{ROOT / 'csrc/include'}"]
    built = subprocess.run([*command, str(source), "-o", str(program)], capture_output=True)
    if built.returncode != 0:
        message = f"cannot build {source.name} with {flags}: {built.stderr.decode()[-300:]}"
        if not flags:
            pytest.fail(message)
        pytest.skip(message)
    output = subprocess.run([str(program)], check=True, capture_output=True, text=True).stdout
    return {key: [float(x) for x in rest] for key, *rest in map(str.split, output.splitlines())}


@pytest.fixture(scope="module")
def balance_scenarios(tmp_path_factory) -> dict[str, list[float]]:
    return _program_lines(tmp_path_factory, "team_balance")


def test_equal_threads_keep_equal_shares(balance_scenarios):
    assert balance_scenarios["no-calls"] == [0.5, 0.5, 0, 500_000, 1_000_000]
    assert balance_scenarios["equal"] == [0.5, 0.5, 0, 500_000, 1_000_000]


def test_a_slower_thread_gets_fewer_elements(balance_scenarios):
    # One call moves the shares an eighth of the way to those that equalise the end times
    # (2/3 and 1/3 for a thread twice as slow); many calls arrive there.
    first, second, *_ = balance_scenarios["one-call-second-twice-as-slow"]
    assert first == pytest.approx(0.5 + (2 / 3 - 0.5) / 8, abs=2e-6)
    first, second, *_ = balance_scenarios["second-twice-as-slow"]
    assert first == pytest.approx(2 / 3, abs=2e-6) and second == pytest.approx(1 / 3, abs=2e-6)


def test_a_thread_that_starts_late_gets_fewer_elements(balance_scenarios):
    # 1e6 elements at 1 ns each, the worker 100 us late: both end together with 550,000 and
    # 450,000 elements.
    first, second, *_ = balance_scenarios["second-starts-late"]
    assert first == pytest.approx(0.55, abs=2e-6) and second == pytest.approx(0.45, abs=2e-6)


def test_shares_stay_between_half_and_one_and_a_half_equal_shares(balance_scenarios):
    first, second, *_ = balance_scenarios["second-ten-times-slower"]  # would want 10/11, 1/11
    assert first == pytest.approx(0.75, abs=2e-6) and second == pytest.approx(0.25, abs=2e-6)
    shares = balance_scenarios["four-threads"][:4]  # speeds 1, 1/2, 1, 1/4
    assert sum(shares) == pytest.approx(1.0, abs=1e-5)
    assert shares[0] == pytest.approx(shares[2], abs=2e-6)
    assert shares[0] > shares[1] > shares[3]
    # The slowest would get 1/11 of the elements: held at 1/8, the others sharing the rest in
    # proportion to their speeds (2:1:2).
    assert shares[3] == pytest.approx(1 / 8, abs=2e-6)
    assert shares[1] == pytest.approx(7 / 8 / 5, abs=2e-6)
    # One fast thread of eight would get 4/11: held at 1.5/8, the seven others equal.
    shares = balance_scenarios["eight-threads-one-fast"][:8]
    assert shares[0] == pytest.approx(1.5 / 8, abs=2e-6)
    assert shares[1:] == pytest.approx([(1 - 1.5 / 8) / 7] * 7, abs=2e-6)


def test_split_points_cover_every_element_once(balance_scenarios):
    for name, values in balance_scenarios.items():
        if name in ("idle-thread", "new-team-size", "team-sizes-kept-apart"):
            continue
        team = (len(values) - 1) // 2
        cuts = values[team:]
        assert cuts[0] == 0 and cuts[-1] == 1_000_000, name
        assert all(a <= b for a, b in zip(cuts, cuts[1:])), name


def test_a_call_with_an_idle_thread_teaches_nothing(balance_scenarios):
    assert balance_scenarios["idle-thread"] == [0.5, 0.5]


def test_each_team_size_keeps_its_own_shares(balance_scenarios):
    # Calls of different sizes get teams of different sizes (threads_for): what one size learned
    # neither carries over to another nor is lost by calls of another between.
    assert balance_scenarios["new-team-size"] == [0, 333_333, 666_666, 999_999]
    first, second = balance_scenarios["team-sizes-kept-apart"]
    assert first == pytest.approx(2 / 3, abs=2e-6) and second == pytest.approx(1 / 3, abs=2e-6)


@pytest.fixture(scope="module")
def split_driver(tmp_path_factory) -> dict[str, list[float]]:
    return _program_lines(tmp_path_factory, "split_driver", "-fopenmp", "-pthread")


@pytest.mark.parametrize("team", [2, 3, 4, 5, 6])
def test_uneven_shares_still_visit_every_element_once(split_driver, team):
    # Shares pushed to their bounds, each thread in turn the slow one, over lists with tensors of
    # 0, 1, 17 and random sizes at random alignments: elements visited other than once.
    assert split_driver[f"coverage-{team}"] == [0]


def test_a_body_that_calls_the_driver_again_covers_everything(split_driver):
    assert split_driver["nested"] == [0, 0]


def test_a_call_learns_from_its_threads_times(split_driver):
    # Thread 1 of 2 spends ten times as long per element: after 60 calls it is near the lowest
    # share allowed, half an equal share (each call moves an eighth of the way, and the clock's
    # noise can pull a call's target back a little), where an equal split would give it 0.5.
    first, second = split_driver["learned"]
    assert 0.25 - 1e-6 <= second < 0.3 and first == pytest.approx(1 - second, abs=1e-5)
