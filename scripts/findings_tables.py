"""Print the tables of docs/findings.md from results files written by the commands it quotes.

    python scripts/findings_tables.py decay RESULTS.json [...]      # measured against predicted decay rate
    python scripts/findings_tables.py pascanu RESULTS.json [...]    # sigma_max(W_hh) against vanishing
    python scripts/findings_tables.py train RESULTS.json [...]      # harness train: init / clip outcomes
"""
from __future__ import annotations

import math
import sys

from harness.record import files, results


def _points(paths: list[str]):
    for path in paths:
        yield from (p for p in files.read(path).points if p.status == results.OK)


def decay(paths: list[str]) -> None:
    print("| cell | init | T | sigma_max | lambda_1 (nats/step) | predicted | measured | measured - predicted |")
    print("|---|---|---|---|---|---|---|---|")
    seen = set()
    for p in _points(paths):
        g = p.gradient
        if g is None or g.predicted_decay_rate is None or (p.cell, p.init, p.seq_len) in seen:
            continue
        seen.add((p.cell, p.init, p.seq_len))
        print(f"| {p.cell} | {p.init} | {p.seq_len} | {g.sigma_max:.3f} | {g.lyapunov[0]:.4f} | "
              f"{g.predicted_decay_rate:.4f} | {g.decay_rate:.4f} | {g.decay_rate - g.predicted_decay_rate:+.4f} |")


def pascanu(paths: list[str]) -> None:
    """Pascanu et al. 2013 for the tanh RNN (gamma = 1): sigma_max < 1 must vanish (decay rate > 0)."""
    rows = [(p.init, p.seq_len, p.gradient.sigma_max, p.gradient.decay_rate) for p in _points(paths)
            if p.cell == "rnn_tanh" and p.gradient is not None and p.gradient.sigma_max is not None]
    rows = sorted(set(rows), key=lambda r: r[2])
    print("| init | T | sigma_max | measured decay rate | vanishes |")
    print("|---|---|---|---|---|")
    for init, T, sigma, rate in rows:
        print(f"| {init} | {T} | {sigma:.3f} | {rate:.4f} | {'yes' if rate > 0 else 'no'} |")
    below = [r for r in rows if r[2] < 1]
    print(f"\n{len(below)} points with sigma_max < 1, {sum(r[3] > 0 for r in below)} of them vanish; "
          f"{len(rows) - len(below)} with sigma_max >= 1, {sum(r[3] > 0 for r in rows if r[2] >= 1)} of them vanish")


def train(paths: list[str]) -> None:
    print("| backend | cell | T | init | clip | eval loss / baseline | solved at | clipped % | max grad norm | "
          "decay rate at 0 -> end | predicted at 0 -> end |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        for p in files.read(path).points:
            t = p.training
            if t is None:
                continue
            first, last = t.snapshots[0].gradient, t.snapshots[-1].gradient
            norms = [n for n in t.grad_norm if math.isfinite(n)]
            print(f"| {p.backend} | {p.cell} | {p.seq_len} | {p.init} | {p.clip:g} | {t.final_ratio:.3f} | "
                  f"{t.solved_at if t.solved_at is not None else 'not solved'} | {100 * t.clipped_fraction:.0f} | "
                  f"{max(norms, default=math.nan):.3g} | {first.decay_rate:.3f} -> {last.decay_rate:.3f} | "
                  f"{_num(first.predicted_decay_rate)} -> {_num(last.predicted_decay_rate)} |")


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    {"decay": decay, "pascanu": pascanu, "train": train}[sys.argv[1]](sys.argv[2:])
