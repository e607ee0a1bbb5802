"""Plugin discovery: third-party entry points, broken and disabled plugins, API versions."""
from __future__ import annotations

import subprocess
import sys

from harness.plugins import get_registry
from tests.conftest import add_distribution

GOOD = """
from harness.hookspecs import hookimpl
from harness_plugins.numpy_backend import NumpyBackend

HARNESS_PLUGIN_API = 1

class ThirdParty(NumpyBackend):
    name = "third-party"
    cells = ("rnn_tanh",)

@hookimpl
def harness_backends():
    return [ThirdParty]
"""


def _harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True)


def test_third_party_plugin_is_discovered(plugin_dir):
    add_distribution(plugin_dir, "thirdparty", {"thirdparty_plugin": GOOD}, {"thirdparty": "thirdparty_plugin"})
    registry = get_registry()
    assert "third-party" in registry.backends
    record = next(p for p in registry.plugins if p.name == "thirdparty")
    assert (record.status, record.distribution, record.backends) == ("loaded", "thirdparty", ["third-party"])
    out = _harness("plugins").stdout
    assert "backend third-party" in out and "thirdparty 0.1" in out


def test_broken_plugin_is_listed_with_its_error_and_others_still_work(plugin_dir):
    add_distribution(plugin_dir, "broken", {"broken_plugin": "raise ImportError('kaput on purpose')"},
                     {"broken": "broken_plugin"})
    registry = get_registry()
    record = next(p for p in registry.plugins if p.name == "broken")
    assert record.status == "failed" and "kaput on purpose" in record.error
    assert "numpy" in registry.backends and "temporal_order" in registry.tasks
    result = _harness("plugins")
    assert result.returncode == 0
    assert "kaput on purpose" in result.stdout and "backend numpy" in result.stdout


def test_disabled_plugin_is_not_loaded(plugin_dir, monkeypatch):
    add_distribution(plugin_dir, "loud", {"loud_plugin": "raise SystemExit('must never be imported')"},
                     {"loud": "loud_plugin"})
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "loud, numpy")
    registry = get_registry()
    statuses = {p.name: p.status for p in registry.plugins}
    assert statuses["loud"] == "disabled" and statuses["numpy"] == "disabled"
    assert "numpy" not in registry.backends


def test_plugin_api_mismatch_is_reported(plugin_dir):
    add_distribution(plugin_dir, "old", {"old_plugin": GOOD.replace("HARNESS_PLUGIN_API = 1", "HARNESS_PLUGIN_API = 0")},
                     {"old": "old_plugin"})
    record = next(p for p in get_registry().plugins if p.name == "old")
    assert record.status == "incompatible" and "plugin API 0" in record.error
    assert "third-party" not in get_registry().backends


def test_unknown_hook_name_is_rejected(plugin_dir):
    typo = GOOD + "\n@hookimpl\ndef harness_backend():\n    return []\n"
    add_distribution(plugin_dir, "typo", {"typo_plugin": typo}, {"typo": "typo_plugin"})
    record = next(p for p in get_registry().plugins if p.name == "typo")
    assert record.status == "failed" and "harness_backend" in record.error
    assert "third-party" not in get_registry().backends


def test_builtin_backends_come_through_the_entry_point_group():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="harness")}
    assert {"numpy", "numba", "torch", "tasks"} <= names
    assert {p.name for p in get_registry().plugins if p.status == "loaded"} >= {"numpy", "tasks"}
