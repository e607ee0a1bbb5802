"""The grid: its jobs (:func:`plan`, one :class:`PointJob` per point and measurement), and from a
point to backend problems: task data, parameters, readout and loss (float64).

Every backend gets bit-identical inputs: the data, weights and the upstream gradient dL/dh_t are
computed here from the seed with the float64 reference (the hand-written NumPy one for the classic
cells, the one derived from the cell's step for every other cell: ``reference.readout_forward``)
and only then cast to the suite's dtype. The readout y_t = W_y h_t + b_y and the loss are the
core's, never the backend's; h_t is what the cell shows the readout (its output state, or its
readout input).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import importlib.util
import multiprocessing
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import reference
from harness.backend import Problem
from harness.cell import one_line
from harness.cells import from_plugin
from harness.errors import HarnessError
from harness.inits import init_params
from harness.record.results import Point
from harness.run.processes import pool_process
from harness.streams import Purpose, stream
from harness.suites import Mode, Suite, axis_values
from harness.tasks import Task
from harness.strenum import StrEnum


class JobMode(StrEnum):
    """What a worker does with a :class:`PointJob`: RUN measures every family the suite asks for, TIME
    its timings (round ``round``), PROFILE the rest (gradient profile, memory peak: run.point.job_families),
    TRAIN learns the task, COMPILE measures the compile time."""

    RUN = "run"
    TIME = "time"
    PROFILE = "profile"
    TRAIN = "train"
    COMPILE = "compile"


@dataclass(frozen=True)
class PointJob:
    """One grid point and the suite it belongs to: what a worker needs to measure it (picklable)."""

    backend: str
    cell: str
    seq_len: int  # the task's T
    suite: Suite
    mode: JobMode = JobMode.RUN
    seed: int | None = None  # training points: one per seed of [train] seeds
    round: int = 1  # time jobs: which of the suite's timing rounds
    problems: str | None = None  # a folder where the problems built for one backend wait for the next (build)

    @property
    def point(self) -> Point:
        """The grid point this job measures (or trains), which its records carry."""
        return Point(self.backend, self.cell, self.seq_len, self.suite.dtype, self.suite.hidden, self.suite.batch,
                     self.suite.init, self.seed, self.suite.clip if self.mode == JobMode.TRAIN else None)

    def label(self) -> str:
        """How progress and logs name the point."""
        if self.mode == JobMode.COMPILE:
            return f"{self.backend} {self.cell} {self.suite.dtype} compile time"
        seed = f" seed {self.seed}" if self.seed is not None else ""
        passes = self.suite.timing.passes
        rounds = f" (timing round {self.round}/{passes})" if self.mode == JobMode.TIME and passes > 1 else ""
        axes = self.suite.axes(self.mode)
        where = "".join(f" {a}={v}" for a, v in zip(axes, axis_values(self.suite, axes)))
        return f"{self.backend} {self.cell} T={self.seq_len}{where}{seed}{rounds}"


def plan(suite: Suite, mode: Mode, backend: str, cell: str, problems: str | None = None) -> list[PointJob]:
    """The grid's jobs of one backend and cell: every init, (H, B) and T (and, for training, every seed
    and clipping threshold), timings first where the suite times."""
    if mode == Mode.TRAIN:
        return [PointJob(backend, cell, T, suite.at(h, b, init, clip), JobMode.TRAIN, seed)
                for init in suite.init_axis for clip in suite.train.clip_axis
                for h, b in suite.sizes(mode) for T in suite.train.seq_lens for seed in suite.train.seeds]
    first = JobMode.TIME if "time" in suite.metrics else JobMode.PROFILE  # the timings first, alone on the machine
    return [PointJob(backend, cell, T, suite.at(h, b, init), first, problems=problems)
            for init in suite.init_axis for h, b in suite.sizes() for T in suite.seq_lens]


@dataclass(frozen=True)
class SeededProblem:
    """A seeded problem: the layer's problem with the full task loss, and with the last-step loss."""

    timed: Problem  # upstream gradient of the task's loss
    last_step: Problem  # upstream gradient of the loss on the last step only (gradient profile)
    loss_init: float  # task loss at initialisation
    baseline: float  # the task's memoryless baseline
    # (first, s_first): the float64 state after the steps before the suite's Lyapunov window, from
    # which the spectra's forward starts instead of step 1 (measure/dynamics.py); (0, {}) for all steps
    window: tuple[int, dict[str, np.ndarray]] = (0, {})


def readout_params(hidden: int, outputs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The readout's W_y (outputs, H) and b_y, drawn as torch.nn.Linear's default does."""
    bound = 1.0 / np.sqrt(hidden)
    return rng.uniform(-bound, bound, (outputs, hidden)), rng.uniform(-bound, bound, outputs)


@dataclass(frozen=True)
class Network:
    """A grid point's network at initialisation, in float64: the cell's parameters and the readout."""

    params: dict[str, np.ndarray]
    readout_weight: np.ndarray  # W_y (outputs, H)
    readout_bias: np.ndarray  # b_y (outputs,)


def network(task: Task, cell: str, seq_len: int, suite: Suite, seed: int) -> Network:
    """The network of one grid point and seed, each part from its own stream (harness/streams.py): the
    same for `harness run` and `harness train`, the same readout for every cell and init, and the same
    declared draws for every init of a cell."""
    params = init_params(cell, task.input_size, suite.hidden, stream(seed, seq_len, Purpose.PARAMS), suite.init,
                         steps=task.steps(seq_len), init_rng=stream(seed, seq_len, Purpose.INIT))
    w_y, b_y = readout_params(suite.hidden, task.output_size, stream(seed, seq_len, Purpose.READOUT))
    return Network(params, w_y, b_y)


def build(task: Task, cell: str, seq_len: int, suite: Suite, seed: int, folder: str | None = None) -> SeededProblem:
    """The problem of one grid point for one seed, identical for every backend.

    Building runs the float64 reference over the whole sequence, which at T = 2000 costs more than
    timing the point: with a ``folder`` (a run's scratch folder, :attr:`PointJob.problems`) the first
    worker to build a problem leaves it there and the other backends' workers, and the core's
    spectra and Lyapunov exponents, read it back. A missing or unreadable folder only means building.
    """
    if folder is None:
        return _build(task, cell, seq_len, suite, seed)
    path = _path(folder, task.name, cell, seq_len, suite, seed)
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        pass
    problem = _build(task, cell, seq_len, suite, seed)
    with contextlib.suppress(OSError):  # a full disk: the next backend builds it again
        fd, scratch = tempfile.mkstemp(dir=folder, prefix=".building-")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(problem, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(scratch, path)  # whole or not at all, for a worker reading it at the same time
    return problem


def _path(folder: str, task: str, cell: str, seq_len: int, suite: Suite, seed: int) -> Path:
    """Where :func:`build` keeps a problem: named by everything the problem depends on."""
    key = (task, suite.task_options, cell, seq_len, suite.hidden, suite.batch, suite.init, suite.dtype,
           suite.lyapunov_steps, seed)
    return Path(folder) / (hashlib.sha256(repr(key).encode()).hexdigest()[:32] + ".pickle")


def build_ahead(task: Task, points: list[tuple[str, int, Suite, int]], folder: str, processes: int) -> None:
    """Build the problems of ``points`` (cell, T, the point's suite, seed) into ``folder``,
    ``processes`` at a time, before any timing: nothing is timed yet, so every CPU may work, and the
    workers then only read them (:func:`build`). A problem that fails to build is left to the point
    that needs it, which records why."""
    with untimed_pool(processes) as pool:
        for future in submit_builds(pool, task, points, folder):
            with contextlib.suppress(Exception):  # BrokenProcessPool too: the points build their own
                future.result()


def untimed_pool(processes: int, cpus: list[int] | None = None) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of ``processes`` processes for the core's untimed work (problems, spectra), on ``cpus``
    (or any CPU), one BLAS thread each. Its processes start at its first submit: submit from the main
    thread (multiprocessing's resource tracker and semaphores are then made there, never by two
    threads at once)."""
    return concurrent.futures.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=pool_process, initargs=(cpus, True))


def submit_builds(pool: concurrent.futures.Executor, task: Task, points: list[tuple[str, int, Suite, int]],
                  folder: str) -> list[concurrent.futures.Future]:
    """Submit the building of ``points``' problems into ``folder`` (each once, the longest first: the pool
    ends together)."""
    todo = {_path(folder, task.name, cell, T, suite, seed): (cell, T, suite, seed) for cell, T, suite, seed in points}
    ordered = sorted(todo.values(), key=lambda point: -point[1])
    return [pool.submit(_build_into, task.name, cell, T, suite, seed, folder) for cell, T, suite, seed in ordered]


def _build_into(task_name: str, cell: str, seq_len: int, suite: Suite, seed: int, folder: str) -> None:
    from harness.plugins import get_registry

    build(get_registry().task(task_name, suite.task_options), cell, seq_len, suite, seed, folder)


def _build(task: Task, cell: str, seq_len: int, suite: Suite, seed: int) -> SeededProblem:
    batch = task.generate(seq_len, suite.batch, stream(seed, seq_len, Purpose.DATA))
    net = network(task, cell, seq_len, suite, seed)
    w_y, b_y = net.readout_weight, net.readout_bias
    # The float64 forward runs the network the backends are given: the parameters in the suite's dtype.
    cast = {name: value.astype(suite.dtype) for name, value in net.params.items()}
    x = batch.x.astype(suite.dtype)
    steps, window = batch.x.shape[0], suite.lyapunov_steps
    first = steps - window if 0 < window < steps else 0
    try:
        h, start = reference.readout_trajectory(cell, cast, x, first)
    except HarnessError as exc:  # a cell plugin's step that fails on this data: named with its plugin
        where = from_plugin(cell)
        raise HarnessError(f"{exc}{where}" if where not in str(exc) else str(exc)) from None
    y = h @ w_y.T + b_y
    loss, dy = task.loss(y, batch)
    _, dy_last = task.loss(y, batch, last_only=True)
    return SeededProblem(
        timed=Problem(cell, cast, x, (dy @ w_y).astype(suite.dtype)),
        last_step=Problem(cell, cast, x, (dy_last @ w_y).astype(suite.dtype)),
        loss_init=loss,
        baseline=task.baseline(seq_len),
        window=(first, start),
    )


def vet_cell(task: Task, cell: str, suite: Suite) -> tuple[str, str] | None:
    """Whether ``cell`` can run at all, checked once before its points are planned: None if so, else
    (status, reason) for every one of its points. A cell without a hand-written reference needs torch
    (its reference is derived by autograd): without it, "skipped". Such a cell also runs once on a
    tiny problem (every init of the suite, three steps) through its derived reference, so that a step
    that raises or returns the wrong shape, or an init that draws NaN, fails its points with one line
    naming the cell and its plugin, before any worker starts, and the other cells' points run."""
    if reference.hand_written(cell):
        return None
    if importlib.util.find_spec("torch") is None:
        return "skipped", (f"cell {cell!r} needs torch: its reference is derived from its step by autograd "
                           f"(pip install torch)")
    rng = np.random.default_rng(0)
    for init in suite.init_axis:
        try:
            params = init_params(cell, task.input_size, 4, rng, init, steps=task.steps(min(suite.seq_lens)))
            reference.readout_forward(cell, params, rng.standard_normal((3, 2, task.input_size)))
        except HarnessError as exc:
            text, where = str(exc), from_plugin(cell)
            return "failed", text if where in text else text + where
        except Exception as exc:  # a third-party cell may fail in any way
            return "failed", f"cell {cell!r}: {one_line(exc)}{from_plugin(cell)}"
    return None
