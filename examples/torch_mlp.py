"""Train a small PyTorch MLP on the CPU twice: torch.optim.AdamW(fused=True), then fusedoptim's.

The only difference between the two runs is the optimizer's import::

    from torch.optim import AdamW          # run 1 (with fused=True, torch's fastest CPU path)
    from fusedoptim.torch import AdamW     # run 2

Both start from the same weights and see the same batches, so their loss curves should agree to
float32 rounding. The script prints each run's final loss and the median time of
``optimizer.step()``.

Run::

    python examples/torch_mlp.py              # ~10 s on two cores
    python examples/torch_mlp.py --steps 500 --threads 4
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from typing import Any

import torch

import fusedoptim
import fusedoptim.torch


def make_data(samples: int, features: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and the labels a random "teacher" network gives them: learnable, not trivial."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(samples, features, generator=generator)
    teacher = torch.randn(features, classes, generator=generator)
    labels = torch.tanh(inputs @ teacher + 0.5 * inputs[:, :classes] ** 2).argmax(dim=1)
    return inputs, labels


def make_model(features: int, hidden: int, classes: int) -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Linear(features, hidden),
        torch.nn.LayerNorm(hidden),
        torch.nn.GELU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.LayerNorm(hidden),
        torch.nn.GELU(),
        torch.nn.Linear(hidden, classes),
    )


def train(
    model: torch.nn.Module,
    optimizer: Any,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    batch_size: int,
) -> tuple[list[float], list[float]]:
    """Losses and ``optimizer.step()`` times of each step."""
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(2))
    losses, step_times = [], []
    for step in range(steps):
        start = (step * batch_size) % (len(inputs) - batch_size)
        batch = order[start : start + batch_size]
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs[batch]), labels[batch])
        loss.backward()
        began = time.perf_counter()
        optimizer.step()
        step_times.append(time.perf_counter() - began)
        losses.append(loss.item())
    return losses, step_times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--threads", type=int, default=None, help="threads for both libraries")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        fusedoptim.set_num_threads(args.threads)

    features, classes = 64, 10
    inputs, labels = make_data(8192, features, classes)
    initial = make_model(features, args.hidden, classes)
    parameters = sum(p.numel() for p in initial.parameters())
    print(
        f"MLP with {len(list(initial.parameters()))} parameter tensors, {parameters:,} parameters; "
        f"{args.steps} steps of batch {args.batch_size}; threads: torch "
        f"{torch.get_num_threads()}, fusedoptim {fusedoptim.get_num_threads()}"
    )

    runs = {
        "torch.optim.AdamW(fused=True)": lambda params: torch.optim.AdamW(
            params, lr=1e-3, weight_decay=1e-2, fused=True
        ),
        "fusedoptim.torch.AdamW": lambda params: fusedoptim.torch.AdamW(
            params, lr=1e-3, weight_decay=1e-2
        ),
    }
    for name, make_optimizer in runs.items():
        model = copy.deepcopy(initial)
        losses, step_times = train(
            model, make_optimizer(model.parameters()), inputs, labels, args.steps, args.batch_size
        )
        # Averaged over the last steps, because single-batch losses are noisy.
        tail = statistics.fmean(losses[-20:])
        print(
            f"{name:32s} loss {losses[0]:.4f} -> {tail:.4f} (mean of the last 20 steps); "
            f"optimizer.step() median {statistics.median(step_times) * 1e3:.3f} ms"
        )


if __name__ == "__main__":
    main()
