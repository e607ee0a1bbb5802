"""The GPU check's table (scripts/gpu_check.sh), from harness results files of torch-cuda runs.

Per point: torch-cuda's forward+backward median as the harness timed it, the same problem timed by a
bare cuDNN loop with CUDA events, their ratio (target <= 1.10); for files with gradient profiles, the
time of the exact per-step-gradient path (fused for rnn_tanh and LSTM, stepped for GRU) and its ratio
to the bare fused forward + backward (target <= 5 where fused); the achieved GFLOP/s and the fraction of
the GPU's GEMM peak as the harness records them (docs/metrics.md, "Roofline").
"""
from __future__ import annotations

import statistics
import sys

import numpy as np
import torch

from harness.plugins import get_registry
from harness.record import files, results
from harness.report.console import render, table
from harness_plugins.torch_backend import FUSED_PROFILE_CELLS

MODULES = {"rnn_tanh": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def events_median(step, blocks: int = 7, calls: int = 10) -> float:
    """Median seconds per call of ``step``, CUDA events around blocks of ``calls`` calls."""
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    samples = []
    for _ in range(blocks):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            step()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1e3 / calls)
    return statistics.median(samples)


def bare_cudnn(cell: str, steps: int, batch: int, inputs: int, hidden: int, dtype) -> float:
    """One forward+backward of the fused layer."""
    kwargs = {"nonlinearity": "tanh"} if cell == "rnn_tanh" else {}
    layer = MODULES[cell](inputs, hidden, **kwargs).to("cuda", dtype)
    x = torch.randn(steps, batch, inputs, device="cuda", dtype=dtype, requires_grad=True)
    up = torch.randn(steps, batch, hidden, device="cuda", dtype=dtype)
    params = list(layer.parameters()) + [x]

    def step():
        out, _ = layer(x)
        torch.autograd.grad(out, params, grad_outputs=up)

    return events_median(step)


def _path(point) -> str:
    """Which exact path a torch-cuda point took: through the fused layer, a scan, or stepped."""
    if point.backend.endswith("-scan"):
        return "scan"
    return "fused" if point.backend == "torch-cuda" and point.cell in FUSED_PROFILE_CELLS else "stepped"


def rows_of(path: str) -> tuple[list[list[str]], dict]:
    run = files.read(path)
    suite, task = run.suite, get_registry().task(run.suite.task)
    dtype = getattr(torch, suite.dtype)
    rows = []
    for p in run.points:
        if not p.backend.startswith("torch-cuda"):
            continue
        sizes = [p.backend, p.cell, str(p.seq_len), str(p.hidden), str(p.batch)]
        if p.status != results.OK:
            rows.append([*sizes, p.status, "-", "-", "-", "-", "-", "-", p.reason[:40] or p.note[:40]])
            continue
        harness_s = p.time.forward_backward.median
        # the bare loop exists for the fused layers; every other path is compared with its own fwd+bwd
        bare_s = bare_cudnn(p.cell, p.steps, p.batch, task.input_size, p.hidden, dtype) \
            if p.backend == "torch-cuda" and p.cell in MODULES else None
        exact = "-", "-"
        if p.time.exact is not None:  # harness run --time-exact: the harness's own clock (CUDA events)
            base, kind = (bare_s, "bare") if bare_s else (harness_s, "fwd+bwd")
            exact = f"{p.time.exact.median * 1e3:.2f}", f"{p.time.exact.median / base:.1f} x {kind} ({_path(p)})"
        fraction = run.peak_fraction(p)
        rows.append([*sizes, f"{harness_s * 1e3:.3f}", f"{bare_s * 1e3:.3f}" if bare_s else "-",
                     f"{harness_s / bare_s:.2f}" if bare_s else "-", *exact, f"{p.gflops():.0f}",
                     f"{100 * fraction:.1f}" if fraction else "-", ""])
    return rows, run.backends.get("torch-cuda").info if "torch-cuda" in run.backends else {}


def main(paths: list[str]) -> None:
    info, sections = {}, []
    for path in paths:
        rows, info = rows_of(path)
        sections.append((files.read(path).suite.name, rows))
    print(f"device: {info.get('gpu')}  torch {info.get('torch')}  cuDNN {info.get('cudnn')}  "
          f"TF32 during timing: matmul={info.get('tf32_matmul')} cudnn={info.get('tf32_cudnn')}  "
          f"GEMM peak: " + ", ".join(f"{d} {v / 1e3:.1f} TFLOP/s" for d, v in info.get("peak_gflops", {}).items()))
    headers = ["backend", "cell", "T", "H", "B", "harness fwd+bwd ms", "bare cuDNN ms", "ratio", "exact ms",
               "exact / base", "GFLOP/s", "% peak", "note"]
    for name, rows in sections:
        print(f"\n== {name} ==")
        print(render(table(headers, rows, right=range(2, 12))))
        ratios = [float(r[7]) for r in rows if r[7] != "-"]
        if ratios:
            print(f"ratio harness/bare: max {max(ratios):.2f}, median {np.median(ratios):.2f} (target <= 1.10)")
        for path in ("fused", "stepped", "scan"):
            exact = [float(r[9].split()[0]) for r in rows if r[9].endswith(f"({path})") and int(r[2]) >= 200]
            if exact:
                print(f"exact path ({path}) / base at T >= 200: max {max(exact):.1f}, median {np.median(exact):.1f} "
                      "(target <= 5; base: the bare cuDNN loop where there is one, else the point's fwd+bwd)")


if __name__ == "__main__":
    main(sys.argv[1:])
