"""The core's optimizers and gradient clipping, in float64, with PyTorch's update rules.

Every backend trains under exactly these rules, so learning curves differ between backends only by
the rounding of their forward and backward passes. The formulas (docs/training.md) are those of
``torch.optim.Adam``, ``torch.optim.RMSprop`` and ``torch.optim.SGD`` with their defaults, and of
``torch.nn.utils.clip_grad_norm_``; tests/test_optim.py checks them against torch.
"""
from __future__ import annotations

import abc
import math

import numpy as np

from harness.errors import check_choice

class Optimizer(abc.ABC):
    """Updates a flat float64 parameter vector in place from the gradient vector of the same layout
    (every trained array, raveled one after another: one vectorised update instead of one per array).
    The rules are element-wise, so they are exactly PyTorch's per-parameter ones."""

    def __init__(self, lr: float):
        self.lr = lr
        self.steps = 0

    def step(self, p: np.ndarray, g: np.ndarray) -> None:
        self.steps += 1
        self._update(p, g)

    @abc.abstractmethod
    def _update(self, p: np.ndarray, g: np.ndarray) -> None:
        """The update of step ``self.steps`` (1-based)."""


class Adam(Optimizer):
    """m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""

    def __init__(self, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(lr)
        self.betas, self.eps = betas, eps
        self.m: np.ndarray | None = None
        self.v: np.ndarray | None = None

    def _update(self, p, g):
        b1, b2 = self.betas
        if self.m is None:
            self.m, self.v, self._work = np.zeros_like(p), np.zeros_like(p), np.empty_like(p)
        m, v, work = self.m, self.v, self._work  # in place: no temporary the size of the parameters
        m *= b1
        m += np.multiply(g, 1 - b1, out=work)
        v *= b2
        np.multiply(g, g, out=work)
        work *= 1 - b2
        v += work
        np.sqrt(v, out=work)
        work /= math.sqrt(1 - b2**self.steps)
        work += self.eps
        np.divide(m, work, out=work)
        work *= self.lr / (1 - b1**self.steps)
        p -= work


class RMSprop(Optimizer):
    """v = alpha v + (1 - alpha) g^2; p -= lr g / (sqrt(v) + eps), v starting at ``start`` (torch: 0;
    Arjovsky et al.'s ``optimizations.py``: 1e-3, with alpha 0.9 and eps 0)."""

    def __init__(self, lr: float, alpha: float = 0.99, eps: float = 1e-8, start: float = 0.0):
        super().__init__(lr)
        self.alpha, self.eps, self.start = alpha, eps, start
        self.v: np.ndarray | None = None

    def _update(self, p, g):
        if self.v is None:
            self.v = np.full_like(p, self.start)
        v = self.v
        v *= self.alpha
        v += (1 - self.alpha) * g * g
        p -= self.lr * g / (np.sqrt(v) + self.eps)


class SGD(Optimizer):
    """b = g on the first step, then b = momentum b + g; p -= lr b."""

    def __init__(self, lr: float, momentum: float = 0.9):
        super().__init__(lr)
        self.momentum = momentum
        self.buffer: np.ndarray | None = None

    def _update(self, p, g):
        if self.buffer is None:
            self.buffer = g.copy()
        else:
            self.buffer *= self.momentum
            self.buffer += g
        p -= self.lr * self.buffer


OPTIMIZERS = {"adam": Adam, "rmsprop": RMSprop, "sgd": SGD}


def make_optimizer(name: str, lr: float, momentum: float = 0.9, alpha: float = 0.99, eps: float = 1e-8,
                   rmsprop_start: float = 0.0) -> Optimizer:
    """The optimizer ``name`` (adam, rmsprop or sgd with momentum) with PyTorch's other defaults."""
    check_choice("optimizer", name, OPTIMIZERS)
    if name == "sgd":
        return SGD(lr, momentum=momentum)
    if name == "rmsprop":
        return RMSprop(lr, alpha=alpha, eps=eps, start=rmsprop_start)
    return Adam(lr, eps=eps)


def clip_gradient(g: np.ndarray, threshold: float, kind: str = "norm") -> tuple[float, bool]:
    """Clip the gradient vector in place by ``kind`` (harness.suites.CLIP_KINDS): its global L2 norm
    (torch.nn.utils.clip_grad_norm_) or each element to [-threshold, threshold]
    (torch.nn.utils.clip_grad_value_; Arjovsky et al.'s ``T.clip``). Returns the L2 norm before
    clipping and whether anything was clipped; ``threshold = 0`` turns clipping off."""
    if kind == "norm":
        return clip_grad_norm(g, threshold)
    norm = math.sqrt(float(np.dot(g, g)))
    if threshold <= 0:
        return norm, False
    clipped = bool(np.any(np.abs(g) > threshold))
    np.clip(g, -threshold, threshold, out=g)
    return norm, clipped


def clip_grad_norm(g: np.ndarray, max_norm: float) -> tuple[float, bool]:
    """Scale the gradient vector (every trained parameter's, together) in place by
    min(1, max_norm / (norm + 1e-6)), as clip_grad_norm_ does.

    Returns the L2 norm before clipping and whether it clipped; ``max_norm = 0`` turns clipping off.
    """
    norm = math.sqrt(float(np.dot(g, g)))
    if max_norm <= 0 or not math.isfinite(norm):
        return norm, False
    coef = max_norm / (norm + 1e-6)
    if coef >= 1.0:
        return norm, False
    g *= coef
    return norm, True
