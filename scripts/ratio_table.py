"""Side-by-side ratios from one or more harness results files (docs/performance.md): per cell, T, H and B,
each backend's forward + backward median over the baseline backend's from the same run, and each
backend's peak memory over the analytic stored activations.

    python scripts/ratio_table.py results/runs/long_range-*.json --baseline torch-cpu
"""
from __future__ import annotations

import argparse

from harness.record import files, results
from harness.report.console import render, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="harness results files (one run each)")
    parser.add_argument("--baseline", default="torch-cpu", help="the backend the others are divided by")
    args = parser.parse_args()
    for path in args.files:
        run = files.read(path)
        ok = {(p.backend, p.cell, p.seq_len, p.hidden, p.batch): p for p in run.points if p.status == results.OK}
        backends = sorted({key[0] for key in ok} - {args.baseline})
        rows = []
        for (backend, cell, T, H, B), p in sorted(ok.items(), key=lambda kv: kv[0][1:] + kv[0][:1]):
            base = ok.get((args.baseline, cell, T, H, B))
            if backend not in backends or base is None or p.time is None:
                continue
            memory = p.memory.peak_bytes / p.memory.activation_bytes if p.memory else None
            rows.append([backend, cell, str(T), str(H), str(B), f"{p.time.forward_backward.median * 1e3:.3g}",
                         f"{base.time.forward_backward.median * 1e3:.3g}",
                         f"{p.time.forward_backward.median / base.time.forward_backward.median:.2f}",
                         f"{memory:.2f}" if memory else "-"])
        print(f"{path} ({run.provenance.get('cpu')}, {run.provenance.get('threads')} thread(s))")
        print(render(table(["backend", "cell", "T", "H", "B", "fwd+bwd ms", f"{args.baseline} ms", "ratio",
                            "peak / activations"], rows, right=range(2, 9))))


if __name__ == "__main__":
    main()
