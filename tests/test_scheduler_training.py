"""Schedulers driving fusedoptim's optimizers in short real training loops.

A small linear regression with NumPy gradients. Each test checks that the loss falls, that the
learning rate (and momentum) in the optimizer follow the scheduler's closed form, and that the
optimizer really trains with them: the parameters equal a plain NumPy replay of the update
rule with the recorded hyperparameters.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from fusedoptim import lr_scheduler, schedules
from fusedoptim.optim import SGD, Adam

FEATURES = 4


class Regression:
    """y = X w* + b* + noise; mean squared error and its gradient in w and b."""

    def __init__(self, samples: int = 128, noise: float = 0.0, seed: int = 0) -> None:
        generator = np.random.default_rng(seed)
        self.inputs = generator.normal(size=(samples, FEATURES))
        self.true_weight = generator.normal(size=FEATURES)
        self.targets = self.inputs @ self.true_weight + 0.5
        self.targets += noise * generator.normal(size=samples)

    def loss(self, weight: np.ndarray, bias: np.ndarray) -> float:
        residual = self.inputs @ weight + bias[0] - self.targets
        return float(np.mean(residual**2))

    def gradients(
        self, weight: np.ndarray, bias: np.ndarray, rows: slice = slice(None)
    ) -> list[np.ndarray]:
        inputs, targets = self.inputs[rows], self.targets[rows]
        residual = inputs @ weight + bias[0] - targets
        return [2 * inputs.T @ residual / len(targets), np.array([2 * residual.mean()])]


def start() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(FEATURES), np.zeros(1)


def sgd_momentum_replay(problem: Regression, lrs: list[float], momentum: float) -> list[np.ndarray]:
    """SGD with momentum (torch's rule: the buffer starts at the first gradient)."""
    params = list(start())
    buffers: list[np.ndarray | None] = [None, None]
    for lr in lrs:
        for index, grad in enumerate(problem.gradients(*params)):
            previous = buffers[index]
            buffers[index] = grad.copy() if previous is None else momentum * previous + grad
            params[index] = params[index] - lr * buffers[index]
    return params


def adam_replay(
    problem: Regression, hyperparameters: list[tuple[float, float]], beta2: float, eps: float
) -> list[np.ndarray]:
    """Adam whose lr and beta1 change every step (bias corrections use the current beta1)."""
    params = list(start())
    first = [np.zeros_like(param) for param in params]
    second = [np.zeros_like(param) for param in params]
    for step, (lr, beta1) in enumerate(hyperparameters, start=1):
        for index, grad in enumerate(problem.gradients(*params)):
            first[index] = beta1 * first[index] + (1 - beta1) * grad
            second[index] = beta2 * second[index] + (1 - beta2) * grad * grad
            corrected_first = first[index] / (1 - beta1**step)
            corrected_second = second[index] / (1 - beta2**step)
            params[index] = params[index] - lr * corrected_first / (np.sqrt(corrected_second) + eps)
    return params


def test_sgd_with_warmup_then_cosine() -> None:
    problem = Regression()
    weight, bias = start()
    optimizer = SGD([weight, bias], lr=0.1, momentum=0.5)
    warmup = lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=10)
    decay = lr_scheduler.CosineAnnealingLR(optimizer, T_max=50, eta_min=1e-4)
    scheduler = lr_scheduler.SequentialLR(optimizer, [warmup, decay], milestones=[10])

    losses, lrs = [problem.loss(weight, bias)], []
    for _ in range(60):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step(problem.gradients(weight, bias))
        scheduler.step()
        losses.append(problem.loss(weight, bias))

    expected_lrs = [
        0.1 * (0.1 + 0.9 * t / 10)
        if t < 10
        else 1e-4 + (0.1 - 1e-4) * (1 + math.cos(math.pi * (t - 10) / 50)) / 2
        for t in range(60)
    ]
    np.testing.assert_allclose(lrs, expected_lrs, rtol=1e-12)
    assert losses[-1] < 1e-6 * losses[0]
    replayed = sgd_momentum_replay(problem, lrs, momentum=0.5)
    np.testing.assert_allclose(weight, replayed[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bias, replayed[1], rtol=1e-10, atol=1e-12)


def test_adam_with_one_cycle_cycles_beta1() -> None:
    problem = Regression()
    weight, bias = start()
    optimizer = Adam([weight, bias], lr=0.01, betas=(0.9, 0.99))
    total = 120
    scheduler = lr_scheduler.OneCycleLR(optimizer, max_lr=0.2, total_steps=total)

    losses, used = [problem.loss(weight, bias)], []
    for _ in range(total):
        group = optimizer.param_groups[0]
        used.append((group["lr"], group["betas"][0]))
        assert group["betas"][1] == 0.99  # only beta1 cycles
        optimizer.step(problem.gradients(weight, bias))
        scheduler.step()
        losses.append(problem.loss(weight, bias))

    up = 0.3 * total - 1  # the end of the warmup phase

    def anneal(start_value: float, end_value: float, fraction: float) -> float:
        return end_value + (start_value - end_value) * (1 + math.cos(math.pi * fraction)) / 2

    for t, (lr, beta1) in enumerate(used):
        if t <= up:
            expected = (anneal(0.2 / 25, 0.2, t / up), anneal(0.95, 0.85, t / up))
        else:
            fraction = (t - up) / (total - 1 - up)
            expected = (anneal(0.2, 0.2 / 25 / 1e4, fraction), anneal(0.85, 0.95, fraction))
        assert (lr, beta1) == pytest.approx(expected, rel=1e-12), t
    assert losses[-1] < 1e-3 * losses[0]
    replayed = adam_replay(problem, used, beta2=0.99, eps=1e-8)
    np.testing.assert_allclose(weight, replayed[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bias, replayed[1], rtol=1e-9, atol=1e-12)


def test_reduce_on_plateau_on_minibatch_noise() -> None:
    problem = Regression(samples=256, noise=0.3, seed=1)
    weight, bias = start()
    optimizer = SGD([weight, bias], lr=0.05)
    scheduler = lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2, threshold=0.01)
    initial = problem.loss(weight, bias)
    for _epoch in range(40):
        for first in range(0, 256, 16):
            optimizer.step(problem.gradients(weight, bias, slice(first, first + 16)))
        scheduler.step(problem.loss(weight, bias))
    # Once the loss reaches the noise floor (0.3**2) it stops improving and the lr is cut.
    assert problem.loss(weight, bias) < 0.15 < initial
    assert optimizer.param_groups[0]["lr"] < 0.05 / 4
    assert scheduler.get_last_lr() == [optimizer.param_groups[0]["lr"]]


def test_schedule_lr_drives_sgd() -> None:
    problem = Regression()
    weight, bias = start()
    schedule = schedules.warmup_cosine_decay(0.0, 0.1, warmup_steps=5, decay_steps=50)
    optimizer = SGD([weight, bias], lr=0.0, momentum=0.5)
    scheduler = lr_scheduler.ScheduleLR(optimizer, schedule)
    lrs = []
    for step in range(50):
        assert optimizer.param_groups[0]["lr"] == schedule(step)
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step(problem.gradients(weight, bias))
        scheduler.step()
    assert problem.loss(weight, bias) < 1e-3 * problem.loss(*start())
    replayed = sgd_momentum_replay(problem, lrs, momentum=0.5)
    np.testing.assert_allclose(weight, replayed[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("order", ["optimizer-first", "scheduler-first", "scheduler-only"])
def test_resume_training_from_state_dicts(order: str) -> None:
    """Checkpoint mid-run, restore into a fresh optimizer and scheduler: the same parameters."""
    problem = Regression()

    def build(weight: np.ndarray, bias: np.ndarray) -> tuple[SGD, lr_scheduler.SequentialLR]:
        optimizer = SGD([weight, bias], lr=0.05, momentum=0.9)
        warmup = lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=8)
        decay = lr_scheduler.MultiStepLR(optimizer, milestones=[12, 20], gamma=0.5)
        return optimizer, lr_scheduler.SequentialLR(optimizer, [warmup, decay], milestones=[8])

    def train(optimizer: SGD, scheduler: object, params: list[np.ndarray], steps: int) -> None:
        for _ in range(steps):
            optimizer.step(problem.gradients(*params))
            scheduler.step()  # type: ignore[attr-defined]

    params = list(start())
    optimizer, scheduler = build(*params)
    train(optimizer, scheduler, params, 30)

    params_resumed = list(start())
    optimizer, scheduler = build(*params_resumed)
    train(optimizer, scheduler, params_resumed, 13)
    checkpoint = copy.deepcopy(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    )
    momentum_buffers = [optimizer.state[p]["momentum_buffer"].copy() for p in params_resumed]

    params_restored = [param.copy() for param in params_resumed]
    if order == "optimizer-first":  # load the optimizer, then build the scheduler on it
        optimizer = SGD(params_restored, lr=0.05, momentum=0.9)
        optimizer.load_state_dict(checkpoint["optimizer"])
        warmup = lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=8)
        decay = lr_scheduler.MultiStepLR(optimizer, milestones=[12, 20], gamma=0.5)
        scheduler = lr_scheduler.SequentialLR(optimizer, [warmup, decay], milestones=[8])
        scheduler.load_state_dict(checkpoint["scheduler"])
    else:
        optimizer, scheduler = build(*params_restored)
        if order == "scheduler-first":
            optimizer.load_state_dict(checkpoint["optimizer"])
        else:  # only the scheduler's state: restore the momentum buffers by hand
            for param, buffer in zip(params_restored, momentum_buffers):
                optimizer.state[param]["momentum_buffer"] = buffer
        scheduler.load_state_dict(checkpoint["scheduler"])
    train(optimizer, scheduler, params_restored, 17)

    for uninterrupted, restored in zip(params, params_restored):
        np.testing.assert_array_equal(restored, uninterrupted)
