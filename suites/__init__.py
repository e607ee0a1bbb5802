"""The built-in suites: data, one folder with a suite.toml each. Installed as the package
``harness_suites`` (pyproject.toml), so that ``harness suites`` and ``harness run NAME`` find them
from any directory and from a non-editable install; in a checkout they are this folder."""
