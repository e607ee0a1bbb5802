"""The numba backend against the NumPy reference on a seeded sweep of shapes, and its disk cache.

Tolerances (relative to each tensor's scale): float64 1e-12, float32 1e-5.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from harness import reference
from tests.conftest import write_suite
from tests.helpers import make_problem, max_rel_err

pytest.importorskip("numba", reason="numba is not installed (pip install '.[numba]')")
pytest.importorskip("scipy", reason="scipy is not installed (numba's np.dot needs it)")

from harness_plugins.numba_backend import NumbaBackend  # noqa: E402

TOL = {"float64": 1e-12, "float32": 1e-5}
CELLS = ("rnn_tanh", "lstm", "gru")


def _shapes(n: int = 6):
    """Edge cases first (B=1, H=1, T=1), then seeded random (T, B, I, H)."""
    rng = np.random.default_rng(2024)
    yield from [(1, 1, 1, 1), (1, 3, 2, 4), (5, 1, 3, 1), (4, 2, 1, 3)]
    for _ in range(n):
        yield tuple(int(v) for v in (rng.integers(1, 40), rng.integers(1, 9), rng.integers(1, 7), rng.integers(1, 33)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_matches_numpy_reference_on_a_sweep_of_shapes(cell, dtype):
    backend = NumbaBackend(threads=1)
    for seed, (T, B, I, H) in enumerate(_shapes()):
        p = make_problem(cell, T=T, B=B, I=I, H=H, dtype=dtype, seed=seed)
        acts = reference.forward(cell, p.params, p.x)
        want = reference.backward(cell, p.params, p.x, acts, p.grad_h, per_step=True)
        want_out = reference.outputs(cell, acts)
        backend.prepare(p)
        backend.forward()
        backend.backward(per_step=True)
        out, got = backend.outputs(), backend.gradients()
        shape, tol = (T, B, I, H), TOL[dtype]
        assert out.h.dtype == dtype and got.x.dtype == dtype
        assert max_rel_err(out.h, want_out.h) <= tol, shape
        assert max_rel_err(got.x, want.x) <= tol, shape
        assert max_rel_err(got.h, want.h) <= tol, shape
        for name in want.params:
            assert max_rel_err(got.params[name], want.params[name]) <= tol, (shape, name)
        if cell == "lstm":
            assert max_rel_err(out.c, want_out.c) <= tol and max_rel_err(got.c, want.c) <= tol, shape


def test_repeated_calls_reuse_buffers_and_agree():
    p = make_problem("gru", T=20, B=4, I=3, H=8)
    backend = NumbaBackend(threads=1)
    backend.prepare(p)
    backend.forward()
    backend.backward()
    first = backend.gradients()
    backend.forward()
    backend.backward()
    second = backend.gradients()
    assert first.h is None
    for name in first.params:
        assert np.array_equal(first.params[name], second.params[name])


COMPILE_SCRIPT = """
import json, time
from harness_plugins.numba_backend import NumbaBackend
from tests.helpers import make_problem
backend = NumbaBackend(threads=1)
t0 = time.perf_counter()
for cell in ("rnn_tanh", "lstm", "gru"):
    backend.prepare(make_problem(cell, T=3, B=2, I=2, H=3, dtype="float32"))
    backend.forward()
    backend.backward(per_step=True)
print(json.dumps({**backend.compile_stats(), "seconds": time.perf_counter() - t0}))
"""


def test_second_process_loads_kernels_from_the_cache_instead_of_compiling(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": os.getcwd()}
    runs = [json.loads(subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], env=env, capture_output=True,
                                      text=True, check=True).stdout) for _ in range(2)]
    first, second = runs
    assert first["cache_misses"] == 6 and first["cache_hits"] == 0  # six kernels compiled
    assert second["cache_misses"] == 0 and second["cache_hits"] == 6  # and loaded, not compiled


def test_numba_missing_makes_the_backend_unavailable_and_the_rest_runs(tmp_path):
    """A sitecustomize that hides numba: the backend is listed with the reason, the rest still runs."""
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['numba'] = None\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.getcwd()}"}

    def harness(*args):
        return subprocess.run([sys.executable, "-m", "harness", *args], env=env, capture_output=True, text=True,
                              cwd=tmp_path)

    out = harness("plugins")
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if "backend numba" in line)
    assert "unavailable: numba is not installed" in line
    suite = write_suite(tmp_path / "tiny")
    run = harness("run", str(suite), "--backends", "numba,numpy", "-q", "--output", str(tmp_path / "r.json"))
    assert run.returncode == 0, run.stderr
    records = {r["backend"]: r for r in json.loads((tmp_path / "r.json").read_text())["records"]}
    assert records["numba"]["status"] == "skipped" and "numba is not installed" in records["numba"]["reason"]
    assert records["numpy"]["status"] == "ok"


def test_np_dot_fallback_without_numpys_openblas(monkeypatch):
    """Where NumPy ships no OpenBLAS, the kernels compile their np.dot variant and agree too."""
    from harness_plugins import numba_kernels

    monkeypatch.setattr(numba_kernels, "BLAS", np.int32(0))
    for cell in CELLS:
        p = make_problem(cell, T=9, B=3, I=2, H=5, dtype="float64")
        backend = NumbaBackend(threads=1)
        backend.prepare(p)
        backend.forward()
        backend.backward(per_step=True)
        acts = reference.forward(cell, p.params, p.x)
        want = reference.backward(cell, p.params, p.x, acts, p.grad_h, per_step=True)
        assert max_rel_err(backend.gradients().h, want.h) <= TOL["float64"]
        assert max_rel_err(backend.gradients().params["weight_hh"], want.params["weight_hh"]) <= TOL["float64"]
