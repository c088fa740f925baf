"""fusedoptim: fused, multithreaded C++ optimizer kernels for NumPy arrays and PyTorch CPU tensors.

The compiled kernels live in :mod:`fusedoptim._core`; :mod:`fusedoptim.functional` is their
in-place functional API and :mod:`fusedoptim.reference` the same updates in plain NumPy. The
optimizer classes (:class:`Adam`, ...) follow ``torch.optim``; :mod:`fusedoptim.lr_scheduler` and
:mod:`fusedoptim.schedules` change their learning rate; :mod:`fusedoptim.torch` (needs PyTorch)
is the drop-in for ``torch.optim`` on CPU tensors.
"""

from __future__ import annotations

from . import functional, lr_scheduler, optim, reference, schedules
from ._core import build_info, get_num_threads, set_num_threads
from .clip import clip_grad_norm_, clip_grad_value_
from .optim import SGD, Adadelta, Adagrad, Adam, AdamW, Optimizer, RMSprop
from .serialization import load, save

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "build_info",
    "clip_grad_norm_",
    "clip_grad_value_",
    "functional",
    "get_num_threads",
    "load",
    "lr_scheduler",
    "optim",
    "reference",
    "save",
    "schedules",
    "set_num_threads",
]
