"""AdaGrad: per-coordinate learning rates from the sum of squared gradients."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from fusedoptim import _checks

from .base import Optimizer, check_bool, format_doc

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    _algorithm = "adagrad"
    _state_kinds = ("sum",)
    _required_kinds = ("sum",)
    # PyTorch creates AdaGrad's state in the constructor (so `sum` can start non-zero).
    _eager_state = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        # Key order as in torch.optim.Adagrad's param groups.
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    @staticmethod
    def _check_hyperparameters(group: Mapping[str, Any]) -> None:
        _checks.check_lr(group["lr"])
        _checks.check_non_negative("lr_decay", group["lr_decay"])
        _checks.check_non_negative("weight_decay", group["weight_decay"])
        _checks.check_non_negative("initial_accumulator_value", group["initial_accumulator_value"])
        _checks.check_non_negative("epsilon", group["eps"])
        check_bool(group["maximize"], "maximize")

    def _new_state(self, group: Mapping[str, Any], kind: str, param: np.ndarray) -> np.ndarray:
        return np.full_like(param, group["initial_accumulator_value"])

    def _core_arguments(self, group: Mapping[str, Any]) -> tuple:
        return (
            float(group["lr"]),
            float(group["lr_decay"]),
            float(group["weight_decay"]),
            float(group["eps"]),
            bool(group["maximize"]),
        )


Adagrad.__doc__ = format_doc(
    r"""AdaGrad: each coordinate's step shrinks with the sum of its squared gradients.

    For each parameter :math:`\theta` with gradient :math:`g_t` at its step :math:`t` (state:
    ``step`` and :math:`s` = ``sum``, created at construction and filled with
    ``initial_accumulator_value``):

    .. math::
        g_t &\leftarrow -g_t \quad \text{if maximize} \\
        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        \tilde\gamma &\leftarrow \gamma / (1 + (t - 1) \eta) \\
        s_t &\leftarrow s_{t-1} + g_t^2 \\
        \theta_t &\leftarrow \theta_{t-1} - \tilde\gamma \, g_t / (\sqrt{s_t} + \epsilon)

    with learning rate :math:`\gamma`, ``lr_decay`` :math:`\eta` and weight decay
    :math:`\lambda`.

    Args:
        {params}
        lr (float, optional): learning rate (default: 1e-2)
        lr_decay (float, optional): learning rate decay (default: 0)
        weight_decay (float, optional): weight decay, an L2 penalty (default: 0)
        initial_accumulator_value (float, optional): initial value of ``sum`` (default: 0).
            A group's own value applies to its parameters (PyTorch uses the constructor's
            value for every group).
        eps (float, optional): term added to the denominator for numerical stability
            (default: 1e-10)
        {maximize}

    {usage}

    Example:
        >>> import numpy as np
        >>> import fusedoptim
        >>> w = np.array([1.0, -2.0])
        >>> opt = fusedoptim.Adagrad([w], lr=0.5, eps=0.0)
        >>> opt.step([np.array([4.0, -0.5])])  # the first step moves each entry by lr
        >>> w
        array([ 0.5, -1.5])
        >>> opt.state[w]["sum"]
        array([16.  ,  0.25])

    Reference: J. Duchi, E. Hazan and Y. Singer, "Adaptive Subgradient Methods for Online
    Learning and Stochastic Optimization", JMLR 12 (2011).
    """
)
