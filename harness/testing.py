"""Conformance checks for backends: ``harness check BACKEND`` and, for a plugin's own test suite,
:func:`parametrize_with_checks` (in the spirit of scikit-learn's ``parametrize_with_checks``)::

    from harness.testing import parametrize_with_checks
    from my_plugin import MyBackend

    @parametrize_with_checks(MyBackend)
    def test_conformance(check):
        check()

For each cell and dtype the backend runs (``Backend.cell_names()``: every registered cell for a
backend that runs any), on seeded shapes that include the edge cases B=1, T=1 and H=1, every output
is compared with the float64 reference run on the same (rounded) inputs: the hand-written NumPy
reference for the classic cells, the reference derived from the cell's step (:mod:`harness.derived`)
for every other cell. Errors are relative to each tensor's scale: max|a - e| / max|e|.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from harness import derived, reference
from harness.backend import Backend, Gradients, Outputs, Problem, output_states, state_gradients
from harness.cell import Cell
from harness.cells import cell_class, cell_names
from harness.inits import init_params
from harness.plugins import availability as availability_of

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
    from harness.run.grid import PointJob
    from harness.run.train import train
    from harness.suites import Suite, Training
    from harness.tasks import AddingTask

    suite = Suite(name="check", task="adding", cells=(cell,), seq_lens=(12,), batch=8, hidden=8, dtype="float64",
                  train=Training(seq_lens=(12,), iterations=50, batch=8, eval_every=10, eval_size=32,
                                 profile_every=50, lr=0.01))
    point = train(backend, PointJob(backend.name, cell, 12, suite, "train", seed=0), AddingTask())
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


def parametrize_with_checks(backend_cls: type[Backend]) -> Callable:
    """A pytest decorator: one test per (cell, dtype) of the backend, each running every check."""
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
