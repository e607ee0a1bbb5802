"""The typed record of a run and its grid points: built by the runner, stored and read back here only.

One results file per run is self-describing JSON (the suite, provenance, each backend's status and one
:class:`PointResult` per grid point), written atomically. Every reader (summary table, plots, asv
recorder, pandas) works on these dataclasses or on the one DataFrame :func:`frame` builds, so a new
field is added in one place. Reading is strict: a missing or unknown key is a :class:`ResultsFormatError`,
never a silent NaN.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, check_name
from harness.jsonsafe import jsonable  # noqa: F401 (re-exported: run/executor.py imports it from here)
from harness.measure.dynamics import Spectrum
from harness.measure.gradients import DecayMetrics
from harness.measure.load import LoadSample
from harness.measure.roofline import Flops
from harness.measure.timing import Measurement
from harness.suites import Suite

SCHEMA = 2
#: The status of a grid point; "interrupted" keeps the partial curves of a training point stopped by Ctrl-C.
OK, FAILED, SKIPPED, INTERRUPTED = "ok", "failed", "skipped", "interrupted"
STATUSES = (OK, FAILED, SKIPPED, INTERRUPTED)


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

    @classmethod
    def probed(cls, forward: Measurement, forward_backward: Measurement, before: Measurement, between: Measurement,
               after: Measurement) -> Times:
        """One round's timings with the probe timed before, between and after them: each timing in
        units of the probes on either side of it."""
        pooled = Measurement.pooled
        return cls(forward, forward_backward, pooled([before, between, after]),
                   forward.scaled(1 / pooled([before, between]).median),
                   forward_backward.scaled(1 / pooled([between, after]).median))

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
    status: str
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
    predicted_decay_rate: float | None = None  # -lyapunov[0] / ln 10, in decay_rate's unit
    closed_form_decay_rate: float | None = None  # -log10 max |diagonal recurrence| (lru, indrnn), same unit

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
    budget: int  # planned: the suite's [train] iterations
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

    @property
    def final_ratio(self) -> float:
        """The last eval loss over the baseline."""
        return self.eval_loss[-1] / self.baseline

    @property
    def clipped_fraction(self) -> float:
        """How often the gradient norm was clipped: the fraction of the iterations."""
        return sum(self.clipped) / len(self.clipped) if self.clipped else 0.0


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
    status: str  # ok, failed or skipped
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
    def key(self) -> tuple[str, str, int, int | None, int | None, str | None]:
        """The asv point: training points of several seeds share it."""
        return (self.backend, self.cell, self.seq_len, self.hidden, self.batch, self.init)

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


@dataclass
class RunResults:
    """Everything one results file holds."""

    suite: Suite
    started_at: str
    provenance: dict[str, Any]
    mode: str = "run"  # run or train
    status: str = "running"  # running, complete or interrupted
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
        roof = machine.get("peak_gflops", {}) if "peak_version" in machine else {}
        return device.get(point.dtype) or roof.get(point.dtype)

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
        return {status: self.count(status) for status in STATUSES}


# -- JSON encoding ------------------------------------------------------------------------------------
def _encode(value: Any) -> Any:
    """Dataclasses to dicts; NaN/inf as strings (JSON has none), so files stay standard JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(kind: Any, value: Any, where: str) -> Any:
    """``value`` read from JSON as type ``kind``: nested dataclasses, tuples, NaN/inf strings."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _decode(inner, value, where)
    if dataclasses.is_dataclass(kind):
        return _dataclass(kind, value, where)
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise ResultsFormatError(f"{where}: expected a list, got {type(value).__name__}")
        items = [_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ResultsFormatError(f"{where}: expected an object, got {type(value).__name__}")
        return {k: _decode(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if kind is float and value in ("nan", "inf", "-inf"):
        return float(value)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is Any or (isinstance(kind, type) and isinstance(value, kind) and not
                       (isinstance(value, bool) and kind is not bool)):
        return _restore_floats(value) if kind is Any else value
    raise ResultsFormatError(f"{where}: expected {getattr(kind, '__name__', kind)}, got {value!r}")


def _restore_floats(value: Any) -> Any:
    if value in ("nan", "inf", "-inf"):
        return float(value)
    if isinstance(value, dict):
        return {k: _restore_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_floats(v) for v in value]
    return value


def _dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ResultsFormatError(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ResultsFormatError(f"{where}: unknown keys {sorted(unknown)} for {cls.__name__}")
    kwargs = {}
    for name, f in fields.items():
        if not f.init:
            continue  # derived (a Measurement's median and IQR): recomputed from the samples
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ResultsFormatError(f"{where}: missing key {name!r} of {cls.__name__}")
            continue
        kwargs[name] = _decode(hints[name], data[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except HarnessError as exc:  # a value its dataclass refuses (an unsafe suite name)
        raise ResultsFormatError(f"{where}: {exc}") from None


def to_json(run: RunResults) -> dict:
    """The JSON-ready form of a run (the inverse of :func:`from_json`)."""
    return _encode(run)


def from_json(data: Any, where: str = "results") -> RunResults:
    """A run from its JSON form; raises :class:`ResultsFormatError` on any schema mismatch."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ResultsFormatError(f"{where}: results schema {found!r}, this harness reads {SCHEMA}")
    _suite_before_the_init_axis(data.get("suite"))
    _snapshots_before_the_exponents(data.get("points"))
    run = _dataclass(RunResults, data, where)
    run.points = [p if p.hidden is not None else dataclasses.replace(p, hidden=run.suite.hidden, batch=run.suite.batch)
                  for p in run.points]  # written before the size axes: the suite's one size
    run.points = [p if p.init is not None else dataclasses.replace(p, init=run.suite.init) for p in run.points]
    return run


def _snapshots_before_the_exponents(points: Any) -> None:
    """A training snapshot kept W_hh's spectra beside its gradient; they now live in the gradient."""
    for point in points if isinstance(points, list) else ():
        training = point.get("training") if isinstance(point, dict) else None
        for snapshot in (training or {}).get("snapshots") or ():
            if isinstance(snapshot, dict) and "spectra" in snapshot and isinstance(snapshot.get("gradient"), dict):
                snapshot["gradient"]["spectra"] = snapshot.pop("spectra")


def _suite_before_the_init_axis(suite: Any) -> None:
    """A suite written with ``init`` and ``init_gain`` gets the one init spec they meant."""
    if isinstance(suite, dict) and "init_gain" in suite:
        gain = suite.pop("init_gain")
        if gain != 1.0 and suite.get("init") in ("orthogonal", "identity"):
            suite["init"] = f"{suite['init']}={gain:g}"


# -- files ---------------------------------------------------------------------------------------------
def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a results file gets the user's usual mode
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_encode(data), f, indent=1, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write(path: str | os.PathLike, run: RunResults) -> None:
    """Write a results file atomically: readers see the old or the new file, never half of one."""
    write_json_atomic(path, to_json(run))


def read(path: str | os.PathLike) -> RunResults:
    """A results file as a :class:`RunResults`; a file of another schema is a :class:`ResultsFormatError`."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsFormatError(f"{path}: not JSON ({exc})") from None
    except RecursionError:
        raise ResultsFormatError(f"{path}: not a results file (JSON nested too deeply to read)") from None
    try:
        return from_json(data, str(path))
    except RecursionError:
        raise ResultsFormatError(f"{path}: not a results file (nested too deeply)") from None


# -- the one DataFrame ---------------------------------------------------------------------------------
def point_row(point: PointResult) -> dict[str, Any]:
    """One flat row of a point: status, times, memory, gradient metrics, training outcome; curves as tuples."""
    nan = math.nan
    t, mem, grad, loss, train = point.time, point.memory, point.gradient, point.loss, point.training
    return {
        "backend": point.backend, "cell": point.cell, "seq_len": point.seq_len, "hidden": point.hidden,
        "batch": point.batch, "init": point.init, "steps": point.steps,
        "dtype": point.dtype, "status": point.status, "reason": point.reason,
        "forward_median_s": t.forward.median if t else nan,
        "forward_iqr_s": t.forward.iqr if t else nan,
        "forward_backward_median_s": t.forward_backward.median if t else nan,
        "forward_backward_iqr_s": t.forward_backward.iqr if t else nan,
        "gflops_forward_backward": point.gflops() or nan,
        "peak_bytes": mem.peak_bytes if mem else nan,
        "activation_bytes": mem.activation_bytes if mem else nan,
        "decay_rate": grad.decay_rate if grad else nan,
        "predicted_decay_rate": grad.predicted_decay_rate if grad and grad.predicted_decay_rate is not None else nan,
        "closed_form_decay_rate": grad.closed_form_decay_rate
        if grad and grad.closed_form_decay_rate is not None else nan,
        "lyapunov_1": grad.lyapunov[0] if grad and grad.lyapunov else nan,
        "sigma_max": grad.sigma_max if grad and grad.spectra else nan,
        "log10_ratio": grad.log10_ratio if grad else nan,
        "horizon": grad.horizon if grad else None,
        "exploded": grad.exploded if grad else None,
        "vanished": grad.vanished if grad else None,
        "g": grad.g if grad else None,
        "gc": grad.gc if grad else None,
        "loss_init": loss.init if loss else nan,
        "loss_baseline": loss.baseline if loss else nan,
        "seed": point.seed,
        "final_ratio": train.final_ratio if train and train.eval_loss else nan,
        "clip": point.clip,
        "clipped_fraction": train.clipped_fraction if train else nan,
        "solved_at": train.solved_at if train else None,
        "diverged_at": train.diverged_at if train else None,
        "iteration_s": train.times.iteration_s if train and train.times else nan,
        "core_s": train.times.core_s if train and train.times else nan,
        "train_fwd_bwd_s": train.times.fwd_bwd_s if train and train.times else nan,
    }


def frame(run: RunResults):
    """One row per grid point (see :func:`point_row`); the suite and provenance in ``attrs``."""
    import pandas as pd

    table = pd.DataFrame([point_row(p) for p in run.points], columns=list(point_row(_EMPTY_POINT)))
    table.attrs["suite"] = run.suite.name
    table.attrs["provenance"] = run.provenance
    return table


_EMPTY_POINT = PointResult("", "rnn_tanh", 0, "", SKIPPED)  # only its keys are used


def load(path: str | os.PathLike):
    """A results file as a pandas DataFrame, one row per grid point (see :func:`frame`)."""
    return frame(read(path))
