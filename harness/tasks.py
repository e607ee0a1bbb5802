"""The task contract (:class:`Task`, beside the backend contract in harness/backend.py) and the losses
tasks share. The built-in tasks (copy, adding, temporal order) are a plugin like any other
(``harness_plugins.tasks``, through the ``harness_tasks`` hook).

A task generates inputs and targets deterministically from a ``numpy.random.Generator``, and scores
readout outputs with its loss in float64. Exact specs and sources: docs/references.md, "Tasks".
"""
from __future__ import annotations

import abc
import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness.errors import HarnessError, check_choice


@dataclass(frozen=True)
class Batch:
    x: np.ndarray  # (steps, B, input_size) float64
    targets: np.ndarray  # class ids (steps, B) or (B,) for last-step tasks, or values (B,)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy over every leading index, and its gradient with respect to ``logits``."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
    count = labels.size
    grad = np.exp(log_p)
    np.put_along_axis(grad, labels[..., None], np.take_along_axis(grad, labels[..., None], -1) - 1.0, -1)
    return float(-picked.sum() / count), grad / count


def last_step_cross_entropy(y: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Cross-entropy of the last step's outputs only; the gradient is zero at every other step."""
    loss, grad_last = softmax_cross_entropy(y[-1], labels)
    grad = np.zeros_like(y)
    grad[-1] = grad_last
    return loss, grad


class Task(abc.ABC):
    """Base class of a task. ``seq_len`` is the task's length parameter T (the suite's grid axis);
    :meth:`steps` is the number of time steps the recurrent layer actually runs."""

    name: str
    input_size: int
    output_size: int
    reference: str  # the paper (and code) the task follows; shown by `harness suites`
    solved: str  # the solved criterion, in words; shown by `harness suites`
    min_seq_len: int = 1
    #: The steps whose outputs the loss reads: :meth:`loss` may be given ``y[loss_steps]`` only
    #: (training computes the readout there and nowhere else).
    loss_steps: slice = slice(None)
    #: The variants a suite may choose (``task_options = {NAME = "VALUE"}``): each option's values, its
    #: default first. The default is the class attribute of that name; :meth:`configured` sets others.
    options: ClassVar[dict[str, tuple[str, ...]]] = {}

    def configured(self, options: Mapping[str, str]) -> Task:
        """This task with ``options`` set: a copy; an unknown option or value is a one-line error."""
        task = copy.copy(self)
        for key, value in options.items():
            if not self.options:
                raise HarnessError(f"task {self.name!r} has no options, got task_options {dict(options)!r}")
            check_choice("task option", key, self.options, f"task {self.name!r} has the options")
            setattr(task, key, check_choice(f"{self.name} {key}", value, self.options[key], f"its {key}"))
        return task

    @property
    def label(self) -> str:
        """The task's name with the options that differ from their defaults: ``adding(markers=anywhere)``."""
        chosen = [f"{key}={getattr(self, key)}" for key, values in self.options.items()
                  if getattr(self, key) != values[0]]
        return f"{self.name}({', '.join(chosen)})" if chosen else self.name

    def steps(self, seq_len: int) -> int:
        return seq_len

    @abc.abstractmethod
    def generate(self, seq_len: int, batch: int, rng: np.random.Generator) -> Batch:
        """Inputs (steps, B, input_size) and targets, drawn from ``rng`` only."""

    @abc.abstractmethod
    def loss(self, y: np.ndarray, batch: Batch, last_only: bool = False) -> tuple[float, np.ndarray]:
        """Loss of readout outputs ``y`` (steps, B, output_size) and dL/dy. ``last_only`` restricts the
        loss to the last step (the gradient-profile convention); for last-step tasks it changes nothing."""

    @abc.abstractmethod
    def baseline(self, seq_len: int) -> float:
        """The loss of the best memoryless predictor."""

    def accuracy(self, y: np.ndarray, batch: Batch) -> float | None:
        """The share of correct predictions, for classification tasks (None for regression)."""
        return None

    @abc.abstractmethod
    def is_solved(self, loss: float, accuracy: float | None, seq_len: int) -> bool:
        """Whether an eval loss (and accuracy) meets the task's solved criterion (:attr:`solved`)."""
