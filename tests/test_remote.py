"""What the kernel does for an executor that runs items in other processes."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pytest

import pocketcore
from pocketcore.testing import RecordingExecutor


class Pickling:
    """A remote-looking executor: pickles the work and each item, runs the copies."""

    name = "pickling"
    backend = None
    remote = True

    def __init__(self) -> None:
        self.seen_fns: list[Any] = []

    def run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return RecordingExecutor().run(fn)

    async def map(
        self, fn: Callable[[Any], Awaitable[Any]], items: Iterable[Any], *, limit: int | None
    ) -> list[Any]:
        self.seen_fns.append(fn)
        work = pickle.loads(pickle.dumps(fn))
        return [await work(pickle.loads(pickle.dumps(i))) for i in items]

    async def map_blocking(
        self, fn: Callable[[Any], Any], items: Iterable[Any], *, limit: int | None
    ) -> list[Any]:
        self.seen_fns.append(fn)
        work = pickle.loads(pickle.dumps(fn))
        return [work(pickle.loads(pickle.dumps(i))) for i in items]


class Double(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        self.touched = True  # on the copy: never seen by post
        return item * 2

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res
        shared["touched"] = getattr(self, "touched", False)


class SyncDouble(pocketcore.ParallelBatchNode):
    def prep(self, shared: dict[str, Any]) -> Any:
        return shared["items"]

    def exec(self, item: Any) -> Any:
        return item * 2

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


class Tail(pocketcore.Node):
    pass


@pytest.mark.parametrize("cls", [Double, SyncDouble])
def test_only_a_detached_copy_travels(cls: type[pocketcore.BaseNode]) -> None:
    node = cls()
    node >> Tail()  # the rest of the graph must not be sent along
    rec = Pickling()
    shared: dict[str, Any] = {"items": [1, 2, 3]}
    pocketcore.run(pocketcore.AsyncFlow(start=node), shared, executor=rec)
    assert shared["out"] == [2, 4, 6]
    (fn,) = rec.seen_fns
    sent = fn.__self__ if hasattr(fn, "__self__") else fn.args[0]
    assert isinstance(sent, cls)
    assert sent.successors == {}
    assert shared.get("touched", False) is False


def test_an_unpicklable_item_is_named() -> None:
    with pytest.raises(pocketcore.PocketcoreError, match="cannot send item 1 of node Double") as e:
        pocketcore.run(Double(), {"items": [1, threading.Lock(), 3]}, executor=Pickling())
    assert "'pickling'" in str(e.value)
    assert "lock" in str(e.value).lower()


def test_unpicklable_params_are_named_before_any_item() -> None:
    node = SyncDouble()
    node.set_params({"lock": threading.Lock()})
    rec = Pickling()
    with pytest.raises(pocketcore.PocketcoreError, match="cannot send node SyncDouble"):
        pocketcore.run(node, {"items": [1]}, executor=rec)
    assert rec.seen_fns == []


def test_batch_flows_refuse_a_remote_executor() -> None:
    class Passes(pocketcore.AsyncParallelBatchFlow):
        async def prep_async(self, shared: Any) -> list[dict[str, int]]:
            return [{"k": 1}]

    with pytest.raises(pocketcore.ConfigError, match="passes of Passes run prep and post"):
        pocketcore.run(Passes(start=Tail()), executor=Pickling())
    # ... while the batch nodes inside a locally run flow may use it.
    rec = Pickling()
    inner = Double(executor=rec)
    shared: dict[str, Any] = {"items": [5]}
    pocketcore.run(Passes(start=inner, executor="asyncio"), shared)
    assert shared["out"] == [10]
    assert len(rec.seen_fns) == 1


class PicklingWithoutBlocking(Pickling):
    """A remote executor with only ``map``: sync batches reach it as coroutines."""

    map_blocking = None  # type: ignore[assignment]


def test_sync_batches_reach_a_remote_executor_without_map_blocking() -> None:
    rec = PicklingWithoutBlocking()
    shared: dict[str, Any] = {"items": [1, 2]}
    pocketcore.run(SyncDouble(), shared, executor=rec, max_concurrency=1)
    assert shared["out"] == [2, 4]
    assert len(rec.seen_fns) == 1


def test_observers_stay_here_with_a_remote_executor() -> None:
    events: list[tuple[Any, ...]] = []

    class Listener:
        @pocketcore.hookimpl
        def pocketcore_batch_start(self, node: Any, size: Any) -> None:
            events.append(("start", size))

        @pocketcore.hookimpl
        def pocketcore_batch_item_done(self, index: int, result: Any) -> None:
            events.append(("item", index, result))

    registry = pocketcore.get_registry()
    listener = Listener()
    registry.register(listener, name="remote-listener")
    try:
        for cls in (Double, SyncDouble):
            events.clear()
            shared: dict[str, Any] = {"items": [3, 4]}
            pocketcore.run(cls(), shared, executor=Pickling())  # pickles what it is given
            assert shared["out"] == [6, 8]
            assert events == [("start", 2), ("item", 0, 6), ("item", 1, 8)]
    finally:
        registry.unregister(listener)
