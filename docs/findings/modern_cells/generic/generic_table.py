"""The "Generic path against the fused and hand-written paths" table of docs/performance.md, from the
results files of three runs of one command (docs/performance.md quotes it):

    python docs/findings/modern_cells/generic/generic_table.py docs/findings/modern_cells/generic/generic-run*.json

Per cell and T, each run's median times in ms: torch-cpu's timed forward + backward (the fused layer)
and its exact path (forward + backward with every dL/ds_t: through the fused layer for rnn_tanh and
lstm, stepped by the hand-written equations for gru), torch-cpu-generic's forward + backward (the
cell's step function, autograd), and the two ratios side by side in each run: generic forward +
backward over torch-cpu's exact path (issue 27 asks for at most 1.5 for lstm) and over the fused one.
Points timed without ``--time-exact`` are left out.
"""
from __future__ import annotations

import sys

from harness.record import files
from harness.record.results import OK


def main(paths: list[str]) -> None:
    runs = []
    for path in paths:
        runs.append({(p.backend, p.cell, p.seq_len): p.time for p in files.read(path).points
                     if p.status == OK and p.time is not None and p.time.exact is not None})
    print("| cell | T | torch-cpu fwd+bwd ms | torch-cpu exact ms | generic fwd+bwd ms | generic / exact | "
          "generic / fwd+bwd |")
    print("|---|---|---|---|---|---|---|")
    keys = sorted({(c, T) for r in runs for (b, c, T) in r if b == "torch-cpu"})
    for cell, T in keys:
        both = [(r[("torch-cpu", cell, T)], r[("torch-cpu-generic", cell, T)]) for r in runs
                if ("torch-cpu", cell, T) in r and ("torch-cpu-generic", cell, T) in r]

        def column(read) -> str:
            return ", ".join(read(fused, generic) for fused, generic in both)

        print(f"| {cell} | {T} | {column(lambda f, g: f'{f.forward_backward.median * 1e3:.1f}')} | "
              f"{column(lambda f, g: f'{f.exact.median * 1e3:.1f}')} | "
              f"{column(lambda f, g: f'{g.forward_backward.median * 1e3:.1f}')} | "
              f"{column(lambda f, g: f'{g.forward_backward.median / f.exact.median:.2f}')} | "
              f"{column(lambda f, g: f'{g.forward_backward.median / f.forward_backward.median:.2f}')} |")


if __name__ == "__main__":
    main(sys.argv[1:])
