"""Plugin discovery: third-party entry points, broken and disabled plugins, API versions."""
from __future__ import annotations

import pytest

from harness.plugins import get_registry, machine_info
from tests.support.cli import harness
from tests.support.plugins import add_distribution

GOOD = """
from harness import hookimpl
from harness_plugins.numpy_backend import NumpyBackend

HARNESS_PLUGIN_API = 2

class ThirdParty(NumpyBackend):
    name = "third-party"
    cells = ("rnn_tanh",)

@hookimpl
def harness_backends():
    return [ThirdParty]
"""


def test_third_party_plugin_is_discovered(plugin_dir):
    add_distribution(plugin_dir, "thirdparty", {"thirdparty_plugin": GOOD}, {"thirdparty": "thirdparty_plugin"})
    registry = get_registry()
    assert "third-party" in registry.backends
    record = next(p for p in registry.plugins if p.name == "thirdparty")
    assert (record.status, record.distribution, record.backends) == ("loaded", "thirdparty", ["third-party"])
    out = harness("plugins").stdout
    assert "backend third-party" in out and "thirdparty 0.1" in out


def test_broken_plugin_is_listed_with_its_error_and_others_still_work(plugin_dir):
    add_distribution(plugin_dir, "broken", {"broken_plugin": "raise ImportError('kaput on purpose')"},
                     {"broken": "broken_plugin"})
    registry = get_registry()
    record = next(p for p in registry.plugins if p.name == "broken")
    assert record.status == "failed" and "kaput on purpose" in record.error
    assert "numpy" in registry.backends and "temporal_order" in registry.tasks
    result = harness("plugins")
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
    old = GOOD.replace("HARNESS_PLUGIN_API = 2", "HARNESS_PLUGIN_API = 1")
    add_distribution(plugin_dir, "old", {"old_plugin": old}, {"old": "old_plugin"})
    record = next(p for p in get_registry().plugins if p.name == "old")
    assert record.status == "incompatible" and "written for plugin API 1, this harness implements 3" in record.error
    assert "still runs plugins written for 2" in record.error
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


def test_backends_all_leaves_out_the_variants_that_run_when_named():
    """``in_all = False`` (torch-cpu-generic): not in --backends all, yet runs when named."""
    pytest.importorskip("torch")
    from harness.run.runner import select_backends

    every = select_backends("all")
    assert "torch-cpu" in every and "numpy" in every and "torch-cpu-generic" not in every
    assert not get_registry().backend_class("torch-cpu-generic").in_all
    assert select_backends("numpy, torch-cpu-generic") == ["numpy", "torch-cpu-generic"]
    listed = harness("plugins").stdout
    line = next(ln for ln in listed.splitlines() if "backend torch-cpu-generic" in ln)
    assert "runs when named: not in --backends all" in line


def test_duplicate_backend_name_is_kept_once_and_the_second_plugin_says_why(plugin_dir):
    add_distribution(plugin_dir, "first", {"first_plugin": GOOD}, {"first": "first_plugin"})
    add_distribution(plugin_dir, "second", {"second_plugin": GOOD}, {"second": "second_plugin"})
    registry = get_registry()
    records = {p.name: p for p in registry.plugins}
    assert records["first"].backends == ["third-party"] and records["first"].error == ""
    assert records["second"].backends == []
    assert "'third-party' is already offered by another plugin" in records["second"].error
    assert registry.backends["third-party"].__module__ == "first_plugin"


def test_a_hook_that_raises_fails_its_plugin_only(plugin_dir):
    add_distribution(plugin_dir, "raising", {"raising_plugin": """
        from harness import hookimpl
        HARNESS_PLUGIN_API = 2
        @hookimpl
        def harness_backends():
            raise RuntimeError("no backends today")
        """}, {"raising": "raising_plugin"})
    registry = get_registry()
    record = next(p for p in registry.plugins if p.name == "raising")
    assert record.status == "failed" and "harness_backends: RuntimeError: no backends today" in record.error
    assert "numpy" in registry.backends


def test_machine_info_is_collected_per_plugin_and_a_raising_one_is_recorded(plugin_dir):
    add_distribution(plugin_dir, "infos", {"info_good": """
        from harness import hookimpl
        HARNESS_PLUGIN_API = 2
        @hookimpl
        def harness_machine_info():
            return {"driver": "42.0"}
        """, "info_bad": """
        from harness import hookimpl
        HARNESS_PLUGIN_API = 2
        @hookimpl
        def harness_machine_info():
            raise OSError("no driver")
        """}, {"good": "info_good", "bad": "info_bad"})
    info = machine_info()
    assert info["good"] == {"driver": "42.0"}
    assert info["bad"] == {"error": "OSError: no driver"}


def test_hooks_are_called_with_the_keyword_arguments_an_implementation_declares():
    """pluggy's rule, kept when the core calls plugins one by one: a spec may grow an argument
    and an implementation that declares a subset still gets exactly what it asked for."""
    import pluggy

    from harness.plugins import call_hook

    marker = pluggy.HookimplMarker("demo")
    spec = pluggy.HookspecMarker("demo")

    class Specs:
        @spec
        def demo_hook(self, threads, device):
            """A spec that grew ``device``."""

    class Old:
        @marker
        def demo_hook(self, threads):
            return threads * 10

    pm = pluggy.PluginManager("demo")
    pm.add_hookspecs(Specs)
    pm.register(Old())
    (impl,) = pm.hook.demo_hook.get_hookimpls()
    assert call_hook(impl, threads=3, device="cuda") == 30


MISBEHAVING_PLUGIN = """
from harness import hookimpl
from harness_plugins.numpy_backend import NumpyBackend
HARNESS_PLUGIN_API = 2

class RaisingAvailability(NumpyBackend):
    name = "raising-availability"
    @classmethod
    def availability(cls):
        raise OSError("driver probe crashed")

class OddInfo(NumpyBackend):
    name = "odd-info"
    def info(self):
        return {"flags": {"b", "a"}, "blob": b"\\x00\\x01", "obj": object}

class Nameless:  # offered as a backend, but no Backend and no name
    pass

@hookimpl
def harness_backends():
    return [RaisingAvailability, OddInfo, Nameless]

@hookimpl
def harness_machine_info():
    return {"gpus": {"gpu1"}, "raw": b"x"}
"""


def test_a_misbehaving_plugin_stops_nothing(plugin_dir, tmp_path):
    from harness.record import files
    from tests.support.suites import write_suite

    add_distribution(plugin_dir, "misbehaving", {"misbehaving_plugin": MISBEHAVING_PLUGIN},
                     {"misbehaving": "misbehaving_plugin"})
    add_distribution(plugin_dir, "broken", {"broken_plugin": "raise ImportError('kaput on purpose')"},
                     {"broken": "broken_plugin"})
    listing = harness("plugins")
    assert listing.returncode == 0 and "availability() raised OSError: driver probe crashed" in listing.stdout
    assert "has no usable name" in listing.stdout
    out = tmp_path / "run.json"
    run = harness("run", str(write_suite(tmp_path / "s")), "--backends", "numpy,raising-availability,odd-info",
                  "--no-asv", "-q", "--output", str(out))
    assert run.returncode == 0, run.stderr
    data = files.read(out)
    assert {p.backend: p.status for p in data.points} == {"numpy": "ok", "raising-availability": "skipped",
                                                         "odd-info": "ok"}
    odd = data.backends["odd-info"].info
    assert odd["flags"] == ["a", "b"] and odd["blob"] == "b'\\x00\\x01'"
    assert data.provenance["plugins"]["misbehaving"] == {"gpus": ["gpu1"], "raw": "b'x'"}
    statuses = {p["name"]: p["status"] for p in data.provenance["plugin_status"]}
    assert statuses["broken"] == "failed" and statuses["numpy"] == "loaded"
    assert "plugin broken" in run.stderr and "kaput on purpose" in run.stderr  # not dropped silently


def test_naming_a_backend_of_a_broken_plugin_says_why_it_cannot_run(plugin_dir):
    from tests.support.cli import one_line_error

    add_distribution(plugin_dir, "broken", {"broken_plugin": "raise ImportError('kaput on purpose')"},
                     {"broken": "broken_plugin"})
    line = one_line_error(harness("run", "long_range", "--backends", "broken-one"))
    assert "unknown backend 'broken-one'" in line
    assert "plugins that did not load: broken (failed: ImportError: kaput" in line


def test_an_entry_point_name_taken_by_another_distribution_is_reported_and_never_replaces_it(plugin_dir):
    """A fake harness-numpy whose entry point is also named "numpy" used to hide the built-in numpy
    backend silently (issue 30): the built-in one loads, the other is listed as failed naming both."""
    add_distribution(plugin_dir, "harness-numpy", {"fake_numpy": GOOD}, {"numpy": "fake_numpy"})
    add_distribution(plugin_dir, "first-tp", {"tp_one": GOOD}, {"tp": "tp_one"})
    add_distribution(plugin_dir, "second-tp", {"tp_two": GOOD.replace("third-party", "other")}, {"tp": "tp_two"})
    registry = get_registry()
    assert registry.backends["numpy"].__module__ == "harness_plugins.numpy_backend"
    numpy = [p for p in registry.plugins if p.name == "numpy"]
    assert [(p.distribution, p.status) for p in numpy] == [("rnn-grad-harness", "loaded"), ("harness-numpy", "failed")]
    assert "also offered by rnn-grad-harness (harness_plugins.numpy_backend), which is loaded" in numpy[1].error
    tp = [(p.distribution, p.status) for p in registry.plugins if p.name == "tp"]
    assert sorted(tp) == [("first-tp", "loaded"), ("second-tp", "failed")] or \
        sorted(tp) == [("first-tp", "failed"), ("second-tp", "loaded")]  # the first on sys.path loads
    assert ("third-party" in registry.backends) != ("other" in registry.backends)
    out = harness("plugins").stdout
    assert "harness-numpy" in out and "also offered by rnn-grad-harness" in out
