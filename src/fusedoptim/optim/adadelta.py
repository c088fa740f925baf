"""AdaDelta: step sizes from running averages of squared gradients and squared updates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fusedoptim import _checks

from .base import Optimizer, check_bool, format_doc

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    _algorithm = "adadelta"
    _state_kinds = ("square_avg", "acc_delta")
    _required_kinds = ("square_avg", "acc_delta")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    @staticmethod
    def _check_hyperparameters(group: Mapping[str, Any]) -> None:
        _checks.check_lr(group["lr"])
        _checks.check_unit_interval("rho", group["rho"], closed=True)
        _checks.check_non_negative("epsilon", group["eps"])
        _checks.check_non_negative("weight_decay", group["weight_decay"])
        check_bool(group["maximize"], "maximize")

    def _core_arguments(self, group: Mapping[str, Any]) -> tuple:
        return (
            float(group["lr"]),
            float(group["rho"]),
            float(group["eps"]),
            float(group["weight_decay"]),
            bool(group["maximize"]),
        )


Adadelta.__doc__ = format_doc(
    r"""AdaDelta: a step size from the ratio of running RMS of past updates and of gradients.

    For each parameter :math:`\theta` with gradient :math:`g_t` (state: ``step``, :math:`v` =
    ``square_avg``, :math:`u` = ``acc_delta``):

    .. math::
        g_t &\leftarrow -g_t \quad \text{if maximize} \\
        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        v_t &\leftarrow \rho v_{t-1} + (1 - \rho) g_t^2 \\
        \Delta_t &\leftarrow \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}} \, g_t \\
        u_t &\leftarrow \rho u_{t-1} + (1 - \rho) \Delta_t^2 \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma \Delta_t

    with learning rate :math:`\gamma` (a scale; 1.0 is the paper's method), decay
    :math:`\rho` and weight decay :math:`\lambda`.

    Args:
        {params}
        lr (float, optional): coefficient that scales delta before it is applied to the
            parameters (default: 1.0)
        rho (float, optional): coefficient of the running averages, in [0, 1] (default: 0.9)
        eps (float, optional): term added inside the square roots for numerical stability
            (default: 1e-6)
        weight_decay (float, optional): weight decay, an L2 penalty (default: 0)
        {maximize}

    {usage}

    Example:
        >>> import numpy as np
        >>> import fusedoptim
        >>> w = np.array([1.0])
        >>> opt = fusedoptim.Adadelta([w], lr=1.0, rho=0.75, eps=1.0)
        >>> opt.step([np.array([2.0])])  # v = 1, delta = sqrt(1) / sqrt(2) * 2
        >>> bool(np.isclose(w[0], 1.0 - np.sqrt(2.0)))
        True

    Reference: M. D. Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701
    (2012).
    """
)
