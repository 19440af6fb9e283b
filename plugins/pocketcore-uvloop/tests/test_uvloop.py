"""The uvloop executor starts uvloop, and is the asyncio executor everywhere else."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import anyio.from_thread
import pytest
import uvloop

import pocketcore
from pocketcore_asyncio import AsyncioExecutor
from pocketcore_uvloop import UvloopExecutor


class LoopTypes(pocketcore.AsyncParallelBatchNode):
    """Each item records the type of the event loop it runs on."""

    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return range(3)

    async def exec_async(self, item: int) -> Any:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop())

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> Any:
        shared["loops"] = exec_res


class ThreadLoopTypes(pocketcore.ParallelBatchNode):
    """Each item, on a worker thread, asks the loop that runs the batch for its type."""

    def prep(self, shared: dict[str, Any]) -> Any:
        return range(3)

    def exec(self, item: int) -> Any:
        return type(anyio.from_thread.run_sync(asyncio.get_running_loop))

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> Any:
        shared["loops"] = exec_res


def test_pocketcore_run_runs_on_uvloop() -> None:
    shared: dict[str, Any] = {}
    pocketcore.run(pocketcore.AsyncFlow(start=LoopTypes()), shared, executor="uvloop")
    assert shared["loops"] == [uvloop.Loop] * 3


def test_a_node_of_its_own_chooses_uvloop() -> None:
    shared: dict[str, Any] = {}
    pocketcore.run(LoopTypes(executor="uvloop"), shared)
    assert shared["loops"] == [uvloop.Loop] * 3


def test_a_sync_flow_starts_uvloop_for_its_parallel_batch() -> None:
    shared: dict[str, Any] = {}
    pocketcore.Flow(start=ThreadLoopTypes(executor="uvloop")).run(shared)
    assert shared["loops"] == [uvloop.Loop] * 3


def test_inside_a_running_asyncio_loop_it_schedules_as_asyncio() -> None:
    shared: dict[str, Any] = {}

    async def main() -> None:
        await LoopTypes(executor="uvloop").run_async(shared)

    asyncio.run(main())
    loops = set(shared["loops"])
    assert len(loops) == 1
    assert not issubclass(loops.pop(), uvloop.Loop)  # the loop that was running: not replaced


def test_it_is_the_asyncio_executor_with_another_name_and_run() -> None:
    executor = pocketcore.get_registry().executors["uvloop"].executor
    assert isinstance(executor, UvloopExecutor)
    assert isinstance(executor, AsyncioExecutor)
    assert (executor.name, executor.backend) == ("uvloop", "asyncio")
    assert UvloopExecutor.map is AsyncioExecutor.map
    assert repr(executor) == "UvloopExecutor()"


def test_on_windows_run_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    called = []

    async def fn() -> None:
        called.append(True)

    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(pocketcore.ConfigError) as info:
        UvloopExecutor().run(fn)
    with pytest.raises(pocketcore.ConfigError, match="not available on Windows"):
        pocketcore.run(LoopTypes(), executor="uvloop")
    monkeypatch.undo()
    assert str(info.value) == "uvloop is not available on Windows; use executor='asyncio'"
    assert not called


def test_without_uvloop_run_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fn() -> None:
        pytest.fail("ran without uvloop")

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    with pytest.raises(pocketcore.ConfigError, match=r"needs the uvloop package.*pip install"):
        UvloopExecutor().run(fn)


def test_loading_the_plugin_imports_neither_uvloop_nor_pocketcore() -> None:
    code = (
        "import sys, pocketcore_uvloop; print(sorted({'pocketcore', 'uvloop'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
