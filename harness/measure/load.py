"""How busy the machine is: load averages and CPU clock, read before and after each measurement.

A noisy neighbour makes a timing look like a regression; recording the load beside every point lets
a reader (and `harness run`'s summary) tell the two apart.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LoadSample:
    load1: float  # 1-minute load average: runnable processes, averaged
    load5: float
    cpu_mhz: float | None  # mean current clock over the CPUs, where Linux's cpufreq exposes it


def cpu_mhz() -> float | None:
    """The mean current frequency of the CPUs (cpufreq, in MHz), or None where it is not readable."""
    values = []
    for path in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"):
        try:
            values.append(int(path.read_text()) / 1000.0)
        except (OSError, ValueError):
            continue
    return sum(values) / len(values) if values else None


def sample() -> LoadSample:
    load1, load5, _ = os.getloadavg()
    return LoadSample(load1=load1, load5=load5, cpu_mhz=cpu_mhz())


def busy(before: LoadSample, after: LoadSample, cpu_count: int | None = None) -> bool:
    """More runnable processes than CPUs, before or after: the measurement shared the CPUs."""
    cpus = cpu_count or os.cpu_count() or 1
    return max(before.load1, after.load1) > cpus
