"""One rank of the two-process runs of tests/test_torch_distributed.py (not a test module itself).

Run by the test as ``python _distributed_worker.py --rank R --world-size 2 --port P --out DIR``;
joins a gloo process group on 127.0.0.1 and trains the same model three ways, each rank on its
half of every global batch:

* ``ddp``: ``DistributedDataParallel`` + ``fusedoptim.torch.AdamW``;
* ``ddp_bucket_view``: the same with ``gradient_as_bucket_view=True``;
* ``zero``: ``DistributedDataParallel`` + ``ZeroRedundancyOptimizer(optimizer_class=AdamW)``;
* ``zero_bucket_view``: the same with ``parameters_as_bucket_view=True``;
* ``zero_resumed``: as ``zero``, but after half the steps the sharded state is consolidated on
  rank 0, sent to every rank and loaded into a new ``ZeroRedundancyOptimizer`` that finishes the
  run (ZeRO's ``load_state_dict`` writes straight into the local optimizer's ``state``).

The final parameters of each run go to ``DIR/rank{R}.pt``, with, for the two DDP runs, how
many gradients reached the compiled core by address and how many as arrays. The test computes
the single-process run on the whole batches with :func:`train_single_process` and compares.
"""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import fusedoptim
import fusedoptim.torch as fused_torch

STEPS = 8
GLOBAL_BATCH = 16
DTYPE = torch.float64
OPTIONS: dict[str, Any] = {"lr": 0.02, "weight_decay": 0.1, "amsgrad": True}


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 12), torch.nn.Tanh(), torch.nn.LayerNorm(12), torch.nn.Linear(12, 2)
    ).to(DTYPE)


def make_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(STEPS, GLOBAL_BATCH, 5, generator=generator, dtype=DTYPE)
    targets = torch.randn(STEPS, GLOBAL_BATCH, 2, generator=generator, dtype=DTYPE)
    return list(zip(inputs, targets))


def train_single_process(optimizer_class: Any) -> list[torch.Tensor]:
    """The reference: one process, whole batches."""
    model = make_model()
    optimizer = optimizer_class(model.parameters(), **OPTIONS)
    for x, y in make_batches():
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def _train(
    model: torch.nn.Module, optimizer: Any, batches: list[Any], rank: int, world: int
) -> None:
    shard = GLOBAL_BATCH // world
    for x, y in batches:
        optimizer.zero_grad()
        local = slice(rank * shard, (rank + 1) * shard)
        # Equal shards and DDP's gradient averaging give the gradient of the global mean loss.
        torch.nn.functional.mse_loss(model(x[local]), y[local]).backward()
        optimizer.step()


def _zero(model: torch.nn.Module, **options: Any) -> Any:
    # Imported here: torch.distributed.optim warns (DeprecationWarning from torch.jit.script) on
    # import, and the test process imports this module for the single-process reference only.
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return ZeroRedundancyOptimizer(
        model.parameters(), optimizer_class=fused_torch.AdamW, **options, **OPTIONS
    )


def _count_gradient_kinds(optimizer: Any) -> dict[str, int]:
    """Count, over the optimizer's kernel calls, the gradients passed by address and as arrays."""
    counts = {"address": 0, "array": 0}
    kernel = optimizer._kernel

    def counting(group: Any, core: Any, grads: list[Any], steps: Any, check_only: bool) -> None:
        if not check_only:
            for grad in grads:
                if grad is not None:
                    counts["address" if isinstance(grad, int) else "array"] += 1
        kernel(group, core, grads, steps, check_only)

    optimizer._kernel = counting  # an instance attribute: step() looks it up first
    return counts


def run(rank: int, world: int) -> dict[str, Any]:
    batches = make_batches()
    results: dict[str, Any] = {"gradient_kinds": {}}

    model = DistributedDataParallel(make_model())
    optimizer = fused_torch.AdamW(model.parameters(), **OPTIONS)
    results["gradient_kinds"]["ddp"] = _count_gradient_kinds(optimizer)
    _train(model, optimizer, batches, rank, world)
    results["ddp"] = [p.detach().clone() for p in model.parameters()]

    # Gradients as views into DDP's communication buckets: the same tensors every step.
    model = DistributedDataParallel(make_model(), gradient_as_bucket_view=True)
    optimizer = fused_torch.AdamW(model.parameters(), **OPTIONS)
    results["gradient_kinds"]["ddp_bucket_view"] = _count_gradient_kinds(optimizer)
    _train(model, optimizer, batches, rank, world)
    results["ddp_bucket_view"] = [p.detach().clone() for p in model.parameters()]

    model = DistributedDataParallel(make_model())
    optimizer = _zero(model)
    assert isinstance(optimizer.optim, fused_torch.AdamW)
    _train(model, optimizer, batches, rank, world)
    results["zero"] = [p.detach().clone() for p in model.parameters()]

    # Parameters moved into ZeRO's flat buckets (their .data replaced after construction).
    model = DistributedDataParallel(make_model())
    optimizer = _zero(model, parameters_as_bucket_view=True)
    _train(model, optimizer, batches, rank, world)
    results["zero_bucket_view"] = [p.detach().clone() for p in model.parameters()]

    model = DistributedDataParallel(make_model())
    optimizer = _zero(model)
    half = STEPS // 2
    _train(model, optimizer, batches[:half], rank, world)
    optimizer.consolidate_state_dict(to=0)
    shared: list[Any] = [optimizer.state_dict() if rank == 0 else None]
    dist.broadcast_object_list(shared, src=0)
    resumed = _zero(model)
    resumed.load_state_dict(shared[0])
    _train(model, resumed, batches[half:], rank, world)
    results["zero_resumed"] = [p.detach().clone() for p in model.parameters()]
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--world-size", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    # Two processes share the machine's cores: one thread each keeps them from competing.
    torch.set_num_threads(1)
    fusedoptim.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{args.port}",
        rank=args.rank,
        world_size=args.world_size,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        results = run(args.rank, args.world_size)
        torch.save(results, args.out / f"rank{args.rank}.pt")
        # Both ranks reach this point before either tears down: ZeRO's state consolidation ends
        # with point-to-point sends, and a rank that exits while its peer's gloo threads still
        # serve one aborts ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
