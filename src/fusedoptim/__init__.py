"""fusedoptim: fused, multithreaded C++ optimizer kernels for NumPy arrays and PyTorch CPU tensors.

The compiled kernels live in :mod:`fusedoptim._core`; :mod:`fusedoptim.functional` is their
in-place functional API and :mod:`fusedoptim.reference` the same updates in plain NumPy.
"""

from __future__ import annotations

from . import functional, lr_scheduler, reference, schedules
from ._core import build_info, get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "build_info",
    "functional",
    "get_num_threads",
    "lr_scheduler",
    "reference",
    "schedules",
    "set_num_threads",
]
