"""Adam (and AdamW through ``decoupled_weight_decay=True``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fusedoptim import _checks

from .base import Optimizer, check_bool, format_doc

__all__ = ["Adam"]


def check_adam_hyperparameters(group: Mapping[str, Any]) -> None:
    """PyTorch's checks for Adam and AdamW, with its messages."""
    _checks.check_lr(group["lr"])
    _checks.check_non_negative("epsilon", group["eps"])
    betas = group["betas"]
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    _checks.check_betas(betas)
    _checks.check_non_negative("weight_decay", group["weight_decay"])
    check_bool(group["amsgrad"], "amsgrad")
    check_bool(group["maximize"], "maximize")
    check_bool(group["decoupled_weight_decay"], "decoupled_weight_decay")


class Adam(Optimizer):
    _algorithm = "adam"
    _state_kinds = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _legacy_group_defaults = {"maximize": False, "amsgrad": False, "decoupled_weight_decay": False}
    _required_kinds = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        # Key order as in torch.optim.Adam's param groups.
        defaults = {
            "lr": lr,
            "betas": _as_pair(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    _check_hyperparameters = staticmethod(check_adam_hyperparameters)

    def _needed_kinds(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        if group["amsgrad"]:
            return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
        return ("exp_avg", "exp_avg_sq")

    def _core_arguments(self, group: Mapping[str, Any]) -> tuple:
        beta1, beta2 = group["betas"]
        return (
            float(group["lr"]),
            float(beta1),
            float(beta2),
            float(group["eps"]),
            float(group["weight_decay"]),
            bool(group["amsgrad"]),
            bool(group["maximize"]),
            bool(group["decoupled_weight_decay"]),
        )


def _as_pair(betas: Any) -> Any:
    """Store betas as a tuple (PyTorch's type), leaving anything malformed to the checks."""
    if isinstance(betas, (list, tuple)) and len(betas) == 2:
        return tuple(betas)
    return betas


Adam.__doc__ = format_doc(
    r"""Adam: steps from bias-corrected running averages of the gradient and its square.

    For each parameter :math:`\theta` with gradient :math:`g_t` at its step :math:`t` (state:
    ``step``, :math:`m` = ``exp_avg``, :math:`v` = ``exp_avg_sq``, and :math:`v^{max}` =
    ``max_exp_avg_sq`` when ``amsgrad``):

    .. math::
        g_t &\leftarrow -g_t \quad \text{if maximize} \\
        \theta_{t-1} &\leftarrow (1 - \gamma\lambda)\,\theta_{t-1}
            \ \text{if decoupled\_weight\_decay, else}\ g_t \leftarrow g_t + \lambda\theta_{t-1} \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        v^{max}_t &\leftarrow \max(v^{max}_{t-1}, v_t), \quad v_t \leftarrow v^{max}_t
            \quad \text{if amsgrad} \\
        \theta_t &\leftarrow \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t} \,
            \frac{m_t}{\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    with learning rate :math:`\gamma`, betas :math:`(\beta_1, \beta_2)` and weight decay
    :math:`\lambda`. :class:`~fusedoptim.AdamW` is this class with
    ``decoupled_weight_decay=True`` and ``weight_decay=1e-2``.

    Args:
        {params}
        lr (float, optional): learning rate (default: 1e-3)
        betas (Tuple[float, float], optional): coefficients of the running averages of the
            gradient and its square, each in [0, 1) (default: (0.9, 0.999))
        eps (float, optional): term added to the denominator for numerical stability
            (default: 1e-8)
        weight_decay (float, optional): weight decay coefficient (default: 0)
        amsgrad (bool, optional): use the AMSGrad variant (default: False)
        {maximize}
        decoupled_weight_decay (bool, optional): decay the parameters directly, as AdamW,
            instead of adding an L2 penalty to the gradient (default: False)

    {usage}

    Example:
        >>> import numpy as np
        >>> import fusedoptim
        >>> w = np.array([1.0, -2.0])
        >>> opt = fusedoptim.Adam([w], lr=0.1)
        >>> opt.step([np.array([3.0, -0.5])])  # the first step moves each entry by about lr
        >>> w
        array([ 0.9, -1.9])
        >>> sorted(opt.state[w])
        ['exp_avg', 'exp_avg_sq', 'step']

    References: D. P. Kingma and J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015
    (arXiv:1412.6980); AMSGrad: S. J. Reddi, S. Kale and S. Kumar, "On the Convergence of Adam
    and Beyond", ICLR 2018.
    """
)
