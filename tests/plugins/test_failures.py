"""A registration hook that raises or registers something invalid fails its plugin, not the rest.

Covers ``pocketcore_register_executors`` and ``pocketcore_register_nodes``
failing: the failure is warned about and recorded in ``Registry.failures``
naming the plugin, its distribution and the hook; the plugin contributes
nothing through that hook; every other plugin's contributions are there; the
command line lists the failure instead of crashing, and runs go on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pocketcore
from pocketcore import PluginError, PluginWarning, Registry
from pocketcore._stores import MemoryStore
from pocketcore.testing import RecordingExecutor

from .distributions import executor_module, fake_distribution

EXECUTORS = "pocketcore_register_executors"
NODES = "pocketcore_register_nodes"
STORES = "pocketcore_register_stores"


class Raising:
    @pocketcore.hookimpl
    def pocketcore_register_executors(self, register: Any) -> None:
        raise RuntimeError("my hook is broken")

    @pocketcore.hookimpl
    def pocketcore_register_nodes(self, register: Any) -> None:
        raise RuntimeError("my nodes hook is broken")


class Good:
    @pocketcore.hookimpl
    def pocketcore_register_executors(self, register: Any) -> None:
        register(RecordingExecutor(name="good"))

    @pocketcore.hookimpl
    def pocketcore_register_nodes(self, register: Any) -> None:
        register("good", pocketcore.Node)


def test_a_raising_executors_hook_is_a_failure_of_its_plugin(pm: Registry) -> None:
    pm.register(Good(), name="good")
    pm.register(Raising(), name="raising")
    with pytest.warns(PluginWarning) as warned:
        executors = pm.executors
    assert list(executors) == ["good"]
    (failure,) = pm.failures
    assert (failure.entry_point, failure.hook, failure.distribution) == ("raising", EXECUTORS, "?")
    assert failure.error == "RuntimeError: my hook is broken"
    message = (
        "plugin 'raising' (distribution ?) failed in pocketcore_register_executors: "
        "RuntimeError: my hook is broken"
    )
    assert [str(w.message) for w in warned] == [message]
    assert str(failure) == message
    with pytest.raises(pocketcore.ConfigError, match="my hook is broken"):
        pm.get_executor("raising", source="a test")
    # Its other hook is its own business: the nodes of the good plugin are there.
    with pytest.warns(PluginWarning, match="my nodes hook is broken"):
        assert list(pm.nodes) == ["good"]
    assert [f.hook for f in pm.failures] == [EXECUTORS, NODES]


@pytest.mark.parametrize(
    ("register_args", "error"),
    [
        ((object(),), r"registered <object object at .*>, which is not an executor"),
        ((RecordingExecutor(name=""),), r"which is not an executor .*missing: a valid name"),
        ((), r"called register\(\) with 0 arguments; it takes \(executor\)"),
    ],
)
def test_registering_something_that_is_not_an_executor(
    pm: Registry, register_args: tuple[Any, ...], error: str
) -> None:
    class Bad:
        @pocketcore.hookimpl
        def pocketcore_register_executors(self, register: Any) -> None:
            register(RecordingExecutor(name="registered-first"))
            register(*register_args)

    pm.register(Good(), name="good")
    pm.register(Bad(), name="bad")
    with pytest.warns(PluginWarning, match=r"plugin 'bad' \(distribution \?\) failed in"):
        assert list(pm.executors) == ["good"]  # nothing of bad's, also not what came first
    (failure,) = pm.failures
    assert failure.entry_point == "bad"
    assert failure.hook == EXECUTORS
    assert re.search(error, failure.error), failure.error


@pytest.mark.parametrize(
    ("register_args", "error"),
    [
        (("", pocketcore.Node), "registered a node with the invalid name ''"),
        ((7, pocketcore.Node), "registered a node with the invalid name 7"),
        (("n", int), "registered <class 'int'> as node 'n'; it is not a subclass of"),
        (("n",), "called register() with 1 arguments; it takes (name, cls)"),
    ],
)
def test_registering_an_invalid_node(
    pm: Registry, register_args: tuple[Any, ...], error: str
) -> None:
    class Bad:
        @pocketcore.hookimpl
        def pocketcore_register_nodes(self, register: Any) -> None:
            register(*register_args)

    pm.register(Good(), name="good")
    pm.register(Bad(), name="bad")
    with pytest.warns(PluginWarning):
        assert list(pm.nodes) == ["good"]
    (failure,) = pm.failures
    assert failure.hook == NODES
    assert failure.error.startswith(error)


def test_register_raises_to_the_plugin_and_catching_it_does_not_hide_the_failure(
    pm: Registry,
) -> None:
    seen: list[str] = []

    class Catches:
        @pocketcore.hookimpl
        def pocketcore_register_executors(self, register: Any) -> None:
            try:
                register("not an executor")
            except PluginError as exc:
                seen.append(str(exc))
            register(RecordingExecutor(name="after"))

    pm.register(Catches(), name="catches")
    with pytest.warns(PluginWarning, match="which is not an executor"):
        assert dict(pm.executors) == {}
    assert seen == [
        "plugin 'catches' registered 'not an executor', which is not an executor (needs a "
        "non-empty str name, backend, run() and map(); missing: name, backend, run, map)"
    ]


def test_one_plugin_registering_a_name_twice_is_its_own_failure(pm: Registry) -> None:
    class Twice:
        @pocketcore.hookimpl
        def pocketcore_register_executors(self, register: Any) -> None:
            register(RecordingExecutor(name="x"))
            register(RecordingExecutor(name="x"))

    pm.register(Twice(), name="twice")
    with pytest.warns(PluginWarning, match="registered 'x' twice"):
        assert dict(pm.executors) == {}


def test_collecting_again_neither_repeats_nor_keeps_stale_failures(pm: Registry) -> None:
    raising = Raising()
    pm.register(raising, name="raising")
    with pytest.warns(PluginWarning):
        _ = pm.executors
    pm.register(Good(), name="good")  # collected again: no second warning (warnings are errors)
    assert list(pm.executors) == ["good"]
    assert [f.entry_point for f in pm.failures] == ["raising"]
    pm.unregister(raising)
    assert list(pm.executors) == ["good"]
    assert pm.failures == []


def test_a_keyboard_interrupt_is_not_a_plugin_failure(pm: Registry) -> None:
    class Interrupted:
        @pocketcore.hookimpl
        def pocketcore_register_executors(self, register: Any) -> None:
            raise KeyboardInterrupt

    pm.register(Interrupted(), name="interrupted")
    with pytest.raises(KeyboardInterrupt):
        _ = pm.executors


# --- any subset broken, in any way ------------------------------------------------------

# How a plugin's hook behaves: it registers its names, except when it is broken,
# and then it raises before, raises after registering, or registers junk.
BEHAVIOURS = ["works", "raises-first", "raises-after", "registers-junk"]


def _plugin(hook: str, names: list[str], behaviour: str) -> object:
    def register_all(register: Any) -> None:
        if behaviour == "raises-first":
            raise ValueError("broken before registering")
        for name in names:
            if hook == EXECUTORS:
                register(RecordingExecutor(name=name))
            elif hook == STORES:
                register(name, lambda rest: MemoryStore())
            else:
                register(name, pocketcore.Node)
        if behaviour == "raises-after":
            raise OSError("broken after registering")
        if behaviour == "registers-junk" and hook == EXECUTORS:
            register(None)
        elif behaviour == "registers-junk":
            register(names[0], None)

    namespace = {hook: pocketcore.hookimpl(lambda self, register: register_all(register))}
    return type("Generated", (), namespace)()


@given(
    hook=st.sampled_from([EXECUTORS, NODES, STORES]),
    behaviours=st.lists(st.sampled_from(BEHAVIOURS), min_size=1, max_size=6),
)
def test_exactly_the_broken_plugins_fail_and_the_others_contribute(
    hook: str, behaviours: list[str]
) -> None:
    registry = Registry(pocketcore.make_plugin_manager())
    for index, behaviour in enumerate(behaviours):
        names = [f"p{index}-{k}" for k in range(1 + index % 2)]
        registry.register(_plugin(hook, names, behaviour), name=f"p{index}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = getattr(registry, {EXECUTORS: "executors", NODES: "nodes", STORES: "stores"}[hook])
    broken = {f"p{i}" for i, b in enumerate(behaviours) if b != "works"}
    expected = {
        f"p{i}-{k}" for i, b in enumerate(behaviours) if b == "works" for k in range(1 + i % 2)
    }
    assert set(found) == expected
    assert {entry.plugin for entry in found.values()} == {
        f"p{i}" for i in range(len(behaviours))
    } - broken
    assert {f.entry_point for f in registry.failures} == broken
    assert {f.hook for f in registry.failures} <= {hook}
    assert len(caught) == len(broken)
    assert all(issubclass(w.category, PluginWarning) for w in caught)


# --- an installed plugin whose hook raises, seen from the outside ----------------------

PROGRAM = """
    import pocketcore

    class Double(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return [1, 2, 3]
        async def exec_async(self, item):
            return item * 2
        async def post_async(self, shared, prep_res, exec_res):
            shared["out"] = exec_res

    shared = {}
    pocketcore.run(Double(), shared)
    print(shared["out"])
"""


@pytest.fixture
def broken_hook_site(tmp_path: Path) -> dict[str, str]:
    source = executor_module("never-seen", raises="my hook is broken")
    fake_distribution(
        tmp_path,
        "pocketcore-raises",
        entry_points={"pocketcore": {"raises": "pocketcore_raises"}},
        modules={"pocketcore_raises": source},
    )
    (tmp_path / "double.py").write_text(textwrap.dedent(PROGRAM))
    return {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONWARNINGS": "default"}


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, check=False
    )


def test_an_installed_plugins_raising_hook_is_reported_with_its_distribution(
    broken_hook_site: dict[str, str],
) -> None:
    message = (
        "plugin 'raises' (distribution pocketcore-raises 1.2.3) failed in "
        "pocketcore_register_executors: RuntimeError: my hook is broken"
    )
    listed = _run(broken_hook_site, "-m", "pocketcore", "plugins")
    assert listed.returncode == 0, listed.stderr
    assert message in listed.stdout.splitlines()
    executors = _run(broken_hook_site, "-m", "pocketcore", "executors")
    assert executors.returncode == 0, executors.stderr
    assert "asyncio" in executors.stdout
    assert message in executors.stdout.splitlines()
    ran = _run(broken_hook_site, str(Path(broken_hook_site["PYTHONPATH"]) / "double.py"))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "[2, 4, 6]\n"
    assert f"PluginWarning: {message}" in ran.stderr


def test_the_command_reports_a_raising_hook_found_mid_run_in_its_own_voice(
    broken_hook_site: dict[str, str],
) -> None:
    where = Path(broken_hook_site["PYTHONPATH"])
    ran = _run(broken_hook_site, "-m", "pocketcore", "run", f"{where / 'double.py'}:Double")
    assert ran.returncode == 0, ran.stderr
    assert "".join(ran.stdout.split()).endswith('{"out":[2,4,6]}action:null')
    lines = ran.stderr.splitlines()
    assert lines == [
        "pocketcore: warning: plugin 'raises' (distribution pocketcore-raises 1.2.3) failed in "
        "pocketcore_register_executors: RuntimeError: my hook is broken"
    ]
