"""Train one grid point (backend, cell, T, seed): the core trains, the backend computes forward and BPTT.

Each iteration draws a batch from the task's seeded stream (the same for every backend), runs the
backend's forward, the core's readout and loss, hands dL/dh_t to the backend's backward, clips the
global gradient norm (readout included) and takes one optimizer step. The master parameters are
float64 and are cast to the suite's dtype for the backend, so every backend trains under exactly the
same rules. Formulas: docs/training.md.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from harness.backend import Backend, Problem
from harness.measure import dynamics, gradients
from harness.measure.denormals import flushed_while_training
from harness.record.results import OK, IterationTimes, PointResult, Snapshot, Training
from harness.run.grid import PointJob, network
from harness.run.point import measured_profile, profile_norms
from harness.run.optim import clip_gradient, make_optimizer
from harness.streams import Purpose, stream
from harness.tasks import Batch, Task

READOUT = ("readout_weight", "readout_bias")

#: Called with the training so far (a PointResult) after every evaluation.
OnEvaluation = Callable[[PointResult], None]


def readout(params: dict[str, np.ndarray], h: np.ndarray) -> np.ndarray:
    """y_t = W_y h_t + b_y, in float64."""
    return h @ params[READOUT[0]].T + params[READOUT[1]]


def readout_backward(params: dict[str, np.ndarray], h: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, dict]:
    """From dL/dy_t: dL/dh_t through the readout, and dL/dW_y, dL/db_y (summed over steps and batch)."""
    return dy @ params[READOUT[0]], {READOUT[0]: np.einsum("tbo,tbh->oh", dy, h), READOUT[1]: dy.sum(axis=(0, 1))}


@dataclass
class _Curves:
    """What the loop accumulates; frozen into a :class:`Training` whenever it reports."""

    baseline: float
    planned_iterations: int
    train_loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    clipped: list[bool] = field(default_factory=list)
    eval_iterations: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    eval_accuracy: list[float] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    solved_at: int | None = None
    unsolved_at: int | None = None
    diverged_at: int | None = None
    denormals: str = ""
    iteration_s: list[float] = field(default_factory=list)
    backend_s: list[float] = field(default_factory=list)
    fwd_bwd_s: list[float] = field(default_factory=list)

    def freeze(self, times: IterationTimes | None = None) -> Training:
        return Training(
            iterations=len(self.train_loss), planned_iterations=self.planned_iterations, baseline=self.baseline,
            train_loss=tuple(self.train_loss),
            grad_norm=tuple(self.grad_norm), clipped=tuple(self.clipped), eval_iterations=tuple(self.eval_iterations),
            eval_loss=tuple(self.eval_loss), eval_accuracy=tuple(self.eval_accuracy) if self.eval_accuracy else None,
            snapshots=tuple(self.snapshots), denormals=self.denormals, solved_at=self.solved_at,
            unsolved_at=self.unsolved_at, diverged_at=self.diverged_at, times=times)


class Trainer:
    """The core's side of training: parameters, readout, loss, clipping, optimizer, evaluation."""

    def __init__(self, backend: Backend, job: PointJob, task: Task):
        suite, seed, T = job.suite, job.seed, job.seq_len
        self.backend, self.job, self.task, self.train = backend, job, task, suite.train
        net = network(task, job.cell, T, suite, seed)  # the network `harness run` measures for this seed
        drawn = {**net.params, READOUT[0]: net.readout_weight, READOUT[1]: net.readout_bias}
        # One flat float64 vector holds every trained parameter; ``params`` are views into it.
        self.theta = np.concatenate([v.ravel() for v in drawn.values()])
        self.params, start = {}, 0
        for name, value in drawn.items():
            self.params[name] = self.theta[start : start + value.size].reshape(value.shape)
            start += value.size
        self.batches = stream(seed, T, Purpose.TRAINING)
        self.held_out = task.generate(T, self.train.eval_size, stream(seed, T, Purpose.HELD_OUT))
        settings = self.train
        self.optimizer = make_optimizer(settings.optimizer, settings.lr, settings.momentum, settings.alpha,
                                        settings.eps, settings.rmsprop_start)
        self.dtype = suite.dtype
        self._upstream: np.ndarray | None = None  # dL/dh_t, reused: its zero pages are touched once, not per step
        self._reference: tuple[Batch, np.ndarray] | None = None  # the problem time_forward_backward times

    def problem(self, batch: Batch) -> Problem:
        """The backend's problem for ``batch``: the current weights cast to the suite's dtype."""
        cast = {name: v.astype(self.dtype) for name, v in self.params.items() if name not in READOUT}
        return Problem(self.job.cell, cast, batch.x.astype(self.dtype))

    def _forward(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """The backend's h_t (float64) and the core's readout y_t = W_y h_t + b_y."""
        self.backend.prepare(self.problem(batch))
        self.backend.forward()
        h = self.backend.outputs().h.astype(np.float64)
        return h, readout(self.params, h)

    def evaluate(self) -> tuple[float, float | None]:
        """Loss (and accuracy) on the held-out set."""
        _, y = self._forward(self.held_out)
        loss, _ = self.task.loss(y, self.held_out)
        return loss, self.task.accuracy(y, self.held_out)

    def snapshot(self, iteration: int) -> Snapshot:
        """The gradient profile of the last-step loss on the held-out set, with W_hh's spectra and
        the Lyapunov exponents along the held-out trajectories."""
        h, y = self._forward(self.held_out)
        _, dy = self.task.loss(y, self.held_out, last_only=True)
        self.backend.upstream(readout_backward(self.params, h, dy)[0].astype(self.dtype))
        self.backend.backward(per_step=True)
        h, c = profile_norms(self.job.cell, self.backend.gradients())
        weights = {name: v for name, v in self.params.items() if name not in READOUT}
        suite = self.job.suite
        explanation = dynamics.explanation(self.job.cell, [(weights, self.held_out.x)], suite.lyapunov,
                                           suite.lyapunov_steps)
        return Snapshot(iteration, measured_profile([h], [c] if c is not None else [],
                                                    gradients.underflow_floor(self.dtype), **explanation))

    def time_forward_backward(self, clock, calls: int = 3) -> list[float]:
        """Seconds of ``calls`` forward + backward passes of a training-shaped problem with a dense
        upstream gradient, on warm buffers: the work `harness run` times, for the iteration's ratio."""
        if self._reference is None:
            batch = self.task.generate(self.job.seq_len, self.train.batch, np.random.default_rng([self.job.seed, 3]))
            upstream = np.random.default_rng(0).standard_normal((self.task.steps(self.job.seq_len), self.train.batch,
                                                                 self.job.suite.hidden))
            self._reference = (batch, upstream.astype(self.dtype))
        batch, upstream = self._reference
        self.backend.prepare(dataclasses.replace(self.problem(batch), grad_h=upstream))
        samples = []
        for _ in range(calls + 1):  # the first call warms the buffers
            clock.start()
            self.backend.forward()
            self.backend.backward()
            samples.append(clock.stop())
        return samples[1:]

    def step(self, clock) -> tuple[float, float, bool, float]:
        """One training iteration: (loss, gradient norm before clipping, clipped, backend seconds).

        The readout runs only on the steps the task's loss reads (``Task.loss_steps``); dL/dh_t is
        zero elsewhere."""
        batch = self.task.generate(self.job.seq_len, self.train.batch, self.batches)
        self.backend.prepare(self.problem(batch))
        clock.start()
        self.backend.forward()
        backend_s = clock.stop()
        out = self.backend.outputs().h
        loss_steps = self.task.loss_steps
        h = out[loss_steps].astype(np.float64)
        loss, dy = self.task.loss(readout(self.params, h), batch)
        if not math.isfinite(loss):
            return loss, math.nan, False, backend_s
        dh, readout_grads = readout_backward(self.params, h, dy)
        if self._upstream is None or self._upstream.shape != out.shape:
            self._upstream = np.zeros(out.shape, dtype=self.dtype)  # zero where the loss reads nothing
        self._upstream[loss_steps] = dh
        self.backend.upstream(self._upstream)
        clock.start()
        self.backend.backward()
        backend_s += clock.stop()
        grads = {**self.backend.gradients().params, **readout_grads}
        g = np.concatenate([grads[name].ravel() for name in self.params]).astype(np.float64, copy=False)
        norm, clipped = clip_gradient(g, self.train.clip, self.train.clip_kind)
        self.optimizer.step(self.theta, g)
        return loss, norm, clipped, backend_s


def train(backend: Backend, job: PointJob, task: Task, on_progress: OnEvaluation | None = None) -> PointResult:
    """Train one point, subnormal floats flushed to zero (docs/training.md); ``on_progress`` sees the
    partial record after every evaluation."""
    with flushed_while_training() as denormals:
        return _train(backend, job, task, on_progress, denormals)


def _train(backend: Backend, job: PointJob, task: Task, on_progress: OnEvaluation | None,
           denormals: str) -> PointResult:
    started = time.perf_counter()
    trainer = Trainer(backend, job, task)
    settings = job.suite.train
    curves = _Curves(baseline=task.baseline(job.seq_len), planned_iterations=settings.iterations, denormals=denormals)
    clock = backend.clock()

    def result(status: str = OK, times: IterationTimes | None = None) -> PointResult:
        return job.point.record(status, steps=task.steps(job.seq_len), training=curves.freeze(times),
                                duration_s=time.perf_counter() - started)

    def evaluate(iteration: int) -> None:
        if iteration:  # beside the iterations, so that both medians see the same machine
            curves.fwd_bwd_s.extend(trainer.time_forward_backward(clock))
        loss, accuracy = trainer.evaluate()
        curves.eval_iterations.append(iteration)
        curves.eval_loss.append(loss)
        if accuracy is not None:
            curves.eval_accuracy.append(accuracy)
        solved = task.is_solved(loss, accuracy, job.seq_len)
        if curves.solved_at is None and solved:
            curves.solved_at = iteration
        elif curves.solved_at is not None and curves.unsolved_at is None and not solved:
            curves.unsolved_at = iteration
        if on_progress is not None:
            on_progress(result())

    curves.snapshots.append(trainer.snapshot(0))
    evaluate(0)
    for iteration in range(1, settings.iterations + 1):
        t0 = time.perf_counter()
        loss, norm, clipped, backend_s = trainer.step(clock)
        curves.iteration_s.append(time.perf_counter() - t0)
        curves.backend_s.append(backend_s)
        curves.train_loss.append(loss)
        curves.grad_norm.append(norm)
        curves.clipped.append(clipped)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            curves.diverged_at = iteration
            break
        if iteration % settings.profile_every == 0:
            curves.snapshots.append(trainer.snapshot(iteration))
        if iteration % settings.eval_every == 0 or iteration == settings.iterations:
            evaluate(iteration)
    times = None
    if curves.iteration_s:
        iteration_s, backend_s = float(np.median(curves.iteration_s)), float(np.median(curves.backend_s))
        times = IterationTimes(iteration_s, backend_s, iteration_s - backend_s, float(np.median(curves.fwd_bwd_s)))
    return result(times=times)
