"""Optimizers for NumPy arrays with the ``torch.optim`` interface, stepping in fused C++ kernels.

Each class mirrors its ``torch.optim`` namesake (constructor arguments, param groups, state
keys, ``state_dict`` layout); :class:`Optimizer` holds what they share.

Example:
    >>> import numpy as np
    >>> from fusedoptim.optim import Adam
    >>> w = np.zeros(3)
    >>> opt = Adam([w], lr=0.1)
    >>> opt.step([np.array([1.0, -1.0, 0.0])])
    >>> w
    array([-0.1,  0.1,  0. ])
"""

from __future__ import annotations

from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam
from .adamw import AdamW
from .base import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop"]
