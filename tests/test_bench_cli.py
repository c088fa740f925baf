"""The ``fusedoptim-bench`` command: options, output, JSON, plot, error messages.

Only behaviour is tested, never speed: runs use tiny sizes, and the machine-dependent parts (the
cache size, the bandwidth probe's array length) are shrunk so that a run takes a fraction of a
second. Whether the benchmark compares like with like is tested directly: each contender's step
must compute the same update as the others.
"""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fusedoptim
from fusedoptim import bench

TINY_CACHE = 64 * 2**10


@pytest.fixture
def small_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the cache is 64 KiB and shrink the bandwidth probe, so runs take milliseconds."""
    monkeypatch.setattr(bench, "last_level_cache_bytes", lambda: TINY_CACHE)
    monkeypatch.setattr(bench, "BANDWIDTH_MIN_ELEMENTS", 2**14)
    monkeypatch.setattr(bench, "DIVIDER_REPEATS", 2)
    monkeypatch.setattr(bench, "DIVIDER_SAMPLES", 3)


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``fusedoptim-bench ARGV``, never measuring again because the machine is busy."""
    status = bench.main([*argv, "--retries", "0"])
    out, err = capsys.readouterr()
    return status, out, err


def table_rows(out: str) -> list[list[str]]:
    """The table's data rows, split on runs of two or more spaces."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---")) + 1
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        rows.append([cell.strip() for cell in line.split("  ") if cell.strip()])
    return rows


# --------------------------------------------------------------------------------------------
# What the benchmark counts and compares.


@pytest.mark.parametrize("optimizer", list(bench.OPTIMIZERS))
def test_bytes_per_element_counts_every_array_read_and_written(optimizer: str) -> None:
    # Read: parameter, gradient and each state; written: parameter and each state.
    states = bench.OPTIMIZERS[optimizer].states
    arrays = (2 + states) + (1 + states)
    assert bench.bytes_per_element(optimizer, np.float32) == 4 * arrays
    assert bench.bytes_per_element(optimizer, np.float64) == 8 * arrays


def test_defaults_are_the_issue_list() -> None:
    assert set(bench.DEFAULT_OPTIMIZERS) == {
        "sgd", "sgd_momentum", "sgd_nesterov", "adagrad", "rmsprop", "rmsprop_centered",
        "adadelta", "adam", "adam_amsgrad", "adamw",
    }  # fmt: skip
    layouts = [bench.parse_size(text) for text in bench.DEFAULT_SIZES.split(",")]
    one_tensor = {layout.elements for layout in layouts if layout.one_tensor}
    assert one_tensor == {10**3, 10**5, 10**6, 10**7}
    assert {(layout.count, layout.size) for layout in layouts if not layout.one_tensor} == {
        (500, 2000),
        (200, 500),
    }


def _run_contender(contender: str, optimizer: str, steps: int, torch: Any) -> bench.ProblemCopy:
    config = bench.OPTIMIZERS[optimizer]
    copy = bench.ArrayPool(bench.Layout(3, 37), np.float64).copies(1, config.states)[0]
    step = bench.make_stepper(contender, config, [copy], torch)
    for _ in range(steps):
        step(0)
    return copy


@pytest.mark.parametrize("optimizer", list(bench.OPTIMIZERS))
def test_contenders_compute_the_same_update(optimizer: str) -> None:
    """fusedoptim, NumPy and torch run the same algorithm with the same hyperparameters."""
    torch = pytest.importorskip("torch")
    steps = 4
    fused = _run_contender("fusedoptim", optimizer, steps, None)
    numpy = _run_contender("numpy", optimizer, steps, None)
    torch_run = _run_contender("torch", optimizer, steps, torch)
    initial = bench.ArrayPool(bench.Layout(3, 37), np.float64).copies(1, 0)[0]
    for i, param in enumerate(fused.params):
        assert not np.array_equal(param, initial.params[i])  # the step did something
        np.testing.assert_allclose(param, numpy.params[i], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(param, torch_run.params[i], rtol=1e-12, atol=1e-14)
    # fusedoptim's and torch's optimizers keep their own state (as in training); NumPy's
    # reference updates the copy's. Equal parameters after several steps need equal state.


@pytest.mark.parametrize("optimizer", list(bench.OPTIMIZERS))
def test_state_slots_are_the_states_torch_keeps(optimizer: str) -> None:
    """The byte count rests on the state list; torch must keep exactly those states."""
    torch = pytest.importorskip("torch")
    config = bench.OPTIMIZERS[optimizer]
    param = torch.zeros(5, requires_grad=True)
    param.grad = torch.ones(5)
    options = {**config.options, "fused": True} if config.torch_fused else config.options
    torch_optimizer = getattr(torch.optim, config.torch_class)([param], **options)
    torch_optimizer.step()
    kept = {key for key in torch_optimizer.state[param] if key != "step"}
    assert kept == {slot for slot in config.state_slots if slot is not None}


def test_stepper_counts_steps_per_copy() -> None:
    """Each copy counts its own steps from 1, so SGD's step-1 path (buffer = gradient) runs once
    per copy: after two steps each parameter moved by lr * (g + (momentum * g + g))."""
    config = bench.OPTIMIZERS["sgd_momentum"]
    for contender in ("fusedoptim", "numpy"):
        copies = bench.ArrayPool(bench.Layout(1, 8), np.float64).copies(2, config.states)
        initial = [copy.params[0].copy() for copy in copies]
        step = bench.make_stepper(contender, config, copies)
        for k in (0, 1, 0, 1):
            step(k)
        lr, momentum = config.options["lr"], config.options["momentum"]
        for copy, start in zip(copies, initial):
            expected = start - lr * (copy.grads[0] + (momentum * copy.grads[0] + copy.grads[0]))
            np.testing.assert_allclose(copy.params[0], expected, rtol=1e-13, err_msg=contender)


def test_same_data_for_every_contender() -> None:
    pool = bench.ArrayPool(bench.Layout(2, 16), np.float32)
    first = pool.copies(2, 3)
    first[0].params[0][:] = 7
    first[1].states[2][1][:] = 5
    again = pool.copies(2, 3)
    other = bench.ArrayPool(bench.Layout(2, 16), np.float32).copies(2, 3)
    for a, b in zip(again, other):
        for x, y in zip(a.params + a.grads, b.params + b.grads):
            np.testing.assert_array_equal(x, y)
        assert all(not state.any() for states in a.states for state in states)


def test_copies_without_reset_set_only_new_arrays() -> None:
    """The probe's copies are not reset between cases (its traffic does not depend on the
    values), but arrays it has not used before start from the base data and zeroed states."""
    pool = bench.ArrayPool(bench.Layout(1, 8), np.float32)
    first = pool.copies(2, 1, reset=False)
    reference = bench.ArrayPool(bench.Layout(1, 8), np.float32).copies(2, 2)
    np.testing.assert_array_equal(first[1].params[0], reference[1].params[0])
    first[0].params[0][:] = 5
    first[0].states[0][0][:] = 7
    again = pool.copies(3, 2, reset=False)  # a third copy and a second state are new
    assert np.all(again[0].params[0] == 5) and np.all(again[0].states[0][0] == 7)
    np.testing.assert_array_equal(again[2].params[0], reference[0].params[0])
    np.testing.assert_array_equal(again[2].grads[0], reference[0].grads[0])
    assert not again[0].states[1][0].any() and not again[2].states[0][0].any()
    reset = pool.copies(3, 2)  # the default resets everything
    np.testing.assert_array_equal(reset[0].params[0], reference[0].params[0])
    assert not reset[0].states[0][0].any()


def test_pools_given_the_base_data_hold_the_same_values() -> None:
    """A run makes each case's base data once and hands it to every pool (the probe's, one
    tensor of all the elements, too): the values are those of a pool that makes its own, and
    the base arrays themselves are never written."""
    layout = bench.Layout(4, 25)
    base = bench.base_data(layout, np.float32)
    saved = base[0].copy(), base[1].copy()
    given = bench.ArrayPool(layout, np.float32, base=base).copies(1, 1)[0]
    made = bench.ArrayPool(layout, np.float32).copies(1, 1)[0]
    for x, y in zip(given.params + given.grads, made.params + made.grads):
        np.testing.assert_array_equal(x, y)
    given.params[0][:] = 3
    probe = bench.ArrayPool(bench.Layout(1, 100), np.float32, base=base).copies(1, 0)[0]
    np.testing.assert_array_equal(probe.params[0], saved[0])
    np.testing.assert_array_equal(base[0], saved[0])
    np.testing.assert_array_equal(base[1], saved[1])
    with pytest.raises(ValueError, match="base data of 100 elements for 50"):
        bench.ArrayPool(bench.Layout(2, 25), np.float32, base=base)


@pytest.mark.parametrize("optimizer", ["sgd", "adam_amsgrad"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out_of_cache_copies_exceed_the_cache(optimizer: str, dtype: Any) -> None:
    config = bench.OPTIMIZERS[optimizer]
    cache = 256 * 2**20
    layout = bench.Layout(1, 10**7)
    copies = bench.copies_needed(config, layout, dtype, cache)
    copy_bytes = (2 + config.states) * layout.elements * np.dtype(dtype).itemsize
    # Between two uses of a copy the others are all touched: together they exceed the cache ...
    assert (copies - 1) * copy_bytes >= bench.CACHE_FLUSH_FACTOR * cache
    # ... and there are no more copies than that needs.
    assert (copies - 2) * copy_bytes < bench.CACHE_FLUSH_FACTOR * cache or copies == 2
    assert bench.copies_needed(config, bench.Layout(1, 1000), dtype, cache) == 1


def test_time_steps_warms_every_copy_then_never_repeats_a_copy_back_to_back() -> None:
    calls: list[int] = []
    timing = bench.time_steps(calls.append, copies=4, repeat=9)
    assert calls[:4] == [0, 1, 2, 3]  # warm-up
    timed = calls[4:]
    assert len(timed) == 1 + 9  # one calibration call, then one call per sample
    assert all(a != b for a, b in zip(timed, timed[1:]))
    assert timed == [k % 4 for k in range(len(timed))]  # the copy touched longest ago is next
    assert len(timing.samples) == 9 and timing.number == 1


class FakeClock:
    """A clock that advances only when a step runs (1 us per step), so timing logic is exact."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[int] = []

    def step(self, copy: int) -> None:
        self.calls.append(copy)
        self.now += 1e-6


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock.now)
    return clock


def test_time_steps_batches_calls_in_cache(fake_clock: FakeClock) -> None:
    timing = bench.time_steps(fake_clock.step, copies=1, min_time=0.1)
    # The batch doubles until it lasts SAMPLE_SECONDS: 2048 steps of 1 us.
    assert bench.SAMPLE_SECONDS == 2e-3 and timing.number == 2048
    # As many samples as fit in min_time: 0.1 s / 2.048 ms.
    assert len(timing.samples) == math.ceil(0.1 / 2.048e-3)
    assert all(math.isclose(sample, 1e-6) for sample in timing.samples)
    assert set(fake_clock.calls) == {0}


def test_interleaved_contenders_take_turns_in_every_order() -> None:
    calls: list[tuple[str, int]] = []
    steps = {name: (lambda k, name=name: calls.append((name, k))) for name in "abc"}
    timings = bench.time_interleaved(steps, copies=2, repeat=4)
    # Warm-up (every copy of every contender), one calibration call each, then the rounds.
    assert calls[:6] == [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("c", 0), ("c", 1)]
    assert calls[6:9] == [("a", 0), ("b", 0), ("c", 0)]
    rounds = [name for name, _ in calls[9:]]
    assert rounds == [*"abc", *"acb", *"abc", *"acb"]  # bench.turn_orders, cycled
    # Each contender still moves to the copy it touched longest ago.
    assert [k for name, k in calls[9:] if name == "b"] == [1, 0, 1, 0]
    assert all(len(timing.samples) == 4 and timing.copies == 2 for timing in timings.values())


def test_interleaved_contenders_follow_each_other_equally_often() -> None:
    """An out-of-cache step pays for the dirty data the step before it left, so over the run each
    contender must come after each other one as often as the others do."""
    calls: list[str] = []
    steps = {name: (lambda k, name=name: calls.append(name)) for name in ("torch", "ours", "bw")}
    bench.time_interleaved(steps, copies=2, repeat=60)
    timed = calls[2 * 3 + 3 :]
    follows = {(a, b): 0 for a in steps for b in steps if a != b}
    for before, after in zip(timed, timed[1:]):
        if before != after:
            follows[(before, after)] += 1
    assert max(follows.values()) - min(follows.values()) <= 1, follows  # the last wrap is missing


def test_numpy_never_times_a_first_step_that_takes_another_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NumPy's copies are warmed only where its first step differs from later ones (SGD with
    momentum copies the gradient into the buffer); elsewhere one warm-up step is enough."""
    seen: list[int] = []

    def counting_stepper(contender: str, config: Any, copies: Any, torch: Any = None) -> Any:
        counts = [0] * len(copies)

        def step(k: int) -> None:
            counts[k] += 1
            seen.append(counts[k])

        return step

    monkeypatch.setattr(bench, "make_stepper", counting_stepper)
    layout = bench.Layout(1, 8)
    settings = bench.Settings(["sgd"], [layout], ["float64"], [1], ["numpy"], repeat=5)
    pools = {"numpy": bench.ArrayPool(layout, np.float64)}
    for name, warmed, first_timed in (("sgd_momentum", 3, 2), ("sgd_nesterov", 3, 2),
                                      ("adam", 1, 1), ("sgd", 1, 1)):  # fmt: skip
        seen.clear()
        bench._measure_group(["numpy"], bench.OPTIMIZERS[name], pools, 3, settings, None, 0)
        assert seen[:warmed] == [1] * warmed and len(seen) == warmed + 1 + 5
        assert min(seen[warmed:]) == first_timed, name


def test_interleaved_slow_contender_takes_fewer_samples_spread_over_the_run(
    fake_clock: FakeClock,
) -> None:
    """A contender 10 times slower needs a tenth of the samples for the same min_time; they are
    spread over the rounds rather than taken first."""
    order: list[str] = []

    def fast(k: int) -> None:
        order.append("fast")
        fake_clock.now += 1e-3

    def slow(k: int) -> None:
        order.append("slow")
        fake_clock.now += 1e-2

    timings = bench.time_interleaved({"fast": fast, "slow": slow}, copies=3, min_time=0.1)
    assert len(timings["fast"].samples) == 100 and len(timings["slow"].samples) == 10
    timed = order[3 + 3 + 2 :]  # after the warm-up and the calibration calls
    slow_turns = [index for index, name in enumerate(timed) if name == "slow"]
    assert len(slow_turns) == 10
    assert slow_turns[0] > 5 and slow_turns[-1] > len(timed) - 15  # throughout, not first
    assert math.isclose(timings["fast"].median, 1e-3) and math.isclose(timings["slow"].median, 1e-2)


def test_time_steps_sample_count_is_bounded(fake_clock: FakeClock) -> None:
    # Out of cache one step is one sample: 0.1 s of 1 us steps would be 1e5 samples.
    timing = bench.time_steps(fake_clock.step, copies=3, min_time=0.1)
    assert len(timing.samples) == bench.MAX_REPEATS and timing.number == 1
    # And never fewer than MIN_REPEATS, however short min_time is.
    brief = bench.time_steps(fake_clock.step, copies=3, min_time=1e-9)
    assert len(brief.samples) == bench.MIN_REPEATS


def test_interleaved_contenders_take_at_least_min_samples(fake_clock: FakeClock) -> None:
    steps = {"a": fake_clock.step, "b": fake_clock.step}
    timings = bench.time_interleaved(steps, 3, min_time=1e-9, min_samples=15)
    assert [len(t.samples) for t in timings.values()] == [15, 15]


def test_out_of_cache_cases_take_a_floor_of_samples_but_not_numpy(
    tmp_path: Path, small_machine: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench, "COLD_MIN_ELEMENTS", 1000)
    monkeypatch.setattr(bench, "COLD_MIN_SAMPLES", 7)
    path = tmp_path / "floor.json"
    status = bench.main(["--optimizers", "sgd", "--sizes", "2000", "--min-time", "1e-9",
                         "--threads", "1", "--retries", "0", "--contenders", "numpy,fusedoptim",
                         "--json", str(path)])  # fmt: skip
    assert status == 0
    (case,) = json.loads(path.read_text())["cases"]
    assert len(case["timings"]["fusedoptim"]["samples"]) == 7
    assert len(case["probe"]["samples"]) == 7
    assert len(case["timings"]["numpy"]["samples"]) == bench.MIN_REPEATS


# --------------------------------------------------------------------------------------------
# Targets and the table, from a report with chosen numbers.


def _case(optimizer: str, layout: bench.Layout, ns: dict[str, float]) -> bench.Case:
    case = bench.Case(
        optimizer, layout, "float32", 2, bench.bytes_per_element(optimizer, "float32")
    )
    for contender, value in ns.items():
        seconds = value * layout.elements * 1e-9
        case.timings[contender] = bench.Timing([seconds] * 3, 1, 1)
    return case


def _report(cases: list[bench.Case], bandwidth: float = 40.0) -> bench.Report:
    settings = bench.Settings(
        optimizers=sorted({case.optimizer for case in cases}),
        layouts=list(dict.fromkeys(case.layout for case in cases)),
        dtypes=["float32"],
        threads=[2],
        contenders=list(bench.CONTENDERS),
    )
    return bench.Report(
        settings=settings,
        machine={"cpu": "test", "last_level_cache_bytes": TINY_CACHE, "build_info": {}},
        bandwidth={2: bench.Bandwidth(2, bandwidth, bandwidth * 0.8, 1)},
        cases=cases,
        command="fusedoptim-bench",
        started="now",
    )


def _target(targets: list[bench.TargetResult], text: str) -> bench.TargetResult:
    return next(target for target in targets if text in target.description)


def test_targets_met_and_missed() -> None:
    ten_million, million = bench.Layout(1, 10**7), bench.Layout(1, 10**6)
    many = bench.Layout(500, 2000)
    floor = 28 / 40.0  # Adam float32 at 40 GB/s: ns per element to move 28 bytes
    adam_10m = floor / 0.95  # 95% of the bandwidth
    report = _report(
        [
            _case("adam", ten_million, {"fusedoptim": adam_10m, "numpy": 9 * adam_10m,
                                        "torch": 1.2 * adam_10m}),
            _case("sgd", ten_million, {"fusedoptim": (12 / 40.0) / 0.8, "numpy": 1.0,
                                       "torch": 0.2}),
            _case("adam", million, {"fusedoptim": 1.0, "numpy": 8.5, "torch": 1.4}),
            _case("adam", many, {"fusedoptim": 1.6, "numpy": 20.0, "torch": 8.5}),
            _case("rmsprop", million, {"fusedoptim": 1.0, "numpy": 9.0, "torch": 5.5}),
        ]
    )  # fmt: skip
    targets = bench.evaluate_targets(report)

    fraction = _target(targets, "90% of measured bandwidth")
    assert fraction.status == "NOT MET"
    assert dict((label, ok) for label, _, ok in fraction.cases) == {"adam": True, "sgd": False}
    assert math.isclose(dict((k, v) for k, v, _ in fraction.cases)["adam"], 95.0)
    assert _target(targets, "10M one tensor: >= 8x faster than NumPy").status == "NOT MET"
    torch_10m = _target(targets, "at least as fast as torch")
    assert torch_10m.worst() is not None and torch_10m.worst()[0] == "sgd 1e7"

    assert _target(targets, "1M one tensor: >= 1.5x").status == "NOT MET"  # 1.4x
    assert _target(targets, "1M one tensor: >= 8x faster than NumPy").status == "met"  # 8.5x, 9x
    assert _target(targets, "500 x 2,000: >= 5x").status == "met"  # 8.5 / 1.6
    ratio = _target(targets, "1.5x the time of one 1M tensor")
    assert ratio.status == "NOT MET" and math.isclose(ratio.cases[0][1], 1.6)
    assert _target(targets, "RMSprop and AdaDelta").status == "met"  # 5.5x

    text = bench.format_targets(targets, 2)
    assert "[NOT MET] 1M one tensor: >= 1.5x faster than torch fused=True" in text
    # torch's 1.4 ns against the 0.7 ns needed to move Adam's 28 bytes at 40 GB/s: 2x at most.
    assert "failing: adam 1e6 1.40x (bandwidth allows <= 2.00x)" in text


def test_many_tensor_ratio_is_taken_at_equal_machine_speed() -> None:
    """The two cases of the ratio are timed seconds apart; their probes say how fast the
    machine was each time, and the ratio is corrected to equal speed."""
    many, million = bench.Layout(500, 2000), bench.Layout(1, 10**6)
    single = _case("adam", million, {"fusedoptim": 1.0})
    several = _case("adam", many, {"fusedoptim": 1.8})
    moved = 28 * 10**6  # bytes of one probe step (Adam's traffic, float32, 1M elements)
    single.probe = bench.Timing([moved / 40e9] * 3, 1, 5)  # 40 GB/s
    several.probe = bench.Timing([moved / 20e9] * 3, 1, 5)  # the machine at half speed
    assert math.isclose(several.probe_gbs or 0, 20.0)
    target = _target(bench.evaluate_targets(_report([single, several])), "<= 1.5x the time")
    ((label, ratio, passed),) = target.cases
    assert label == "adam" and math.isclose(ratio, 0.9) and passed
    assert target.uncorrected == {"adam": pytest.approx(1.8)}
    line = bench.format_targets([target], 2)
    assert "[met]" in line and "as timed, worst 1.80x (adam)" in line

    # Without probes (in-cache runs, or an older report) the raw ratio is what counts.
    single.probe = several.probe = None
    target = _target(bench.evaluate_targets(_report([single, several])), "<= 1.5x the time")
    assert target.cases == [("adam", pytest.approx(1.8), False)] and not target.uncorrected


def test_out_of_cache_bandwidth_share_uses_the_probe_timed_alongside() -> None:
    case = _case("sgd", bench.Layout(1, 10**7), {"fusedoptim": 0.4})  # 12 B / 0.4 ns = 30 GB/s
    report = _report([case], bandwidth=40.0)
    assert math.isclose(report.bandwidth_fraction(case) or 0, 0.75)  # the run's probe
    case.probe = bench.Timing([3 * 4 * 10**7 / 32e9] * 3, 1, 3)  # 32 GB/s alongside
    assert math.isclose(report.bandwidth_fraction(case) or 0, 30 / 32)


def _divider(report: bench.Report, optimizer: str, ns: float) -> None:
    """Give ``report`` a measured rate of the square-root and division units for the operations
    ``optimizer``'s float32 kernel gives them."""
    ops = bench.divider_ops(bench.OPTIMIZERS[optimizer], "float32")
    rate = bench.DividerRate(2, "float32", *ops, ns)
    report.divider[rate.key] = rate


@pytest.fixture(
    params=[frozenset(), frozenset({"float32"})], ids=["sqrt-on-divider", "sqrt-on-fma"]
)
def sqrt_units(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> frozenset[str]:
    """Both kinds of build: square roots on the divider, or float32's on the FMA units."""
    monkeypatch.setattr(bench, "sqrt_on_fma_units", lambda: request.param)
    return request.param


def test_divider_ops_leave_out_square_roots_on_the_fma_units(sqrt_units: frozenset[str]) -> None:
    ops = {name: bench.divider_ops(config, "float32") for name, config in bench.OPTIMIZERS.items()}
    on_fma = "float32" in sqrt_units
    assert (
        ops["rmsprop"]
        == ops["adagrad"]
        == ops["rmsprop_momentum"]
        == ops["rmsprop_centered"]
        == ((0, 1) if on_fma else (1, 1))
    )
    assert ops["adadelta"] == ((0, 1) if on_fma else (2, 1))
    assert ops["adam"] == ops["adam_amsgrad"] == ops["adamw"] == ((0, 2) if on_fma else (1, 2))
    assert ops["sgd"] == (0, 0)
    # A NumPy dtype (as the array pools hold) is the same as its name.
    assert ops == {
        name: bench.divider_ops(config, np.dtype("float32"))
        for name, config in bench.OPTIMIZERS.items()
    }
    float64 = {
        name: bench.divider_ops(config, "float64") for name, config in bench.OPTIMIZERS.items()
    }
    assert float64 == {name: config.divider_ops for name, config in bench.OPTIMIZERS.items()}
    names = list(bench.OPTIMIZERS)
    assert (
        bench.divider_ops_name((1, 2), "float64", names) == "sqrt+2 div (Adam, Adam amsgrad, AdamW)"
    )
    assert bench.divider_ops_name((2, 1), "float64", names) == "2 sqrt+div (AdaDelta)"
    assert bench.divider_ops_name((0, 2), "float64", names) == "2 div"


def test_the_build_reports_where_square_roots_run() -> None:
    expected = {"float32"} if fusedoptim.build_info()["isa"] == "avx512" else set()
    assert bench.sqrt_on_fma_units() == expected


def test_sqrt_div_units_bound_in_cache_speedups(sqrt_units: frozenset[str]) -> None:
    """In cache the bandwidth limits nothing, but the square roots and divisions still take
    their time: torch's 1.0 ns against RMSprop's 0.25 ns of sqrt+div allows 4x at most."""
    rmsprop = _case("rmsprop", bench.Layout(1, 10**5), {"fusedoptim": 0.3, "torch": 1.0})
    sgd = _case("sgd", bench.Layout(1, 10**5), {"fusedoptim": 0.1, "torch": 1.0})
    report = _report([rmsprop, sgd])
    assert report.speedup_bound(rmsprop, "torch") is None  # nothing measured yet
    _divider(report, "rmsprop", 0.25)
    _divider(report, "adam", 0.5)  # Adam's: not RMSprop's
    assert report.divider_floor(rmsprop) == 0.25 and report.divider_floor(sgd) is None
    assert report.bound_limit(rmsprop) == "divider" and report.bound_limit(sgd) is None
    assert math.isclose(report.speedup_bound(rmsprop, "torch") or 0, 4.0)
    assert report.speedup_bound(sgd, "torch") is None  # SGD has no square roots or divisions

    target = _target(bench.evaluate_targets(report), "RMSprop and AdaDelta")
    assert target.status == "NOT MET"  # 1.0 / 0.3 = 3.3x
    assert target.bounds == {"rmsprop 1e5": pytest.approx(4.0)}
    assert target.limits == {"rmsprop 1e5": "divider"}
    text = bench.format_targets(bench.evaluate_targets(report), 2)
    assert "failing: rmsprop 1e5 3.33x (sqrt/div units allow <= 4.00x)" in text

    # The probe timed alongside the case, when it ran, sets the floor, not the run's fastest.
    rmsprop.divider_work = 10**6
    rmsprop.divider = bench.Timing([0.28e-9 * 10**6] * 3, 1, 1)
    assert math.isclose(rmsprop.divider_ns or 0, 0.28)
    assert math.isclose(report.speedup_bound(rmsprop, "torch") or 0, 1.0 / 0.28)


def test_the_slower_floor_sets_the_bound_and_none_is_below_fusedoptim(
    sqrt_units: frozenset[str],
) -> None:
    adam = _case("adam", bench.Layout(1, 10**6), {"fusedoptim": 1.0, "torch": 1.4})
    report = _report([adam], bandwidth=40.0)  # 28 B / 40 GB/s = 0.7 ns
    assert report.floors(adam) == {"bandwidth": pytest.approx(0.7)}
    _divider(report, "adam", 0.8)
    assert report.floors(adam) == {"bandwidth": pytest.approx(0.7), "divider": 0.8}
    assert report.bound_limit(adam) == "divider"
    assert math.isclose(report.speedup_bound(adam, "torch") or 0, 1.4 / 0.8)
    # A floor measured at a slow moment can exceed what fusedoptim then did: it is capped there,
    # so a bound never says fusedoptim's own speed-up was impossible.
    _divider(report, "adam", 1.25)
    assert math.isclose(report.speedup_bound(adam, "torch") or 0, 1.4)
    assert "failing: adam 1e6 1.40x (sqrt/div units allow <= 1.40x)" in bench.format_targets(
        bench.evaluate_targets(report), 2
    )


def test_run_measures_the_units_each_optimizer_needs(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    small_machine: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alongside = []  # the operations of each probe timed alongside a case
    stepper = bench.divider_stepper

    def recording_stepper(threads: int, dtype: object, ops: tuple[int, int]) -> bench.Stepper:
        alongside.append(ops)
        return stepper(threads, dtype, ops)

    monkeypatch.setattr(bench, "divider_stepper", recording_stepper)
    path = tmp_path / "divider.json"
    status, out, _ = run_main(
        capsys, "--optimizers", "sgd,adam,adadelta", "--sizes", "1000", "--repeat", "3",
        "--threads", "1", "--contenders", "numpy,fusedoptim", "--json", str(path),
    )  # fmt: skip
    assert status == 0
    data = json.loads(path.read_text())
    rates = {(r["square_roots"], r["divisions"]): r for r in data["divider"]}
    # Adam's and AdaDelta's operations on the units (without the square roots where this build
    # takes them on the FMA units); SGD needs none.
    adam_ops = bench.divider_ops(bench.OPTIMIZERS["adam"], "float32")
    assert set(rates) == {adam_ops, bench.divider_ops(bench.OPTIMIZERS["adadelta"], "float32")}
    assert set(alongside) == set(rates)  # the same operations alongside the cases
    # Measured before and after the cases; the fastest sample of all is kept.
    runs = [r for r in data["divider_runs"] if (r["square_roots"], r["divisions"]) == adam_ops]
    assert len(runs) == 2 and all(len(r["samples"]) == 3 for r in runs)
    fastest = min(min(r["samples"]) / r["elements"] * 1e9 for r in runs)
    assert math.isclose(rates[adam_ops]["ns_per_element"], fastest)
    cases = {case["optimizer"]: case for case in data["cases"]}
    assert cases["sgd"]["divider_floor_ns"] is None and cases["sgd"]["bound_limit"] is None
    assert cases["sgd"]["floors_ns"] == {}
    assert cases["sgd"]["divider_probe"] is None
    for name in ("adam", "adadelta"):
        case = cases[name]
        # Each case is held to the divider probe timed alongside it (its median).
        probe = case["divider_probe"]
        assert len(probe["samples"]) == 3 and probe["copies"] == 1
        work = bench.DIVIDER_ELEMENTS_PER_THREAD * bench.DIVIDER_REPEATS  # one thread
        assert case["divider_probe_work"] == work
        assert case["divider_floor_ns"] == pytest.approx(
            np.median(probe["samples"]) / case["divider_probe_work"] * 1e9
        )
        assert case["bound_limit"] == "divider"
        floor = min(case["divider_floor_ns"], case["ns_per_element"]["fusedoptim"])
        assert case["floors_ns"] == {"divider": pytest.approx(floor)}  # in cache: no bandwidth
        assert case["speedup_bound"]["numpy"] == pytest.approx(
            case["ns_per_element"]["numpy"] / floor
        )
    name = "2 div (Adam)" if adam_ops == (0, 2) else "sqrt+2 div (Adam)"
    (line,) = [x for x in out.splitlines() if x.startswith("sqrt/div units, 1 thread, float32:")]
    assert f"{name} {rates[adam_ops]['ns_per_element']:.3g}" in line


def test_targets_not_measured_when_the_cases_are_missing() -> None:
    report = _report([_case("adam", bench.Layout(1, 1000), {"fusedoptim": 1.0})])
    statuses = {target.description: target.status for target in bench.evaluate_targets(report)}
    assert all(status == "not measured" for status in statuses.values())


def test_table_rows_speedups_and_bandwidth() -> None:
    cold = _case("adam", bench.Layout(1, 10**6), {"fusedoptim": 0.7, "numpy": 7.7, "torch": 1.4})
    hot = _case("sgd", bench.Layout(1, 1000), {"fusedoptim": 0.5, "numpy": 1.0, "torch": 2.0})
    table = bench.format_table(_report([cold, hot], bandwidth=50.0))
    rows = table_rows(table)
    assert rows[0][:5] == ["adam", "1 tensor", "1,000,000", "float32", "2"]
    # ns/el for numpy, torch, fusedoptim; speed-ups over numpy and torch; GB/s; share of 50 GB/s
    assert rows[0][5:] == ["7.70", "1.40", "0.700", "11.0x", "2.00x", "40.0", "80%"]
    assert rows[1][-1] == "48% (c)"  # in cache: marked, 12 B / 0.5 ns = 24 GB/s of 50
    assert "50.0 GB/s in place" in table


# --------------------------------------------------------------------------------------------
# Whole runs of the command (tiny).


def test_run_prints_table_and_writes_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, small_machine: None
) -> None:
    path = tmp_path / "results.json"
    status, out, err = run_main(
        capsys,
        "--optimizers", "adam,rmsprop_centered", "--sizes", "1000,3x200", "--repeat", "3",
        "--contenders", "numpy,fusedoptim", "--threads", "1,all", "--json", str(path),
    )  # fmt: skip
    assert status == 0
    assert "\r" not in err  # no progress bar when stderr is not a terminal
    rows = table_rows(out)
    combos = {(row[0], row[1], row[4]) for row in rows}
    threads_all = str(bench.usable_cores())
    assert combos == {
        (name, layout, threads)
        for name in ("adam", "rmsprop_centered")
        for layout in ("1 tensor", "3 x 200")
        for threads in {"1", threads_all}
    }
    assert "targets (float32" in out and "wall time" in out

    data = json.loads(path.read_text())
    assert data["command"].startswith("fusedoptim-bench --optimizers adam,rmsprop_centered")
    machine = data["machine"]
    assert machine["build_info"]["isa"] in machine["build_info"]["isa_supported"]
    assert machine["numpy"] == np.__version__ and machine["cpu"]
    assert {entry["threads"] for entry in data["bandwidth"]} == {1, int(threads_all)}
    assert len(data["cases"]) == len(rows)
    for case in data["cases"]:
        ns = case["ns_per_element"]
        assert set(ns) == {"numpy", "fusedoptim"}
        assert all(value > 0 and math.isfinite(value) for value in ns.values())
        assert math.isclose(case["speedup"]["numpy"], ns["numpy"] / ns["fusedoptim"])
        assert math.isclose(case["gbs"], case["bytes_per_element"] / ns["fusedoptim"])
        timing = case["timings"]["fusedoptim"]
        assert len(timing["samples"]) == 3 and timing["copies"] == 1
        assert math.isclose(ns["fusedoptim"], np.median(timing["samples"]) / case["elements"] * 1e9)
    assert [target["status"] for target in data["targets"]].count("not measured") >= 7


@pytest.mark.parametrize("cold_from", [None, "1500", "never"])
def test_out_of_cache_run_cycles_copies(
    cold_from: str | None,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    small_machine: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench, "COLD_MIN_ELEMENTS", 1000)
    path = tmp_path / "cold.json"
    option = [] if cold_from is None else ["--cold-from", cold_from]
    status, out, _ = run_main(
        capsys, "--optimizers", "sgd", "--sizes", "2000", "--repeat", "5",
        "--contenders", "fusedoptim", "--threads", "1", "--json", str(path), *option,
    )  # fmt: skip
    assert status == 0
    (case,) = json.loads(path.read_text())["cases"]
    copies = case["timings"]["fusedoptim"]["copies"]
    share = table_rows(out)[0][-1]
    if cold_from == "never":
        assert not case["out_of_cache"] and copies == 1 and case["probe"] is None
        assert share.endswith("% (c)") and "Every case runs in cache" in out
    else:
        copy_bytes = 2 * 2000 * 4
        assert case["out_of_cache"] and (copies - 1) * copy_bytes >= TINY_CACHE
        # The bandwidth probe ran alongside, on copies of its own, and sets the share.
        probe = case["probe"]
        assert len(probe["samples"]) == 5 and (probe["copies"] - 1) * copy_bytes >= TINY_CACHE
        assert math.isclose(case["bandwidth_fraction"], case["gbs"] / case["probe_gbs"])
        assert share.endswith("%") and "(c)" not in share  # not marked in-cache


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "rmsprop_centered", "adam_amsgrad"])
def test_out_of_cache_probe_moves_the_traffic_of_its_update(
    optimizer: str, small_machine: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The probe timed alongside a case reads and writes as many arrays as the update does,
    each one of the case's length: its bandwidth is the one that case's traffic can reach."""
    monkeypatch.setattr(bench, "COLD_MIN_ELEMENTS", 1000)
    calls: list[tuple[int, frozenset[int], bool]] = []
    stream_update = bench._core.stream_update

    def recording(written: list[np.ndarray], read: np.ndarray, scalar: float) -> None:
        distinct = len({array.ctypes.data for array in (*written, read)}) == len(written) + 1
        sizes = frozenset(array.size for array in (*written, read))
        calls.append((len(written), sizes, distinct))
        stream_update(written, read, scalar)

    monkeypatch.setattr(bench._core, "stream_update", recording)
    path = tmp_path / "probe.json"
    status = bench.main(
        ["--optimizers", optimizer, "--sizes", "2000", "--repeat", "3", "--threads", "1",
         "--contenders", "fusedoptim", "--json", str(path)]
    )  # fmt: skip
    assert status == 0 and calls
    arrays = bench.bytes_per_element(optimizer, np.float32) // 4  # read + written
    assert set(calls) == {((arrays - 1) // 2, frozenset({2000}), True)}
    (case,) = json.loads(path.read_text())["cases"]
    moved = bench.bytes_per_element(optimizer, np.float32) * 2000
    assert case["probe_gbs"] == pytest.approx(
        moved / statistics.median(case["probe"]["samples"]) / 1e9
    )


def test_only_numpy_copies_hold_state_arrays(
    capsys: pytest.CaptureFixture[str], small_machine: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fusedoptim's (and torch's) optimizers create their own state: zeroed arrays for them in
    # the pool would be memory and reset time for nothing (gigabytes out of cache).
    requested: list[tuple[str, int]] = []
    copies = bench.ArrayPool.copies

    def recording(self: bench.ArrayPool, count: int, states: int) -> list[bench.ProblemCopy]:
        result = copies(self, count, states)
        requested.append((self.layout.name, states))
        return result

    monkeypatch.setattr(bench.ArrayPool, "copies", recording)
    status, _, _ = run_main(
        capsys, "--optimizers", "adam", "--sizes", "300", "--repeat", "3",
        "--contenders", "numpy,fusedoptim", "--threads", "1",
    )  # fmt: skip
    assert status == 0
    assert sorted(requested) == [("1 tensor", 0), ("1 tensor", 2)]  # fusedoptim, NumPy
    assert [bench.pool_states(name, bench.OPTIMIZERS["adam"]) for name in bench.CONTENDERS] == [
        2 if name == "numpy" else 0 for name in bench.CONTENDERS
    ]


def test_json_carries_each_out_of_cache_speedup_bound(
    tmp_path: Path, small_machine: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench, "COLD_MIN_ELEMENTS", 1000)
    path = tmp_path / "bound.json"
    status = bench.main(
        ["--optimizers", "sgd", "--sizes", "2000", "--repeat", "3", "--threads", "1",
         "--contenders", "numpy,fusedoptim", "--json", str(path)]
    )  # fmt: skip
    assert status == 0
    (case,) = json.loads(path.read_text())["cases"]
    floor = case["bytes_per_element"] / max(case["probe_gbs"], case["gbs"])
    assert case["floors_ns"] == {"bandwidth": pytest.approx(floor)}
    assert case["speedup_bound"] == {
        "numpy": pytest.approx(case["ns_per_element"]["numpy"] / floor)
    }
    assert case["speedup"]["numpy"] <= case["speedup_bound"]["numpy"] * (1 + 1e-12)


def test_plot_writes_png(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, small_machine: None
) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "plot.png"
    status, out, _ = run_main(
        capsys, "--optimizers", "sgd,adam,adagrad", "--sizes", "1000,4000,5x100",
        "--repeat", "3", "--contenders", "numpy,fusedoptim", "--plot", str(path),
    )  # fmt: skip
    assert status == 0 and f"wrote {path}" in out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    height, width = imread(str(path)).shape[:2]
    assert width > height > 200  # three panels side by side


@pytest.mark.parametrize("others", [0.0, 1.0])
def test_disturbed_measurements_are_retried_then_marked(
    others: float,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    small_machine: None,
) -> None:
    """Other processes' CPU use (here faked) makes a measurement count as disturbed."""
    monkeypatch.setattr(bench.CpuMonitor, "stop", lambda self: others)
    waits: list[None] = []
    monkeypatch.setattr(bench, "wait_for_quiet", lambda **_: waits.append(None) or True)
    path = tmp_path / "out.json"
    status = bench.main(
        ["--optimizers", "sgd", "--sizes", "1000", "--repeat", "3", "--threads", "1",
         "--contenders", "numpy,fusedoptim", "--retries", "2", "--json", str(path)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0
    (case,) = json.loads(path.read_text())["cases"]
    attempts = {name: timing["attempts"] for name, timing in case["timings"].items()}
    row = table_rows(out)[0]
    if others:
        assert attempts == {"numpy": 3, "fusedoptim": 3}
        # Before each retry: the bandwidth before and after the cases, numpy (timed first, on
        # its own), then fusedoptim (with torch and the probe when they run, interleaved).
        assert len(waits) == 2 + 2 + 2 + 2
        assert row[5].endswith("*") and row[6].endswith("*")
        assert "WARNING: other processes used 1.00 cores on average during this run and " in out
    else:
        assert attempts == {"numpy": 1, "fusedoptim": 1} and not waits
        assert "*" not in " ".join(row) and "WARNING" not in out


def test_a_retry_waits_for_quiet_no_longer_than_the_budget_left(
    monkeypatch: pytest.MonkeyPatch, small_machine: None
) -> None:
    assert bench.RetryBudget(3.0).patience() == 3.0
    assert bench.RetryBudget(100.0).patience() == bench.QUIET_PATIENCE
    monkeypatch.setattr(bench.CpuMonitor, "stop", lambda self: 1.0)  # always disturbed
    patience: list[float] = []
    monkeypatch.setattr(bench, "wait_for_quiet", lambda **kw: patience.append(kw["patience"]))
    clock = iter(range(0, 10**6, 2))  # every perf_counter call: 2 s later
    monkeypatch.setattr(bench.time, "perf_counter", lambda: float(next(clock)))
    settings = bench.Settings(["sgd"], [bench.Layout(1, 100)], ["float32"], [1], ["fusedoptim"],
                              repeat=3, retries=5, retry_seconds=7.0)  # fmt: skip
    bench.run(settings, None)
    assert patience and all(0 < value <= 7.0 for value in patience)
    assert patience == sorted(patience, reverse=True)  # what is left only shrinks


def test_retries_stop_when_their_time_is_spent(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    small_machine: None,
) -> None:
    monkeypatch.setattr(bench.CpuMonitor, "stop", lambda self: 1.0)  # always disturbed
    waits: list[None] = []
    monkeypatch.setattr(bench, "wait_for_quiet", lambda **_: waits.append(None) or True)
    path = tmp_path / "out.json"
    status = bench.main(
        ["--optimizers", "sgd,adam", "--sizes", "1000", "--repeat", "3", "--threads", "1",
         "--contenders", "fusedoptim", "--retries", "2", "--retry-time", "0",
         "--json", str(path)]
    )  # fmt: skip
    assert status == 0
    cases = json.loads(path.read_text())["cases"]
    assert [case["timings"]["fusedoptim"]["attempts"] for case in cases] == [1, 1]
    assert not waits
    assert "measurement(s) (marked *) even after 0 repeat(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("probes", "chosen"),
    [([(30.0, 0.0), (40.0, 0.0)], 40.0), ([(40.0, 0.0), (30.0, 0.0)], 40.0),
     ([(30.0, 0.0), (40.0, 0.9)], 30.0), ([(30.0, 0.9), (40.0, 0.9)], 40.0)],
)  # fmt: skip
def test_bandwidth_is_the_best_quiet_probe(
    probes: list[tuple[float, float]],
    chosen: float,
    monkeypatch: pytest.MonkeyPatch,
    small_machine: None,
) -> None:
    """Measured before and after the cases, on the same arrays (made once: faulting hundreds of
    megabytes in costs seconds); the highest undisturbed one counts (the highest makes every
    bandwidth share smaller, so the choice can only understate fusedoptim)."""
    results = iter(probes)
    seen: list[tuple[np.ndarray, ...]] = []

    def fake_probe(
        threads: int, cache_bytes: int, repeat: int | None, arrays: tuple[np.ndarray, ...]
    ) -> bench.Bandwidth:
        seen.append(arrays)
        gbs, others = next(results)
        return bench.Bandwidth(threads, gbs, gbs / 2, 1, others=others)

    monkeypatch.setattr(bench, "measure_bandwidth", fake_probe)
    settings = bench.Settings(["sgd"], [bench.Layout(1, 100)], ["float32"], [1], ["fusedoptim"], 3)
    report = bench.run(settings, None)
    assert report.bandwidth[1].in_place_gbs == chosen
    assert [run.in_place_gbs for run in report.bandwidth_runs] == [gbs for gbs, _ in probes]
    first, second = seen
    assert first is second and len(first) == 3
    assert all(a.dtype == np.float32 and a.size >= 2**14 and (a == 1).all() for a in first)


def test_bandwidth_arrays_are_ones_split_among_the_cores(
    monkeypatch: pytest.MonkeyPatch, small_machine: None
) -> None:
    monkeypatch.setattr(bench, "usable_cores", lambda: 3)  # pieces of unequal length
    arrays = bench.bandwidth_arrays(1000)
    assert [a.size for a in arrays] == [2**14] * 3
    assert all(a.dtype == np.float32 and (a == 1).all() for a in arrays)
    probe = bench.measure_bandwidth(1, 1000, 3, arrays)
    assert probe.elements == 2**14 and probe.in_place_gbs > 0


def test_progress_on_a_terminal(monkeypatch: pytest.MonkeyPatch, small_machine: None) -> None:
    class Terminal:
        def __init__(self) -> None:
            self.text = ""

        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

    monkeypatch.setitem(sys.modules, "tqdm", None)  # the plain fallback
    terminal = Terminal()
    settings = bench.Settings(["sgd"], [bench.Layout(1, 100)], ["float32"], [1], ["fusedoptim"], 3)
    bench.run(settings, None, progress_stream=terminal)
    assert "\r[1/3] bandwidth, 1 thread(s)" in terminal.text
    assert "\r[2/3] sgd 1e2 float32 1t fusedoptim" in terminal.text
    assert "\r[3/3] bandwidth again, 1 thread(s)" in terminal.text
    assert terminal.text.endswith("\r")  # the line is cleared at the end


def test_without_torch_default_run_skips_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, small_machine: None
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    status, out, _ = run_main(capsys, "--optimizers", "sgd", "--sizes", "1000", "--repeat", "3")
    assert status == 0
    assert "torch ns/el" not in out
    assert 'pip install "fusedoptim[torch]"' in out


# --------------------------------------------------------------------------------------------
# Errors: found before anything runs, with a message that names the problem.


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--optimizers", "adamx"], "unknown optimizer 'adamx'; choose from: sgd,"),
        (["--optimizers", ","], "unknown optimizer (none given)"),
        (["--sizes", "0"], "--sizes: size must be a positive whole number of elements, got '0'"),
        (["--sizes", "1e3,1.5"], "got '1.5'"),
        (["--sizes", "abc"], "got 'abc'"),
        (["--sizes", "10x"], "got '10x'"),
        (["--sizes", "-5"], "got '-5'"),
        (["--dtype", "float16"], "--dtype: expected float32, float64 or both, got 'float16'"),
        (["--threads", "0"], "--threads: expected positive whole numbers or 'all', got '0'"),
        (["--threads", "two"], "got 'two'"),
        (["--repeat", "0"], "--repeat: must be at least 1, got 0"),
        (["--retries", "-1"], "--retries: must be at least 0, got -1"),
        (["--repeat", "x"], "argument --repeat: invalid int value: 'x'"),
        (["--min-time", "-1"], "--min-time: must be a positive number of seconds, got -1.0"),
        (["--contenders", "jax"], "unknown contender 'jax'; choose from: numpy, torch, fusedoptim"),
        (["--cold-from", "lots"], "--cold-from: size must be a positive whole number"),
        (["--json", "/nonexistent-dir/x.json"], "--json: directory '/nonexistent-dir' does not"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        bench.main(argv)
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_plot_without_matplotlib_says_how_to_get_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as raised:
        bench.main(["--plot", str(tmp_path / "x.png")])
    assert raised.value.code == 2
    assert 'pip install "fusedoptim[plot]"' in capsys.readouterr().err


def test_torch_asked_for_but_missing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(SystemExit):
        bench.main(["--contenders", "torch,fusedoptim"])
    assert 'torch is not installed: pip install "fusedoptim[torch]"' in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "count", "size"),
    [("1e3", 1, 1000), ("250000", 1, 250000), ("10_000", 1, 10000), ("500x2000", 500, 2000),
     ("4X1e3", 4, 1000), (" 7 ", 1, 7)],
)  # fmt: skip
def test_parse_size(text: str, count: int, size: int) -> None:
    assert bench.parse_size(text) == bench.Layout(count, size)


def test_module_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fusedoptim.bench", "--help"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for option in ("--optimizers", "--sizes", "--dtype", "--threads", "--repeat", "--json",
                   "--plot"):  # fmt: skip
        assert option in result.stdout


def test_spread_classify_sorts_misses_by_their_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """benchmarks/spread.py --classify, which RESULTS.md's counts come from: a miss is shown
    impossible only where its bound is below the target."""
    spec = importlib.util.spec_from_file_location(
        "spread", Path(__file__).parents[1] / "benchmarks" / "spread.py"
    )
    assert spec is not None and spec.loader is not None
    spread = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(spread)
    target = {
        "description": "1M one tensor: >= 1.5x faster than torch fused=True",
        "threshold": 1.5,
        "cases": [
            {"case": "sgd 1e6", "passed": True, "value": 1.6},
            {"case": "adam 1e6", "passed": False, "value": 1.4},
            {"case": "adagrad 1e6", "passed": False, "value": 1.4},
        ],
        "bounds": {"adam 1e6": 1.45, "adagrad 1e6": 1.55},
        "bound_limits": {"adam 1e6": "bandwidth", "adagrad 1e6": "bandwidth"},
    }
    paths = []
    for k in range(2):
        path = tmp_path / f"run{k}.json"
        path.write_text(json.dumps({"targets": [target], "settings": {"threads": [2]}}))
        paths.append(str(path))
    spread.main(["--classify", *paths])
    out = capsys.readouterr().out
    assert "6 case-runs; met 2 (1.60 to 1.60), shown impossible 2, open 2" in out
    assert "- impossible: run 2, adam 1e6: 1.40 of 1.45 (97%, bandwidth)" in out
    assert "- open: run 1, adagrad 1e6: 1.40 of 1.55 (90%, bandwidth)" in out


def test_spread_paired_shares_pair_samples_of_one_round(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """benchmarks/spread.py --paired: the ratio of medians beside the median of per-round
    ratios, which cancels a change of the host's speed between rounds; cases whose two sample
    counts differ (rounds unknown) are left out."""
    spec = importlib.util.spec_from_file_location(
        "spread", Path(__file__).parents[1] / "benchmarks" / "spread.py"
    )
    assert spec is not None and spec.loader is not None
    spread = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(spread)
    # The host halves its speed after two rounds, except for the probe's turn in round 3: in
    # every other round the kernel takes 1.25x the probe's time (share 80%), while the medians
    # compare a fast moment of the probe with a slow one of the kernel.
    mine = [1.25, 1.25, 2.5, 2.5, 2.5]
    probe = [1.0, 1.0, 1.0, 2.0, 2.0]
    cases = [
        {"optimizer": "adam", "layout": "1e7", "out_of_cache": True,
         "timings": {"fusedoptim": {"samples": mine}}, "probe": {"samples": probe}},
        {"optimizer": "sgd", "layout": "1e7", "out_of_cache": True,
         "timings": {"fusedoptim": {"samples": [1.0, 1.0]}}, "probe": {"samples": [1.0]}},
        {"optimizer": "adam", "layout": "1e5", "out_of_cache": False,
         "timings": {"fusedoptim": {"samples": [1.0]}}, "probe": None},
    ]  # fmt: skip
    path = tmp_path / "run1.json"
    path.write_text(json.dumps({"cases": cases}))
    spread.main(["--paired", str(path)])
    out = capsys.readouterr().out
    # medians: probe 1.0, fusedoptim 2.5 -> 40%; per-round ratios 0.8, 0.8, 0.4, 0.8, 0.8 -> 80%
    assert "**1e7**" in out and "below 90%: 1 / 1" in out
    assert "| Adam | 40 / 80 |" in out
    assert "| SGD |  |" in out  # 2 samples against 1: not paired
    assert "1e5" not in out
