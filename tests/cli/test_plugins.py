"""The listings (``pocketcore plugins``, ``executors``, ``nodes``), failures and conflicts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import pocketcore
from pocketcore import PluginFailure, Registry
from pocketcore._cli import targets

from .support import EXECUTORS, call

# --- listings --------------------------------------------------------------------------------


def test_executors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "executors")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["name", "backend", "plugin", "distribution"]
    # Other executor plugins may be installed too: look at the three of ours.
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["asyncio"] == ["asyncio", "asyncio", "asyncio", "pocketcore-asyncio", "0.1.0"]
    assert rows["sequential"][:2] == ["sequential", "any"]
    assert rows["trio"][:2] == ["trio", "trio"]
    code, out, _ = call(capsys, "executors", "--json")
    data = json.loads(out)
    names = [e["name"] for e in data["executors"]]
    assert names == sorted(names)
    assert {"asyncio", "sequential", "trio"} <= set(names)
    assert data["executors"][names.index("trio")] == {
        "name": "trio",
        "backend": "trio",
        "plugin": "trio",
        "distribution": "pocketcore-trio",
        "version": "0.1.0",
    }


class TinyExecutor:
    """Just enough of an executor to be listed."""

    backend = None

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, fn: Any) -> Any:
        return anyio.run(fn)

    async def map(self, fn: Any, items: Any, *, limit: int | None) -> list[Any]:
        return [await fn(item) for item in items]


class Shout(pocketcore.Node):
    """A node class registered by the test plugin below."""


class ListedPlugin:
    """A plugin registered in code: an executor, a node, and an observer hook."""

    @pocketcore.hookimpl
    def pocketcore_register_executors(self, register: Any) -> None:
        register(TinyExecutor("recording"))

    @pocketcore.hookimpl
    def pocketcore_register_nodes(self, register: Any) -> None:
        register("shout", Shout)

    @pocketcore.hookimpl
    def pocketcore_node_start(self, node: Any) -> None:
        pass


@pytest.fixture
def listed() -> Iterator[ListedPlugin]:
    plugin = ListedPlugin()
    registry = pocketcore.get_registry()
    registry.register(plugin, name="listed")
    yield plugin
    registry.unregister(plugin)


def test_plugins_lists_contributions_and_hooks(
    capsys: pytest.CaptureFixture[str], listed: ListedPlugin
) -> None:
    code, out, err = call(capsys, "plugins", "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["listed"] == {
        "name": "listed",
        "distribution": None,
        "version": None,
        "executors": ["recording"],
        "nodes": ["shout"],
        "hooks": [
            "pocketcore_node_start",
            "pocketcore_register_executors",
            "pocketcore_register_nodes",
        ],
    }
    for name in EXECUTORS:
        assert plugins[name]["distribution"] == f"pocketcore-{name}"
        assert plugins[name]["executors"] == [name]
    code, out, _ = call(capsys, "plugins")
    assert "listed  (registered in code)\n  executors: recording\n  nodes:     shout\n" in out
    assert "trio  (pocketcore-trio 0.1.0)\n  executors: trio\n" in out


def test_nodes(capsys: pytest.CaptureFixture[str], listed: ListedPlugin) -> None:
    code, out, _ = call(capsys, "nodes")
    assert code == 0
    row = next(line.split() for line in out.splitlines() if line.startswith("shout"))
    assert row == ["shout", "tests.cli.test_plugins:Shout", "plugin", "'listed'", "-"]
    data = json.loads(call(capsys, "nodes", "--json")[1])
    entry = next(n for n in data["nodes"] if n["name"] == "shout")
    assert entry == {
        "name": "shout",
        "class": "tests.cli.test_plugins:Shout",
        "supplier": "plugin 'listed'",
        "distribution": None,
        "version": None,
    }


@pytest.fixture
def broken_registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A registry with no plugins but two recorded load failures."""
    registry = Registry(pocketcore.make_plugin_manager())
    registry.failures.append(
        PluginFailure("pocketcore-broken 1.2", "broken", "ImportError: no module named 'x'")
    )
    registry.failures.append(
        PluginFailure("?", "ghost", "not installed (named in POCKETCORE_PLUGINS)")
    )
    monkeypatch.setattr(targets, "get_registry", lambda: registry)
    return registry


def test_failures_are_listed(capsys: pytest.CaptureFixture[str], broken_registry: Any) -> None:
    code, out, err = call(capsys, "plugins")
    assert (code, err) == (0, "")
    assert out.startswith("no plugins loaded\n\nplugin 'broken' (distribution pocketcore-broken")
    data = json.loads(call(capsys, "plugins", "--json")[1])
    assert data["failures"] == [
        {
            "entry_point": "broken",
            "group": "pocketcore",
            "distribution": "pocketcore-broken",
            "version": "1.2",
            "error": "ImportError: no module named 'x'",
        },
        {
            "entry_point": "ghost",
            "group": "pocketcore",
            "distribution": None,
            "version": None,
            "error": "not installed (named in POCKETCORE_PLUGINS)",
        },
    ]
    assert call(capsys, "executors")[1].startswith("no executors installed\n\nplugin 'broken'")
    assert call(capsys, "nodes")[1].startswith("no nodes registered\n\nplugin 'broken'")


def test_failures_are_warned_about_when_running(
    capsys: pytest.CaptureFixture[str], broken_registry: Any, flows: Path
) -> None:
    code, _, err = call(capsys, "run", f"{flows}:greet")
    assert code == 0
    assert err.splitlines() == [
        "pocketcore: warning: plugin 'broken' (distribution pocketcore-broken 1.2) failed to "
        "load: ImportError: no module named 'x'",
        "pocketcore: warning: plugin 'ghost' (distribution ?) failed to load: not installed "
        "(named in POCKETCORE_PLUGINS)",
    ]


def test_conflicting_plugins_are_listed_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    class Twin:
        @pocketcore.hookimpl
        def pocketcore_register_executors(self, register: Any) -> None:
            register(TinyExecutor("asyncio"))

    registry = pocketcore.get_registry()
    twin = Twin()
    registry.register(twin, name="twin")
    try:
        code, out, _ = call(capsys, "executors")
        assert code == 2  # listed, and the status says something is wrong
        assert "error: executor 'asyncio' is registered twice" in out
        code, _, err = call(capsys, "run", "x.py:y", "--executor", "asyncio")
        assert code == 2
        assert "registered twice" in err
    finally:
        registry.unregister(twin)
