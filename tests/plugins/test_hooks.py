"""Registration hooks go through pluggy: per-plugin attribution, wrappers, ordering, arguments.

Covers how ``pocketcore_register_executors`` and ``pocketcore_register_nodes``
are called: once per implementing plugin, in pluggy's calling order
(``tryfirst`` / ``trylast``), with every hook wrapper (``wrapper=True`` and
``hookwrapper=True``) around each call, implementations that take fewer
arguments than the spec, and duplicate names refused naming both plugins.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pluggy
import pocketflow
import pytest

import pocketcore
from pocketcore import PluginError, Registry
from pocketcore.testing import RecordingExecutor


class ExecutorsPlugin:
    def __init__(self, *names: str, log: list[str] | None = None) -> None:
        self.names = names
        self.log = log

    @pocketcore.hookimpl
    def pocketcore_register_executors(self, register: Any) -> None:
        if self.log is not None:
            self.log.append("+".join(self.names))
        for name in self.names:
            register(RecordingExecutor(name=name))


class First(ExecutorsPlugin):
    @pocketcore.hookimpl(tryfirst=True)
    def pocketcore_register_executors(self, register: Any) -> None:
        super().pocketcore_register_executors(register)


class Last(ExecutorsPlugin):
    @pocketcore.hookimpl(trylast=True)
    def pocketcore_register_executors(self, register: Any) -> None:
        super().pocketcore_register_executors(register)


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


def test_stores_from_hooks_name_their_plugin_and_a_duplicate_names_both(pm: Registry) -> None:
    class Stores:
        @pocketcore.hookimpl
        def pocketcore_register_stores(self, register: Any) -> None:
            register("redis", lambda rest: None)

    pm.register(Stores(), name="stores-a")
    assert pm.stores["redis"].plugin == "stores-a"
    pm.register(Stores(), name="stores-b")
    with pytest.raises(PluginError, match="store 'redis' is registered twice") as info:
        _ = pm.stores
    assert "'stores-a'" in str(info.value)
    assert "'stores-b'" in str(info.value)


@pytest.mark.parametrize("name", ["", "x", "a:b", 3])
def test_a_store_name_a_setting_could_not_name_fails_the_plugin(pm: Registry, name: Any) -> None:
    class Odd:
        @pocketcore.hookimpl
        def pocketcore_register_stores(self, register: Any) -> None:
            register(name, lambda rest: None)

    pm.register(Odd(), name="odd")
    with pytest.warns(pocketcore.PluginWarning, match="invalid name"):
        assert dict(pm.stores) == {}
    assert [f.entry_point for f in pm.failures] == ["odd"]


@pytest.mark.parametrize("cls", [pocketflow.Node, int, "Node"])
def test_only_pocketcore_node_classes_register_as_nodes(pm: Registry, cls: Any) -> None:
    # PocketFlow's own Node has every method of a node, and is still not one of pocketcore's.
    class Lookalike:
        @pocketcore.hookimpl
        def pocketcore_register_nodes(self, register: Any) -> None:
            register("ok", pocketcore.Flow)
            register("odd", cls)

    pm.register(Lookalike(), name="lookalike")
    with pytest.warns(pocketcore.PluginWarning, match="not a subclass of pocketcore.BaseNode"):
        assert dict(pm.nodes) == {}


@pytest.mark.parametrize("opener", [None, "sqlite", 3])
def test_a_store_opener_that_cannot_be_called_fails_the_plugin(pm: Registry, opener: Any) -> None:
    class Odd:
        @pocketcore.hookimpl
        def pocketcore_register_stores(self, register: Any) -> None:
            register("odd", opener)

    pm.register(Odd(), name="odd")
    with pytest.warns(pocketcore.PluginWarning, match="it is not callable"):
        assert dict(pm.stores) == {}


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


# --- pluggy's calling conventions ----------------------------------------------------


def test_tryfirst_and_trylast_decide_the_order(pm: Registry) -> None:
    log: list[str] = []
    # Registered in the opposite order of the calls.
    pm.register(Last("last", log=log), name="p-last")
    pm.register(ExecutorsPlugin("plain-1", log=log), name="p-plain-1")
    pm.register(ExecutorsPlugin("plain-2", log=log), name="p-plain-2")
    pm.register(First("first", log=log), name="p-first")
    # pluggy calls tryfirst first, trylast last, and otherwise the newest first.
    expected = ["first", "plain-2", "plain-1", "last"]
    assert list(pm.executors) == expected
    assert log == expected


def test_the_order_decides_which_plugin_a_duplicate_names_first(pm: Registry) -> None:
    pm.register(ExecutorsPlugin("same"), name="plain")
    pm.register(Last("same"), name="late")
    with pytest.raises(PluginError) as info:
        _ = pm.executors
    assert str(info.value).endswith("by plugin 'plain' and by plugin 'late'")


class Recorder:
    """A new-style hook wrapper that records each registration call it wraps."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.registers: list[object] = []

    @pocketcore.hookimpl(wrapper=True)
    def pocketcore_register_executors(self, register: Any) -> Generator[None, Any, Any]:
        self.registers.append(register)
        self.log.append("before")
        try:
            return (yield)
        finally:
            self.log.append("after")


def test_a_hook_wrapper_wraps_each_plugins_call(pm: Registry) -> None:
    log: list[str] = []
    recorder = Recorder(log)
    pm.register(recorder, name="recorder")
    pm.register(ExecutorsPlugin("a", log=log), name="pa")
    pm.register(ExecutorsPlugin("b", log=log), name="pb")
    assert sorted(pm.executors) == ["a", "b"]
    assert log == ["before", "b", "after", "before", "a", "after"]
    # Each call has its own register callback, the one attributing to its plugin.
    assert len({id(register) for register in recorder.registers}) == 2
    # A plugin that only wraps contributes nothing and is no failure.
    assert pm.failures == []


def test_an_old_style_hookwrapper_sees_each_outcome(pm: Registry) -> None:
    outcomes: list[BaseException | None] = []

    class Watcher:
        @pocketcore.hookimpl(hookwrapper=True)
        def pocketcore_register_executors(self) -> Generator[None, Any, None]:
            outcome: pluggy.Result[Any] = yield
            outcomes.append(outcome.exception)

    class Broken:
        @pocketcore.hookimpl
        def pocketcore_register_executors(self, register: Any) -> None:
            raise RuntimeError("my hook is broken")

    pm.register(Watcher(), name="watcher")
    pm.register(ExecutorsPlugin("ok"), name="ok")
    pm.register(Broken(), name="broken")  # newest, so called first
    with pytest.warns(pocketcore.PluginWarning, match="my hook is broken"):
        assert list(pm.executors) == ["ok"]
    assert [type(e).__name__ if e else None for e in outcomes] == ["RuntimeError", None]


def test_a_raising_hook_wrapper_fails_only_the_call_it_raised_in(pm: Registry) -> None:
    calls = 0

    class Vetoes:
        @pocketcore.hookimpl(wrapper=True)
        def pocketcore_register_executors(self) -> Generator[None, Any, Any]:
            nonlocal calls
            calls += 1
            result = yield
            if calls == 2:
                raise RuntimeError("vetoed the second call")
            return result

    pm.register(Vetoes(), name="vetoes")
    pm.register(Last("c"), name="pc")
    pm.register(ExecutorsPlugin("b"), name="pb")
    pm.register(First("a"), name="pa")
    with pytest.warns(pocketcore.PluginWarning, match="vetoed the second call"):
        executors = pm.executors
    assert list(executors) == ["a", "c"]
    (failure,) = pm.failures
    assert failure.entry_point == "pb"
    assert failure.hook == "pocketcore_register_executors"
    assert failure.error == (
        "RuntimeError: vetoed the second call "
        "(the call was wrapped by the hook wrappers of 'vetoes')"
    )


def test_a_hook_wrapper_can_forgive_a_failing_implementation(pm: Registry) -> None:
    class Forgives:
        @pocketcore.hookimpl(wrapper=True)
        def pocketcore_register_executors(self) -> Generator[None, Any, None]:
            try:
                yield
            except RuntimeError:
                return None  # the wrapper decides the call succeeded

    class HalfDone:
        @pocketcore.hookimpl
        def pocketcore_register_executors(self, register: Any) -> None:
            register(RecordingExecutor(name="half"))
            raise RuntimeError("stopped half way")

    pm.register(Forgives(), name="forgives")
    pm.register(HalfDone(), name="half-done")
    assert list(pm.executors) == ["half"]
    assert pm.failures == []


def test_an_implementation_may_take_no_arguments(pm: Registry) -> None:
    called: list[str] = []

    class NoArguments:
        @pocketcore.hookimpl
        def pocketcore_register_executors(self) -> None:
            called.append("executors")

        @pocketcore.hookimpl
        def pocketcore_register_nodes(self) -> None:
            called.append("nodes")

    pm.register(NoArguments(), name="no-arguments")
    pm.register(ExecutorsPlugin("x"), name="x")
    assert list(pm.executors) == ["x"]
    assert dict(pm.nodes) == {}
    assert called == ["executors", "nodes"]
    assert pm.failures == []


def test_a_module_level_function_plugin_works_like_a_class(pm: Registry) -> None:
    import types

    module = types.ModuleType("my_plugin")

    @pocketcore.hookimpl
    def pocketcore_register_nodes(register: Any) -> None:
        register("n", pocketcore.Node)

    module.pocketcore_register_nodes = pocketcore_register_nodes  # type: ignore[attr-defined]
    pm.register(module, name="module")
    assert pm.nodes["n"].plugin == "module"
    assert pm.nodes["n"].supplier == "plugin 'module'"
