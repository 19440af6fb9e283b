"""Lifecycle hooks: every event exactly once, on every executor; free when unused."""

from __future__ import annotations

import collections
import contextvars
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import Registry

from .strategies import executor_names, limits


class Recorder:
    """An observer plugin that records every lifecycle event."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    @pocketcore.hookimpl
    def pocketcore_run_start(self, target: Any, shared: Any) -> None:
        self.events.append(("run_start", type(target).__name__))

    @pocketcore.hookimpl
    def pocketcore_run_end(self, target: Any, result: Any, exception: Any) -> None:
        self.events.append(("run_end", type(target).__name__, result, _name(exception)))

    @pocketcore.hookimpl
    def pocketcore_node_start(self, node: Any) -> None:
        self.events.append(("node_start", type(node).__name__))

    @pocketcore.hookimpl
    def pocketcore_node_end(self, node: Any, action: Any, exception: Any) -> None:
        self.events.append(("node_end", type(node).__name__, action, _name(exception)))

    @pocketcore.hookimpl
    def pocketcore_batch_start(self, node: Any, size: Any) -> None:
        self.events.append(("batch_start", type(node).__name__, size))

    @pocketcore.hookimpl
    def pocketcore_batch_item_done(
        self, node: Any, index: int, result: Any, exception: Any
    ) -> None:
        self.events.append(("item", type(node).__name__, index, result, _name(exception)))

    def kinds(self) -> collections.Counter[str]:
        return collections.Counter(e[0] for e in self.events)


def _name(exc: BaseException | None) -> str | None:
    return None if exc is None else type(exc).__name__


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    plugin = Recorder()
    registry = pocketcore.get_registry()
    registry.register(plugin, name="test-recorder")
    yield plugin
    registry.unregister(plugin)


class Square(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return shared["items"]

    async def exec_async(self, item: int) -> int:
        await anyio.sleep(0.001 * (item % 3))
        if item in self.params.get("fail", ()):
            raise ValueError(item)
        return item * item

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared.setdefault("out", []).append(exec_res)
        return "next"


class SquareOneByOne(Square, pocketcore.AsyncBatchNode):
    async def _exec(self, items: Any, attempt: Any = None) -> Any:
        return await pocketcore.AsyncBatchNode._exec(self, items)


class Tail(pocketcore.Node):
    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        return "end"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=st.lists(st.integers(0, 50), max_size=12),
    executor=executor_names,
    limit=limits,
    parallel=st.booleans(),
)
# The recorder is cleared at the start of every example, so sharing it is safe.
def test_every_event_exactly_once(
    recorder: Recorder, items: list[int], executor: str, limit: int | None, parallel: bool
) -> None:
    recorder.events.clear()
    head = Square() if parallel else SquareOneByOne()
    head - "next" >> Tail()
    flow = pocketcore.AsyncFlow(start=head)
    shared: dict[str, Any] = {"items": items}
    assert pocketcore.run(flow, shared, executor=executor, max_concurrency=limit) == "end"
    name = type(head).__name__
    assert recorder.events[0] == ("run_start", "AsyncFlow")
    assert recorder.events[-1] == ("run_end", "AsyncFlow", "end", None)
    assert recorder.kinds() == {
        "run_start": 1,
        "run_end": 1,
        "node_start": 2,
        "node_end": 2,
        "batch_start": 1,
        **({"item": len(items)} if items else {}),
    }
    assert ("batch_start", name, len(items)) in recorder.events
    done = sorted((e[2], e[3]) for e in recorder.events if e[0] == "item")
    assert done == [(i, x * x) for i, x in enumerate(items)]
    # Items are reported between the batch node's start and end.
    starts = recorder.events.index(("node_start", name))
    ends = recorder.events.index(("node_end", name, "next", None))
    assert all(starts < i < ends for i, e in enumerate(recorder.events) if e[0] == "item")


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    passes=st.lists(st.integers(0, 9), min_size=0, max_size=8),
    executor=executor_names,
    limit=limits,
)
def test_batch_flow_passes_are_items(
    recorder: Recorder, passes: list[int], executor: str, limit: int | None
) -> None:
    class Passes(pocketcore.AsyncParallelBatchFlow):
        async def prep_async(self, shared: Any) -> list[dict[str, int]]:
            return [{"k": k} for k in passes]

    class Leaf(pocketcore.AsyncNode):
        async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> str:
            return f"leaf{self.params['k']}"

    recorder.events.clear()
    pocketcore.run(Passes(start=Leaf()), {}, executor=executor, max_concurrency=limit)
    items = sorted((e[2], e[3]) for e in recorder.events if e[0] == "item")
    assert items == [(i, f"leaf{k}") for i, k in enumerate(passes)]
    assert recorder.kinds()["node_start"] == len(passes)
    assert recorder.kinds()["node_end"] == len(passes)


@pytest.mark.parametrize("executor", ["sequential", "asyncio", "trio"])
def test_failures_are_reported_once(recorder: Recorder, executor: str) -> None:
    recorder.events.clear()
    head = Square()
    head.set_params({"fail": [3]})
    flow = pocketcore.AsyncFlow(start=head)
    flow.set_params({"fail": [3]})
    with pytest.raises(ValueError, match="3"):
        pocketcore.run(flow, {"items": [1, 2, 3, 4, 5]}, executor=executor)
    failed = [e for e in recorder.events if e[0] == "item" and e[4] == "ValueError"]
    assert [e[2] for e in failed] == [2]
    assert recorder.events[-1] == ("run_end", "AsyncFlow", None, "ValueError")
    assert ("node_end", "Square", None, "ValueError") in recorder.events
    indexes = [e[2] for e in recorder.events if e[0] == "item"]
    assert len(indexes) == len(set(indexes))  # none reported twice


def test_sync_flows_and_direct_runs_are_observed(recorder: Recorder) -> None:
    class Batch(pocketcore.BatchNode):
        def prep(self, shared: Any) -> list[int]:
            return [1, 2]

        def exec(self, item: int) -> int:
            return -item

    class Loop(pocketcore.BatchFlow):
        def prep(self, shared: Any) -> list[dict[str, int]]:
            return [{"a": 1}, {"a": 2}, {"a": 3}]

    recorder.events.clear()
    Loop(start=Batch()).run({})
    kinds = recorder.kinds()
    assert kinds == {
        "run_start": 1,
        "run_end": 1,
        "batch_start": 4,  # the flow's passes, and the node in each pass
        "item": 3 + 3 * 2,
        "node_start": 3,
        "node_end": 3,
    }

    recorder.events.clear()

    async def main() -> None:
        await pocketcore.AsyncFlow(start=Tail()).run_async({})

    anyio.run(main)
    assert recorder.events == [
        ("run_start", "AsyncFlow"),
        ("node_start", "Tail"),
        ("node_end", "Tail", "end", None),
        ("run_end", "AsyncFlow", "end", None),
    ]


def test_no_listener_means_no_observer(pm: Registry) -> None:
    class OnlyExecutors:
        @pocketcore.hookimpl
        def pocketcore_register_executors(self, register: Any) -> None:
            pass

    pm.register(OnlyExecutors(), name="x")
    assert pm.observer is None
    listener = Recorder()
    pm.register(listener, name="listener")
    assert pm.observer is not None
    pm.unregister(listener)
    assert pm.observer is None


def test_without_listeners_pluggy_is_never_called(monkeypatch: pytest.MonkeyPatch) -> None:
    # The installed plugins implement no lifecycle hook, so a run must not
    # touch any of them: make calling one an error.
    registry = pocketcore.get_registry()
    assert registry.observer is None
    for name in pocketcore.hookspecs.LIFECYCLE_HOOKS:
        monkeypatch.setattr(registry.pm.hook, name, None)
    shared: dict[str, Any] = {"items": [1, 2, 3]}
    head = Square()
    head - "next" >> Tail()
    assert pocketcore.run(pocketcore.AsyncFlow(start=head), shared) == "end"
    assert shared["out"] == [[1, 4, 9]]


CURRENT_ITEM: contextvars.ContextVar[int | None] = contextvars.ContextVar("item", default=None)


class ContextSetter:
    """Sets a context variable when an item starts and resets it when it is done."""

    def __init__(self) -> None:
        self.tokens: dict[int, contextvars.Token[int | None]] = {}
        self.seen_at_done: dict[int, int | None] = {}

    @pocketcore.hookimpl
    def pocketcore_batch_item_start(self, index: int, item: Any) -> None:
        self.tokens[index] = CURRENT_ITEM.set(index)

    @pocketcore.hookimpl
    def pocketcore_batch_item_done(self, index: int) -> None:
        self.seen_at_done[index] = CURRENT_ITEM.get()
        CURRENT_ITEM.reset(self.tokens.pop(index))


class WhoAmIAsync(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return shared["items"]

    async def exec_async(self, item: int) -> Any:
        await anyio.sleep(0.001 * (item % 3))  # siblings interleave
        return CURRENT_ITEM.get()

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["seen"] = exec_res


class WhoAmIThreads(pocketcore.ParallelBatchNode):
    def prep(self, shared: dict[str, Any]) -> list[int]:
        return shared["items"]

    def exec(self, item: int) -> Any:
        time.sleep(0.001 * (item % 3))
        return CURRENT_ITEM.get()

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["seen"] = exec_res


class WhoAmIOneByOne(WhoAmIAsync, pocketcore.AsyncBatchNode):
    async def _exec(self, items: Any) -> Any:
        return await pocketcore.AsyncBatchNode._exec(self, items)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 10),
    executor=executor_names,
    limit=limits,
    kind=st.sampled_from([WhoAmIAsync, WhoAmIThreads, WhoAmIOneByOne]),
)
def test_an_item_starts_in_the_context_it_runs_in(
    n: int, executor: str, limit: int | None, kind: type[pocketcore.BaseNode]
) -> None:
    setter = ContextSetter()
    registry = pocketcore.get_registry()
    registry.register(setter, name="test-context-setter")
    try:
        shared: dict[str, Any] = {"items": list(range(n))}
        pocketcore.run(kind(), shared, executor=executor, max_concurrency=limit)
    finally:
        registry.unregister(setter)
    # Each item's exec saw its own index, never a sibling's, and the done
    # event came in the same context as the start.
    assert shared["seen"] == list(range(n))
    assert setter.seen_at_done == {i: i for i in range(n)}
    assert not setter.tokens
