"""Helpers shared by the tests: import them explicitly (``from tests.support.X import ...``)."""
