"""The tables of docs/findings.md, generated from the results files committed beside it (docs/findings/).

In the page every table sits between ``<!-- table NAME -->`` and ``<!-- /table -->``; NAME is one of
:data:`TABLES`, which says which results files the table reads and how. Each results file was written
by the command the page quotes above its table.

    python scripts/findings_tables.py            # check: exit 1 naming every table the page and data disagree on
    python scripts/findings_tables.py --write    # rewrite the page's tables from the data
    python scripts/findings_tables.py --show NAME

tests/test_findings.py runs the check.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import runpy
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness import suites
from harness.record import files, outcomes, results
from harness.report import outcome_tables
from harness.report.console import markdown

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "findings.md"
DATA = ROOT / "docs" / "findings"
MARKER = re.compile(r"<!-- table (?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /table -->", re.S)


def _run(*parts: str) -> results.RunResults:
    return files.read(DATA.joinpath(*parts))


def _ok(run: results.RunResults) -> list[results.PointResult]:
    return [p for p in run.points if p.status == results.OK and p.gradient is not None]


def _rate(value: float | None, digits: int = 4) -> str:
    """A decay rate; "-" where none was fitted or predicted (degenerate profiles)."""
    return "-" if value is None or not np.isfinite(value) else f"{round(value, digits) + 0.0:.{digits}f}"


def adding_outcomes() -> str:
    """The default `harness train suites/adding`: outcomes over seeds, with the profile at init and at the end."""
    run = _run("adding", "train-adding.json.gz")
    headers, rows = outcome_tables.outcome_rows(run)
    keep = [headers.index(h) for h in headers if h not in ("backend",)]
    at_init, at_end = [], []
    for o in outcomes.outcomes(run.points):  # the rows' settings, in the rows' order
        at_init.append(_profile_medians([p.training.snapshots[0].gradient for p in o.points], 3))
        at_end.append(_profile_medians([p.training.snapshots[-1].gradient for p in o.points], 4))
    table_rows = [[row[i] for i in keep] + [a, b] for row, a, b in zip(rows, at_init, at_end)]
    return markdown([headers[i] for i in keep] + ["decay rate at init, horizon (median over seeds)",
                                                  "at the end"], table_rows)


def _profile_medians(profiles: list, digits: int) -> str:
    """The median decay rate and horizon of some seeds' profiles."""
    horizons = [g.horizon for g in profiles if g.horizon is not None]  # None: g_T was 0
    rate = np.nanmedian([g.decay_rate for g in profiles])
    return f"{rate:.{digits}f}, horizon {np.median(horizons):.0f}" if horizons else f"{rate:.{digits}f}, no horizon"


def adding_paired() -> str:
    headers, rows = outcome_tables.paired_rows(_run("adding", "train-adding.json.gz"))
    return markdown(headers, rows)


def linear() -> str:
    rows = []
    def scale(p) -> float:  # linear=S; "linear" alone is its default S = 1
        return float(p.init.partition("=")[2] or 1)

    for p in sorted(_ok(_run("dynamics", "linear.json")), key=scale):
        s, g = scale(p), p.gradient
        rows.append([f"{s:g}", _rate(-np.log10(s)), _rate(g.decay_rate), _rate(g.predicted_decay_rate),
                     _rate(g.lyapunov[0] if g.lyapunov else None), _rate(np.log(s))])
    return markdown(["s", "expected decay rate, -log10 s", "measured (fit of g_t)", "predicted, -lambda_1 / ln 10",
                     "lambda_1 (nats/step)", "expected ln s"], rows)


def pascanu() -> str:
    """Pascanu et al. 2013 for the tanh RNN (gamma = 1): sigma_max < 1 must vanish (decay rate > 0)."""
    rows = sorted((p for p in _ok(_run("dynamics", "dynamics.json")) if p.cell == "rnn_tanh"),
                  key=lambda p: (p.gradient.sigma_max, p.seq_len))
    return markdown(["init", "T", "sigma_max (mean over seeds)", "measured decay rate", "vanishes",
                     "grows to 1e6 by lag"],
                    [[p.init, str(p.seq_len), f"{p.gradient.sigma_max:.3f}", _rate(p.gradient.decay_rate),
                      "yes" if p.gradient.decay_rate > 0 else "no",
                      "-" if p.gradient.growth_horizon is None else str(p.gradient.growth_horizon)] for p in rows])


def lyapunov() -> str:
    """Measured (batch mean of norms, and geometric mean) against predicted, every cell and init."""
    rows = []
    for p in sorted(_ok(_run("dynamics", "dynamics.json")), key=lambda p: (p.cell, p.init, p.seq_len)):
        g = p.gradient
        gap = (g.geometric_decay_rate - g.predicted_decay_rate) if g.predicted_decay_rate is not None \
            and g.geometric_decay_rate is not None else None
        rows.append([p.cell, p.init, str(p.seq_len), _rate(g.decay_rate), _rate(g.geometric_decay_rate),
                     _rate(g.predicted_decay_rate), "-" if gap is None else f"{gap:+.4f}",
                     f"{g.degenerate_fraction:.2f}"])
    return markdown(["cell", "init", "T", "measured (batch mean)", "measured (geometric mean)", "predicted",
                     "geometric - predicted", "degenerate fraction"], rows)


def init_profiles() -> str:
    rows = []
    for name in ("lstm-inits.json", "gru-inits.json"):
        points = _ok(_run("dynamics", name))
        for init in dict.fromkeys(p.init for p in points):
            by_T = {p.seq_len: p.gradient for p in points if p.init == init}
            lengths = sorted(by_T)
            rows.append([points[0].cell, init, " / ".join(_rate(by_T[T].decay_rate, 3) for T in lengths),
                         " / ".join(_rate(by_T[T].predicted_decay_rate, 3) for T in lengths),
                         " / ".join(f"{by_T[T].log10_ratio:.1f}" for T in lengths)])
    return markdown(["cell", "init", "decay rate at T = 50 / 200 (decades per step)", "predicted",
                     "log10(g_T / g_1) at T = 50 / 200"], rows)


def verdicts(preset: str) -> Callable[[], str]:
    def table() -> str:
        run = _run("reproduce", next(p.name for p in (DATA / "reproduce").glob(f"{preset}.json*")))
        headers, rows = outcome_tables.verdict_rows(run, suites.load(suites.reproductions()[preset]).reproduce)
        return markdown(headers, rows)
    return table


def _printed(script: Path, argument) -> str:
    """What a script beside its data prints from its ``main(argument)``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(script))["main"](argument)
    return out.getvalue().strip()


def modern_decay() -> str:
    """The closed forms of the diagonal cells (closed_form.py rebuilds each seed's draws) against the
    measured profiles of decay-*.json."""
    folder = DATA / "modern_cells" / "decay"
    rows = []
    for path in sorted(folder.glob("decay-*.json")):
        for line in _printed(folder / "closed_form.py", str(path)).splitlines():
            r = json.loads(line)
            asymptote = r["asymptotic"]
            if r["cell"] == "mingru":
                asymptote = f"slowest unit {asymptote[0]:.3f} (mean over units {asymptote[1]:.3f})"
            else:
                asymptote = f"-log10 max {'abs(lambda)' if r['cell'] == 'lru' else 'u'} = {asymptote:.3g}"
            rows.append([r["cell"], r["init"], f"{r['measured_decay_rate']:.4g}",
                         f"{r['closed_form_profile_decay_rate']:.4g}", f"{r['profile_max_rel_diff']:.0e}", asymptote,
                         _rate(r["lyapunov_predicted_decay_rate"], 5)])
    return markdown(["cell", "init", "measured rate", "closed-form profile's rate", "profile: max rel. diff",
                     "asymptotic closed form", "top Lyapunov exponent's rate"], rows)


def modern_train() -> str:
    """Every cell's training on the adding problem over the commands' files (train-*.json): the
    harness's outcomes over seeds (record/outcomes.py) per cell, init and T, with the gradient profile
    at init and at the end; interrupted points listed under the table."""
    points = [p for path in sorted((DATA / "modern_cells").glob("train-*.json*")) for p in files.read(path).points]
    order = ["gru", "lstm", "rnn_relu", "indrnn", "mingru", "lru", "lru_block"]
    done = outcomes.finished(points)
    by_budget = defaultdict(list)
    for p in done:
        by_budget[p.training.planned_iterations].append(p)
    found = [o for group in by_budget.values() for o in outcomes.outcomes(group)]
    rows = []
    for o in sorted(found, key=lambda o: (o.seq_len, o.budget, order.index(o.cell), o.init)):
        rows.append([str(o.budget), o.cell, o.init, str(o.seq_len), outcome_tables.seeds_text(o.seeds),
                     f"{o.solved}/{o.runs}", outcome_tables.median_text(o),
                     ", ".join(f"{r:.2f}" for r in o.final_ratios), ", ".join(f"{r:.2f}" for r in o.best_ratios),
                     _profile_medians([p.training.snapshots[0].gradient for p in o.points], 4),
                     _profile_medians([p.training.snapshots[-1].gradient for p in o.points], 4)])
    table = markdown(["iterations", "cell", "init", "T", "seeds", "solved", "median iterations to solve [95% CI]",
                      "final eval / baseline per seed", "best per seed", "decay rate at init, horizon (median)",
                      "at the end"], rows)
    left_out = [f"{p.cell} T={p.seq_len} seed {p.seed}: {p.status}" for p in points if p not in done]
    return table + ("\n\nleft out: " + "; ".join(left_out) if left_out else "")


def modern_paired() -> str:
    """Paired differences between the default-init cells trained for 3000 iterations at T = 100: a seed
    gives every cell the same batches and held-out set (harness/streams.py), in one command or two."""
    runs = [_run("modern_cells", name) for name in ("train-adding-default-t100-3000.json.gz",
                                                      "train-adding-lru_block-t100-3000.json")]
    both = dataclasses.replace(runs[0], points=[p for run in runs for p in run.points])
    headers, rows = outcome_tables.paired_rows(both)
    return markdown(headers, rows)


#: Every table of the page by name: what makes it from the committed results files.
TABLES: dict[str, Callable[[], str]] = {
    "adding-outcomes": adding_outcomes,
    "adding-paired": adding_paired,
    "linear": linear,
    "pascanu": pascanu,
    "lyapunov": lyapunov,
    "init-profiles": init_profiles,
    **{f"reproduce-{p}": verdicts(p) for p in ("arjovsky_adding", "arjovsky_copy", "le_irnn_adding",
                                                 "pascanu_temporal_order", "tallec_chrono_copy")},
    "modern-decay": modern_decay,
    "modern-train": modern_train,
    "modern-paired": modern_paired,
}


def check(page: str) -> list[str]:
    """The tables of ``page`` that differ from what the data makes (or that the page or TABLES lacks)."""
    found = {m["name"]: m["body"].strip() for m in MARKER.finditer(page)}
    problems = [f"{name}: the page has no such table" for name in TABLES if name not in found]
    problems += [f"{name}: no generator for this table" for name in found if name not in TABLES]
    problems += [f"{name}: the page differs from the data" for name, body in found.items()
                 if name in TABLES and body != TABLES[name]().strip()]
    return problems


def write(page: str) -> str:
    return MARKER.sub(lambda m: f"<!-- table {m['name']} -->\n{TABLES[m['name']]().strip()}\n<!-- /table -->", page)


def main(argv: list[str]) -> int:
    page = PAGE.read_text()
    if argv[:1] == ["--write"]:
        PAGE.write_text(write(page))
        return 0
    if argv[:1] == ["--show"]:
        print(TABLES[argv[1]]())
        return 0
    problems = check(page)
    for problem in problems:
        print(f"docs/findings.md: table {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
