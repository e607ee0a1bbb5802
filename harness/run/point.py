"""Measure one grid point on one backend: speed, peak memory, gradient profile, loss at init.

Runs inside the backend's worker process. Only ``forward`` and ``backward`` calls are timed;
building problems, moving data and converting results are outside every timed region.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from harness.backend import Backend, Gradients, Problem, check_gradients, state_gradients
from harness.cells import activation_bytes, cell_class
from harness.measure import gradients
from harness.measure.probe import probe
from harness.measure.roofline import layer_flops
from harness.measure.timing import Measurement, Timer
from harness.record.results import OK, GradientProfile, LossAtInit, Memory, PointResult, Times
from harness.run.grid import PointJob, SeededProblem, build
from harness.suites import Timing
from harness.tasks import Task


def _time(backend: Backend, stmt: Callable[[], object], timing: Timing, round_: int = 1) -> Measurement:
    """Round ``round_``'s share of a timing (``Timing.share``)."""
    timer = Timer(stmt, backend.clock())
    blocks, budget, min_blocks = timing.share(round_)
    if blocks:
        return timer.timeit(blocks)
    return timer.adaptive_autorange(threshold=timing.threshold, min_blocks=min_blocks, budget=budget)


def _forward_backward(backend: Backend, per_step: bool = False) -> Callable[[], None]:
    """The statement `harness run` times: forward, then the timed backward (``per_step``: the exact one)."""
    def forward_backward() -> None:
        backend.forward()
        backend.backward(per_step=per_step)

    return forward_backward


def _time_exact(backend: Backend, problem: SeededProblem, timing: Timing, round_: int) -> Measurement:
    """Forward, then the exact backward, on the problem of a gradient profile's draw (the loss on the
    last step): what one draw costs (``--time-exact``). Its first call, untimed, builds what the
    exact path alone needs (torch's extended layer, numba's per-step buffers)."""
    exact = _forward_backward(backend, per_step=True)
    backend.prepare(problem.last_step)
    exact()
    backend.synchronize()
    return _time(backend, exact, timing, round_)


def time_forward_backward(backend: Backend, problem: Problem, timing: Timing) -> Measurement:
    """Forward + backward of ``problem`` (with its upstream gradient), timed as `harness run` times it."""
    backend.prepare(problem)
    return _time(backend, _forward_backward(backend), timing)


def profile_norms(cell: str, grads: Gradients) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-sequence norms (T, B) of one backward(per_step=True): over the cell's output state
    (dL/dh_t), or over all its states for a cell whose readout input is not a state (lru); and over
    LSTM's c (None for a cell without one)."""
    cls = cell_class(cell)
    return gradients.state_norms(cls, state_gradients(cls, grads))


def measured_profile(norms: list[np.ndarray], c_norms: list[np.ndarray], floor: float, **fields) -> GradientProfile:
    """The :class:`GradientProfile` of the per-sequence norms of every draw (each (T, B)): g_t (and
    g^c_t) their mean over every sequence, its metrics, and how the sequences spread around it."""
    every = np.concatenate(norms, axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        g = every.mean(axis=1)
        gc = tuple(np.concatenate(c_norms, axis=1).mean(axis=1).tolist()) if c_norms else None
    decay = gradients.gradient_metrics(g, floor=floor)
    return GradientProfile(**vars(decay), g=tuple(g.tolist()), gc=gc, **vars(gradients.spread(every, floor)),
                           **fields)


def gradient_profile(backend: Backend, problems: list[SeededProblem]) -> GradientProfile:
    """g_t (and g^c_t for a cell with a cell state) over the seeds' draws, with its metrics."""
    norms, c_norms, nonfinite = [], [], set()
    exact = _forward_backward(backend, per_step=True)
    for p in problems:
        backend.prepare(p.last_step)
        exact()
        grads = backend.gradients()
        nonfinite.update(check_gradients(p.last_step, grads, per_step=True))
        h, c = profile_norms(p.last_step.cell, grads)
        norms.append(h)
        if c is not None:
            c_norms.append(c)
    return measured_profile(norms, c_norms, gradients.underflow_floor(problems[0].last_step.dtype),
                            nonfinite=tuple(sorted(nonfinite)))


def job_families(job: PointJob) -> tuple[str, ...]:
    """The measurement families ``job`` takes: a ``run`` job every family the suite asks for; a
    ``time`` job its timings; a ``profile`` job the rest (gradient profile and memory peak), which
    need no machine to themselves (executor.timed)."""
    metrics = job.suite.metrics
    return {"time": ("time",), "profile": tuple(f for f in metrics if f != "time")}.get(job.mode, metrics)


def measure(backend: Backend, job: PointJob, task: Task) -> PointResult:
    """The measurement families of one grid point that ``job`` takes (:func:`job_families`)."""
    suite = job.suite
    measured = job_families(job)
    started = time.perf_counter()
    seeds = suite.seeds if "gradient" in measured else suite.seeds[:1]
    problems = [build(task, job.cell, job.seq_len, suite, seed, job.problems) for seed in seeds]
    first = problems[0]
    steps, batch, _, hidden = first.timed.shape
    forward_backward = _forward_backward(backend)

    backend.prepare(first.timed)
    forward_backward()  # warm-up: JIT compilation or cache loading (measured apart: compile_time)
    backend.synchronize()
    check_gradients(first.timed, backend.gradients(), per_step=False)  # a wrong shape fails the point

    gradient = gradient_profile(backend, problems) if "gradient" in measured else None
    times = None
    if "time" in measured:
        backend.prepare(first.timed)
        before = probe()  # the machine's speed on either side of each timing (measure/probe.py)
        forward = _time(backend, backend.forward, suite.timing, job.round)
        between = probe()
        both = _time(backend, forward_backward, suite.timing, job.round)
        after = probe()
        times = Times.probed(forward, both, before, between, after,
                             _time_exact(backend, first, suite.timing, job.round) if suite.timing.exact else None)
    memory = None
    if "memory" in measured:
        backend.teardown()  # counted from prepare on: a backend's preallocated buffers are its memory
        meter = backend.memory_meter()
        with meter:
            backend.prepare(first.timed)
            forward_backward()
            backend.synchronize()
        memory = Memory(peak_bytes=int(meter.peak), tool=meter.tool,
                        activation_bytes=activation_bytes(job.cell, steps, batch, hidden, suite.dtype))
    return job.point.record(
        OK, steps=steps, loss=LossAtInit(first.loss_init, first.baseline), time=times, memory=memory,
        gradient=gradient, duration_s=time.perf_counter() - started,
        flops=layer_flops(cell_class(job.cell), steps, batch, first.timed.x.shape[2], hidden) if times else None,
    )


def compile_time(backend: Backend, job: PointJob, task: Task) -> float:
    """The first forward + backward minus the median of the five after it, on the point's problem:
    what compiling (or loading compiled code) costs. Run in a fresh worker."""
    problem = build(task, job.cell, job.seq_len, job.suite, job.suite.seeds[0]).timed
    backend.prepare(problem)
    clock, step = backend.clock(), _forward_backward(backend)
    samples = []
    for _ in range(6):
        clock.start()
        step()
        samples.append(clock.stop())
    return max(0.0, samples[0] - float(np.median(samples[1:])))
