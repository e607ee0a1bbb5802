"""The numba backend against the NumPy reference on a seeded sweep of shapes, and its disk cache.

Tolerances (relative to each tensor's scale): float64 1e-12, float32 1e-5.
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import reference
from harness.testing import random_problem, relative_error
from tests.support.cli import TIMEOUT, harness
from tests.support.suites import write_suite

pytest.importorskip("numba", reason="numba is not installed (pip install '.[numba]')")
pytest.importorskip("scipy", reason="scipy is not installed (numba's np.dot needs it)")

from harness_plugins.numba_backend import NumbaBackend  # noqa: E402

TOL = {"float64": 1e-12, "float32": 1e-5}
CELLS = ("rnn_tanh", "lstm", "gru")
ROOT = Path(__file__).resolve().parent.parent


def _shapes(n: int = 6):
    """Edge cases first (B=1, H=1, T=1; T at and around the 32-step chunk: one chunk, a full one plus
    a one-step one, several), then seeded random (T, B, I, H)."""
    rng = np.random.default_rng(2024)
    yield from [(1, 1, 1, 1), (1, 3, 2, 4), (5, 1, 3, 1), (4, 2, 1, 3), (32, 2, 2, 5), (33, 2, 2, 5), (70, 3, 2, 4)]
    for _ in range(n):
        yield tuple(int(v) for v in (rng.integers(1, 40), rng.integers(1, 9), rng.integers(1, 7), rng.integers(1, 33)))


def _expected(p):
    acts = reference.forward(p.cell, p.params, p.x)
    return reference.outputs(p.cell, acts), reference.backward(p.cell, p.params, p.x, acts, p.grad_h, per_step=True)


def _assert_gradients_match(got, want, tol, where, per_step: bool) -> None:
    assert relative_error(got.x, want.x) <= tol, where
    for name in want.params:
        assert relative_error(got.params[name], want.params[name]) <= tol, (where, name)
    if per_step:
        assert relative_error(got.h, want.h) <= tol, where
        if want.c is not None:
            assert relative_error(got.c, want.c) <= tol, where
    else:
        assert got.h is None and got.c is None, where


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_matches_numpy_reference_on_a_sweep_of_shapes(cell, dtype):
    """Both paths: the exact one (per_step=True) and the timed one (per_step=False)."""
    backend = NumbaBackend(threads=1)
    for seed, shape in enumerate(_shapes()):
        p = random_problem(cell, shape, dtype, seed)
        want_out, want = _expected(p)
        tol = TOL[dtype]
        for per_step in (True, False):
            backend.prepare(p)
            backend.forward()
            backend.backward(per_step=per_step)
            out, got = backend.outputs(), backend.gradients()
            assert out.h.dtype == dtype and got.x.dtype == dtype
            assert relative_error(out.h, want_out.h) <= tol, shape
            if want_out.c is not None:
                assert relative_error(out.c, want_out.c) <= tol, shape
            _assert_gradients_match(got, want, tol, (shape, per_step), per_step)


@pytest.mark.parametrize("cell", CELLS)
def test_reused_buffers_give_the_reference_on_every_call(cell):
    """Timed calls repeat on the same buffers, and a new problem reuses the backend: each result must
    be the reference's for the problem at hand, not the previous call's left-overs."""
    backend = NumbaBackend(threads=1)
    first, second = random_problem(cell, (20, 4, 3, 8), seed=1), random_problem(cell, (11, 2, 3, 8), seed=2)
    for p in (first, second):
        _, want = _expected(p)
        backend.prepare(p)
        for _ in range(2):
            backend.forward()
            backend.backward()
            _assert_gradients_match(backend.gradients(), want, TOL["float64"], cell, per_step=False)
        backend.backward(per_step=True)  # the exact path after timed ones, on the same buffers
        _assert_gradients_match(backend.gradients(), want, TOL["float64"], cell, per_step=True)


COMPILE_SCRIPT = """
import json, time
from harness_plugins.numba_backend import NumbaBackend
from harness.testing import random_problem
backend = NumbaBackend(threads=1)
t0 = time.perf_counter()
for cell in ("rnn_tanh", "lstm", "gru"):
    backend.prepare(random_problem(cell, (3, 2, 2, 3), "float32"))
    backend.forward()
    backend.backward(per_step=True)
print(json.dumps({**backend.compile_stats(), "seconds": time.perf_counter() - t0}))
"""


def test_second_process_loads_kernels_from_the_cache_instead_of_compiling(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    runs = [json.loads(subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], env=env, capture_output=True,
                                      text=True, check=True, timeout=TIMEOUT).stdout) for _ in range(2)]
    first, second = runs
    assert first["cache_misses"] == 6 and first["cache_hits"] == 0  # six kernels compiled
    assert second["cache_misses"] == 0 and second["cache_hits"] == 6  # and loaded, not compiled


def test_numba_missing_makes_the_backend_unavailable_and_the_rest_runs(tmp_path):
    """A sitecustomize that hides numba: the backend is listed with the reason, the rest still runs."""
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['numba'] = None\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    out = harness("plugins", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if "backend numba" in line)
    assert "unavailable: numba is not installed" in line
    suite = write_suite(tmp_path / "tiny")
    run = harness("run", str(suite), "--backends", "numba,numpy", "-q", "--no-asv",
                  "--output", str(tmp_path / "r.json"), env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    points = {p["backend"]: p for p in json.loads((tmp_path / "r.json").read_text())["points"]}
    assert points["numba"]["status"] == "skipped" and "numba is not installed" in points["numba"]["reason"]
    assert points["numpy"]["status"] == "ok"


def test_per_step_gemms_go_through_the_tiles_on_one_thread_and_a_blas_on_more(monkeypatch):
    """The fast path is the one measured: on one thread the tiles compiled for this CPU, found wherever
    numba is; on more the first BLAS library (MKL where torch's x86 build brings it), whose GEMMs
    use them."""
    from harness_plugins import numba_kernels
    from harness_plugins.numba_blas import LIBRARIES

    monkeypatch.delenv("HARNESS_NUMBA_BLAS", raising=False)
    assert numba_kernels.FOUND[0] == "tiles"
    if importlib.util.find_spec("torch") and platform.machine() == "x86_64":
        assert numba_kernels.FOUND[1] == "mkl"
    two = NumbaBackend(threads=2)  # sets numba's thread count for this process: the next line sets it back
    one = NumbaBackend(threads=1)
    assert (one.engine, two.engine) == ("tiles", numba_kernels.FOUND[1])
    assert one.info()["blas"] == LIBRARIES["tiles"].description
    assert two.info()["blas"] == LIBRARIES[numba_kernels.FOUND[1]].description


# Each (library, dtype, cell) compiles its own kernels (seconds each). The default tier covers every
# library with both dtypes (each GEMM symbol) and on both kernel families (lstm: gate gradients
# propagated together; gru: apart); the other twelve combinations are in the slow tier.
_DEFAULT_TIER = {("tiles", "float32", "gru"), ("tiles", "float64", "lstm"), ("mkl", "float32", "lstm"),
                 ("mkl", "float64", "gru"), ("openblas", "float32", "gru"), ("openblas", "float64", "lstm"),
                 ("np.dot", "float32", "lstm"), ("np.dot", "float64", "gru")}


@pytest.mark.parametrize("library, dtype, cell", [
    (library, dtype, cell) if (library, dtype, cell) in _DEFAULT_TIER else
    pytest.param(library, dtype, cell, marks=pytest.mark.slow)
    for library in ("tiles", "mkl", "openblas", "np.dot") for dtype in ("float64", "float32") for cell in CELLS])
def test_every_blas_library_found_agrees_with_the_reference(cell, dtype, library, monkeypatch):
    """Each library's calls (the tiles' row and column blocks, MKL's by-reference Fortran ones, OpenBLAS's
    cblas ones, np.dot's copies) on strided weight blocks and buffer rows, on both paths."""
    from harness_plugins import numba_kernels

    if library not in numba_kernels.FOUND:
        pytest.skip(f"{library} is not found here")
    monkeypatch.setenv("HARNESS_NUMBA_BLAS", library)
    p = random_problem(cell, (9, 3, 2, 5), dtype)
    backend = NumbaBackend(threads=1)
    assert backend.engine == library
    backend.prepare(p)
    backend.forward()
    for per_step in (False, True):
        backend.backward(per_step=per_step)
        _assert_gradients_match(backend.gradients(), _expected(p)[1], TOL[dtype], cell, per_step=per_step)


def test_blas_choice_names_the_valid_choices():
    from harness_plugins.numba_blas import BLAS_CHOICES, LIBRARIES, choose_blas

    assert BLAS_CHOICES == ("auto", *LIBRARIES)
    assert choose_blas("auto", ("tiles", "openblas", "np.dot")) == "tiles"
    assert choose_blas("auto", ("tiles", "openblas", "np.dot"), threads=4) == "openblas"  # the tiles: one thread
    assert choose_blas("auto", ("tiles", "np.dot"), threads=None) == "np.dot"
    assert choose_blas("tiles", ("tiles", "mkl", "np.dot"), threads=4) == "tiles"
    assert choose_blas("np.dot", ("tiles", "mkl", "openblas", "np.dot")) == "np.dot"
    with pytest.raises(ValueError, match="HARNESS_NUMBA_BLAS='mkl': that library is not found here "
                                         r"\(found: tiles, openblas, np.dot\)"):
        choose_blas("mkl", ("tiles", "openblas", "np.dot"))
    with pytest.raises(ValueError, match="HARNESS_NUMBA_BLAS='atlas' is not one of auto, tiles, mkl, openblas, np.dot"):
        choose_blas("atlas", ("np.dot",))


def test_the_blas_choice_is_checked_without_importing_numba():
    """``harness plugins`` stays fast: the backend module and its availability check import neither numba
    nor llvmlite, nor the kernels (harness_plugins/numba_blas.py holds the choice)."""
    script = ("import sys; from harness_plugins.numba_backend import NumbaBackend; "
              "assert NumbaBackend.availability(); "
              "print(sorted(m for m in ('numba', 'llvmlite', 'harness_plugins.numba_kernels') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=TIMEOUT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]"


def test_a_misspelt_blas_choice_skips_the_backend_with_the_valid_choices(tmp_path):
    env = {**os.environ, "HARNESS_NUMBA_BLAS": "atlas"}
    suite = write_suite(tmp_path / "tiny")
    run = harness("run", str(suite), "--backends", "numba,numpy", "-q", "--no-asv",
                  "--output", str(tmp_path / "r.json"), env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    points = {p["backend"]: p for p in json.loads((tmp_path / "r.json").read_text())["points"]}
    assert points["numba"]["status"] == "skipped"
    assert "HARNESS_NUMBA_BLAS='atlas' is not one of auto, tiles, mkl, openblas, np.dot" in points["numba"]["reason"]
    assert points["numpy"]["status"] == "ok"


def test_vanishing_gradients_flush_to_zero_inside_the_calls_only():
    """float32 gradients that sink below the smallest normal number come back as 0, not subnormal (the
    slow path of x86 cores), within the tolerance of the float64 reference; the caller's own
    arithmetic keeps subnormals after the calls."""
    from harness.measure.denormals import flushing_available

    if not flushing_available():
        pytest.skip("no way to flush subnormals on this machine (x86 with llvmlite)")
    p = random_problem("rnn_tanh", (60, 4, 3, 8), "float32", seed=5, init="linear=0.1")
    p.grad_h[:-1] = 0  # the gradient of the last step only: one decade less per step back
    backend = NumbaBackend(threads=1)
    backend.prepare(p)
    backend.forward()
    backend.backward(per_step=True)
    dh = np.abs(backend.gradients().h)
    tiny = np.finfo(np.float32).tiny
    assert np.any(dh == 0) and np.all((dh == 0) | (dh >= tiny))  # flushed, never subnormal
    _assert_gradients_match(backend.gradients(), _expected(p)[1], TOL["float32"], "rnn_tanh", per_step=True)
    assert np.float32(1e-38) * np.float32(0.1) > 0  # the caller's setting is back
