"""Small shared helpers for the tests."""
from __future__ import annotations

import numpy as np

from harness.backend import Problem
from harness.cells import init_params


def make_problem(cell: str, T: int = 7, B: int = 3, I: int = 4, H: int = 5, dtype: str = "float64",
                 seed: int = 0, init: str = "default") -> Problem:
    rng = np.random.default_rng(seed)
    params = init_params(cell, I, H, rng, init=init, dtype=dtype)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    grad_h = rng.standard_normal((T, B, H)).astype(dtype)
    return Problem(cell, params, x, grad_h)


def max_rel_err(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |a - e| / max |e|: relative to the tensor's scale, so tiny entries do not dominate."""
    scale = max(float(np.max(np.abs(expected))), 1e-300)
    return float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected))) / scale
