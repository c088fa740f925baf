"""RMSprop: gradients scaled by a running root mean square (optionally centered)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fusedoptim import _checks

from .base import Optimizer, check_bool, format_doc

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    _algorithm = "rmsprop"
    _state_kinds = ("square_avg", "momentum_buffer", "grad_avg")
    _legacy_group_defaults = {"maximize": False, "momentum": 0, "centered": False}
    _required_kinds = ("square_avg",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        # Key order as in torch.optim.RMSprop's param groups.
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    @staticmethod
    def _check_hyperparameters(group: Mapping[str, Any]) -> None:
        _checks.check_lr(group["lr"])
        _checks.check_non_negative("epsilon", group["eps"])
        _checks.check_non_negative("momentum", group["momentum"])
        _checks.check_non_negative("weight_decay", group["weight_decay"])
        _checks.check_unit_interval("alpha", group["alpha"], closed=True)
        check_bool(group["centered"], "centered")
        check_bool(group["maximize"], "maximize")

    def _needed_kinds(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        kinds = ("square_avg",)
        if group["momentum"] > 0:
            kinds += ("momentum_buffer",)
        if group["centered"]:
            kinds += ("grad_avg",)
        return kinds

    def _core_arguments(self, group: Mapping[str, Any]) -> tuple:
        return (
            float(group["lr"]),
            float(group["alpha"]),
            float(group["eps"]),
            float(group["weight_decay"]),
            float(group["momentum"]),
            bool(group["centered"]),
            bool(group["maximize"]),
        )


RMSprop.__doc__ = format_doc(
    r"""RMSprop: each gradient is divided by a running root mean square of its past values.

    For each parameter :math:`\theta` with gradient :math:`g_t` (state: ``step``, :math:`v` =
    ``square_avg``; :math:`b` = ``momentum_buffer`` when ``momentum > 0``; :math:`\bar g` =
    ``grad_avg`` when ``centered``):

    .. math::
        g_t &\leftarrow -g_t \quad \text{if maximize} \\
        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        v_t &\leftarrow \alpha v_{t-1} + (1 - \alpha) g_t^2 \\
        \bar g_t &\leftarrow \alpha \bar g_{t-1} + (1 - \alpha) g_t, \quad
            \tilde v_t \leftarrow v_t - \bar g_t^2 \quad \text{if centered, else}\
            \tilde v_t \leftarrow v_t \\
        b_t &\leftarrow \mu b_{t-1} + g_t / (\sqrt{\tilde v_t} + \epsilon), \quad
            \theta_t \leftarrow \theta_{t-1} - \gamma b_t \quad \text{if}\ \mu > 0 \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma g_t / (\sqrt{\tilde v_t} + \epsilon)
            \quad \text{otherwise}

    with learning rate :math:`\gamma`, smoothing constant :math:`\alpha`, momentum :math:`\mu`
    and weight decay :math:`\lambda`.

    Args:
        {params}
        lr (float, optional): learning rate (default: 1e-2)
        alpha (float, optional): smoothing constant (default: 0.99)
        eps (float, optional): term added to the denominator for numerical stability
            (default: 1e-8)
        weight_decay (float, optional): weight decay, an L2 penalty (default: 0)
        momentum (float, optional): momentum factor (default: 0)
        centered (bool, optional): normalize by an estimate of the gradient's variance
            instead of its second moment (default: False)
        {maximize}; keyword-only, unlike PyTorch's (whose seventh positional argument
            is ``capturable``)

    {usage}

    Example:
        >>> import numpy as np
        >>> import fusedoptim
        >>> w = np.array([1.0, -2.0])
        >>> opt = fusedoptim.RMSprop([w], lr=0.1, alpha=0.75, eps=0.0)
        >>> opt.step([np.array([2.0, -4.0])])  # v = g**2 / 4, so the step is lr * 2 * sign(g)
        >>> w
        array([ 0.8, -1.8])

    References: G. Hinton, "Neural Networks for Machine Learning", lecture 6e (2012); the
    centered variant from A. Graves, "Generating Sequences With Recurrent Neural Networks",
    arXiv:1308.0850 (2013).
    """
)
