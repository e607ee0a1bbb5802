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

Arrays = dict[str, np.ndarray]


class Optimizer(abc.ABC):
    """Updates a dict of float64 parameters in place from a dict of gradients of the same keys."""

    def __init__(self, lr: float):
        self.lr = lr
        self.steps = 0

    def step(self, params: Arrays, grads: Arrays) -> None:
        self.steps += 1
        for name, p in params.items():
            self._update(name, p, grads[name])

    @abc.abstractmethod
    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        """One parameter's update (``self.steps`` is already the 1-based step number)."""


class Adam(Optimizer):
    """m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""

    def __init__(self, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(lr)
        self.betas, self.eps = betas, eps
        self.m: Arrays = {}
        self.v: Arrays = {}

    def _update(self, name, p, g):
        b1, b2 = self.betas
        m = self.m.setdefault(name, np.zeros_like(p))
        v = self.v.setdefault(name, np.zeros_like(p))
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        denom = np.sqrt(v) / math.sqrt(1 - b2**self.steps) + self.eps
        p -= (self.lr / (1 - b1**self.steps)) * m / denom


class RMSprop(Optimizer):
    """v = alpha v + (1 - alpha) g^2; p -= lr g / (sqrt(v) + eps)."""

    def __init__(self, lr: float, alpha: float = 0.99, eps: float = 1e-8):
        super().__init__(lr)
        self.alpha, self.eps = alpha, eps
        self.v: Arrays = {}

    def _update(self, name, p, g):
        v = self.v.setdefault(name, np.zeros_like(p))
        v *= self.alpha
        v += (1 - self.alpha) * g * g
        p -= self.lr * g / (np.sqrt(v) + self.eps)


class SGD(Optimizer):
    """b = g on the first step, then b = momentum b + g; p -= lr b."""

    def __init__(self, lr: float, momentum: float = 0.9):
        super().__init__(lr)
        self.momentum = momentum
        self.buffers: Arrays = {}

    def _update(self, name, p, g):
        if name not in self.buffers:
            self.buffers[name] = g.copy()
        else:
            self.buffers[name] *= self.momentum
            self.buffers[name] += g
        p -= self.lr * self.buffers[name]


OPTIMIZERS = {"adam": Adam, "rmsprop": RMSprop, "sgd": SGD}


def make_optimizer(name: str, lr: float, momentum: float = 0.9, alpha: float = 0.99) -> Optimizer:
    """The optimizer ``name`` (adam, rmsprop or sgd with momentum) with PyTorch's other defaults."""
    check_choice("optimizer", name, OPTIMIZERS)
    if name == "sgd":
        return SGD(lr, momentum=momentum)
    if name == "rmsprop":
        return RMSprop(lr, alpha=alpha)
    return Adam(lr)


def global_norm(grads: Arrays) -> float:
    """The L2 norm over every array together."""
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))


def clip_grad_norm(grads: Arrays, max_norm: float) -> tuple[float, bool]:
    """Scale every gradient in place by min(1, max_norm / (norm + 1e-6)), as clip_grad_norm_ does.

    Returns the norm before clipping and whether it clipped; ``max_norm = 0`` turns clipping off.
    """
    norm = global_norm(grads)
    if max_norm <= 0 or not math.isfinite(norm):
        return norm, False
    coef = max_norm / (norm + 1e-6)
    if coef >= 1.0:
        return norm, False
    for g in grads.values():
        g *= coef
    return norm, True
