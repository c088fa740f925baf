"""fusedoptim.torch under torch.distributed: DDP and ZeroRedundancyOptimizer, two processes.

The test starts two worker processes itself (tests/_distributed_worker.py) on the loopback
interface with the gloo backend, waits for them with a timeout (a hang fails the test instead of
blocking CI), and compares what they trained with a single-process run on the same global batches.

In float64 the distributed runs agree with the single-process one to rounding: the two halves'
gradients are averaged by an all-reduce rather than summed in one mean, which can move the last
bit, and eight Adam steps keep such differences near 1e-15 of the parameters' scale; the test
allows 1e-12. Missing synchronisation, a rank updating the wrong shard or a lost state would move
parameters by 1e-3 or more.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover - every CPU wheel has it
    pytest.skip("torch.distributed is not available", allow_module_level=True)

import fusedoptim.torch as ft  # noqa: E402

WORKER = Path(__file__).with_name("_distributed_worker.py")
WORLD_SIZE = 2
TIMEOUT_S = 120
RTOL = 1e-12


def _load_worker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_distributed_worker", WORKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The results of both ranks (one launch serves every test of this module)."""
    out = tmp_path_factory.mktemp("distributed")
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    port = _free_port()
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                "--rank",
                str(rank),
                "--world-size",
                str(WORLD_SIZE),
                "--port",
                str(port),
                "--out",
                str(out),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank in range(WORLD_SIZE)
    ]
    outputs = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=TIMEOUT_S)
            outputs.append(output)
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        logs = [process.communicate()[0] for process in processes]
        pytest.fail(f"the distributed workers did not finish in {TIMEOUT_S} s:\n" + "\n".join(logs))
    for rank, (process, output) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, f"rank {rank} failed:\n{output}"
    return [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]


@pytest.fixture(scope="module")
def single_process() -> dict[str, list[Any]]:
    worker = _load_worker()
    return {
        "fusedoptim": worker.train_single_process(ft.AdamW),
        "torch.optim": worker.train_single_process(
            lambda params, **options: torch.optim.AdamW(params, foreach=False, **options)
        ),
    }


def _assert_params_close(actual: list[Any], expected: list[Any], what: str) -> None:
    assert len(actual) == len(expected)
    for index, (got, want) in enumerate(zip(actual, expected)):
        scale = want.abs().max().item()
        torch.testing.assert_close(
            got, want, rtol=RTOL, atol=RTOL * scale, msg=f"{what}: parameter {index}"
        )


RUNS = ["ddp", "ddp_bucket_view", "zero", "zero_bucket_view", "zero_resumed"]


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("reference", ["fusedoptim", "torch.optim"])
def test_two_processes_match_one_process_on_the_global_batch(
    distributed_results: list[dict[str, Any]],
    single_process: dict[str, list[Any]],
    run: str,
    reference: str,
) -> None:
    expected = single_process[reference]
    initial = [p.detach() for p in _load_worker().make_model().parameters()]
    # The runs must have trained, or matching the reference would prove nothing.
    assert all((p - q).abs().max() > 1e-3 for p, q in zip(expected, initial))
    for rank, results in enumerate(distributed_results):
        _assert_params_close(results[run], expected, f"{run}, rank {rank} vs {reference}")


@pytest.mark.parametrize("run", ["ddp", "ddp_bucket_view"])
def test_ddp_gradients_reach_the_core_by_address(
    distributed_results: list[dict[str, Any]], run: str
) -> None:
    """DDP's gradients (own tensors, or views into its buckets) are read in place."""
    worker = _load_worker()
    tensors = len(list(worker.make_model().parameters()))
    for results in distributed_results:
        assert results["gradient_kinds"][run] == {"address": worker.STEPS * tensors, "array": 0}


@pytest.mark.parametrize("run", RUNS)
def test_ranks_hold_identical_parameters(
    distributed_results: list[dict[str, Any]], run: str
) -> None:
    first, second = (results[run] for results in distributed_results)
    for got, want in zip(first, second):
        assert torch.equal(got, want)
