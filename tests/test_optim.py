"""The core's optimizers and clipping against torch.optim and clip_grad_norm_ (float64, 1e-12)."""
from __future__ import annotations

import numpy as np
import pytest

from harness.run.optim import clip_grad_norm, clip_gradient, make_optimizer

torch = pytest.importorskip("torch", reason="torch is not installed (pip install '.[torch]')")

TOL = 1e-12


def _arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((4, 3)), "b": rng.standard_normal(4)}


def _flat(arrays: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([v.ravel() for v in arrays.values()])


@pytest.mark.parametrize("name, torch_optimizer", [
    ("adam", lambda ps: torch.optim.Adam(ps, lr=1e-2)),
    ("rmsprop", lambda ps: torch.optim.RMSprop(ps, lr=1e-2, alpha=0.9)),
    ("sgd", lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9)),
])
def test_updates_match_torch_optim(name, torch_optimizer):
    """Our flat vector against torch's per-parameter tensors: the rules are element-wise."""
    params = _arrays(0)
    theta = _flat(params)
    ours = make_optimizer(name, 1e-2, momentum=0.9, alpha=0.9)
    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = torch_optimizer(list(theirs.values()))
    for step in range(6):
        grads = _arrays(step + 1)
        ours.step(theta, _flat(grads))
        for k, t in theirs.items():
            t.grad = torch.tensor(grads[k])
        opt.step()
    np.testing.assert_allclose(theta, _flat({k: t.detach().numpy() for k, t in theirs.items()}), rtol=TOL, atol=TOL)


def _with_grads(grads: dict[str, np.ndarray]) -> list:
    """torch tensors whose .grad are ``grads``, as clip_grad_norm_ and clip_grad_value_ take them."""
    tensors = [torch.tensor(v, requires_grad=True) for v in grads.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g)
    return tensors


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clipping_matches_clip_grad_norm(max_norm):
    grads = _arrays(3)
    tensors = _with_grads(grads)
    expected_norm = float(torch.nn.utils.clip_grad_norm_(tensors, max_norm))
    g = _flat(grads)
    norm, clipped = clip_grad_norm(g, max_norm)
    assert norm == pytest.approx(expected_norm, rel=TOL) and clipped == (max_norm < expected_norm)
    np.testing.assert_allclose(g, np.concatenate([t.grad.numpy().ravel() for t in tensors]), rtol=TOL, atol=TOL)


def test_clip_zero_is_off():
    g = _flat(_arrays(4))
    before = g.copy()
    norm, clipped = clip_grad_norm(g, 0.0)
    assert not clipped and norm > 0 and np.array_equal(g, before)


@pytest.mark.parametrize("threshold", [0.5, 100.0])
def test_value_clipping_matches_clip_grad_value(threshold):
    grads = _arrays(5)
    tensors = _with_grads(grads)
    torch.nn.utils.clip_grad_value_(tensors, threshold)
    g = _flat(grads)
    norm, clipped = clip_gradient(g, threshold, "value")
    assert norm == pytest.approx(np.linalg.norm(_flat(grads)), rel=TOL)
    assert clipped == (threshold < np.abs(_flat(grads)).max())
    np.testing.assert_array_equal(g, np.concatenate([t.grad.numpy().ravel() for t in tensors]))


def test_rmsprop_as_arjovsky_et_al_wrote_it():
    """Their optimizations.py: r starts at 1e-3, r = 0.9 r + 0.1 g^2, p -= lr g / sqrt(r) (no eps),
    written out here step by step."""
    params = _arrays(0)
    theta, expected = _flat(params), _flat(params)
    ours = make_optimizer("rmsprop", 1e-3, alpha=0.9, eps=0.0, rmsprop_start=1e-3)
    r = np.full_like(expected, 1e-3)
    for step in range(5):
        g = _flat(_arrays(step + 1))
        ours.step(theta, g)
        r = 0.9 * r + 0.1 * g**2
        expected = expected - 1e-3 * g / np.sqrt(r)
    np.testing.assert_allclose(theta, expected, rtol=TOL, atol=TOL)
