"""Gradient clipping with ``torch.nn.utils``' semantics, the norm computed in one C++ pass."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Union

import numpy as np

from fusedoptim import _core

__all__ = ["clip_grad_norm_", "clip_grad_value_"]

GradientsT = Union[np.ndarray, Iterable[Any]]


def _gradient_arrays(grads: GradientsT) -> list[np.ndarray]:
    """The gradient arrays in ``grads``: arrays, ``None`` (skipped) or objects with ``.grad``."""
    items = [grads] if isinstance(grads, np.ndarray) else list(grads)
    arrays = []
    for index, item in enumerate(items):
        label = f"grads[{index}]"
        if item is not None and not isinstance(item, np.ndarray) and hasattr(item, "grad"):
            item, label = item.grad, f"grads[{index}].grad"
        if item is None:
            continue
        if not isinstance(item, np.ndarray):
            raise TypeError(
                f"{label} must be a numpy.ndarray, None or an object with a .grad array, got "
                f"{type(item).__name__}"
            )
        if item.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"{label} has dtype {item.dtype}; gradients must be float32 or float64")
        if not item.flags.c_contiguous:
            raise ValueError(f"{label} is not C-contiguous: pass np.ascontiguousarray(g)")
        if not item.flags.writeable:
            raise ValueError(f"{label} is read-only: clipping scales gradients in place")
        arrays.append(item)
    return arrays


def _norm_order(norm_type: Any) -> float:
    if isinstance(norm_type, str):
        if norm_type.lower() != "inf":
            raise ValueError(f"norm_type must be a positive number or 'inf', got {norm_type!r}")
        return math.inf
    order = float(norm_type)
    if not order > 0:
        raise ValueError(f"norm_type must be a positive number or inf, got {norm_type!r}")
    return order


def _global_norm(arrays: list[np.ndarray], order: float) -> float:
    """The norm of all ``arrays`` together, one compiled pass per dtype present."""
    by_dtype: dict[np.dtype, list[np.ndarray]] = {}
    for array in arrays:
        by_dtype.setdefault(array.dtype, []).append(array)
    norms = [_core.grad_norm(group, order) for group in by_dtype.values()]
    if len(norms) == 1:
        return float(norms[0])
    # Mixed float32/float64: combine the per-dtype norms (the norm of the norms), with NumPy's
    # rules: a NaN wins (also over inf, for the max), and a sum of powers that overflows is
    # inf, as the single pass over one dtype gives, not an OverflowError.
    values = np.array(norms, dtype=np.float64)
    if math.isinf(order):
        return float(np.max(values))
    with np.errstate(over="ignore"):
        return float(np.sum(values**order) ** (1.0 / order))


def clip_grad_norm_(
    grads: GradientsT,
    max_norm: float,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Scale gradients in place so that their global norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: the norm is taken over all gradients together, as if
    they were concatenated into one vector; when it exceeds ``max_norm`` every gradient is
    multiplied by ``max_norm / (total_norm + 1e-6)``. The norm is accumulated in float64 by the
    compiled core in one pass over all arrays and is the same for any thread count.

    Args:
        grads: an array, or an iterable of arrays, ``None`` (skipped) or parameter objects
            (their ``.grad`` is used). Arrays must be float32/float64, C-contiguous, writeable.
        max_norm: the largest norm allowed.
        norm_type: order of the norm, a positive number or ``inf`` (``'inf'``) (default: 2.0).
        error_if_nonfinite: raise ``RuntimeError`` when the total norm is NaN or infinite
            instead of scaling by it (default: False).

    Returns:
        The total norm of the gradients before clipping, a float (0.0 for no gradients).

    Example:
        >>> import numpy as np
        >>> from fusedoptim import clip_grad_norm_
        >>> g1, g2 = np.array([3.0, 0.0]), np.array([4.0])
        >>> clip_grad_norm_([g1, g2], max_norm=1.0)
        5.0
        >>> bool(np.isclose(np.sqrt((g1**2).sum() + (g2**2).sum()), 1.0))
        True
    """
    arrays = _gradient_arrays(grads)
    max_norm = float(max_norm)
    order = _norm_order(norm_type)
    if not arrays:
        return 0.0
    total = _global_norm(arrays, order)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {float(order)} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the gradients "
            "by the non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    coefficient = max_norm / (total + 1e-6)
    # PyTorch multiplies by min(coefficient, 1); a factor of exactly 1 changes nothing, so that
    # pass is skipped. A NaN coefficient (NaN norm) is applied, as PyTorch does.
    if coefficient < 1.0 or math.isnan(coefficient):
        _core.scale_(arrays, coefficient)
    return total


def clip_grad_value_(grads: GradientsT, clip_value: float) -> None:
    """Clamp every gradient entry to ``[-clip_value, clip_value]``, in place.

    As ``torch.nn.utils.clip_grad_value_``, except that a negative or NaN ``clip_value`` is
    refused with ``ValueError`` (PyTorch would clamp everything to the negative value).

    Args:
        grads: an array, or an iterable of arrays, ``None`` (skipped) or parameter objects
            (their ``.grad`` is used).
        clip_value: the largest magnitude allowed.

    Example:
        >>> import numpy as np
        >>> from fusedoptim import clip_grad_value_
        >>> g = np.array([-3.0, 0.5, 2.0])
        >>> clip_grad_value_([g], 1.0)
        >>> g
        array([-1. ,  0.5,  1. ])
    """
    limit = float(clip_value)
    if not limit >= 0:
        raise ValueError(f"clip_value must be non-negative, got {clip_value!r}")
    arrays = _gradient_arrays(grads)
    if arrays:
        _core.clamp_(arrays, -limit, limit)
