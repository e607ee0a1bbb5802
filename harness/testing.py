"""Conformance checks for backends and cells: ``harness check NAME`` and, for a plugin's own test
suite, :func:`parametrize_with_checks` (in the spirit of scikit-learn's ``parametrize_with_checks``)::

    from harness.testing import parametrize_with_checks
    from my_plugin import MyBackend          # or a cell: from my_cell import MyCell

    @parametrize_with_checks(MyBackend)      # @parametrize_with_checks(MyCell)
    def test_conformance(check):
        check()

Backends (:func:`check_backend`):

For each cell and dtype the backend runs (``Backend.cell_names()``: every registered cell for a
backend that runs any), on seeded shapes that include the edge cases B=1, T=1 and H=1, every output
is compared with the float64 reference run on the same (rounded) inputs: the hand-written NumPy
reference for the classic cells, the reference derived from the cell's step (:mod:`harness.derived`)
for every other cell. Errors are relative to each tensor's scale: max|a - e| / max|e|.

Cells (:func:`check_cell_plugin`): the class contract (:func:`harness.cell.check_cell_class`);
every init with one step and readout in float64 and float32 (:func:`harness.cell.validate_cell`);
for every init, the derived float64 reference (:mod:`harness.derived`) against central finite
differences of the cell's own forward on T, B, I, H = 5, 2, 3, 4 (:data:`FD_SHAPE`) from a random
initial state: every parameter gradient, dL/dx, dL/ds_0 and the total per-step gradient of every
state tensor, with step :data:`FD_EPS` = 1e-6 and tolerance |derived - numeric| <= :data:`FD_RTOL`
(1e-6) x the largest entry of the derived gradient + :data:`FD_ATOL` (1e-9); then every installed
backend that claims the cell, with the backend checks above (an unavailable backend is skipped).
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from harness import derived, reference
from harness.backend import Backend, Gradients, Outputs, Problem, output_states, state_gradients
from harness.cell import Cell, as_cell, check_cell_class, label, one_line, validate_cell
from harness.cells import cell_class, cell_names
from harness.errors import HarnessError
from harness.inits import init_params
from harness.plugins import availability as availability_of
from harness.plugins import get_registry

#: Largest relative error allowed against the float64 reference, per dtype of the backend.
TOLERANCES = {"float64": 1e-10, "float32": 1e-4}
#: (T, B, I, H): edge cases first, then ordinary shapes.
SHAPES = ((1, 1, 1, 1), (1, 3, 2, 4), (6, 1, 3, 5), (5, 2, 1, 1), (17, 4, 3, 8), (40, 3, 6, 16))
CHECKS = ("shapes", "hidden states", "parameter gradients", "dL/dx", "per-step dL/ds_t",
          "inputs not mutated", "deterministic", "trains like the reference")
#: Eval-loss curves of 50 training iterations must agree with the reference's to this relative error
#: (float64: rounding only). The training check runs in float64; a float32 result points there.
TRAINING_TOLERANCE = 1e-8


@dataclass
class CheckResult:
    """One check of one cell and dtype, over every shape."""

    cell: str
    dtype: str
    check: str
    passed: bool = True
    error: float = 0.0  # the largest error seen (relative, or 0 for yes/no checks)
    detail: str = ""  # what failed first: shape and tensor

    def fail(self, detail: str, error: float | None = None) -> None:
        if self.passed:
            self.detail = detail
        self.passed = False
        if error is not None:
            self.error = max(self.error, error) if np.isfinite(error) else error


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected|: relative to the tensor's scale, so that tiny
    entries do not dominate. NaN anywhere gives NaN (and fails every tolerance)."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(float(np.max(np.abs(expected))), 1e-300) if expected.size else 1.0
    diff = np.abs(np.asarray(actual, dtype=np.float64) - expected)
    return float(np.max(diff)) / scale if diff.size else 0.0


def random_problem(cell: str, shape: tuple[int, int, int, int], dtype: str = "float64", seed: int = 0,
                   init: str = "default") -> Problem:
    """A seeded problem of shape (T, B, I, H): the cell's parameters drawn by ``init``, standard
    normal inputs and upstream gradients."""
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    params = init_params(cell, I, H, rng, init=init, dtype=dtype)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    grad_h = rng.standard_normal((T, B, H)).astype(dtype)
    return Problem(cell, params, x, grad_h)


def _run(backend: Backend, problem: Problem, per_step: bool) -> tuple[Outputs, Gradients]:
    """One forward and backward; results deep-copied, so that a backend handing out views of its
    buffers cannot make two runs compare equal by overwriting the first.

    The exact path (``per_step``) gets its upstream gradient after forward, as in training; the
    timed path gets it with the problem, as in benchmarks."""
    if per_step:
        backend.prepare(dataclasses.replace(problem, grad_h=None))
        backend.forward()
        backend.upstream(problem.grad_h)
    else:
        backend.prepare(problem)
        backend.forward()
    backend.backward(per_step=per_step)
    backend.synchronize()
    return copy.deepcopy(backend.outputs()), copy.deepcopy(backend.gradients())


class _Comparer:
    """Records, per check, the largest error and the first failure of one cell and dtype."""

    def __init__(self, cell: str, dtype: str):
        self.results = {name: CheckResult(cell, dtype, name) for name in CHECKS}
        self.tol = TOLERANCES[dtype]
        self.dtype = dtype

    def shape(self, where: str, tensor: str, value, expected_shape: tuple) -> bool:
        r = self.results["shapes"]
        if value is None:
            r.fail(f"{where}: {tensor} is missing (expected shape {expected_shape})")
            return False
        value = np.asarray(value)
        if value.shape != expected_shape:
            r.fail(f"{where}: {tensor} has shape {value.shape}, expected {expected_shape}")
            return False
        if str(value.dtype) != self.dtype:
            r.fail(f"{where}: {tensor} has dtype {value.dtype}, expected {self.dtype}")
            return False
        return True

    def close(self, check: str, where: str, tensor: str, value, expected: np.ndarray) -> None:
        if not self.shape(where, tensor, value, expected.shape):
            self.results[check].fail(f"{where}: {tensor} has the wrong shape or dtype (see shapes)")
            return
        err = relative_error(value, expected)
        r = self.results[check]
        if not err <= self.tol:  # NaN fails too
            r.fail(f"{where}: {tensor} relative error {err:.3g} > {self.tol:g}", err)
        else:
            r.error = max(r.error, err)


@dataclass
class Expected:
    """The float64 reference's answer to one problem: what the readout sees, every state, every
    gradient and the total per-step gradient of every state."""

    y: np.ndarray  # (T, B, H)
    states: dict[str, np.ndarray]  # name -> (T, B, size)
    params: dict[str, np.ndarray]
    x: np.ndarray
    state_grads: dict[str, np.ndarray]  # name -> (T, B, size)


def expected(problem: Problem) -> Expected:
    """The float64 reference on ``problem`` (its arrays cast to float64): the hand-written one for the
    classic cells, the derived one for the others."""
    cell = problem.cell
    p64 = {k: v.astype(np.float64) for k, v in problem.params.items()}
    x64, g64 = problem.x.astype(np.float64), problem.grad_h.astype(np.float64)
    if reference.hand_written(cell):
        acts = reference.forward(cell, p64, x64)
        out = reference.outputs(cell, acts)
        want = reference.backward(cell, p64, x64, acts, g64, per_step=True)
        states = {"h": out.h} if out.c is None else {"h": out.h, "c": out.c}
        grads = {"h": want.h} if want.c is None else {"h": want.h, "c": want.c}
        return Expected(out.h, states, want.params, want.x, grads)
    cls = cell_class(cell)
    out = derived.forward(cls, p64, x64)
    want = derived.backward(cls, p64, x64, g64)
    return Expected(out.y, out.states, want.params, want.x, want.states)


def check_cell(backend_cls: type[Backend], cell: str, dtype: str, shapes=SHAPES) -> list[CheckResult]:
    """Every check for one cell and dtype; a backend that raises fails every check it reached."""
    cmp = _Comparer(cell, dtype)
    cls = cell_class(cell)
    backend = backend_cls(threads=1)
    for seed, shape in enumerate(shapes):
        where = f"{cell} {dtype} T,B,I,H={shape}"
        problem = random_problem(cell, shape, dtype, seed)
        pristine = copy.deepcopy(problem)
        want = expected(problem)
        try:
            out, exact = _run(backend, problem, per_step=True)
            _, timed = _run(backend, problem, per_step=False)
            _, again = _run(backend, problem, per_step=False)
        except Exception as exc:  # a crash is a failure of everything, named
            for r in cmp.results.values():
                r.fail(f"{where}: raised {type(exc).__name__}: {exc}")
            continue
        cmp.close("hidden states", where, _readout_name(cls), out.h, want.y)
        got_states = output_states(cls, out)
        for name, value in want.states.items():
            if name == "h" and _readout_name(cls) == "h" and out.states is None:
                continue  # API 2: out.h is the state h, compared above
            cmp.close("hidden states", where, name, got_states.get(name), value)
        for path, grads in (("per_step=True", exact), ("per_step=False", timed)):
            for name in cls.param_shapes(shape[2], shape[3]):
                cmp.close("parameter gradients", f"{where} {path}", f"dL/d{name}", grads.params.get(name),
                          want.params[name])
            cmp.close("dL/dx", f"{where} {path}", "dL/dx", grads.x, want.x)
        got_grads = state_gradients(cls, exact)
        for name, value in want.state_grads.items():
            cmp.close("per-step dL/ds_t", where, f"dL/d{name}_t", got_grads.get(name), value)
        for name, before in [("x", pristine.x), ("grad_h", pristine.grad_h), *pristine.params.items()]:
            now = problem.x if name == "x" else problem.grad_h if name == "grad_h" else problem.params[name]
            if not np.array_equal(now, before):
                cmp.results["inputs not mutated"].fail(f"{where}: the backend changed its input {name}")
        for name in problem.params:
            if not np.array_equal(np.asarray(timed.params.get(name)), np.asarray(again.params.get(name))):
                cmp.results["deterministic"].fail(f"{where}: dL/d{name} differs between two identical calls")
        if not np.array_equal(np.asarray(timed.x), np.asarray(again.x)):
            cmp.results["deterministic"].fail(f"{where}: dL/dx differs between two identical calls")
    _check_training(backend_cls, cell, dtype, cmp.results["trains like the reference"])
    return list(cmp.results.values())


def _readout_name(cls) -> str:
    """How the check names what the readout sees: ``h`` where it is the state h, else ``y``."""
    return "h" if cls.output == "h" and cls.readout_input is Cell.readout_input else "y"


def _training_curve(backend: Backend, cell: str) -> np.ndarray:
    """Eval losses of 50 iterations of the core's training loop (adding problem, T = 12, H = 8, float64)."""
    from harness.run.grid import JobMode, PointJob
    from harness.run.train import train
    from harness.plugins import get_registry
    from harness.suites import Suite, TrainSettings

    suite = Suite(name="check", task="adding", cells=(cell,), seq_lens=(12,), batch=8, hidden=8, dtype="float64",
                  train=TrainSettings(seq_lens=(12,), iterations=50, batch=8, eval_every=10, eval_size=32,
                                 profile_every=50, lr=0.01))
    job = PointJob(backend.name, cell, 12, suite, JobMode.TRAIN, seed=0)
    point = train(backend, job, get_registry().task("adding"))
    return np.array(point.training.eval_loss)


def _check_training(backend_cls: type[Backend], cell: str, dtype: str, result: CheckResult) -> None:
    """Every backend trains identically: the same eval-loss curve as the reference, to rounding."""
    if dtype != "float64":
        result.detail = "compared in float64 (see that row)"
        return
    try:
        curve = _training_curve(backend_cls(threads=1), cell)
    except Exception as exc:
        result.fail(f"{cell} float64 training: raised {type(exc).__name__}: {exc}")
        return
    oracle = reference.ReferenceBackend() if reference.hand_written(cell) else reference.DerivedBackend()
    err = relative_error(curve, _training_curve(oracle, cell))
    if not err <= TRAINING_TOLERANCE:
        result.fail(f"{cell} float64: eval-loss curve of 50 training iterations, relative error {err:.3g} > "
                    f"{TRAINING_TOLERANCE:g}", err)
    else:
        result.error = err


@dataclass
class Report:
    backend: str
    availability: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.availability and all(r.passed for r in self.results)

    @property
    def tolerances(self) -> dict[str, float]:
        """The largest relative error each dtype was allowed (:data:`TOLERANCES`), for the report."""
        return TOLERANCES


def check_backend(backend_cls: type[Backend], cells=None, dtypes=None) -> Report:
    """Run every check for every cell and dtype the backend declares (or the subsets given)."""
    availability = availability_of(backend_cls)
    if not availability:
        reason = availability.reason or "unavailable, and availability() gave no reason (it must)"
        return Report(backend_cls.name, reason)
    report = Report(backend_cls.name, "")
    known = cell_names()
    for cell in cells or backend_cls.cell_names():
        if cell not in known:
            continue  # a cell no plugin offers has no reference to check against
        for dtype in dtypes or backend_cls.dtypes:
            report.results.extend(check_cell(backend_cls, cell, dtype))
    return report


def parametrize_with_checks(plugin_cls: type[Backend] | type[Cell]) -> Callable:
    """A pytest decorator for a plugin's own tests: ``@parametrize_with_checks(MyBackend)`` gives
    one test per (cell, dtype) the backend runs, each running every backend check;
    ``@parametrize_with_checks(MyCell)`` one test per check of :func:`check_cell_plugin` (the
    contract, each dtype's inits, each init's finite differences, each (backend, dtype) that runs
    the cell once it is installed). The decorated test takes ``check`` and calls it."""
    if isinstance(plugin_cls, type) and issubclass(plugin_cls, Cell):
        return _parametrize_cell(plugin_cls)
    return _parametrize_backend(plugin_cls)


def _parametrize_backend(backend_cls: type[Backend]) -> Callable:
    """One test per (cell, dtype) of the backend, each running every check."""
    import pytest

    def make(cell: str, dtype: str) -> Callable[[], None]:
        def check() -> None:
            failures = [f"{r.check}: {r.detail}" for r in check_cell(backend_cls, cell, dtype) if not r.passed]
            assert not failures, "\n".join(failures)

        return check

    availability = availability_of(backend_cls)
    params = [pytest.param(make(c, d), id=f"{c}-{d}",
                           marks=pytest.mark.skipif(not availability, reason=availability.reason or "unavailable"))
              for c in backend_cls.cell_names() if c in cell_names() for d in backend_cls.dtypes]
    return pytest.mark.parametrize("check", params)


# -- cells --------------------------------------------------------------------------------------------
#: (T, B, I, H) of the finite-difference check of a cell's derived gradients.
FD_SHAPE = (5, 2, 3, 4)
#: Central differences in float64: truncation ~ eps^2, rounding ~ 1e-16 |L| / eps.
FD_EPS = 1e-6
#: Allowed |derived - numeric|: FD_RTOL x the largest entry of the derived gradient, + FD_ATOL.
FD_RTOL = 1e-6
FD_ATOL = 1e-9
#: The finite-difference rows of a cell's report, per init.
FD_CHECKS = ("dL/dparam", "dL/dx", "dL/ds_0", "per-step dL/ds_t")


@dataclass
class CellCheckResult(CheckResult):
    """One check of a cell itself (``cell``, ``dtype``, ``check`` as for a backend, plus the init)."""

    init: str = "-"


@dataclass
class CellReport:
    """``harness check CELL``: the cell's own checks, then one backend report per backend that
    claims it (an unavailable backend's report has its reason in ``availability``: skipped)."""

    cell: str
    origin: str
    results: list[CellCheckResult] = field(default_factory=list)
    backends: list[Report] = field(default_factory=list)
    note: str = ""  # why no backend was checked, when none was

    @property
    def passed(self) -> bool:
        return (all(r.passed for r in self.results)
                and all(all(r.passed for r in b.results) for b in self.backends if not b.availability))

    @property
    def skipped(self) -> list[str]:
        """The backends that claim the cell but cannot run here."""
        return [b.backend for b in self.backends if b.availability]

    @property
    def tolerances(self) -> dict[str, float]:
        return {"finite differences rtol": FD_RTOL, "atol": FD_ATOL, "eps": FD_EPS}


def check_cell_contract(cell_cls: type[Cell]) -> list[CellCheckResult]:
    """The declaration (:func:`check_cell_class`), then every init with one step and readout in
    float64 and in float32 (:func:`validate_cell`). A failure stops the rows after it."""
    name = str(getattr(cell_cls, "name", getattr(cell_cls, "__name__", "?")))
    contract = CellCheckResult(name, "-", "contract")
    rows = [contract]
    try:
        check_cell_class(cell_cls)
        as_cell(cell_cls)
    except HarnessError as exc:
        contract.fail(str(exc))
        return rows
    for dtype in ("float64", "float32"):
        row = CellCheckResult(name, dtype, "inits, one step, readout", init="every")
        rows.append(row)
        try:
            validate_cell(cell_cls, steps=FD_SHAPE[0], dtype=dtype)
        except HarnessError as exc:
            row.fail(str(exc))
        except Exception as exc:  # validate_cell names the cell; anything else is the cell's too
            row.fail(f"{label(cell_cls)}: {one_line(exc)}")
    return rows


def check_cell_gradients(cell_cls: type[Cell], init: str = "default", shape: tuple[int, int, int, int] = FD_SHAPE,
                         seed: int = 0) -> list[CellCheckResult]:
    """The derived float64 reference of ``cell_cls`` with parameters drawn by ``init``, against
    central finite differences of the cell's forward (see the module docstring for the tolerance).

    The per-step gradient of a state is the derived reference's TOTAL one: through every use of the
    tensor the step returned, including the other states of the same step computed from it
    (LSTM's h_t = o tanh(c_t), coRNN's y_t = y_{t-1} + dt z_t). The numeric one perturbs that
    tensor where the step creates it (the step is replayed under a torch function mode that adds
    delta to the result of the operation that made it), so the same-step uses see the bump too."""
    from harness import derived

    name = str(cell_cls.name)
    rows = {check: CellCheckResult(name, "float64", check, init=init) for check in FD_CHECKS}
    steps, batch, input_size, hidden = shape
    rng = np.random.default_rng(seed)
    try:
        cell = as_cell(cell_cls)
        params = cell.init_params(input_size, hidden, np.random.default_rng(seed), init, steps=steps)
        params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
        x = rng.standard_normal((steps, batch, input_size))
        grad_y = rng.standard_normal((steps, batch, hidden))
        state0 = {n: 0.5 * rng.standard_normal((batch, size)) for n, size in cell.state_sizes(hidden).items()}
        got = derived.backward(cell, params, x, grad_y, state0=state0)
    except Exception as exc:
        why = str(exc) if isinstance(exc, HarnessError) else f"{label(cell_cls)}: {one_line(exc)}"
        for row in rows.values():
            row.fail(f"init {init!r}: {why}")
        return list(rows.values())

    def loss(bump=None) -> float:
        return _sequence_loss(cell, params, x, grad_y, state0, bump)

    def compare(check: str, tensor: str, analytic: np.ndarray, numeric: np.ndarray) -> None:
        row = rows[check]
        scale = float(np.max(np.abs(analytic))) if analytic.size else 0.0
        err = float(np.max(np.abs(analytic - numeric))) if analytic.size else 0.0
        relative = err / scale if scale else err
        if not err <= FD_RTOL * scale + FD_ATOL:  # NaN fails too
            row.fail(f"{name} init {init!r} T,B,I,H={shape}: {tensor} derived vs finite differences: "
                     f"max |difference| {err:.3g} > {FD_RTOL:g} x largest {scale:.3g} + {FD_ATOL:g}", relative)
        elif np.isfinite(relative):
            row.error = max(row.error, relative)

    try:
        for pname, value in params.items():
            compare("dL/dparam", f"dL/d{pname}", got.params[pname], central_difference(loss, value))
        compare("dL/dx", "dL/dx", got.x, central_difference(loss, x))
        for sname, value in state0.items():
            compare("dL/ds_0", f"dL/d{sname}_0", got.states0[sname], central_difference(loss, value))
        for sname, analytic in got.states.items():
            numeric = np.zeros_like(analytic)
            for t, b, j in np.ndindex(numeric.shape):
                up, down = loss((t, sname, (b, j), FD_EPS)), loss((t, sname, (b, j), -FD_EPS))
                numeric[t, b, j] = (up - down) / (2 * FD_EPS)
            compare("per-step dL/ds_t", f"dL/d{sname}_t", analytic, numeric)
    except Exception as exc:  # the cell's forward raised on a perturbed input
        why = str(exc) if isinstance(exc, HarnessError) else f"{label(cell_cls)}: {one_line(exc)}"
        for row in rows.values():
            if row.passed:
                row.fail(f"init {init!r}: finite differences raised: {why}")
    return list(rows.values())


def central_difference(f: Callable[[], float], array: np.ndarray, eps: float = FD_EPS) -> np.ndarray:
    """d f / d array by central differences, entry by entry (``array`` is changed and restored): the
    oracle for anything derived (the tests of the references use it too)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        keep = array[index]
        array[index] = keep + eps
        up = f()
        array[index] = keep - eps
        down = f()
        array[index] = keep
        grad[index] = (up - down) / (2 * eps)
    return grad


def _sequence_loss(cell: Cell, params: Mapping[str, np.ndarray], x: np.ndarray, grad_y: np.ndarray,
                   state0: Mapping[str, np.ndarray], bump: tuple[int, str, tuple[int, int], float] | None) -> float:
    """L = sum_t <grad_y[t], y_t>, stepping the cell in float64 without autograd; ``bump`` = (t,
    name, (b, j), delta) adds delta to entry (b, j) of state ``name`` where step t creates it."""
    import torch

    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()}
    state = {k: torch.tensor(v, dtype=torch.float64) for k, v in state0.items()}
    total = 0.0
    with torch.no_grad():
        for t in range(x.shape[0]):
            x_t = torch.tensor(x[t], dtype=torch.float64)
            if bump is not None and bump[0] == t:
                state = _bumped_step(cell, p, state, x_t, bump[1], bump[2], bump[3])
            else:
                state = dict(cell.step(p, state, x_t))
            total += float((cell.readout_input(p, state, x_t) * torch.tensor(grad_y[t])).sum())
    return total


def _bumped_step(cell: Cell, p: dict, state: dict, x_t: Any, name: str, index: tuple[int, int], delta: float) -> dict:
    """One step with ``delta`` added to entry ``index`` of state ``name`` where the step creates it.

    The step runs once under a recording torch function mode to find the operation whose result
    (or an element of whose tuple result) is the returned tensor, then again adding delta to that
    result, so every later use inside the step sees it. A state that is not made by an operation of
    this step (returned unchanged, a parameter) is bumped after the step, as the derived reference
    then counts only its later uses."""
    from torch.overrides import TorchFunctionMode

    class Ops(TorchFunctionMode):
        def __init__(self, at: tuple[int, int | None] | None = None):
            super().__init__()
            self.results: list[Any] = []  # kept alive: their ids stay unique
            self.at = at

        def __torch_function__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            if self.at is not None and self.at[0] == len(self.results):
                result = _add_at(result, self.at[1], index, delta)
            self.results.append(result)
            return result

    recording = Ops()
    with recording:
        new = dict(cell.step(p, state, x_t))
    target = new[name]
    given = {id(v) for v in (*state.values(), *p.values(), x_t)}
    at = None
    if id(target) not in given:
        for k in range(len(recording.results) - 1, -1, -1):
            result = recording.results[k]
            if result is target:
                at = (k, None)
            elif isinstance(result, (tuple, list)):
                j = next((j for j, r in enumerate(result) if r is target), None)
                at = (k, j) if j is not None else None
            if at is not None:
                break
    if at is None:
        new[name] = _add_at(target, None, index, delta)
        return new
    with Ops(at):
        return dict(cell.step(p, state, x_t))


def _add_at(result: Any, element: int | None, index: tuple[int, int], delta: float) -> Any:
    if element is not None:
        items = list(result)
        items[element] = _add_at(items[element], None, index, delta)
        return type(result)(items) if isinstance(result, list) else tuple(items)
    bumped = result.clone()
    bumped[index] += delta
    return bumped


def _claimed_by(cell: str, backends: Iterable[str | type[Backend]] | None) -> list[type[Backend]]:
    """The backends to check for ``cell``: those given (names or classes), else every installed
    backend whose cells include it."""
    registry = get_registry()
    if backends is None:
        return [cls for cls in registry.backends.values() if cell in cls.cell_names()]
    chosen = [registry.backend_class(b) if isinstance(b, str) else b for b in backends]
    return [cls for cls in chosen if cell in cls.cell_names()]


def _not_installed(cell_cls: type[Cell]) -> str:
    """Why no backend can be checked with ``cell_cls``; empty when it is the installed cell of its name."""
    registered = get_registry().cells.get(getattr(cell_cls, "name", None))
    if registered is cell_cls:
        return ""
    if registered is None:
        return (f"no backend checked: cell {cell_cls.name!r} is not installed (backends run installed cells; "
                f"pip install its package)")
    return (f"no backend checked: the installed cell {cell_cls.name!r} is {registered.__module__}."
            f"{registered.__qualname__}, not this class")


def check_cell_plugin(cell_cls: type[Cell], backends: Iterable[str | type[Backend]] | None = None,
                      dtypes: Iterable[str] | None = None, inits: Iterable[str] | None = None) -> CellReport:
    """Every check of a cell plugin (``harness check CELL``): :func:`check_cell_contract`,
    :func:`check_cell_gradients` for each init (or ``inits``), and :func:`check_backend` on each
    backend that claims the cell (or each of ``backends`` that does), when the cell passed its own
    checks and is the installed cell of its name."""
    name = str(getattr(cell_cls, "name", getattr(cell_cls, "__name__", "?")))
    origin = get_registry().cell_origin(name) if get_registry().cells.get(name) is cell_cls else (
        f"{getattr(cell_cls, '__module__', '?')} (not installed)")
    report = CellReport(name, origin, check_cell_contract(cell_cls))
    if not report.results[0].passed:
        report.note = "nothing else checked: the class is not a valid cell"
        return report
    for init in inits or cell_cls.init_names():
        report.results.extend(check_cell_gradients(cell_cls, init))
    if not all(r.passed for r in report.results):
        report.note = "no backend checked: the cell failed its own checks"
        return report
    report.note = _not_installed(cell_cls)
    if report.note:
        return report
    dtypes = tuple(dtypes) if dtypes else None
    for backend_cls in _claimed_by(name, backends):
        chosen = [d for d in backend_cls.dtypes if dtypes is None or d in dtypes]
        if chosen:
            report.backends.append(check_backend(backend_cls, cells=[name], dtypes=chosen))
    if not report.backends:
        report.note = (f"no installed backend runs cell {name!r}" if backends is None
                       else f"none of the chosen backends runs cell {name!r}")
    return report


def _parametrize_cell(cell_cls: type[Cell]) -> Callable:
    """One test per check of :func:`check_cell_plugin`: the contract and inits, each init's finite
    differences, each (backend, dtype) that runs the installed cell (skipped while not installed)."""
    import pytest

    def assert_passed(results: list[CheckResult]) -> None:
        failures = [f"{r.check}: {r.detail}" for r in results if not r.passed]
        assert not failures, "\n".join(failures)

    def contract() -> None:
        assert_passed(check_cell_contract(cell_cls))

    def gradients(init: str) -> Callable[[], None]:
        return lambda: assert_passed(check_cell_gradients(cell_cls, init))

    def backend(backend_cls: type[Backend], dtype: str) -> Callable[[], None]:
        return lambda: assert_passed(check_cell(backend_cls, cell_cls.name, dtype))

    params = [pytest.param(contract, id="contract")]
    try:
        names = check_cell_class(cell_cls).init_names()
    except HarnessError:
        names = ()  # the contract test says why
    params += [pytest.param(gradients(init), id=f"finite-differences-{init}") for init in names]
    missing = _not_installed(cell_cls) if names else "the class is not a valid cell"
    if missing:
        params.append(pytest.param(None, id="backends", marks=pytest.mark.skip(reason=missing)))
    else:
        for backend_cls in _claimed_by(cell_cls.name, None):
            available = availability_of(backend_cls)
            params += [pytest.param(backend(backend_cls, d), id=f"{backend_cls.name}-{d}",
                                    marks=pytest.mark.skipif(not available, reason=available.reason or "unavailable"))
                       for d in backend_cls.dtypes]
    return pytest.mark.parametrize("check", params)
