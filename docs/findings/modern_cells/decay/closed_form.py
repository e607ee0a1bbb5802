"""The closed forms behind the "Modern cells" decay table (docs/findings.md), from the SAME draws as
`harness run docs/findings/modern_cells/decay` (harness.run.grid._build: parameters, inputs and the
last-step upstream gradient of each seed), compared with the measured profile in the results file.

With the loss on the last step, the per-step gradient of these diagonal recurrences is a product
of per-unit factors, so the whole profile has a closed form (c_b = dL/ds_T of sequence b):

- lru:    |dL/ds_{T-n}|_j = |lambda_j|^n |c_bj|       (each mode a 2-vector, rotated, scaled by |lambda_j|)
- mingru: dL/dh_{T-n,i} = c_bi prod_{s=T-n+1}^{T} (1 - z_{s,b,i})
- indrnn: dL/dh_{T-n,i} = c_bi prod_{s=T-n+1}^{T} u_i relu'(a_{s,b,i})

g_n = mean_b ||.||_2, averaged over the seeds as the harness averages its profile. Usage:
    python docs/findings/modern_cells/decay/closed_form.py docs/findings/modern_cells/decay/decay-default.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from harness import derived, suites
from harness.cells import cell as get_cell
from harness.measure.gradients import gradient_metrics
from harness.plugins import get_registry
from harness.run.grid import _build


def closed_profile(name, params, x, c):
    T = x.shape[0]
    if name == "lru":
        lam = np.abs(get_cell("lru").diagonal_recurrence(params))
        dre, dim = c @ params["C_re"], -(c @ params["C_im"])
        mag2 = dre**2 + dim**2  # (B, H)
        lags = np.arange(T)[::-1]  # lag of step t (index t-1) is T - t
        return np.sqrt((mag2[None] * lam[None, None] ** (2 * lags[:, None, None])).sum(-1)).mean(-1), \
            -np.log10(lam.max())
    if name == "mingru":
        k = x @ params["weight_z"].T + params["bias_z"]
        keep = 1.0 / (1.0 + np.exp(k))  # 1 - z
        factor = keep
        rates = -np.log10(keep).mean(axis=(0, 1))  # per unit: batch- and time-mean of -log10(1 - z)
        extra = (rates.min(), rates.mean())
    else:  # indrnn
        h = derived.forward(get_cell("indrnn"), params, x).states["h"]
        factor = params["weight_hh"][None, None] * (h > 0)
        alive = (h > 0).any(axis=(0, 1))
        extra = -np.log10(params["weight_hh"][alive].max())
    # dL/ds_{t} = c * prod_{s > t} factor_s: a reverse cumulative product, ending in 1 at t = T
    prod = np.ones_like(c)
    out = np.empty((T,) + c.shape)
    for t in range(T - 1, -1, -1):
        out[t] = c * prod
        prod = prod * factor[t]
    return np.linalg.norm(out, axis=-1).mean(-1), extra


def main(path):
    data = json.loads(Path(path).read_text())
    suite = suites.load(Path(__file__).parent)
    task = get_registry().tasks[suite.task]
    for point in data["points"]:
        name, T, init = point["cell"], point["seq_len"], point["init"]
        s = suite.with_overrides(init=init, inits=(init,))
        profiles, extras = [], []
        for seed in suite.seeds:
            p = _build(task, name, T, s, seed).last_step
            g, extra = closed_profile(name, p.params, p.x.astype(np.float64), p.grad_h[-1].astype(np.float64))
            profiles.append(g)
            extras.append(extra)
        g = np.mean(profiles, axis=0)
        measured = np.asarray(point["gradient"]["g"], dtype=np.float64)
        rel = float(np.max(np.abs(measured - g) / np.abs(g).max()))
        fit = gradient_metrics(g).decay_rate
        e = np.mean(np.asarray(extras, dtype=float), axis=0)
        print(json.dumps({"cell": name, "init": init, "T": T,
                          "measured_decay_rate": point["gradient"]["decay_rate"],
                          "closed_form_profile_decay_rate": fit, "profile_max_rel_diff": rel,
                          "harness_closed_form_decay_rate": point["gradient"].get("closed_form_decay_rate"),
                          "lyapunov_predicted_decay_rate": point["gradient"].get("predicted_decay_rate"),
                          "asymptotic": e.tolist()}))


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        main(arg)
