"""Instruments: clocks and timers, memory meters, gradient-profile metrics. They know no backends."""
from harness.measure.memory import MemoryMeter, RssMeter, TracemallocMeter
from harness.measure.timing import Clock, Measurement, Timer, WallClock

__all__ = ["Clock", "Measurement", "MemoryMeter", "RssMeter", "Timer", "TracemallocMeter", "WallClock"]
