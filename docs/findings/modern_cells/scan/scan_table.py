"""The "Scan against loop" table of docs/performance.md from the runs' results files:

    python docs/findings/modern_cells/scan/scan_table.py docs/findings/modern_cells/scan/scan-run*.json

Per cell and T: the stepped path's (torch-cpu) and the scan's (torch-cpu-scan) median forward +
backward time in each run, and the ratio scan / loop of each run (below 1: the scan is faster).
"""
from __future__ import annotations

import json
import sys


def main(paths):
    runs = []
    for path in paths:
        r = {}
        text = open(path).read()
        if not text.strip():  # a file claimed by a run still going
            continue
        for p in json.loads(text)["points"]:
            if p["status"] == "ok":
                r[(p["backend"], p["cell"], p["seq_len"])] = (p["time"]["forward"]["median"],
                                                             p["time"]["forward_backward"]["median"])
        runs.append(r)
    print("| cell | T | loop fwd+bwd s (runs) | scan fwd+bwd s (runs) | scan / loop fwd+bwd | scan / loop fwd |")
    print("|---|---|---|---|---|---|")
    keys = sorted({(c, T) for r in runs for (_, c, T) in r}, key=lambda k: (k[0] != "mingru", k[1]))
    for cell, T in keys:
        both = [(r[("torch-cpu", cell, T)], r[("torch-cpu-scan", cell, T)]) for r in runs
                if ("torch-cpu", cell, T) in r and ("torch-cpu-scan", cell, T) in r]
        loop = ", ".join(f"{a[1]:.2f}" for a, _ in both)
        scan = ", ".join(f"{b[1]:.2f}" for _, b in both)
        fb = ", ".join(f"{b[1] / a[1]:.2f}" for a, b in both)
        fw = ", ".join(f"{b[0] / a[0]:.2f}" for a, b in both)
        print(f"| {cell} | {T} | {loop} | {scan} | {fb} | {fw} |")


if __name__ == "__main__":
    main(sys.argv[1:])
