"""Functional, in-place optimizer updates over lists of NumPy arrays, run by the fused C++ kernels.

Each function updates every parameter and its state in one pass over memory, all tensors of the
call inside one OpenMP parallel region, with the GIL released. The update rules are exactly those
of ``torch.optim`` (see each function); :mod:`fusedoptim.reference` holds the same rules in plain
NumPy.

Arrays must be NumPy ``float32`` or ``float64`` arrays, C-contiguous, aligned, and (parameters and
state) writeable; a parameter's gradient and state have its dtype and shape and do not share its
memory. All tensors of one call share a dtype. Anything else raises ``TypeError`` or ``ValueError``
before any array is written: arrays are never converted, because an update applied to a silent copy
would be lost. State arrays are allocated by the caller: zeros, or AdaGrad's initial accumulator
value. A gradient of ``None`` skips that parameter.

Non-finite gradients are not an error: NaN and Inf propagate through the arithmetic exactly as in
the reference (for example a NaN gradient makes that element's parameter and Adam moments NaN).

An array that a call writes (a parameter or a state array) must not share memory with any other
array of the call, of its own tensor or another: the call refuses it. Gradients may share memory
with each other. Separate calls are not checked against each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import _checks, _core

ArrayList = Sequence[np.ndarray]
OptionalArrayList = Sequence["np.ndarray | None"]


def _steps(params: Sequence[object], step: int) -> np.ndarray:
    if not isinstance(params, (list, tuple)):
        raise TypeError(
            f"params must be a list or tuple of numpy arrays, got {type(params).__name__}"
        )
    _checks.check_step(step)
    return np.full(len(params), step, dtype=np.int64)


def sgd(
    params: ArrayList,
    grads: OptionalArrayList,
    momentum_buffers: OptionalArrayList | None,
    *,
    step: int,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> None:
    r"""SGD with momentum, dampening, Nesterov momentum and weight decay (``torch.optim.SGD``).

    .. math::
        g &\leftarrow \pm\nabla + \lambda p \\
        b &\leftarrow g \text{ at step 1, else } \mu b + (1 - \tau) g \\
        g &\leftarrow g + \mu b \text{ (Nesterov), else } b \\
        p &\leftarrow p - \gamma g

    ``momentum_buffers`` may be ``None`` when ``momentum == 0``. At ``step == 1`` the buffer is set
    to the gradient, as torch does when its buffer does not exist yet.

    Example:
        >>> import numpy as np
        >>> from fusedoptim import functional as F
        >>> p, g, buf = np.ones(3, np.float32), np.full(3, 0.5, np.float32), np.zeros(3, np.float32)
        >>> F.sgd([p], [g], [buf], step=1, lr=0.1, momentum=0.9)
        >>> p
        array([0.95, 0.95, 0.95], dtype=float32)
    """
    _checks.check_lr(lr)
    _checks.check_non_negative("momentum", momentum)
    _checks.check_unit_interval("dampening", dampening, closed=True)
    _checks.check_non_negative("weight_decay", weight_decay)
    nesterov = _checks.check_flag("nesterov", nesterov)
    maximize = _checks.check_flag("maximize", maximize)
    _checks.check_nesterov(nesterov, momentum, dampening)
    _core.sgd(
        params, grads, momentum_buffers, _steps(params, step), False,
        lr, momentum, dampening, nesterov, weight_decay, maximize,
    )  # fmt: skip


def adagrad(
    params: ArrayList,
    grads: OptionalArrayList,
    state_sums: ArrayList,
    *,
    step: int,
    lr: float = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    eps: float = 1e-10,
    maximize: bool = False,
) -> None:
    r"""AdaGrad (``torch.optim.Adagrad``).

    .. math::
        g &\leftarrow \pm\nabla + \lambda p, \quad
        \tilde\gamma = \gamma / (1 + (t - 1)\eta) \\
        s &\leftarrow s + g^2, \quad p \leftarrow p - \tilde\gamma\, g / (\sqrt{s} + \epsilon)

    Example:
        >>> import numpy as np
        >>> from fusedoptim import functional as F
        >>> p, g, s = np.ones(2), np.full(2, 2.0), np.zeros(2)
        >>> F.adagrad([p], [g], [s], step=1, lr=0.1)
        >>> p.round(6)
        array([0.9, 0.9])
    """
    _checks.check_lr(lr)
    _checks.check_non_negative("lr_decay", lr_decay)
    _checks.check_non_negative("weight_decay", weight_decay)
    _checks.check_non_negative("epsilon", eps)
    maximize = _checks.check_flag("maximize", maximize)
    _core.adagrad(
        params, grads, state_sums, _steps(params, step), False,
        lr, lr_decay, weight_decay, eps, maximize,
    )  # fmt: skip


def rmsprop(
    params: ArrayList,
    grads: OptionalArrayList,
    square_avgs: ArrayList,
    momentum_buffers: OptionalArrayList | None,
    grad_avgs: OptionalArrayList | None,
    *,
    lr: float = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    maximize: bool = False,
) -> None:
    r"""RMSprop, plain or centered, with momentum (``torch.optim.RMSprop``; eps outside the root).

    .. math::
        g &\leftarrow \pm\nabla + \lambda p, \quad v \leftarrow \alpha v + (1 - \alpha) g^2 \\
        \bar g &\leftarrow \alpha \bar g + (1 - \alpha) g, \quad
        d = \sqrt{v - \bar g^2} + \epsilon \text{ (centered), else } \sqrt{v} + \epsilon \\
        b &\leftarrow \mu b + g / d, \; p \leftarrow p - \gamma b
        \text{ (momentum), else } p \leftarrow p - \gamma g / d

    ``momentum_buffers`` may be ``None`` when ``momentum == 0``, ``grad_avgs`` when not centered.

    Example:
        >>> import numpy as np
        >>> from fusedoptim import functional as F
        >>> p, g, v = np.ones(2), np.ones(2), np.zeros(2)
        >>> F.rmsprop([p], [g], [v], None, None, lr=0.01, alpha=0.75)
        >>> p.round(6)
        array([0.98, 0.98])
    """
    _checks.check_lr(lr)
    _checks.check_unit_interval("alpha", alpha, closed=True)
    _checks.check_non_negative("epsilon", eps)
    _checks.check_non_negative("weight_decay", weight_decay)
    _checks.check_non_negative("momentum", momentum)
    centered = _checks.check_flag("centered", centered)
    maximize = _checks.check_flag("maximize", maximize)
    _core.rmsprop(
        params, grads, square_avgs, momentum_buffers, grad_avgs,
        np.ones(len(params), dtype=np.int64), False,
        lr, alpha, eps, weight_decay, momentum, centered, maximize,
    )  # fmt: skip


def adadelta(
    params: ArrayList,
    grads: OptionalArrayList,
    square_avgs: ArrayList,
    acc_deltas: ArrayList,
    *,
    lr: float = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> None:
    r"""AdaDelta (``torch.optim.Adadelta``).

    .. math::
        g &\leftarrow \pm\nabla + \lambda p, \quad v \leftarrow \rho v + (1 - \rho) g^2 \\
        \Delta &= \sqrt{u + \epsilon} / \sqrt{v + \epsilon} \cdot g, \quad
        u \leftarrow \rho u + (1 - \rho) \Delta^2, \quad p \leftarrow p - \gamma \Delta

    Example:
        >>> import numpy as np
        >>> from fusedoptim import functional as F
        >>> p, g, v, u = np.ones(1), np.ones(1), np.zeros(1), np.zeros(1)
        >>> F.adadelta([p], [g], [v], [u], lr=1.0, rho=0.0, eps=0.0)
        >>> p
        array([1.])
    """
    _checks.check_lr(lr)
    _checks.check_unit_interval("rho", rho, closed=True)
    _checks.check_non_negative("epsilon", eps)
    _checks.check_non_negative("weight_decay", weight_decay)
    maximize = _checks.check_flag("maximize", maximize)
    _core.adadelta(
        params, grads, square_avgs, acc_deltas, np.ones(len(params), dtype=np.int64), False,
        lr, rho, eps, weight_decay, maximize,
    )  # fmt: skip


def _adam(
    params: ArrayList,
    grads: OptionalArrayList,
    exp_avgs: ArrayList,
    exp_avg_sqs: ArrayList,
    max_exp_avg_sqs: OptionalArrayList | None,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled: bool,
) -> None:
    _checks.check_lr(lr)
    _checks.check_betas((beta1, beta2))
    _checks.check_non_negative("epsilon", eps)
    _checks.check_non_negative("weight_decay", weight_decay)
    amsgrad = _checks.check_flag("amsgrad", amsgrad)
    maximize = _checks.check_flag("maximize", maximize)
    _core.adam(
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, _steps(params, step), False,
        lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled,
    )  # fmt: skip


def adam(
    params: ArrayList,
    grads: OptionalArrayList,
    exp_avgs: ArrayList,
    exp_avg_sqs: ArrayList,
    max_exp_avg_sqs: OptionalArrayList | None,
    *,
    step: int,
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    maximize: bool = False,
) -> None:
    r"""Adam with L2 weight decay and amsgrad (``torch.optim.Adam``).

    .. math::
        g &\leftarrow \pm\nabla + \lambda p, \quad
        m \leftarrow m + (1 - \beta_1)(g - m), \quad v \leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
        \hat v &= \max(\hat v, v) \text{ (amsgrad), else } v \\
        p &\leftarrow p - \frac{\gamma}{1 - \beta_1^t} \cdot
        \frac{m}{\sqrt{\hat v} / \sqrt{1 - \beta_2^t} + \epsilon}

    ``max_exp_avg_sqs`` may be ``None`` unless ``amsgrad``.

    Example:
        >>> import numpy as np
        >>> from fusedoptim import functional as F
        >>> p, g = np.ones(2, np.float32), np.full(2, 3.0, np.float32)
        >>> m, v = np.zeros_like(p), np.zeros_like(p)
        >>> F.adam([p], [g], [m], [v], None, step=1, lr=0.1)
        >>> p  # the first Adam step moves each element by about lr
        array([0.9, 0.9], dtype=float32)
    """
    _adam(
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step,
        lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled=False,
    )  # fmt: skip


def adamw(
    params: ArrayList,
    grads: OptionalArrayList,
    exp_avgs: ArrayList,
    exp_avg_sqs: ArrayList,
    max_exp_avg_sqs: OptionalArrayList | None,
    *,
    step: int,
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    maximize: bool = False,
) -> None:
    r"""AdamW: Adam with decoupled weight decay (``torch.optim.AdamW``).

    As :func:`adam`, except that weight decay is applied to the parameter, not the gradient:
    :math:`p \leftarrow p (1 - \gamma\lambda)` before the Adam update.

    Example:
        >>> import numpy as np
        >>> from fusedoptim import functional as F
        >>> p, g = np.ones(2), np.zeros(2)
        >>> m, v = np.zeros_like(p), np.zeros_like(p)
        >>> F.adamw([p], [g], [m], [v], None, step=1, lr=0.1, weight_decay=0.5)
        >>> p  # zero gradient: only the decay acts
        array([0.95, 0.95])
    """
    _adam(
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step,
        lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled=True,
    )  # fmt: skip


__all__ = ["adadelta", "adagrad", "adam", "adamw", "rmsprop", "sgd"]
