"""Plugin loading: entry points really discovered, failures reported, duplicates refused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import pocketcore
from pocketcore import PluginError, Registry
from pocketcore.testing import RecordingExecutor

# --- hook-level behaviour, on a fresh empty plugin manager -----------------------


class ExecutorsPlugin:
    def __init__(self, *names: str) -> None:
        self.names = names

    @pocketcore.hookimpl
    def pocketcore_register_executors(self, register: Any) -> None:
        for name in self.names:
            register(RecordingExecutor(name=name))


def test_contributions_are_listed_with_their_plugin(pm: Registry) -> None:
    pm.register(ExecutorsPlugin("a", "b"), name="first")
    pm.register(ExecutorsPlugin("c"), name="second")
    assert {n: e.plugin for n, e in pm.executors.items()} == {
        "a": "first",
        "b": "first",
        "c": "second",
    }


def test_a_duplicate_name_names_both_plugins(pm: Registry) -> None:
    pm.register(ExecutorsPlugin("same"), name="first")
    pm.register(ExecutorsPlugin("same"), name="second")
    with pytest.raises(PluginError, match="'same' is registered twice") as info:
        _ = pm.executors
    assert "'first'" in str(info.value)
    assert "'second'" in str(info.value)


def test_registering_something_that_is_not_an_executor(pm: Registry) -> None:
    class Bad:
        @pocketcore.hookimpl
        def pocketcore_register_executors(self, register: Any) -> None:
            register(object())

    pm.register(Bad(), name="bad")
    with pytest.raises(PluginError, match=r"plugin 'bad' registered .* which is not an executor"):
        _ = pm.executors


def test_registering_a_name_twice_is_a_plugin_error(pm: Registry) -> None:
    pm.register(ExecutorsPlugin("a"), name="dup")
    with pytest.raises(PluginError, match="dup"):
        pm.register(ExecutorsPlugin("b"), name="dup")


def test_registering_later_recollects(pm: Registry) -> None:
    assert dict(pm.executors) == {}
    plugin = ExecutorsPlugin("late")
    pm.register(plugin, name="late")
    assert list(pm.executors) == ["late"]
    pm.unregister(plugin)
    assert dict(pm.executors) == {}


def test_an_empty_registry_says_so(pm: Registry) -> None:
    with pytest.raises(pocketcore.ConfigError, match="installed executors: none"):
        pm.get_executor("asyncio", source="a test")


def test_the_process_registry_is_built_once() -> None:
    assert pocketcore.get_registry() is pocketcore.get_registry()
    assert {"sequential", "asyncio", "trio"} <= set(pocketcore.get_registry().executors)


def test_installed_plugins_come_from_their_distributions() -> None:
    registry = Registry.from_environment()
    assert registry.failures == []
    for name in ("sequential", "asyncio", "trio"):
        assert registry.executors[name].plugin == name
        assert registry.distributions[name].startswith(f"pocketcore-{name} ")


# --- real entry-point discovery, from distributions on sys.path ------------------


def _fake_dist(root: Path, dist: str, entry_point: str, module: str, source: str) -> None:
    """Lay out an installed distribution (dist-info + module), as pip would."""
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[pocketcore]\n{entry_point} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


GOOD = """
    import pluggy

    class Fake:
        name = "fake"
        backend = None

        def run(self, fn):
            import asyncio
            async def main():
                return await fn()
            return asyncio.run(main())

        async def map(self, fn, items, *, limit):
            return [await fn(item) for item in items]

    @pluggy.HookimplMarker("pocketcore")
    def pocketcore_register_executors(register):
        register(Fake())
"""

BROKEN = """
    raise ImportError("this plugin is broken on purpose")
"""

DUPLICATE = """
    import pluggy

    class Again:
        name = "asyncio"
        backend = None
        def run(self, fn): ...
        async def map(self, fn, items, *, limit): ...

    @pluggy.HookimplMarker("pocketcore")
    def pocketcore_register_executors(register):
        register(Again())
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    _fake_dist(root, "pocketcore-fake", "fake", "pocketcore_fake_plugin", GOOD)
    _fake_dist(root, "pocketcore-broken", "broken", "pocketcore_broken_plugin", BROKEN)
    monkeypatch.syspath_prepend(str(root))
    return root


def test_a_broken_plugin_is_reported_and_the_others_load(site: Path) -> None:
    with pytest.warns(pocketcore.PluginWarning, match=r"'broken' \(distribution pocketcore-broken"):
        registry = Registry.from_environment()
    (failure,) = registry.failures
    assert failure.entry_point == "broken"
    assert failure.distribution == "pocketcore-broken 1.2.3"
    assert "this plugin is broken on purpose" in failure.error
    assert "'broken'" in str(failure)
    assert "pocketcore-broken 1.2.3" in str(failure)
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


def test_a_duplicate_from_another_distribution(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dist(site, "pocketcore-again", "again", "pocketcore_again_plugin", DUPLICATE)
    with pytest.warns(pocketcore.PluginWarning, match="broken on purpose"):
        registry = Registry.from_environment()
    with pytest.raises(PluginError, match="'asyncio' is registered twice") as info:
        _ = registry.executors
    assert "'again'" in str(info.value)
    assert "'asyncio'" in str(info.value)


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


def _fake_node_dist(
    root: Path, dist: str, entries: dict[str, str], module: str, source: str
) -> None:
    info = root / f"{dist.replace('-', '_')}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[pocketcore.nodes]\n{lines}")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


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
    _fake_node_dist(
        tmp_path,
        "pocketcore-nodes-demo",
        {
            "good": "nodes_demo_mod:Good",
            "not_a_node": "nodes_demo_mod:NotANode",
            "missing": "nodes_demo_mod:Missing",
        },
        "nodes_demo_mod",
        NODES,
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


def test_nodes_from_hooks_name_their_plugin(pm: Registry) -> None:
    class Nodes:
        @pocketcore.hookimpl
        def pocketcore_register_nodes(self, register: Any) -> None:
            register("tail", pocketcore.Node)

    class Again:
        @pocketcore.hookimpl
        def pocketcore_register_nodes(self, register: Any) -> None:
            register("tail", pocketcore.Flow)

    pm.register(Nodes(), name="nodes-a")
    assert pm.nodes["tail"].plugin == "nodes-a"
    pm.register(Again(), name="nodes-b")
    with pytest.raises(PluginError, match="node 'tail' is registered twice") as info:
        _ = pm.nodes
    assert "'nodes-a'" in str(info.value)
    assert "'nodes-b'" in str(info.value)
