"""Print, per cell and T, torch-cuda's forward+backward median from a harness results file, the
same problem timed by a bare cuDNN loop with CUDA events, their ratio (target <= 1.10), and the
time of the exact per-step-gradient path. Used by scripts/gpu_check.sh on a GPU machine."""
from __future__ import annotations

import statistics
import sys

import numpy as np
import torch

from harness.plugins import get_registry
from harness.record import results
from harness.report.console import render, table
from harness.run.grid import PointJob, build
from harness_plugins.torch_backend import TorchCUDABackend

MODULES = {"rnn_tanh": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def bare_cudnn(cell: str, steps: int, batch: int, inputs: int, hidden: int, dtype, blocks: int = 7) -> float:
    """Median seconds of one forward+backward of the fused layer, CUDA events around 10-call blocks."""
    kwargs = {"nonlinearity": "tanh"} if cell == "rnn_tanh" else {}
    layer = MODULES[cell](inputs, hidden, **kwargs).to("cuda", dtype)
    x = torch.randn(steps, batch, inputs, device="cuda", dtype=dtype, requires_grad=True)
    up = torch.randn(steps, batch, hidden, device="cuda", dtype=dtype)
    params = list(layer.parameters()) + [x]

    def step():
        out, _ = layer(x)
        torch.autograd.grad(out, params, grad_outputs=up)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    samples = []
    for _ in range(blocks):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(10):
            step()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1e3 / 10)
    return statistics.median(samples)


def exact_path(job: PointJob, task) -> float:
    """Median seconds of forward + backward(per_step=True), the exact path, synchronised."""
    import time

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


def main(path: str) -> None:
    run = results.read(path)
    suite = run.suite
    task = get_registry().task(suite.task)
    dtype = getattr(torch, suite.dtype)
    rows = []
    for point in run.points:
        if point.backend != "torch-cuda":
            continue
        if point.status != results.OK:
            rows.append([point.cell, str(point.seq_len), point.status, "-", "-", "-", point.note[:40]])
            continue
        harness_s = point.time.forward_backward.median
        bare_s = bare_cudnn(point.cell, point.steps, suite.batch, task.input_size, suite.hidden, dtype)
        exact_s = exact_path(PointJob("torch-cuda", point.cell, point.seq_len, suite), task)
        rows.append([point.cell, str(point.seq_len), f"{harness_s * 1e3:.3f}", f"{bare_s * 1e3:.3f}",
                     f"{harness_s / bare_s:.2f}", f"{exact_s * 1e3:.1f}", ""])
    status = run.backends.get("torch-cuda")
    info = status.info if status else {}
    print(f"device: {info.get('gpu')}  torch {info.get('torch')}  cuDNN {info.get('cudnn')}  "
          f"TF32 during timing: matmul={info.get('tf32_matmul')} cudnn={info.get('tf32_cudnn')}  dtype {suite.dtype}")
    print(render(table(["cell", "T", "harness fwd+bwd ms", "bare cuDNN ms", "ratio", "exact path ms", "note"], rows,
                       right=(1, 2, 3, 4, 5))))
    ratios = [float(r[4]) for r in rows if r[4] != "-"]
    if ratios:
        print(f"ratio harness/bare: max {max(ratios):.2f}, median {np.median(ratios):.2f} (target <= 1.10)")


if __name__ == "__main__":
    main(sys.argv[1])
