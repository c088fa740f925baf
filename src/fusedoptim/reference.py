"""Plain NumPy reference implementations of the fusedoptim update rules.

Each function here mirrors the single-tensor (for-loop) implementation in ``torch.optim``
(``_single_tensor_sgd``, ``_single_tensor_adam``, ...) and follows its order of operations, so
the results agree with PyTorch up to floating-point rounding. They serve two purposes:

* **ground truth** for the test suite: the fused C++ kernels in :mod:`fusedoptim.functional` are
  checked against these functions for parameters *and* optimizer state;
* **baseline** for the benchmarks: they are written the way a careful NumPy user would write
  them (in-place ufuncs with ``out=``, a few scratch arrays per call reused across tensors, no
  needless temporaries), so a speed-up measured against them is an honest one.

The signatures match :mod:`fusedoptim.functional`: lists of arrays updated in place, one entry
per tensor. ``grads[i]`` may be ``None``, in which case tensor ``i`` is skipped entirely. A state
list may be ``None`` as a whole when the options do not use it (for example
``momentum_buffers`` when ``momentum == 0``). Hyperparameters are Python floats, so NumPy keeps
float32 arrays in float32 (each scalar is rounded to the array's dtype once, as PyTorch does).
Unlike :mod:`fusedoptim.functional`, nothing is validated beyond what NumPy itself checks.

Notes on agreement with PyTorch: ``torch.optim``'s CPU kernels may fuse a multiply and an add
(``Tensor.add(other, alpha=...)`` uses an FMA where the CPU has one) and evaluate
``a.addcdiv_(b, c, value=s)`` as ``a + (s * b) / c``; here every operation is rounded separately
and the quotient is formed first, as written in each docstring. The results therefore agree with
PyTorch to a few units in the last place per step, not bitwise. The compiled kernels perform
exactly the operations written here, in this order and in the storage dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["adadelta", "adagrad", "adam", "adamw", "rmsprop", "sgd"]

ArrayList = Sequence[np.ndarray]
OptionalArrayList = Sequence["np.ndarray | None"]


class _Workspace:
    """Scratch arrays for one call, shared by its tensors one after another.

    Each numbered slot is allocated once per dtype, at the size of the largest tensor, and handed
    out as a view shaped like the tensor at hand; so a call over many tensors allocates a few
    arrays instead of a few per tensor, and large temporaries are not mapped and faulted in
    afresh for every tensor.
    """

    def __init__(self, params: ArrayList, grads: OptionalArrayList) -> None:
        sizes = [param.size for param, grad in zip(params, grads) if grad is not None]
        self._size = max(sizes, default=0)
        self._buffers: dict[tuple[np.dtype, int], np.ndarray] = {}

    def __call__(self, slot: int, like: np.ndarray) -> np.ndarray:
        key = (like.dtype, slot)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = np.empty(self._size, dtype=like.dtype)
        return buffer[: like.size].reshape(like.shape)


def _effective_grad(
    param: np.ndarray,
    grad: np.ndarray,
    weight_decay: float,
    maximize: bool,
    workspace: _Workspace,
) -> np.ndarray:
    """Return ``g = (-grad if maximize else grad) + weight_decay * param`` without touching grad.

    The caller's gradient must never be modified (PyTorch leaves ``p.grad`` alone), so when
    ``maximize`` or weight decay changes it the result goes to the workspace's slot 0. When
    neither applies the gradient itself is returned, to be read only.
    """
    if weight_decay == 0 and not maximize:
        return grad
    scratch = workspace(0, param)
    if weight_decay != 0:
        np.multiply(param, weight_decay, out=scratch)
        # (-g) + wd*p and wd*p - g round identically (negation is exact, addition commutes),
        # so maximize costs no extra pass.
        if maximize:
            np.subtract(scratch, grad, out=scratch)
        else:
            np.add(scratch, grad, out=scratch)
    else:
        np.negative(grad, out=scratch)
    return scratch


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
    r"""Stochastic gradient descent with optional momentum, one tensor at a time, in place.

    With :math:`g = \pm\nabla` (negated when ``maximize``) and :math:`\lambda` the weight decay:

    .. math::
        g &\leftarrow g + \lambda p \\
        b &\leftarrow g \ \text{if step} = 1 \ \text{else}\ \mu b + (1 - \tau) g \\
        g &\leftarrow g + \mu b \ \text{(Nesterov)} \quad\text{or}\quad g \leftarrow b \\
        p &\leftarrow p + (-\eta) g

    The momentum lines apply only when ``momentum != 0``; otherwise ``momentum_buffers`` may be
    ``None``. ``step`` is the 1-based step being taken: on step 1 the buffer becomes a copy of
    the (weight-decayed) gradient, as in PyTorch where the buffer starts as ``None``.

    Example:
        >>> import numpy as np
        >>> from fusedoptim import reference
        >>> p = np.array([1.0, 2.0]); g = np.array([0.5, -1.0]); buf = np.zeros(2)
        >>> reference.sgd([p], [g], [buf], step=1, lr=0.1, momentum=0.9)
        >>> p
        array([0.95, 2.1 ])
        >>> buf
        array([ 0.5, -1. ])
    """
    workspace = _Workspace(params, grads)
    for i, (param, grad) in enumerate(zip(params, grads)):
        if grad is None:
            continue
        g = _effective_grad(param, grad, weight_decay, maximize, workspace)
        scratch = workspace(1, param)

        if momentum != 0:
            assert momentum_buffers is not None
            buf = momentum_buffers[i]
            assert buf is not None
            if step == 1:
                np.copyto(buf, g)
            else:
                np.multiply(buf, momentum, out=buf)
                if dampening == 0:
                    # (1 - 0) * g == g exactly: skip a pass.
                    np.add(buf, g, out=buf)
                else:
                    np.multiply(g, 1 - dampening, out=scratch)
                    np.add(buf, scratch, out=buf)
            if nesterov:
                direction = np.multiply(buf, momentum, out=scratch)
                np.add(g, direction, out=direction)
            else:
                direction = buf
        else:
            direction = g

        # p.add_(direction, alpha=-lr), scaling in the scratch array: never in the caller's
        # gradient or the momentum buffer.
        np.multiply(direction, -lr, out=scratch)
        np.add(param, scratch, out=param)


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
    r"""AdaGrad, one tensor at a time, in place.

    .. math::
        g &\leftarrow \pm\nabla + \lambda p \\
        \tilde\eta &= \eta / (1 + (\text{step} - 1)\,\text{lr\_decay}) \\
        s &\leftarrow s + g \cdot g \\
        p &\leftarrow p + (-\tilde\eta)\,\bigl(g / (\sqrt{s} + \epsilon)\bigr)

    Example:
        >>> import numpy as np
        >>> from fusedoptim import reference
        >>> p = np.array([1.0]); g = np.array([2.0]); s = np.zeros(1)
        >>> reference.adagrad([p], [g], [s], step=1, lr=0.5, eps=0.0)
        >>> p, s
        (array([0.5]), array([4.]))
    """
    clr = lr / (1 + (step - 1) * lr_decay)
    workspace = _Workspace(params, grads)
    for param, grad, state_sum in zip(params, grads, state_sums):
        if grad is None:
            continue
        g = _effective_grad(param, grad, weight_decay, maximize, workspace)
        work = np.square(g, out=workspace(1, param))
        np.add(state_sum, work, out=state_sum)
        np.sqrt(state_sum, out=work)
        np.add(work, eps, out=work)
        np.divide(g, work, out=work)
        np.multiply(work, -clr, out=work)
        np.add(param, work, out=param)


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
    r"""RMSprop, one tensor at a time, in place.

    .. math::
        g &\leftarrow \pm\nabla + \lambda p \\
        v &\leftarrow \alpha v + (1 - \alpha)(g \cdot g) \\
        \bar g &\leftarrow \bar g + (1 - \alpha)(g - \bar g)
            \qquad \text{(centered only; a lerp)} \\
        d &= \sqrt{v - \bar g \cdot \bar g} + \epsilon \ \text{(centered)}
            \quad\text{or}\quad \sqrt{v} + \epsilon \\
        b &\leftarrow \mu b + g / d,\quad p \leftarrow p + (-\eta) b
            \qquad \text{(momentum} > 0) \\
        p &\leftarrow p + (-\eta)(g / d) \qquad \text{(otherwise)}

    ``momentum_buffers`` may be ``None`` when ``momentum == 0`` and ``grad_avgs`` when not
    ``centered``.

    Example:
        >>> import numpy as np
        >>> from fusedoptim import reference
        >>> p = np.array([1.0]); g = np.array([2.0]); v = np.zeros(1)
        >>> reference.rmsprop([p], [g], [v], None, None, lr=0.1, alpha=0.75, eps=0.0)
        >>> p, v
        (array([0.8]), array([1.]))
    """
    workspace = _Workspace(params, grads)
    for i, (param, grad) in enumerate(zip(params, grads)):
        if grad is None:
            continue
        g = _effective_grad(param, grad, weight_decay, maximize, workspace)
        square_avg = square_avgs[i]
        np.multiply(square_avg, alpha, out=square_avg)
        work = np.square(g, out=workspace(1, param))
        np.multiply(work, 1 - alpha, out=work)
        np.add(square_avg, work, out=square_avg)

        if centered:
            assert grad_avgs is not None
            grad_avg = grad_avgs[i]
            assert grad_avg is not None
            np.subtract(g, grad_avg, out=work)
            np.multiply(work, 1 - alpha, out=work)
            np.add(grad_avg, work, out=grad_avg)
            np.square(grad_avg, out=work)
            np.subtract(square_avg, work, out=work)
            np.sqrt(work, out=work)
        else:
            np.sqrt(square_avg, out=work)
        np.add(work, eps, out=work)

        np.divide(g, work, out=work)
        if momentum > 0:
            assert momentum_buffers is not None
            buf = momentum_buffers[i]
            assert buf is not None
            np.multiply(buf, momentum, out=buf)
            np.add(buf, work, out=buf)
            np.multiply(buf, -lr, out=work)
        else:
            np.multiply(work, -lr, out=work)
        np.add(param, work, out=param)


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
    r"""AdaDelta, one tensor at a time, in place.

    .. math::
        g &\leftarrow \pm\nabla + \lambda p \\
        v &\leftarrow \rho v + (1 - \rho)(g \cdot g) \\
        \Delta &= \sqrt{u + \epsilon} / \sqrt{v + \epsilon} \cdot g \\
        u &\leftarrow \rho u + (1 - \rho)(\Delta \cdot \Delta) \\
        p &\leftarrow p + (-\eta)\Delta

    Example:
        >>> import numpy as np
        >>> from fusedoptim import reference
        >>> p = np.array([1.0]); g = np.array([2.0]); v = np.zeros(1); u = np.zeros(1)
        >>> reference.adadelta([p], [g], [v], [u], lr=1.0, rho=0.25, eps=1.0)
        >>> p, v, u
        (array([0.]), array([3.]), array([0.75]))
    """
    workspace = _Workspace(params, grads)
    for param, grad, square_avg, acc_delta in zip(params, grads, square_avgs, acc_deltas):
        if grad is None:
            continue
        g = _effective_grad(param, grad, weight_decay, maximize, workspace)
        np.multiply(square_avg, rho, out=square_avg)
        std = np.square(g, out=workspace(1, param))
        np.multiply(std, 1 - rho, out=std)
        np.add(square_avg, std, out=square_avg)

        np.add(square_avg, eps, out=std)
        np.sqrt(std, out=std)
        delta = np.add(acc_delta, eps, out=workspace(2, param))
        np.sqrt(delta, out=delta)
        np.divide(delta, std, out=delta)
        np.multiply(delta, g, out=delta)

        np.multiply(acc_delta, rho, out=acc_delta)
        np.square(delta, out=std)  # std is no longer needed: reuse it
        np.multiply(std, 1 - rho, out=std)
        np.add(acc_delta, std, out=acc_delta)

        np.multiply(delta, -lr, out=delta)
        np.add(param, delta, out=param)


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
    decoupled_weight_decay: bool = False,
) -> None:
    r"""Adam (and AdamW with ``decoupled_weight_decay=True``), one tensor at a time, in place.

    .. math::
        p &\leftarrow p\,(1 - \eta\lambda) \ \text{(decoupled)}
            \quad\text{or}\quad g \leftarrow g + \lambda p \\
        m &\leftarrow m + (1 - \beta_1)(g - m) \qquad \text{(a lerp)} \\
        v &\leftarrow \beta_2 v + (1 - \beta_2)(g \cdot g) \\
        \hat v &\leftarrow \max(\hat v, v) \qquad \text{(amsgrad; NaN propagates)} \\
        d &= \sqrt{\hat v \text{ or } v} / \sqrt{1 - \beta_2^t} + \epsilon \\
        p &\leftarrow p + \bigl(-\eta / (1 - \beta_1^t)\bigr)(m / d)

    where :math:`g = \pm\nabla` and :math:`t` = ``step`` (1-based). ``max_exp_avg_sqs`` may be
    ``None`` unless ``amsgrad``.

    Example:
        >>> import numpy as np
        >>> from fusedoptim import reference
        >>> p = np.array([1.0]); g = np.array([3.0]); m = np.zeros(1); v = np.zeros(1)
        >>> reference.adam([p], [g], [m], [v], None, step=1, lr=0.1, eps=0.0)
        >>> p  # the first Adam step moves each entry by lr times the gradient's sign
        array([0.9])
    """
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = math.sqrt(bias_correction2)

    workspace = _Workspace(params, grads)
    for i, (param, grad) in enumerate(zip(params, grads)):
        if grad is None:
            continue
        exp_avg = exp_avgs[i]
        exp_avg_sq = exp_avg_sqs[i]
        if weight_decay != 0 and decoupled_weight_decay:
            np.multiply(param, 1 - lr * weight_decay, out=param)
            g = _effective_grad(param, grad, 0.0, maximize, workspace)
        else:
            g = _effective_grad(param, grad, weight_decay, maximize, workspace)

        work = np.subtract(g, exp_avg, out=workspace(1, param))
        np.multiply(work, 1 - beta1, out=work)
        np.add(exp_avg, work, out=exp_avg)

        np.multiply(exp_avg_sq, beta2, out=exp_avg_sq)
        np.square(g, out=work)
        np.multiply(work, 1 - beta2, out=work)
        np.add(exp_avg_sq, work, out=exp_avg_sq)

        if amsgrad:
            assert max_exp_avg_sqs is not None
            max_exp_avg_sq = max_exp_avg_sqs[i]
            assert max_exp_avg_sq is not None
            np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
            np.sqrt(max_exp_avg_sq, out=work)
        else:
            np.sqrt(exp_avg_sq, out=work)
        np.divide(work, bias_correction2_sqrt, out=work)
        np.add(work, eps, out=work)

        np.divide(exp_avg, work, out=work)
        np.multiply(work, -step_size, out=work)
        np.add(param, work, out=param)


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
    r"""AdamW: :func:`adam` with decoupled weight decay (``p *= 1 - lr * weight_decay``).

    Example:
        >>> import numpy as np
        >>> from fusedoptim import reference
        >>> p = np.array([2.0]); g = np.array([0.0]); m = np.zeros(1); v = np.zeros(1)
        >>> reference.adamw([p], [g], [m], [v], None, step=1, lr=0.1, weight_decay=0.5)
        >>> p  # a zero gradient leaves only the decay: 2 * (1 - 0.1 * 0.5)
        array([1.9])
    """
    adam(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        max_exp_avg_sqs,
        step=step,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=weight_decay,
        amsgrad=amsgrad,
        maximize=maximize,
        decoupled_weight_decay=True,
    )
