# Types of the compiled module fusedoptim._core (csrc/bindings.cpp).
from collections.abc import Sequence
from typing import Any

import numpy as np

_Arrays = Sequence[np.ndarray | None]
_States = _Arrays | None

def sgd(
    params: Sequence[np.ndarray],
    grads: _Arrays,
    momentum_buffers: _States,
    steps: np.ndarray,
    increment_steps: bool,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
    maximize: bool,
    check_only: bool = False,
) -> None: ...
def adagrad(
    params: Sequence[np.ndarray],
    grads: _Arrays,
    state_sums: _Arrays,
    steps: np.ndarray,
    increment_steps: bool,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
    check_only: bool = False,
) -> None: ...
def rmsprop(
    params: Sequence[np.ndarray],
    grads: _Arrays,
    square_avgs: _Arrays,
    momentum_buffers: _States,
    grad_avgs: _States,
    steps: np.ndarray,
    increment_steps: bool,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
    check_only: bool = False,
) -> None: ...
def adadelta(
    params: Sequence[np.ndarray],
    grads: _Arrays,
    square_avgs: _Arrays,
    acc_deltas: _Arrays,
    steps: np.ndarray,
    increment_steps: bool,
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
    check_only: bool = False,
) -> None: ...
def adam(
    params: Sequence[np.ndarray],
    grads: _Arrays,
    exp_avgs: _Arrays,
    exp_avg_sqs: _Arrays,
    max_exp_avg_sqs: _States,
    steps: np.ndarray,
    increment_steps: bool,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
    check_only: bool = False,
) -> None: ...

class Footprint:
    """The memory of arrays that several core calls write, for checks that span the calls."""

    def __init__(self, written: Sequence[np.ndarray | None]) -> None: ...
    def overlap(self) -> tuple[int, int] | None: ...
    def first_read_overlap(self, reads: Sequence[object]) -> tuple[int, int] | None: ...
    def __len__(self) -> int: ...

class Plan:
    """Parameters and state of one group, checked once; each step checks only the gradients."""

    def __init__(
        self,
        algorithm: str,
        params: Sequence[np.ndarray],
        states: Sequence[_States],
        *,
        gradient_addresses: bool = False,
    ) -> None: ...
    def __len__(self) -> int: ...
    @property
    def algorithm(self) -> str: ...
    def sgd(
        self,
        grads: Sequence[np.ndarray | int | None],
        steps: np.ndarray,
        increment_steps: bool,
        lr: float,
        momentum: float,
        dampening: float,
        nesterov: bool,
        weight_decay: float,
        maximize: bool,
        check_only: bool = False,
    ) -> None: ...
    def adagrad(
        self,
        grads: Sequence[np.ndarray | int | None],
        steps: np.ndarray,
        increment_steps: bool,
        lr: float,
        lr_decay: float,
        weight_decay: float,
        eps: float,
        maximize: bool,
        check_only: bool = False,
    ) -> None: ...
    def rmsprop(
        self,
        grads: Sequence[np.ndarray | int | None],
        steps: np.ndarray,
        increment_steps: bool,
        lr: float,
        alpha: float,
        eps: float,
        weight_decay: float,
        momentum: float,
        centered: bool,
        maximize: bool,
        check_only: bool = False,
    ) -> None: ...
    def adadelta(
        self,
        grads: Sequence[np.ndarray | int | None],
        steps: np.ndarray,
        increment_steps: bool,
        lr: float,
        rho: float,
        eps: float,
        weight_decay: float,
        maximize: bool,
        check_only: bool = False,
    ) -> None: ...
    def adam(
        self,
        grads: Sequence[np.ndarray | int | None],
        steps: np.ndarray,
        increment_steps: bool,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        weight_decay: float,
        amsgrad: bool,
        maximize: bool,
        decoupled_weight_decay: bool,
        check_only: bool = False,
    ) -> None: ...

def grad_norm(grads: _Arrays, norm_type: float) -> float: ...
def scale_(arrays: _Arrays, factor: float) -> None: ...
def clamp_(arrays: _Arrays, lo: float, hi: float) -> None: ...
def sqrt_(arrays: _Arrays) -> None: ...
def stream_triad(a: np.ndarray, b: np.ndarray, c: np.ndarray, scalar: float) -> None: ...
def stream_axpy(a: np.ndarray, b: np.ndarray, scalar: float) -> None: ...
def stream_update(
    written: list[np.ndarray] | tuple[np.ndarray, ...], read: np.ndarray, scalar: float
) -> None: ...
def divider_probe(
    a: np.ndarray,
    b: np.ndarray,
    square_roots: int,
    divisions: int,
    repeats: int,
    divisor: float = 1.0,
) -> None: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def same_items(a: Sequence[Any], b: Sequence[Any]) -> bool: ...
def same_values(group: object, keys: object, checked: object, types: object) -> bool: ...
def fast_step(optimizer: object, grads: object) -> bool: ...
def build_info() -> dict[str, Any]: ...
