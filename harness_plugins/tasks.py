"""The built-in tasks: copy, adding and temporal order, offered through the ``harness_tasks`` hook
exactly as a third-party plugin offers its own (the contract: harness/tasks.py).

Exact specs and sources: docs/references.md, "Tasks".
"""
from __future__ import annotations

import math

import numpy as np

from harness import hookimpl
from harness.tasks import Batch, Task, last_step_cross_entropy, softmax_cross_entropy

HARNESS_PLUGIN_API = 3


def _one_hot(ids: np.ndarray, n: int) -> np.ndarray:
    return np.eye(n)[ids]


class CopyTask(Task):
    """Arjovsky, Shah & Bengio (2016), as in the authors' ``memory_problem.py``.

    Input (T + 20 steps, one-hot over 10 symbols): 10 data symbols from 1..8, T - 1 blanks (0), the
    delimiter (9), 10 blanks. Target: T + 10 blanks, then the 10 data symbols; the first symbol is due
    one step AFTER the delimiter (the authors' convention, not the off-by-one variant).
    Loss: mean cross-entropy over all T + 20 steps and the batch.

    Option ``variant``: ``arjovsky`` (above) or ``tcn``, the generator of Bai, Kolter & Koltun's TCN
    code (``copy_memory/utils.py``), where the delimiter is held for the last 11 steps instead of
    one delimiter and 10 blanks (the same targets, steps and baseline).
    """

    name = "copy"
    input_size = 10
    output_size = 9
    reference = "Arjovsky, Shah, Bengio 2016, Unitary Evolution RNNs"
    solved = "eval loss at most 0.1 x the memoryless baseline 10 ln 8 / (T + 20)"
    n_symbols = 10
    options = {"variant": ("arjovsky", "tcn")}
    variant = "arjovsky"

    def steps(self, seq_len: int) -> int:
        return seq_len + 2 * self.n_symbols

    def generate(self, seq_len, batch, rng):
        data = rng.integers(1, 9, size=(self.n_symbols, batch))
        ids = np.zeros((self.steps(seq_len), batch), dtype=np.int64)
        ids[: self.n_symbols] = data
        ids[self.n_symbols + seq_len - 1] = 9
        if self.variant == "tcn":
            ids[self.n_symbols + seq_len - 1:] = 9  # the delimiter held until the end
        targets = np.zeros_like(ids)
        targets[-self.n_symbols :] = data
        return Batch(_one_hot(ids, 10), targets)

    def loss(self, y, batch, last_only=False):
        if last_only:
            return last_step_cross_entropy(y, batch.targets[-1])
        return softmax_cross_entropy(y, batch.targets)

    def baseline(self, seq_len):
        return self.n_symbols * math.log(8) / self.steps(seq_len)

    def accuracy(self, y, batch):
        """Symbols recalled: the last 10 steps' predictions against the data symbols."""
        recalled = y[-self.n_symbols :].argmax(axis=-1)
        return float(np.mean(recalled == batch.targets[-self.n_symbols :]))

    def is_solved(self, loss, accuracy, seq_len):
        return loss <= 0.1 * self.baseline(seq_len)


class AddingTask(Task):
    """Arjovsky et al. (2016) form of Hochreiter & Schmidhuber's adding problem.

    Two channels: values ~ U[0, 1], and a marker channel with one 1 uniformly in the first half
    and one in the second half. Target: the sum of the two marked values; MSE on the last output.

    Option ``markers``: ``halves`` (above, Arjovsky's ``adding_problem.py``) or ``anywhere``: two
    distinct steps drawn uniformly from the whole sequence (TCN's ``adding_problem/utils.py``; the
    form Le et al. 2015 describe). The target's distribution, and so the baseline 1/6, is the same.
    """

    name = "adding"
    input_size = 2
    output_size = 1
    reference = "Arjovsky, Shah, Bengio 2016 (after Hochreiter & Schmidhuber 1997)"
    min_seq_len = 2  # one marker in each half
    loss_steps = slice(-1, None)
    solved = "eval MSE at most 0.1 x the memoryless baseline 1/6"
    options = {"markers": ("halves", "anywhere")}
    markers = "halves"

    def generate(self, seq_len, batch, rng):
        x = np.zeros((seq_len, batch, 2))
        x[:, :, 0] = rng.uniform(0.0, 1.0, size=(seq_len, batch))
        if self.markers == "anywhere":  # two distinct steps: the first uniform, the second among the others
            first = rng.integers(0, seq_len, size=batch)
            second = (first + rng.integers(1, seq_len, size=batch)) % seq_len
        else:
            half = seq_len // 2
            first = rng.integers(0, half, size=batch)
            second = rng.integers(half, seq_len, size=batch)
        cols = np.arange(batch)
        x[first, cols, 1] = 1.0
        x[second, cols, 1] = 1.0
        return Batch(x, x[first, cols, 0] + x[second, cols, 0])

    def loss(self, y, batch, last_only=False):
        err = y[-1, :, 0] - batch.targets
        grad = np.zeros_like(y)
        grad[-1, :, 0] = 2.0 * err / err.size
        return float(np.mean(err**2)), grad

    def baseline(self, seq_len):
        return 1.0 / 6.0  # predicting 1, the mean of the sum: its variance, 2 x 1/12

    def is_solved(self, loss, accuracy, seq_len):
        return loss <= 0.1 * self.baseline(seq_len)


class TemporalOrderTask(Task):
    """Pascanu, Mikolov & Bengio (2013), as in their ``tempOrder.py``: the long-range task.

    Six one-hot channels: A, B (ids 0, 1) and distractors c, d, e, f (ids 2..5) drawn uniformly at
    every step. At p0 ~ U[0.1 T, 0.2 T) and p1 ~ U[0.5 T, 0.6 T) the symbols v0, v1 in {A, B} replace
    the distractor; the class is v0 + 2 v1 (4 classes), scored by softmax cross-entropy on the last step.
    """

    name = "temporal_order"
    input_size = 6
    output_size = 4
    reference = "Pascanu, Mikolov, Bengio 2013, On the difficulty of training RNNs"
    solved = "eval accuracy at least 99% (chance is 25%)"
    min_seq_len = 10  # p0 in [0.1 T, 0.2 T) must not be empty
    loss_steps = slice(-1, None)

    def generate(self, seq_len, batch, rng):
        ids = rng.integers(2, 6, size=(seq_len, batch))
        p0 = rng.integers(int(0.1 * seq_len), int(0.2 * seq_len), size=batch)
        p1 = rng.integers(int(0.5 * seq_len), int(0.6 * seq_len), size=batch)
        v0 = rng.integers(0, 2, size=batch)
        v1 = rng.integers(0, 2, size=batch)
        cols = np.arange(batch)
        ids[p0, cols] = v0
        ids[p1, cols] = v1
        return Batch(_one_hot(ids, 6), v0 + 2 * v1)

    def loss(self, y, batch, last_only=False):
        return last_step_cross_entropy(y, batch.targets)

    def baseline(self, seq_len):
        return math.log(4)

    def accuracy(self, y, batch):
        return float(np.mean(y[-1].argmax(axis=-1) == batch.targets))

    def is_solved(self, loss, accuracy, seq_len):
        return accuracy is not None and accuracy >= 0.99


BUILTIN_TASKS = (CopyTask(), AddingTask(), TemporalOrderTask())


@hookimpl
def harness_tasks():
    return list(BUILTIN_TASKS)
