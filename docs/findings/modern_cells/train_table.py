"""The training table of "Modern cells" (docs/findings.md) from the results files of its commands:

    python docs/findings/modern_cells/train_table.py docs/findings/modern_cells/train-*.json

Per (cell, init, T): the seeds that finished, how many solved (eval MSE <= 0.1 x the baseline 1/6),
iterations to solve (median over ALL seeds, an unsolved run counted as "> budget", i.e. censored at
the budget: the median is a number only when more than half the seeds solved), the final and the best
eval loss / baseline per seed. Interrupted and failed points are left out and counted.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(paths):
    groups, dropped = defaultdict(list), []
    for path in paths:
        text = open(path).read()
        if not text.strip():  # a file claimed by a command still running
            continue
        for p in json.loads(text)["points"]:
            if p["status"] != "ok" or not p.get("training"):
                dropped.append(f"{p['cell']} T={p['seq_len']} seed {p['seed']}: {p['status']}")
                continue
            groups[(p["cell"], p["init"], p["seq_len"])].append(p)
    print("| cell | init | T | seeds | solved | iterations to solve (median; unsolved = > budget) | "
          "final eval / baseline per seed | best eval / baseline per seed | budget |")
    print("|---|---|---|---|---|---|---|---|---|")
    order = ["gru", "lstm", "rnn_relu", "indrnn", "mingru", "lru"]
    for key in sorted(groups, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[2], k[1])):
        pts = sorted(groups[key], key=lambda p: p["seed"])
        cell, init, T = key
        budget = pts[0]["training"]["budget"]
        solved = [p["training"]["solved_at"] for p in pts]
        times = sorted(s if s is not None else float("inf") for s in solved)
        n = len(times)
        mid = times[(n - 1) // 2] if n % 2 else max(times[n // 2 - 1], times[n // 2])
        median = f"> {budget}" if mid == float("inf") else f"{mid:g}"
        base = pts[0]["training"]["baseline"]
        final = ", ".join(f"{p['training']['eval_loss'][-1] / base:.2f}" for p in pts)
        best = ", ".join(f"{min(p['training']['eval_loss']) / base:.2f}" for p in pts)
        seeds = ",".join(str(p["seed"]) for p in pts)
        print(f"| {cell} | {init} | {T} | {seeds} | {sum(s is not None for s in solved)}/{n} | {median} | "
              f"{final} | {best} | {budget} |")
    if dropped:
        print("\nleft out: " + "; ".join(dropped))


if __name__ == "__main__":
    main(sys.argv[1:])
