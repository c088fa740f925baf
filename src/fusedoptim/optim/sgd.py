"""Stochastic gradient descent (optionally with momentum and Nesterov momentum)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fusedoptim import _checks

from .base import Optimizer, check_bool, format_doc

__all__ = ["SGD"]


class SGD(Optimizer):
    _algorithm = "sgd"
    _state_kinds = ("momentum_buffer",)
    _legacy_group_defaults = {"maximize": False, "nesterov": False}
    # PyTorch's SGD keeps no step count: a missing momentum buffer marks the first step.
    _keeps_step = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    @staticmethod
    def _check_hyperparameters(group: Mapping[str, Any]) -> None:
        _checks.check_lr(group["lr"])
        _checks.check_non_negative("momentum", group["momentum"])
        _checks.check_unit_interval("dampening", group["dampening"], closed=True)
        _checks.check_non_negative("weight_decay", group["weight_decay"])
        check_bool(group["nesterov"], "nesterov")
        check_bool(group["maximize"], "maximize")
        _checks.check_nesterov(group["nesterov"], group["momentum"], group["dampening"])

    def _needed_kinds(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _core_arguments(self, group: Mapping[str, Any]) -> tuple:
        return (
            float(group["lr"]),
            float(group["momentum"]),
            float(group["dampening"]),
            bool(group["nesterov"]),
            float(group["weight_decay"]),
            bool(group["maximize"]),
        )


SGD.__doc__ = format_doc(
    r"""Stochastic gradient descent, optionally with momentum (PyTorch's formulation).

    For each parameter :math:`\theta` with gradient :math:`g_t` (state: :math:`b` =
    ``momentum_buffer``, kept only when ``momentum != 0``):

    .. math::
        g_t &\leftarrow -g_t \quad \text{if maximize} \\
        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        b_t &\leftarrow g_t \ \text{at the parameter's first step, else}\
            \mu b_{t-1} + (1 - \tau) g_t \\
        g_t &\leftarrow g_t + \mu b_t \ \text{(Nesterov)}
            \quad \text{or} \quad g_t \leftarrow b_t \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma g_t

    with learning rate :math:`\gamma`, momentum :math:`\mu`, dampening :math:`\tau` and weight
    decay :math:`\lambda`; the momentum lines apply when :math:`\mu \neq 0`. As in PyTorch (and
    unlike Sutskever et al.), the learning rate scales the whole step, not the buffer, and the
    buffer starts as the first gradient, so dampening applies from the second step on.

    Args:
        {params}
        lr (float, optional): learning rate (default: 1e-3)
        momentum (float, optional): momentum factor (default: 0)
        dampening (float, optional): dampening for momentum (default: 0)
        weight_decay (float, optional): weight decay, an L2 penalty (default: 0)
        nesterov (bool, optional): enables Nesterov momentum; needs ``momentum > 0`` and zero
            dampening (default: False)
        {maximize}

    {usage}

    Example:
        >>> import numpy as np
        >>> import fusedoptim
        >>> w = np.array([1.0, -2.0])
        >>> opt = fusedoptim.SGD([w], lr=0.1, momentum=0.9)
        >>> opt.step([np.array([1.0, 1.0])])  # first step: the buffer is the gradient
        >>> w
        array([ 0.9, -2.1])
        >>> opt.state[w]["momentum_buffer"]
        array([1., 1.])

    Reference: Nesterov momentum as in I. Sutskever, J. Martens, G. Dahl and G. Hinton, "On the
    importance of initialization and momentum in deep learning", ICML 2013.
    """
)
