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
import time

import numpy as np
import torch

from harness.plugins import get_registry
from harness.record import files, results
from harness.report.console import render, table
from harness.run.grid import PointJob, build
from harness_plugins.torch_backend import FUSED_PROFILE_CELLS, TorchCUDABackend

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


def profile_path(job: PointJob, task) -> float:
    """Median seconds of forward + backward(per_step=True), synchronised."""
    backend = TorchCUDABackend(threads=1)
    backend.prepare(build(task, job.cell, job.seq_len, job.suite, job.suite.seeds[0]).last_step)
    samples = []
    for _ in range(4):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        backend.forward()
        backend.backward(per_step=True)
        torch.cuda.synchronize()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples[1:])


def rows_of(path: str) -> tuple[list[list[str]], dict]:
    run = files.read(path)
    suite, task = run.suite, get_registry().task(run.suite.task)
    dtype = getattr(torch, suite.dtype)
    rows = []
    for p in run.points:
        if p.backend != "torch-cuda":
            continue
        sizes = [p.cell, str(p.seq_len), str(p.hidden), str(p.batch)]
        if p.status != results.OK:
            rows.append([*sizes, p.status, "-", "-", "-", "-", "-", "-", p.note[:40]])
            continue
        harness_s = p.time.forward_backward.median
        bare_s = bare_cudnn(p.cell, p.steps, p.batch, task.input_size, p.hidden, dtype)
        profile = "-", "-"
        if p.gradient is not None:
            profile_s = profile_path(PointJob("torch-cuda", p.cell, p.seq_len, suite.at(p.hidden, p.batch)), task)
            kind = "fused" if p.cell in FUSED_PROFILE_CELLS else "stepped"
            profile = f"{profile_s * 1e3:.2f}", f"{profile_s / bare_s:.1f} {kind}"
        fraction = run.peak_fraction(p)
        rows.append([*sizes, f"{harness_s * 1e3:.3f}", f"{bare_s * 1e3:.3f}", f"{harness_s / bare_s:.2f}",
                     *profile, f"{p.gflops():.0f}", f"{100 * fraction:.1f}" if fraction else "-", ""])
    return rows, run.backends.get("torch-cuda").info if "torch-cuda" in run.backends else {}


def main(paths: list[str]) -> None:
    info, sections = {}, []
    for path in paths:
        rows, info = rows_of(path)
        sections.append((files.read(path).suite.name, rows))
    print(f"device: {info.get('gpu')}  torch {info.get('torch')}  cuDNN {info.get('cudnn')}  "
          f"TF32 during timing: matmul={info.get('tf32_matmul')} cudnn={info.get('tf32_cudnn')}  "
          f"GEMM peak: " + ", ".join(f"{d} {v / 1e3:.1f} TFLOP/s" for d, v in info.get("peak_gflops", {}).items()))
    headers = ["cell", "T", "H", "B", "harness fwd+bwd ms", "bare cuDNN ms", "ratio", "profile ms",
               "profile / bare", "GFLOP/s", "% peak", "note"]
    for name, rows in sections:
        print(f"\n== {name} ==")
        print(render(table(headers, rows, right=range(1, 11))))
        ratios = [float(r[6]) for r in rows if r[6] != "-"]
        if ratios:
            print(f"ratio harness/bare: max {max(ratios):.2f}, median {np.median(ratios):.2f} (target <= 1.10)")
        fused = [float(r[8].split()[0]) for r in rows if r[8].endswith("fused")]
        if fused:
            print(f"fused profile / bare fwd+bwd: max {max(fused):.1f}, median {np.median(fused):.1f} (target <= 5)")


if __name__ == "__main__":
    main(sys.argv[1:])
