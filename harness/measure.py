"""Measure one grid cell on one backend: speed, peak memory, gradient profile, loss at init.

Runs inside the backend's worker process. Only ``forward`` and ``backward`` calls are timed;
building problems, moving data and converting results are outside every timed region.
"""
from __future__ import annotations

import time

import numpy as np

from harness import metrics, problem
from harness.backend import Backend
from harness.cells import activation_bytes
from harness.timing import Timer


def _time(backend: Backend, stmt, timing: dict) -> dict:
    timer = Timer(stmt, backend.clock())
    if timing.get("repeat"):
        return timer.timeit(timing["repeat"]).to_dict()
    return timer.adaptive_autorange(
        threshold=timing["threshold"], min_blocks=timing["min_blocks"], budget=timing["budget"]
    ).to_dict()


def _gradient_profile(backend: Backend, problems: list[problem.TaskProblem]) -> dict:
    """g_t (and g^c_t for LSTM) averaged over the seeds' draws, with the metrics of g_t."""
    curves, cell_curves = [], []
    for p in problems:
        backend.prepare(p.last_step)
        backend.forward()
        backend.backward(per_step=True)
        grads = backend.gradients()
        curves.append(metrics.profile(grads.h))
        if grads.c is not None:
            cell_curves.append(metrics.profile(grads.c))
    with np.errstate(over="ignore", invalid="ignore"):
        g = np.mean(curves, axis=0)
        gc = np.mean(cell_curves, axis=0) if cell_curves else None
    floor = float(np.finfo(problems[0].last_step.dtype).tiny)
    return {
        "g": g.tolist(),
        "gc": gc.tolist() if gc is not None else None,
        **metrics.gradient_metrics(g, floor=floor),
    }


def measure(backend: Backend, job: problem.CellJob, task) -> dict:
    """All metrics of one grid cell, as a JSON-ready dict."""
    suite = job.suite
    started = time.perf_counter()
    wanted = set(suite["metrics"])
    problems = [problem.build(task, job.cell, job.seq_len, suite, seed) for seed in suite["seeds"]]
    first = problems[0]
    steps, batch, _, hidden = first.timed.shape
    record: dict = {
        "steps": steps,
        "loss": {"init": first.loss_init, "baseline": first.baseline},
    }

    def forward_backward():
        backend.forward()
        backend.backward()

    # First call: includes JIT compilation or cache loading; compile time = first call - median.
    backend.prepare(first.timed)
    t0 = time.perf_counter()
    forward_backward()
    backend.synchronize()
    first_call = time.perf_counter() - t0

    if "gradient" in wanted:
        record["gradient"] = _gradient_profile(backend, problems)
    if "time" in wanted:
        backend.prepare(first.timed)
        record["time"] = {
            "forward": _time(backend, backend.forward, suite["timing"]),
            "forward_backward": _time(backend, forward_backward, suite["timing"]),
        }
        record["first_call_s"] = first_call
        record["compile_s"] = max(0.0, first_call - record["time"]["forward_backward"]["median"])
    if "memory" in wanted:
        backend.teardown()  # counted from prepare on: a backend's preallocated buffers are its memory
        meter = backend.memory_meter()
        with meter:
            backend.prepare(first.timed)
            forward_backward()
            backend.synchronize()
        record["memory"] = {
            "peak_bytes": int(meter.peak),
            "tool": meter.tool,
            "activation_bytes": activation_bytes(job.cell, steps, batch, hidden, suite["dtype"]),
        }
    record["duration_s"] = time.perf_counter() - started
    return record
