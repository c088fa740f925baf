"""Option grids shared by the optimizer tests against the reference and against torch.optim.

Loaded by path (``load_optim_cases`` in each test module): with ``--import-mode=importlib`` the
tests directory is not importable as a package.
"""

from __future__ import annotations

from typing import Any

STEPS = 30
SHAPES = [(5, 3), (7,), (2, 3, 4), ()]  # group 0: the first two; group 1: the rest
# (step, parameter) pairs that get no gradient: parameter 3 starts late, 1 and 2 pause.
MISSING = {(0, 3), (1, 3), (3, 1), (4, 1), (5, 1), (17, 2)}

# Per optimizer: the base hyperparameters, and each option's values (their product is tested).
AXES: dict[str, tuple[dict[str, Any], dict[str, tuple[Any, ...]]]] = {
    "SGD": (
        {"lr": 0.05},
        {
            "momentum": (0.0, 0.9),
            "dampening": (0.0, 0.3),
            "nesterov": (False, True),
            "weight_decay": (0.0, 0.05),
            "maximize": (False, True),
        },
    ),
    "Adagrad": (
        {"lr": 0.1},
        {
            "lr_decay": (0.0, 0.01),
            "initial_accumulator_value": (0.0, 0.1),
            "weight_decay": (0.0, 0.05),
            "maximize": (False, True),
        },
    ),
    "RMSprop": (
        {"lr": 0.01, "alpha": 0.9},
        {
            "centered": (False, True),
            "momentum": (0.0, 0.9),
            "weight_decay": (0.0, 0.05),
            "maximize": (False, True),
        },
    ),
    "Adadelta": (
        {"lr": 0.9, "rho": 0.85},
        {"weight_decay": (0.0, 0.05), "maximize": (False, True)},
    ),
    "Adam": (
        {"lr": 0.01, "betas": (0.8, 0.95)},
        {"amsgrad": (False, True), "weight_decay": (0.0, 0.05), "maximize": (False, True)},
    ),
    "AdamW": (
        {"lr": 0.01, "betas": (0.8, 0.95)},
        {"amsgrad": (False, True), "weight_decay": (0.0, 0.05), "maximize": (False, True)},
    ),
}
