"""AdamW: Adam with decoupled weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .adam import Adam
from .base import format_doc

__all__ = ["AdamW"]


class AdamW(Adam):
    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )

    def _fix_loaded_group(self, group: dict[str, Any]) -> None:
        # As torch.optim.AdamW: loading any state (an Adam one included) keeps AdamW's decay.
        group["decoupled_weight_decay"] = True


AdamW.__doc__ = format_doc(
    r"""AdamW: Adam whose weight decay shrinks the parameters instead of adding to the gradient.

    For each parameter :math:`\theta` with gradient :math:`g_t` at its step :math:`t` (state:
    ``step``, :math:`m` = ``exp_avg``, :math:`v` = ``exp_avg_sq``, and :math:`v^{max}` =
    ``max_exp_avg_sq`` when ``amsgrad``):

    .. math::
        g_t &\leftarrow -g_t \quad \text{if maximize} \\
        \theta_{t-1} &\leftarrow (1 - \gamma\lambda)\,\theta_{t-1} \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        v^{max}_t &\leftarrow \max(v^{max}_{t-1}, v_t), \quad v_t \leftarrow v^{max}_t
            \quad \text{if amsgrad} \\
        \theta_t &\leftarrow \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t} \,
            \frac{m_t}{\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    with learning rate :math:`\gamma`, betas :math:`(\beta_1, \beta_2)` and weight decay
    :math:`\lambda`. Equivalent to ``Adam(..., decoupled_weight_decay=True)``; the param
    groups carry ``decoupled_weight_decay: True``, as PyTorch's do.

    Args:
        {params}
        lr (float, optional): learning rate (default: 1e-3)
        betas (Tuple[float, float], optional): coefficients of the running averages of the
            gradient and its square, each in [0, 1) (default: (0.9, 0.999))
        eps (float, optional): term added to the denominator for numerical stability
            (default: 1e-8)
        weight_decay (float, optional): decoupled weight decay coefficient (default: 1e-2)
        amsgrad (bool, optional): use the AMSGrad variant (default: False)
        {maximize}

    {usage}

    Example:
        >>> import numpy as np
        >>> import fusedoptim
        >>> w = np.array([2.0])
        >>> opt = fusedoptim.AdamW([w], lr=0.1, weight_decay=0.5)
        >>> opt.step([np.array([0.0])])  # a zero gradient leaves only the decay
        >>> w
        array([1.9])

    Reference: I. Loshchilov and F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019
    (arXiv:1711.05101).
    """
)
