"""Task generators against their specs, and memoryless baselines against the formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.tasks import softmax_cross_entropy
from harness_plugins.tasks import AddingTask, CopyTask, TemporalOrderTask


def test_copy_layout_and_targets():
    task, T, B = CopyTask(), 30, 64
    batch = task.generate(T, B, np.random.default_rng(0))
    ids = batch.x.argmax(-1)
    assert batch.x.shape == (T + 20, B, 10) and np.all(batch.x.sum(-1) == 1)
    assert np.all((ids[:10] >= 1) & (ids[:10] <= 8))
    assert np.all(ids[10 : 10 + T - 1] == 0) and np.all(ids[10 + T - 1] == 9) and np.all(ids[T + 10 :] == 0)
    assert np.all(batch.targets[: T + 10] == 0)
    assert np.array_equal(batch.targets[T + 10 :], ids[:10])  # first symbol due one step after the delimiter


@pytest.mark.parametrize("T, expected", [(100, 0.1733), (200, 0.0945), (500, 0.0400), (1000, 0.0204)])
def test_copy_baseline_is_the_published_one_and_the_memoryless_predictors_loss(T, expected):
    task = CopyTask()
    assert task.baseline(T) == pytest.approx(expected, abs=5e-5)  # Arjovsky et al. 2016: 10 ln 8 / (T + 20)
    # The memoryless predictor: blank for T + 10 steps, then uniform over the 8 data symbols; its
    # logits (log-probabilities, -1000 for "never") go through the task's own loss.
    batch = task.generate(T, 8, np.random.default_rng(1))
    logits = np.full((T + 20, 8, 9), -1000.0)
    logits[: T + 10, :, 0] = 0.0
    logits[T + 10 :, :, 1:] = 0.0
    loss, _ = task.loss(logits, batch)
    assert loss == pytest.approx(task.baseline(T), rel=1e-12)


def test_adding_layout_and_monte_carlo_baseline():
    task, T, B = AddingTask(), 100, 20000
    batch = task.generate(T, B, np.random.default_rng(2))
    marks = batch.x[:, :, 1]
    assert np.all(marks.sum(0) == 2)
    first, second = marks[: T // 2].argmax(0), T // 2 + marks[T // 2 :].argmax(0)
    assert np.all(marks[: T // 2].sum(0) == 1) and np.all(marks[T // 2 :].sum(0) == 1)
    cols = np.arange(B)
    assert np.allclose(batch.targets, batch.x[first, cols, 0] + batch.x[second, cols, 0])
    y = np.ones((T, B, 1))  # predict the mean, 1
    loss, _ = task.loss(y, batch)
    assert loss == pytest.approx(task.baseline(T), rel=0.02)
    assert task.baseline(T) == pytest.approx(1 / 6)


def test_temporal_order_layout_and_monte_carlo_baseline():
    task, T, B = TemporalOrderTask(), 200, 20000
    batch = task.generate(T, B, np.random.default_rng(3))
    ids = batch.x.argmax(-1)
    assert batch.x.shape == (T, B, 6)
    relevant = ids < 2
    assert np.all(relevant.sum(0) == 2)
    pos = np.sort(np.nonzero(relevant.T)[1].reshape(B, 2), axis=1)
    assert np.all((pos[:, 0] >= 20) & (pos[:, 0] < 40) & (pos[:, 1] >= 100) & (pos[:, 1] < 120))
    cols = np.arange(B)
    assert np.array_equal(batch.targets, ids[pos[:, 0], cols] + 2 * ids[pos[:, 1], cols])
    # The best constant prediction is the class frequencies; its loss is their entropy ~ ln 4.
    freq = np.bincount(batch.targets, minlength=4) / B
    assert -np.sum(freq * np.log(freq)) == pytest.approx(task.baseline(T), rel=0.02)
    assert task.baseline(T) == pytest.approx(math.log(4))


@pytest.mark.parametrize("task", [CopyTask(), AddingTask(), TemporalOrderTask()])
def test_generation_is_deterministic_from_the_seed(task):
    a = task.generate(20, 4, np.random.default_rng(7))
    b = task.generate(20, 4, np.random.default_rng(7))
    c = task.generate(20, 4, np.random.default_rng(8))
    assert np.array_equal(a.x, b.x) and np.array_equal(a.targets, b.targets)
    assert not np.array_equal(a.x, c.x)


def test_cross_entropy_gradient_by_finite_differences():
    rng = np.random.default_rng(4)
    logits, labels = rng.standard_normal((3, 5)), rng.integers(0, 5, 3)
    _, grad = softmax_cross_entropy(logits, labels)
    eps, fd = 1e-6, np.zeros_like(logits)
    for idx in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[idx] += eps
        down[idx] -= eps
        fd[idx] = (softmax_cross_entropy(up, labels)[0] - softmax_cross_entropy(down, labels)[0]) / (2 * eps)
    assert np.max(np.abs(grad - fd)) <= 1e-8


def _central_differences(f, y: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(y)
    for idx in np.ndindex(y.shape):
        up, down = y.copy(), y.copy()
        up[idx] += eps
        down[idx] -= eps
        grad[idx] = (f(up) - f(down)) / (2 * eps)
    return grad


@pytest.mark.parametrize("last_only", [False, True])
@pytest.mark.parametrize("task", [CopyTask(), AddingTask(), TemporalOrderTask()], ids=lambda t: t.name)
def test_loss_gradient_by_finite_differences(task, last_only):
    """dL/dy of every task's loss (full and last-step) against central differences, float64."""
    rng = np.random.default_rng(5)
    T = max(task.min_seq_len, 4)
    batch = task.generate(T, 3, rng)
    y = rng.standard_normal((task.steps(T), 3, task.output_size))
    _, grad = task.loss(y, batch, last_only=last_only)
    fd = _central_differences(lambda v: task.loss(v, batch, last_only=last_only)[0], y)
    assert np.max(np.abs(grad - fd)) <= 1e-8
    assert np.any(grad != 0)


def test_adding_markers_anywhere_are_two_distinct_steps_spread_over_the_whole_sequence():
    task = AddingTask().configured({"markers": "anywhere"})
    assert task.label == "adding(markers=anywhere)" and AddingTask().label == "adding"
    T, B = 20, 4000
    batch = task.generate(T, B, np.random.default_rng(0))
    marks = batch.x[:, :, 1]
    assert (marks.sum(axis=0) == 2).all()  # two distinct steps in every sequence
    np.testing.assert_allclose(batch.targets, (batch.x[:, :, 0] * marks).sum(axis=0))
    both_in_one_half = np.mean((marks[: T // 2].sum(axis=0) == 2) | (marks[T // 2:].sum(axis=0) == 2))
    assert both_in_one_half == pytest.approx(2 * 45 / 190, abs=0.03)  # C(10,2) / C(20,2) per half; never with halves
    assert np.mean(batch.targets) == pytest.approx(1.0, abs=0.02)  # the same target law: baseline 1/6 holds


def test_copy_tcn_variant_holds_the_delimiter_to_the_end_with_the_same_targets():
    tcn, arjovsky = CopyTask().configured({"variant": "tcn"}), CopyTask()
    a, b = (t.generate(15, 3, np.random.default_rng(1)) for t in (arjovsky, tcn))
    ids = b.x.argmax(axis=-1)
    assert (ids[10 + 15 - 1:] == 9).all() and (ids[10:10 + 15 - 1] == 0).all()
    np.testing.assert_array_equal(a.targets, b.targets)
    np.testing.assert_array_equal(a.x[:10], b.x[:10])


@pytest.mark.parametrize("options, message", [
    ({"marker": "anywhere"}, "unknown task option 'marker'; task 'adding' has the options: markers$"),
    ({"markers": "everywhere"}, "unknown adding markers 'everywhere'; its markers: halves, anywhere$"),
])
def test_a_bad_task_option_is_a_one_line_error(options, message):
    from harness import HarnessError

    with pytest.raises(HarnessError, match=message):
        AddingTask().configured(options)
    with pytest.raises(HarnessError, match="task 'temporal_order' has no options"):
        TemporalOrderTask().configured({"markers": "anywhere"})
