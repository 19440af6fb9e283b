"""Entry-point discovery from real dist-info on sys.path: selection, load failures, shared names.

Covers ``Registry.from_environment``: plugins of the group ``pocketcore``
loaded and attributed to their distributions, one that fails to import reported
without taking the others down, ``POCKETCORE_DISABLE_PLUGIN_AUTOLOAD`` and
``POCKETCORE_PLUGINS``, node classes of ``pocketcore.nodes``, and entry-point
names that two distributions declare.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pocketcore
from pocketcore import PluginError, Registry

from .distributions import executor_module, fake_distribution

BROKEN = """
    raise ImportError("this plugin is broken on purpose")
"""


def plugin_dist(root: Path, dist: str, ep: str, module: str, source: str) -> None:
    fake_distribution(
        root, dist, entry_points={"pocketcore": {ep: module}}, modules={module: source}
    )


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    plugin_dist(root, "pocketcore-fake", "fake", "pocketcore_fake_plugin", executor_module("fake"))
    plugin_dist(root, "pocketcore-broken", "broken", "pocketcore_broken_plugin", BROKEN)
    monkeypatch.syspath_prepend(str(root))
    return root


def test_the_process_registry_is_built_once() -> None:
    assert pocketcore.get_registry() is pocketcore.get_registry()
    assert {"sequential", "asyncio", "trio"} <= set(pocketcore.get_registry().executors)


def test_installed_plugins_come_from_their_distributions() -> None:
    registry = Registry.from_environment()
    assert registry.failures == []
    for name in ("sequential", "asyncio", "trio"):
        assert registry.executors[name].plugin == name
        assert registry.distributions[name].startswith(f"pocketcore-{name} ")


def test_a_broken_plugin_is_reported_and_the_others_load(site: Path) -> None:
    with pytest.warns(pocketcore.PluginWarning, match=r"'broken' \(distribution pocketcore-broken"):
        registry = Registry.from_environment()
    (failure,) = registry.failures
    assert failure.entry_point == "broken"
    assert failure.distribution == "pocketcore-broken 1.2.3"
    assert failure.hook is None
    assert "this plugin is broken on purpose" in failure.error
    assert str(failure).startswith("plugin 'broken' (distribution pocketcore-broken 1.2.3) failed")
    assert {"fake", "asyncio", "sequential", "trio"} <= set(registry.executors)
    assert registry.distributions["fake"] == "pocketcore-fake 1.2.3"
    # ... and the failure is part of the error for an unknown name.
    with pytest.raises(pocketcore.ConfigError, match="broken on purpose"):
        registry.get_executor("nope", source="a test")


def test_autoload_can_be_disabled(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POCKETCORE_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = Registry.from_environment()
    assert dict(registry.executors) == {}
    assert registry.failures == []
    with pytest.raises(pocketcore.ConfigError, match="autoload is disabled"):
        registry.get_executor("asyncio", source="a test")


def test_disable_set_to_zero_keeps_autoload(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POCKETCORE_DISABLE_PLUGIN_AUTOLOAD", "0")
    with pytest.warns(pocketcore.PluginWarning):
        registry = Registry.from_environment()
    assert "fake" in registry.executors


@pytest.mark.parametrize("disabled", [False, True])
def test_only_the_named_plugins(
    site: Path, monkeypatch: pytest.MonkeyPatch, disabled: bool
) -> None:
    if disabled:
        monkeypatch.setenv("POCKETCORE_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("POCKETCORE_PLUGINS", "fake, pocketcore-sequential,missing")
    with pytest.warns(pocketcore.PluginWarning, match="'missing'"):
        registry = Registry.from_environment()
    assert sorted(registry.executors) == ["fake", "sequential"]
    (failure,) = registry.failures
    assert failure.entry_point == "missing"
    assert "not installed" in failure.error


def test_a_fresh_process_finds_and_runs_an_installed_plugin(site: Path) -> None:
    program = textwrap.dedent(
        """
        import pocketcore

        class Double(pocketcore.AsyncParallelBatchNode):
            async def prep_async(self, shared):
                return [1, 2, 3]
            async def exec_async(self, item):
                return item * 2
            async def post_async(self, shared, prep_res, exec_res):
                shared["out"] = exec_res

        shared = {}
        pocketcore.run(Double(), shared, executor="fake")
        print(shared["out"], [str(f) for f in pocketcore.get_registry().failures])
        """
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True
    )
    expected = "[2, 4, 6] [\"plugin 'broken' (distribution pocketcore-broken 1.2.3)"
    assert out.stdout.startswith(expected)
    assert "PluginWarning: plugin 'broken'" in out.stderr


# --- one entry-point name, two distributions ---------------------------------------


def test_a_shared_entry_point_name_loads_both_under_distinct_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_dist(tmp_path, "twin-one", "twin", "twin_one_plugin", executor_module("one"))
    plugin_dist(tmp_path, "twin-two", "twin", "twin_two_plugin", executor_module("two"))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry.from_environment()
    assert registry.failures == []
    assert not registry.pm.has_plugin("twin")
    assert registry.executors["one"].plugin == "twin (twin-one)"
    assert registry.executors["two"].plugin == "twin (twin-two)"
    assert registry.distributions["twin (twin-one)"] == "twin-one 1.2.3"
    assert registry.distributions["twin (twin-two)"] == "twin-two 1.2.3"


def test_a_third_party_asyncio_entry_point_is_not_resolved_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The genuine pocketcore-asyncio is installed in the test environment.
    plugin_dist(tmp_path, "asyncio-turbo", "asyncio", "asyncio_turbo", executor_module("asyncio"))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry.from_environment()
    assert {"asyncio (asyncio-turbo)", "asyncio (pocketcore-asyncio)"} <= set(
        registry.distributions
    )
    with pytest.raises(PluginError, match="executor 'asyncio' is registered twice") as info:
        _ = registry.executors
    assert "plugin 'asyncio (asyncio-turbo)'" in str(info.value)
    assert "plugin 'asyncio (pocketcore-asyncio)'" in str(info.value)
    # Selecting one of the two distributions is the way out: it keeps its plain name.
    monkeypatch.setenv("POCKETCORE_PLUGINS", "pocketcore-asyncio")
    chosen = Registry.from_environment()
    assert chosen.executors["asyncio"].plugin == "asyncio"
    assert chosen.distributions["asyncio"].startswith("pocketcore-asyncio ")


def test_the_command_line_reports_a_shared_asyncio_name(tmp_path: Path) -> None:
    plugin_dist(tmp_path, "asyncio-turbo", "asyncio", "asyncio_turbo", executor_module("asyncio"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pocketcore", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=False)

    listed = cli("plugins")
    assert "asyncio (asyncio-turbo)  (asyncio-turbo 1.2.3)" in listed.stdout
    assert "asyncio (pocketcore-asyncio)  (pocketcore-asyncio " in listed.stdout
    executors = cli("executors")
    assert executors.returncode == 2
    assert "error: executor 'asyncio' is registered twice" in executors.stdout


def test_the_same_distribution_twice_on_the_path_is_one_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for folder in ("first", "second"):
        root = tmp_path / folder
        plugin_dist(root, "pocketcore-twice", "twice", "pocketcore_twice", executor_module("x"))
        monkeypatch.syspath_prepend(str(root))
    registry = Registry.from_environment()
    assert registry.failures == []
    assert registry.executors["x"].plugin == "twice"
    assert registry.distributions["twice"] == "pocketcore-twice 1.2.3"


def test_one_module_behind_two_entry_points_is_a_failure_not_a_pluggy_dump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_distribution(
        tmp_path,
        "pocketcore-echo",
        entry_points={"pocketcore": {"echo": "echo_plugin", "echo2": "echo_plugin"}},
        modules={"echo_plugin": executor_module("echo")},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(pocketcore.PluginWarning, match="already registered as plugin 'echo'"):
        registry = Registry.from_environment()
    (failure,) = registry.failures
    assert failure.entry_point == "echo2"
    assert failure.error == "the same object is already registered as plugin 'echo'"
    assert registry.executors["echo"].plugin == "echo"


# --- node classes of the group pocketcore.nodes --------------------------------------

NODES = """
    import pocketcore

    class Good(pocketcore.Node):
        pass

    class NotANode:
        pass
"""


def test_node_entry_points_broken_ones_are_reported_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_distribution(
        tmp_path,
        "pocketcore-nodes-demo",
        version="0.3",
        entry_points={
            "pocketcore.nodes": {
                "good": "nodes_demo_mod:Good",
                "not_a_node": "nodes_demo_mod:NotANode",
                "missing": "nodes_demo_mod:Missing",
            }
        },
        modules={"nodes_demo_mod": NODES},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry.from_environment()
    with pytest.warns(pocketcore.PluginWarning) as warned:
        nodes = registry.nodes
    # (other installed node plugins may add theirs)
    assert "good" in nodes
    assert "not_a_node" not in nodes
    assert "missing" not in nodes
    assert nodes["good"].distribution == "pocketcore-nodes-demo 0.3"
    assert nodes["good"].plugin is None
    assert nodes["good"].supplier == "entry point 'good' of pocketcore-nodes-demo 0.3"
    failed = {f.entry_point: f for f in registry.failures if "nodes-demo" in f.distribution}
    assert set(failed) == {"not_a_node", "missing"}
    assert "not a subclass of pocketcore.BaseNode" in failed["not_a_node"].error
    assert all(f.group == "pocketcore.nodes" for f in failed.values())
    assert str(failed["missing"]).startswith(
        "node 'missing' (distribution pocketcore-nodes-demo 0.3)"
    )
    assert len(warned) == 2
    node = registry.create_node("good", {"k": 1})
    assert type(node).__name__ == "Good"
    assert node.params == {"k": 1}
    with pytest.raises(
        pocketcore.ConfigError, match=r"unknown node 'nope'; registered nodes: .*good"
    ):
        registry.create_node("nope")
    # Collected again (a plugin registered later): the failures are not repeated.
    registry.register(object(), name="later")
    assert "good" in registry.nodes
    assert len([f for f in registry.failures if "nodes-demo" in f.distribution]) == 2
