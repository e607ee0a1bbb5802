"""torch-cpu and torch-cuda against the NumPy reference; fused and exact paths against each other.

float64 tolerance 1e-10; float32 1e-4 (relative to each tensor's scale), with TF32 off on CUDA.
"""
from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="torch is not installed (pip install '.[torch]')")

from harness import reference  # noqa: E402
from harness_plugins.torch_backend import (TorchCPUBackend, TorchCPUGenericBackend,  # noqa: E402
                                           TorchCUDABackend, TorchCUDAGenericBackend)
from harness.testing import random_problem, relative_error  # noqa: E402

TOL = {"float64": 1e-10, "float32": 1e-4}
CUDA = TorchCUDABackend.availability()

BACKENDS = [
    pytest.param(TorchCPUBackend, id="torch-cpu"),
    pytest.param(TorchCUDABackend, id="torch-cuda", marks=[
        pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason=f"torch-cuda unavailable: {CUDA.reason}")]),
]
GENERIC_BACKENDS = [
    pytest.param(TorchCPUGenericBackend, id="torch-cpu-generic"),
    pytest.param(TorchCUDAGenericBackend, id="torch-cuda-generic", marks=[
        pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason=f"torch-cuda unavailable: {CUDA.reason}")]),
]


@pytest.fixture(autouse=True)
def no_tf32():
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _run(backend_cls, problem, per_step):
    backend = backend_cls(threads=1)
    backend.prepare(problem)
    backend.forward()
    backend.backward(per_step=per_step)
    return backend.outputs(), backend.gradients()


@pytest.mark.parametrize("backend_cls", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_matches_numpy_reference(backend_cls, cell, dtype):
    problem = random_problem(cell, (25, 4, 3, 16), dtype, 3)
    ref64 = random_problem(cell, (25, 4, 3, 16), "float64", 3)
    acts = reference.forward(cell, ref64.params, ref64.x)
    expected_out = reference.outputs(cell, acts)
    expected = reference.backward(cell, ref64.params, ref64.x, acts, ref64.grad_h, per_step=True)
    tol = TOL[dtype]
    for per_step in (False, True):  # the fused (timed) path and the exact path
        out, grads = _run(backend_cls, problem, per_step)
        assert out.h.dtype == dtype
        assert relative_error(out.h, expected_out.h) <= tol
        if cell == "lstm":
            assert relative_error(out.c, expected_out.c) <= tol
        for name, value in expected.params.items():
            assert relative_error(grads.params[name], value) <= tol, (name, per_step)
        assert relative_error(grads.x, expected.x) <= tol
        if per_step:
            assert relative_error(grads.h, expected.h) <= tol
            if cell == "lstm":
                assert relative_error(grads.c, expected.c) <= tol
        else:
            assert grads.h is None


@pytest.mark.parametrize("backend_cls", BACKENDS)
def test_fused_and_exact_paths_agree(backend_cls):
    problem = random_problem("lstm", (40, 3, 5, 8), seed=5)
    _, fused = _run(backend_cls, problem, per_step=False)
    _, exact = _run(backend_cls, problem, per_step=True)
    for name in fused.params:
        assert relative_error(fused.params[name], exact.params[name]) <= 1e-12
    assert relative_error(fused.x, exact.x) <= 1e-12


@pytest.mark.parametrize("backend_cls", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm"])
def test_per_step_gradients_through_the_fused_layer_equal_the_stepped_path(backend_cls, cell, dtype):
    """The extended-input trick (module docstring) against autograd through the stepped equations:
    every gradient and the total dL/dh_t (dL/dc_t) of every step, float64 to 1e-10, float32 to 1e-4."""
    from harness_plugins.torch_backend import FUSED_PROFILE_CELLS

    assert cell in FUSED_PROFILE_CELLS
    backend = backend_cls(threads=1)
    backend.prepare(random_problem(cell, (60, 5, 3, 12), dtype, seed=9))
    backend.forward()
    fused = backend._fused_backward()
    stepped = backend._stepped_backward()
    (fp, fx, fh, fc), (sp, sx, sh, sc) = fused, stepped
    tol = TOL[dtype]
    for a, b in zip(fp, sp):
        assert relative_error(a.cpu().numpy(), b.cpu().numpy()) <= tol
    assert relative_error(fx.cpu().numpy(), sx.cpu().numpy()) <= tol
    assert relative_error(fh.cpu().numpy(), sh.cpu().numpy()) <= tol
    if cell == "lstm":
        assert relative_error(fc.cpu().numpy(), sc.cpu().numpy()) <= tol
    else:
        assert fc is None and sc is None


@pytest.mark.parametrize("backend_cls", BACKENDS)
def test_the_fused_path_follows_new_weights_of_the_same_layout(backend_cls):
    """The extended layer is built once per layout: a second problem of that layout (a training
    step's new weights) must still give its own gradients, not the first problem's."""
    backend = backend_cls(threads=1)
    for seed in (1, 2):
        backend.prepare(random_problem("lstm", (20, 4, 3, 6), "float64", seed=seed))
        backend.forward()
        (fp, fx, fh, fc), (sp, sx, sh, sc) = backend._fused_backward(), backend._stepped_backward()
        for fused, stepped in [(fp[0], sp[0]), (fp[1], sp[1]), (fx, sx), (fh, sh), (fc, sc)]:
            assert relative_error(fused.cpu().numpy(), stepped.cpu().numpy()) <= TOL["float64"], seed


@pytest.mark.parametrize("steps", [1, 2, 3, 9, 10, 61])
def test_suffix_scan_equals_the_sequential_recursion(steps):
    """The chunked scan behind LSTM's dL/dc_t against y_t = a_t + m_t y_{t+1} stepped back from the
    end, float64, for lengths that fill their chunks exactly and that leave them padded."""
    import torch

    from harness_plugins.torch_backend import _suffix_scan

    gen = torch.Generator().manual_seed(steps)
    a = torch.randn(steps, 3, 5, dtype=torch.float64, generator=gen)
    m = torch.rand(steps, 3, 5, dtype=torch.float64, generator=gen) * 1.2
    want = a.clone()
    for t in range(steps - 2, -1, -1):
        want[t] += m[t] * want[t + 1]
    got = _suffix_scan(torch, a, m)
    assert relative_error(got.numpy(), want.numpy()) <= 1e-14
    assert torch.equal(a[-1], got[-1])


BUILT_IN = ["rnn_tanh", "lstm", "gru", "gru_cho", "rnn_relu", "indrnn", "mingru", "lru"]


@pytest.mark.parametrize("backend_cls", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", BUILT_IN)
def test_the_generic_path_matches_the_float64_reference(backend_cls, cell, dtype):
    """Every built-in cell (the classic ones too, which the backend runs fused) stepped from its step
    function: y_t, every state, every gradient and the total per-step gradient of every state, against
    the float64 reference on the same rounded inputs (hand-written for the classic cells, derived for
    the others): float64 to 1e-12, float32 to harness check's 1e-4. The timed backward gives the same
    parameter gradients and dL/dx as the exact one."""
    import torch

    from harness.testing import TOLERANCES, expected
    from harness_plugins.torch_backend import GenericPath

    device = backend_cls.device
    problem = random_problem(cell, (25, 4, 3, 16), dtype, 3)
    want = expected(problem)
    path = GenericPath(torch, problem, device)
    grad_y = torch.from_numpy(problem.grad_h).to(device)
    path.forward()
    params, dx, per_state = path.backward(grad_y, per_step=True)
    y, states = path.outputs()
    tol = 1e-12 if dtype == "float64" else TOLERANCES["float32"]
    assert y.dtype == getattr(torch, dtype) and relative_error(y.cpu().numpy(), want.y) <= tol
    for name, value in want.states.items():
        assert relative_error(states[name].cpu().numpy(), value) <= tol, name
        assert relative_error(per_state[name].cpu().numpy(), want.state_grads[name]) <= tol, name
    for name, value in want.params.items():
        assert relative_error(params[name].cpu().numpy(), value) <= tol, name
    assert relative_error(dx.cpu().numpy(), want.x) <= tol
    path.forward()
    timed_params, timed_dx, none = path.backward(grad_y, per_step=False)
    assert none is None and torch.equal(timed_dx, dx)
    for name in params:
        assert torch.equal(timed_params[name], params[name]), name


@pytest.mark.parametrize("backend_cls", BACKENDS)
def test_the_backend_runs_every_registered_cell_and_reports_every_state(backend_cls):
    """lru through the backend's contract: its states re and im by name, no h (its readout input,
    Outputs.h, is not a state)."""
    problem = random_problem("lru", (9, 2, 3, 5), "float64", 1)
    assert backend_cls.supports("lru", "float64") and "mingru" in backend_cls.cell_names()
    out, grads = _run(backend_cls, problem, per_step=True)
    assert set(out.states) == set(grads.states) == {"re", "im"} and out.h.shape == (9, 2, 5)
    assert grads.h is None and grads.c is None and grads.states["re"].shape == (9, 2, 5)


@pytest.mark.parametrize("backend_cls", GENERIC_BACKENDS)
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_the_generic_backends_run_the_classic_cells_stepped_through_the_contract(backend_cls, cell):
    """torch-cpu-generic: the classic cells on the generic path (no fused layer), through the backend
    contract (Outputs.c, Gradients.h and .c for LSTM), equal to the hand-written float64 reference."""
    problem = random_problem(cell, (25, 4, 3, 16), "float64", 3)
    acts = reference.forward(cell, problem.params, problem.x)
    want_out = reference.outputs(cell, acts)
    want = reference.backward(cell, problem.params, problem.x, acts, problem.grad_h, per_step=True)
    backend = backend_cls(threads=1)
    backend.prepare(problem)
    assert backend._generic is not None and getattr(backend, "module", None) is None
    backend.forward()
    backend.backward(per_step=True)
    out, grads = backend.outputs(), backend.gradients()
    assert relative_error(out.h, want_out.h) <= 1e-12
    for name, value in want.params.items():
        assert relative_error(grads.params[name], value) <= 1e-12, name
    assert relative_error(grads.x, want.x) <= 1e-12 and relative_error(grads.h, want.h) <= 1e-12
    if cell == "lstm":
        assert relative_error(out.c, want_out.c) <= 1e-12 and relative_error(grads.c, want.c) <= 1e-12


def test_cuda_availability_has_a_reason_when_missing():
    if CUDA:
        pytest.skip("a CUDA GPU is present")
    assert CUDA.reason.startswith("no CUDA GPU")
