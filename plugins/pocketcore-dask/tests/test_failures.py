"""Failures, cancellation and unshippable work: what reaches the caller, and what is left running.

"Nothing left running" is checked on the cluster itself: no task in the
scheduler's processing lists, and no worker thread executing a task.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
from dask_nodes import (
    Exits,
    Items,
    Passes,
    Stalls,
    SyncExits,
    SyncItems,
    SyncPasses,
    SyncStalls,
    marks,
)
from distributed import Client

import pocketcore

pytestmark = pytest.mark.usefixtures("address")


def executing(dask_worker: Any) -> int:
    return int(dask_worker.state.executing_count)


def assert_idle(client: Client) -> None:
    assert not any(client.processing().values()), client.processing()
    assert not any(client.run(executing).values())


def stalls(node: type[pocketcore.BaseNode], folder: Path, **shared: Any) -> dict[str, Any]:
    return {"marks": str(folder), **shared}


@pytest.mark.parametrize("limit", [None, 3])
def test_a_failure_cancels_the_running_async_items(
    client: Client, tmp_path: Path, limit: int | None
) -> None:
    shared = stalls(Stalls, tmp_path, items=list(range(6)), fail=[2], seconds=30)
    start = time.monotonic()
    with pytest.raises(ValueError, match="item 2 failed") as info:
        pocketcore.run(Stalls(max_concurrency=limit), shared, executor="dask")
    assert time.monotonic() - start < 15  # the 30 s items were interrupted
    assert_idle(client)
    started = marks(tmp_path, "started")
    assert marks(tmp_path, "cancelled") == started - {2}
    assert not marks(tmp_path, "finished")
    if limit is not None:
        assert started <= {0, 1, 2}  # 3, 4, 5 never started
    # The item's own exception, raised with the worker's traceback.
    assert type(info.value) is ValueError
    assert "exec_async" in "".join(traceback.format_tb(info.value.__traceback__))


def test_sync_items_cannot_be_interrupted_so_they_are_waited_for(
    client: Client, tmp_path: Path
) -> None:
    shared = stalls(
        SyncStalls, tmp_path, items=list(range(8)), fail=[0], seconds=1.0, fail_after=0.3
    )
    start = time.monotonic()
    with pytest.raises(ValueError, match="item 0 failed"):
        pocketcore.run(SyncStalls(max_concurrency=3), shared, executor="dask")
    # Items 1 and 2 were running: they finished their work before the raise.
    assert time.monotonic() - start >= 1.0
    assert marks(tmp_path, "finished") == {1, 2}
    assert marks(tmp_path, "started") == {0, 1, 2}
    assert_idle(client)


def test_other_failures_are_attached_as_notes(tmp_path: Path) -> None:
    # Item 3 fails 50 ms after item 1; being sync, it cannot be stopped once started.
    shared = stalls(SyncStalls, tmp_path, items=list(range(4)), fail=[1, 3], seconds=0.2)
    with pytest.raises(ValueError, match="item 1 failed") as info:
        pocketcore.run(SyncStalls(), shared, executor="dask")
    notes = getattr(info.value, "__notes__", [])
    if 3 in marks(tmp_path, "started"):
        assert notes == [
            "another item failed before the batch was stopped: ValueError: item 3 failed"
        ]
    else:  # the stop flag reached it first
        assert notes == []


def test_a_cancelled_caller_cancels_the_items_and_waits_for_them(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POCKETCORE_EXECUTOR", "dask")
    shared = stalls(Stalls, tmp_path, items=list(range(4)), fail=[], seconds=30)

    async def main() -> None:
        await asyncio.wait_for(Stalls().run_async(shared), timeout=3)

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert_idle(client)
    assert marks(tmp_path, "cancelled") == set(range(4))


def test_an_unpicklable_item_is_named_and_nothing_is_left_running(
    client: Client, tmp_path: Path
) -> None:
    with open(tmp_path / "data.txt", "w") as handle:
        shared = {"items": [1, 2, handle, 4]}
        node = Items()
        node.set_params({"marks": str(tmp_path / "m")})
        (tmp_path / "m").mkdir()
        with pytest.raises(pocketcore.PocketcoreError) as info:
            pocketcore.run(node, shared, executor="dask")
    message = str(info.value)
    assert message.startswith("cannot send item 2 of node Items to executor 'dask'")
    assert "PicklingError: Cannot pickle files that are not opened for reading" in message
    # Raised by the kernel before dask saw the item: no frame of distributed
    # in what reaches the caller, nor in its cause.
    for exc in (info.value, info.value.__cause__):
        assert exc is not None
        assert "distributed" not in "".join(traceback.format_tb(exc.__traceback__))
    assert marks(tmp_path / "m", "ran") <= {1, 2}  # item 4 never ran
    assert_idle(client)


@pytest.mark.parametrize("node", [Items, SyncItems])
def test_unpicklable_params_are_named_before_anything_is_sent(
    node: type[pocketcore.BaseNode], tmp_path: Path
) -> None:
    step = node()
    step.set_params({"marks": str(tmp_path), "lock": threading.Lock()})
    with pytest.raises(pocketcore.PocketcoreError) as info:
        pocketcore.run(step, {"items": [1, 2]}, executor="dask")
    assert str(info.value).startswith(f"cannot send node {node.__name__} ")
    assert "lock" in str(info.value)
    assert "distributed" not in "".join(traceback.format_tb(info.value.__traceback__))
    assert not marks(tmp_path, "ran")


@pytest.mark.parametrize("flow", [Passes, SyncPasses])
def test_batch_flows_refuse_the_dask_executor(flow: type[pocketcore.Flow]) -> None:
    inner = pocketcore.Node()
    with pytest.raises(pocketcore.ConfigError, match=f"the passes of {flow.__name__} run prep"):
        pocketcore.run(flow(start=inner), executor="dask")


def pids(client: Client) -> dict[str, int]:
    return client.run(os.getpid)  # type: ignore[no-any-return]


@pytest.mark.parametrize("node", [Exits, SyncExits])
@pytest.mark.parametrize(("how", "kind"), [("exit", SystemExit), ("interrupt", KeyboardInterrupt)])
def test_an_item_that_exits_raises_its_own_exception_and_the_worker_lives_on(
    client: Client,
    tmp_path: Path,
    node: type[pocketcore.BaseNode],
    how: str,
    kind: type[BaseException],
) -> None:
    # dask lets SystemExit (and KeyboardInterrupt) end a worker process: the
    # nanny started a new one and the run failed blaming a worker's death.
    before = pids(client)
    shared = {"marks": str(tmp_path), "exits": 2, "how": how}
    with pytest.raises(kind) as info:
        pocketcore.run(node(), shared, executor="dask")
    assert type(info.value) is kind  # the item's own, unwrapped, as with a local executor
    if kind is SystemExit:
        assert info.value.code == 3
    assert getattr(info.value, "__notes__", []) == [
        f"raised by item 2 of {node.__name__} on a dask worker"
    ]
    assert "leave" in "".join(traceback.format_tb(info.value.__traceback__))
    assert pids(client) == before  # no worker died
    assert_idle(client)
    if node is Exits:  # the batch stopped as for any failure
        assert marks(tmp_path, "cancelled") == marks(tmp_path, "started") - {2}
