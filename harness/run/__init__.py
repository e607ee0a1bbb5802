"""Running: the grid and its seeded problems, one point's measurement, executors, the runner."""
