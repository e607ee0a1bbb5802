"""The typed record of a run and its grid points (the results file's schema), built by the runner.

One results file per run is self-describing JSON (the suite, provenance, each backend's status and one
:class:`PointResult` per grid point). Every reader (summary table, plots, asv recorder, pandas) works
on these dataclasses or on the one DataFrame ``record.frame`` builds, so a new field is added in one
place. Beside this module: ``record.codec`` (the strict JSON codec), ``record.migrations`` (one step
per older schema number), ``record.files`` (atomic reading and writing), ``record.frame`` (pandas).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from harness.errors import check_name
from harness.measure.dynamics import Spectrum
from harness.measure.gradients import DecayMetrics
from harness.measure.load import LoadSample
from harness.measure.roofline import Flops
from harness.measure.timing import Measurement
from harness.suites import Mode, Suite
from harness.strenum import StrEnum

#: The results file's schema number: bumped with a step in record/migrations.py whenever a change
#: would make an older file read differently (renamed, moved or newly required keys).
SCHEMA = 3


class Status(StrEnum):
    """The status of a grid point; "interrupted" keeps the partial curves of a training point stopped by
    Ctrl-C."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"


OK, FAILED, SKIPPED, INTERRUPTED = Status  # the names every module compares with


class RunStatus(StrEnum):
    """How far a run got: a file is ``running`` while it is written point by point."""

    RUNNING = "running"
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"


class ResultsFormatError(ValueError):
    """A results file that does not match the schema this harness reads."""


@dataclass(frozen=True)
class LossAtInit:
    init: float  # task loss of the initialised network on the first seed's data
    baseline: float  # the task's memoryless baseline


@dataclass(frozen=True)
class Times:
    """Seconds per call, and (where the machine probe was timed, measure/probe.py) the same samples
    in units of the probe of their own timing round: what `harness compare` judges."""

    forward: Measurement
    forward_backward: Measurement
    probe: Measurement | None = None  # the probe, timed before, between and after the timings (seconds)
    forward_vs_probe: Measurement | None = None
    forward_backward_vs_probe: Measurement | None = None
    exact: Measurement | None = None  # forward + backward(per_step=True), where the suite asked (Timing.exact)

    @classmethod
    def probed(cls, forward: Measurement, forward_backward: Measurement, before: Measurement, between: Measurement,
               after: Measurement, exact: Measurement | None = None) -> Times:
        """One round's timings with the probe timed before, between and after the forward and the
        forward + backward: each in units of the probes on either side of it (``exact``, timed after
        them, is kept in seconds only)."""
        pooled = Measurement.pooled
        return cls(forward, forward_backward, pooled([before, between, after]),
                   forward.scaled(1 / pooled([before, between]).median),
                   forward_backward.scaled(1 / pooled([between, after]).median), exact)

    def pooled_with(self, later: Times) -> Times:
        """The samples of both rounds (the probe's and the relative ones only where both rounds have them)."""
        pooled = {f.name: Measurement.pooled([getattr(self, f.name), getattr(later, f.name)])
                  if getattr(self, f.name) is not None and getattr(later, f.name) is not None else None
                  for f in dataclasses.fields(self)}
        return Times(**pooled)


@dataclass(frozen=True)
class CompileResult:
    """What a compiling backend's first call costs per (backend, cell, dtype), each in a fresh worker:
    ``cold_s`` with an empty compilation cache (what a new user pays once), ``warm_s`` with the cache
    the cold worker left (what every later process pays). Each is the first forward + backward minus
    the median of the calls after it. Each is measured ``[timing] compile_repeat`` times, every time
    with a new cache: ``cold_s``/``warm_s`` are the medians of those samples (files written before
    the samples were kept have none)."""

    backend: str
    cell: str
    dtype: str
    status: Status
    reason: str = ""
    cold_s: float | None = None
    warm_s: float | None = None
    machine: str = ""  # the machine that measured it, where not the run's own (a Dask cluster)
    cold_samples: tuple[float, ...] = ()
    warm_samples: tuple[float, ...] = ()


@dataclass(frozen=True)
class Memory:
    peak_bytes: int
    tool: str  # the meter that saw the allocations
    activation_bytes: int  # analytic stored activations: steps * B * k * H * itemsize


@dataclass(frozen=True)
class GradientProfile(DecayMetrics):
    """The gradient profile g_t (t = 1..steps), g^c_t for cells with a cell state, and its metrics;
    beside it, what explains it (measure/dynamics.py, float64 from the reference, the same for every
    backend): the recurrent matrix's spectra per gate block (none for a diagonal recurrence), the top
    Lyapunov exponents of the backward dynamics (nats per step, mean over the batch and the seeds),
    the decay rate the top one predicts, and where the cell's state Jacobian is a fixed diagonal
    (lru, indrnn), the decay rate in closed form.

    g_t is the norm of the total per-step gradient of the cell's output state (dL/dh_t), or of all its
    state tensors together for a cell whose readout input is not a state (lru: the complex modes)."""

    g: tuple[float, ...] = ()
    gc: tuple[float, ...] | None = None
    nonfinite: tuple[str, ...] = ()  # the gradients (dL/dweight_ih, dL/dx, ...) that held NaN or inf
    spectra: tuple[Spectrum, ...] = ()
    lyapunov: tuple[float, ...] = ()
    predicted_decay_rate: float | None = None  # -lyapunov[0] / ln 10, in decay_rate's unit; None: degenerate
    closed_form_decay_rate: float | None = None  # -log10 max |diagonal recurrence| (lru, indrnn), same unit
    # the share of (step, sequence) whose state Jacobian annihilated the top direction (|R_11| = 0):
    # its exponent then averages a clamp, not a rate, and predicts nothing (predicted_decay_rate None)
    degenerate_fraction: float = 0.0
    # measure/gradients.Spread: the geometric-mean profile, its decay rate, the per-sequence rates' quartiles
    g_geometric: tuple[float, ...] = ()
    geometric_decay_rate: float | None = None
    sequence_decay_rates: tuple[float, float, float] | None = None

    @property
    def sigma_max(self) -> float | None:
        """The largest sigma_max over W_hh's gate blocks (Pascanu's bound reads it)."""
        return max((s.sigma_max for s in self.spectra), default=None)

    @property
    def broken(self) -> bool:
        """NaN or inf that no explosion explains: where the loss enters, or in a gradient while the
        profile stayed finite. The backend computed something else, so its timings are not comparable
        with a healthy backend's (asvdb records them as failed)."""
        return self.nonfinite_from_start or (bool(self.nonfinite) and not self.exploded)


@dataclass(frozen=True)
class Snapshot:
    """The gradient profile (last-step loss on the held-out set), with its spectra and exponents, at
    one iteration."""

    iteration: int
    gradient: GradientProfile


@dataclass(frozen=True)
class IterationTimes:
    """Medians over the training iterations, and the same forward + backward timed as `harness run` does."""

    iteration_s: float  # one whole training iteration (batch, backend, readout, loss, clipping, optimizer)
    backend_s: float  # its backend forward + backward
    core_s: float  # iteration_s - backend_s: the core's share
    fwd_bwd_s: float  # forward + backward alone, as `harness run` times it: 3 calls at every evaluation


@dataclass(frozen=True)
class Training:
    """What one training run (backend, cell, T, seed) recorded."""

    iterations: int  # completed
    planned_iterations: int  # the suite's [train] iterations
    baseline: float  # the task's memoryless baseline loss
    train_loss: tuple[float, ...]  # every iteration
    grad_norm: tuple[float, ...]  # global L2 norm before clipping, every iteration
    clipped: tuple[bool, ...]
    eval_iterations: tuple[int, ...]  # 0 (at init) and every eval_every
    eval_loss: tuple[float, ...]
    eval_accuracy: tuple[float, ...] | None  # classification tasks
    snapshots: tuple[Snapshot, ...]
    denormals: str = ""  # whether subnormal floats were flushed to zero while training (measure/denormals.py)
    solved_at: int | None = None  # first eval iteration meeting the task's criterion
    diverged_at: int | None = None  # iteration whose loss was NaN or inf; training stopped there
    times: IterationTimes | None = None
    unsolved_at: int | None = None  # the first eval iteration after solved_at that no longer met the criterion

    @property
    def stayed_solved(self) -> bool:
        """Solved, met the criterion at every later evaluation, and did not diverge afterwards."""
        return self.solved_at is not None and self.unsolved_at is None and self.diverged_at is None

    @property
    def final_ratio(self) -> float:
        """The last eval loss over the baseline."""
        return self.eval_loss[-1] / self.baseline

    @property
    def clipped_fraction(self) -> float:
        """How often the gradient norm was clipped: the fraction of the iterations."""
        return sum(self.clipped) / len(self.clipped) if self.clipped else 0.0


@dataclass(frozen=True)
class Point:
    """Where a record belongs in the grid: the identity that a job and every record made for it share
    (``run.grid.PointJob.point`` builds it once per job; :meth:`record` makes its records)."""

    backend: str
    cell: str
    seq_len: int  # the task's T
    dtype: str
    hidden: int | None = None
    batch: int | None = None
    init: str | None = None
    seed: int | None = None  # training points: one per seed
    clip: float | None = None  # training points: the clipping threshold (0: off)

    @property
    def key(self) -> tuple[str, str, int, int | None, int | None, str | None]:
        """The asv point (the values of asvdb.ASV_PARAMS): training points of several seeds share it."""
        return (self.backend, self.cell, self.seq_len, self.hidden, self.batch, self.init)

    def record(self, status: Status, **fields: Any) -> PointResult:
        """A :class:`PointResult` of this point with ``status`` and the measured ``fields``."""
        return PointResult(self.backend, self.cell, self.seq_len, self.dtype, status, hidden=self.hidden,
                           batch=self.batch, init=self.init, seed=self.seed, clip=self.clip, **fields)


@dataclass(frozen=True)
class PointResult:
    """The outcome of one grid point (backend, cell, seq_len).

    ``seq_len`` is the task's T; ``steps`` is the number of steps the layer ran (copy: T + 20).
    A measurement family the suite did not ask for is ``None``.
    """

    backend: str
    cell: str
    seq_len: int
    dtype: str
    status: Status
    reason: str = ""  # why it failed or was skipped
    steps: int | None = None
    loss: LossAtInit | None = None
    time: Times | None = None
    memory: Memory | None = None
    gradient: GradientProfile | None = None
    duration_s: float | None = None  # wall time of the whole point in its worker
    seed: int | None = None  # training points: the seed of data, weights and batches
    training: Training | None = None  # training points: curves, snapshots, iteration times
    load_before: LoadSample | None = None  # the machine's load average and CPU clock around the point
    load_after: LoadSample | None = None
    busy: bool = False  # more runnable processes than CPUs before or after: timings shared the CPUs
    machine: str = ""  # the machine that measured it, where not the run's own (a Dask cluster)
    hidden: int | None = None  # H and B of the point (None in files from before the size axes: the suite's)
    batch: int | None = None  # the timed batch; training points have the [train] batch, and the suite's here
    flops: Flops | None = None  # analytic GEMM FLOPs of the timed forward and backward (harness run)
    init: str | None = None  # the point's initialisation (None in files from before the init axis: the suite's)
    clip: float | None = None  # a training point's clipping threshold (0: off); None for harness run's points

    def __post_init__(self):
        check_name("cell", self.cell)  # its name becomes part of page and figure file names
        object.__setattr__(self, "status", Status(self.status))  # "ok" given as text is Status.OK

    def gflops(self, kind: str = "forward_backward") -> float | None:
        """Achieved GFLOP/s of the timed ``forward`` or ``forward_backward`` (median time)."""
        if self.flops is None or self.time is None:
            return None
        seconds = getattr(self.time, kind).median
        return getattr(self.flops, kind) / seconds / 1e9 if seconds > 0 else None

    def pooled_with(self, later: PointResult) -> PointResult:
        """This point with a later timing round's samples added (``harness run``'s rounds)."""
        return dataclasses.replace(self, time=self.time.pooled_with(later.time), load_after=later.load_after,
                                   busy=self.busy or later.busy,
                                   duration_s=(self.duration_s or 0.0) + (later.duration_s or 0.0))

    @property
    def point(self) -> Point:
        """The grid point this record belongs to."""
        return Point(self.backend, self.cell, self.seq_len, self.dtype, self.hidden, self.batch, self.init,
                     self.seed, self.clip)

    @property
    def key(self) -> tuple[str, str, int, int | None, int | None, str | None]:
        """The asv point (:attr:`Point.key`): training points of several seeds share it."""
        return self.point.key

    @property
    def note(self) -> str:
        """One line for a table: the first line of the reason, or what the gradient did."""
        if self.status not in (OK, INTERRUPTED):
            lines = self.reason.strip().splitlines()
            return lines[0] if lines else self.status
        if self.training is not None:
            t = self.training
            if t.diverged_at is not None:
                return f"diverged at iteration {t.diverged_at}"
            if t.solved_at is not None:
                return f"solved at iteration {t.solved_at}"
            return f"not solved in {t.iterations} iterations"
        notes = []
        if self.gradient is not None:
            if self.gradient.exploded:
                notes.append("exploded")
            if self.gradient.nonfinite_from_start:
                notes.append("non-finite gradient where the loss enters (not an explosion)")
            if self.gradient.nonfinite:
                notes.append(f"non-finite {', '.join(self.gradient.nonfinite)}")
            if self.gradient.broken:
                notes.append("recorded as failed in the history")
        if self.busy and self.load_before is not None and self.load_after is not None:
            notes.append(f"busy machine (load {max(self.load_before.load1, self.load_after.load1):.1f})")
        return "; ".join(notes)


@dataclass(frozen=True)
class BackendStatus:
    available: bool
    reason: str = ""
    description: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # the worker's Backend.info()


def cpu_roof(provenance: dict[str, Any]) -> dict[str, float]:
    """The CPU roof (GFLOP/s per dtype) a provenance holds; none in a file from before the roof, whose
    ``peak_gflops`` was a GEMM library's (one an engine could exceed)."""
    return provenance.get("peak_gflops", {}) if "peak_version" in provenance else {}


@dataclass
class RunResults:
    """Everything one results file holds."""

    suite: Suite
    started_at: str
    provenance: dict[str, Any]
    mode: Mode = Mode.RUN
    status: RunStatus = RunStatus.RUNNING
    finished_at: str | None = None
    backends: dict[str, BackendStatus] = field(default_factory=dict)
    points: list[PointResult] = field(default_factory=list)
    compile: list[CompileResult] = field(default_factory=list)  # backends that compile (harness run)
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)  # provenance of each other machine
    schema: int = SCHEMA

    def peak_gflops(self, point: PointResult) -> float | None:
        """The peak (GFLOP/s) of what ran ``point``: its backend's device where the backend measured
        one (a GPU's GEMM peak), else the roof of the CPU of the machine that measured it (None in a
        file from before the roof, whose peak was a GEMM library's: one an engine could exceed)."""
        device = self.backends[point.backend].info.get("peak_gflops", {}) if point.backend in self.backends else {}
        machine = self.machines.get(point.machine, self.provenance) if point.machine else self.provenance
        return device.get(point.dtype) or cpu_roof(machine).get(point.dtype)

    def peak_fraction(self, point: PointResult) -> float | None:
        """Achieved / peak GFLOP/s of the point's forward + backward."""
        achieved, peak = point.gflops(), self.peak_gflops(point)
        return achieved / peak if achieved is not None and peak else None

    def machine_of(self, record: PointResult | CompileResult) -> str:
        """The name of the machine that measured ``record``."""
        return record.machine or self.provenance["machine"]

    def by_machine(self) -> dict[str, RunResults]:
        """This run split per measuring machine, each part with that machine's provenance (the run's
        own settings, such as the thread count, kept): what asv records as one machine each."""
        names = dict.fromkeys([self.machine_of(r) for r in [*self.points, *self.compile]] or
                              [self.provenance["machine"]])
        return {name: dataclasses.replace(
            self, provenance={**self.provenance, **self.machines.get(name, {})},
            points=[p for p in self.points if self.machine_of(p) == name],
            compile=[c for c in self.compile if self.machine_of(c) == name]) for name in names}

    @property
    def busy(self) -> int:
        """How many points were measured while the machine was busy."""
        return sum(p.busy for p in self.points)

    def count(self, status: str) -> int:
        return sum(p.status == status for p in self.points)

    @property
    def counts(self) -> dict[str, int]:
        return {status.value: self.count(status) for status in Status}
