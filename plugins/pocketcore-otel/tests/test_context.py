"""A span user code opens inside exec is a child of its item's span, on every executor.

Async items run as tasks (asyncio, trio) or one after another in the flow's
task (sequential); sync items of the thread-backed classes run on worker
threads; the steps of a ParallelBatchFlow's passes run on worker threads
too. In each, the item's span is the current span while its exec runs, and
an item never sees a sibling's.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest
from conftest import Recorded
from opentelemetry import context as otel_context
from opentelemetry import trace
from tree import Tree

import pocketcore
from pocketcore_otel import ITEM_DEFERRED, ITEM_INDEX

EXECUTORS = ["sequential", "asyncio", "trio"]
N = 6


class Seen:
    """For each item: the span current in its exec, and the user span it opened there."""

    def __init__(self, recorded: Recorded) -> None:
        self.user = recorded.user
        self.lock = threading.Lock()
        self.current: dict[int, int] = {}  # item -> span id current in exec
        self.threads: set[int] = set()

    def enter(self, i: int) -> Any:
        with self.lock:
            self.current[i] = trace.get_current_span().get_span_context().span_id
            self.threads.add(threading.get_ident())
        return self.user.start_as_current_span("user work", attributes={"item": i})


class AsyncFetch(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: Any) -> range:
        return range(N)

    async def exec_async(self, i: int) -> int:
        with self.params["seen"].enter(i):
            # Later items finish first: the siblings overlap and interleave.
            await anyio.sleep(0.002 * (N - i))
        return i


class ThreadFetch(pocketcore.ParallelBatchNode):
    def prep(self, shared: Any) -> range:
        return range(N)

    def exec(self, i: int) -> int:
        with self.params["seen"].enter(i):
            time.sleep(0.002 * (N - i))
        return i


class AsyncOneByOne(AsyncFetch, pocketcore.AsyncBatchNode):
    pass


class OneByOne(ThreadFetch, pocketcore.BatchNode):
    pass


class PassStep(pocketcore.Node):
    def exec(self, prep_res: Any) -> None:
        with self.params["seen"].enter(self.params["i"]):
            time.sleep(0.002 * (N - self.params["i"]))


class ThreadPasses(pocketcore.ParallelBatchFlow):
    def prep(self, shared: Any) -> list[dict[str, int]]:
        return [{"i": i} for i in range(N)]


def run(spans: Recorded, node: pocketcore.BaseNode, executor: str) -> tuple[Tree, Seen]:
    seen = Seen(spans)
    node.set_params({"seen": seen})
    before = otel_context.get_current()
    pocketcore.run(node, {}, executor=executor)
    assert otel_context.get_current() == before, "the run left a context attached"
    return Tree(spans.spans()), seen


def check_user_spans(tree: Tree, seen: Seen, item_name: str) -> None:
    items = {span.attributes[ITEM_INDEX]: span for span in tree.named(item_name)}  # type: ignore[index]
    assert sorted(items) == list(range(N))
    users = tree.named("user work")
    assert len(users) == N
    for user in users:
        i = user.attributes["item"]  # type: ignore[index]
        item = items[i]  # type: ignore[index]
        assert tree.parent(user) is item
        assert seen.current[i] == item.context.span_id  # type: ignore[index]


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("cls", [AsyncFetch, ThreadFetch, AsyncOneByOne, OneByOne])
def test_a_user_span_in_exec_is_a_child_of_its_item(
    spans: Recorded, executor: str, cls: type[pocketcore.BaseNode]
) -> None:
    tree, seen = run(spans, cls(), executor)
    check_user_spans(tree, seen, f"pocketcore.item {cls.__name__}")
    if cls is ThreadFetch:
        assert threading.get_ident() not in seen.threads  # it really ran on worker threads


@pytest.mark.parametrize("executor", EXECUTORS)
def test_steps_of_passes_on_worker_threads_nest_under_their_pass(
    spans: Recorded, executor: str
) -> None:
    tree, seen = run(spans, ThreadPasses(start=PassStep()), executor)
    assert threading.get_ident() not in seen.threads
    for user in tree.named("user work"):
        step = tree.parent(user)
        assert step is not None
        assert step.name == "pocketcore.node PassStep"
        item = tree.parent(step)
        assert item is not None
        assert item.name == "pocketcore.item ThreadPasses"
        assert item.attributes == {ITEM_INDEX: user.attributes["item"]}  # type: ignore[index]
        assert seen.current[user.attributes["item"]] == step.context.span_id  # type: ignore[index]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_concurrent_runs_make_separate_traces(spans: Recorded, executor: str) -> None:
    """Two runs on two threads at once: neither adopts the other's spans."""
    errors: list[BaseException] = []

    def one() -> None:
        try:
            node = AsyncFetch()
            node.set_params({"seen": Seen(spans)})
            pocketcore.run(node, {}, executor=executor)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    by_trace: dict[int, list[Any]] = {}
    for span in spans.spans():
        by_trace.setdefault(span.context.trace_id, []).append(span)
    assert len(by_trace) == 2
    for trace_spans in by_trace.values():
        tree = Tree(trace_spans)  # one root: its run's
        items = tree.named("pocketcore.item AsyncFetch")
        assert sorted(s.attributes[ITEM_INDEX] for s in items) == list(range(N))  # type: ignore[index]
        for user in tree.named("user work"):
            item = tree.parent(user)
            assert item in items
            assert item.attributes[ITEM_INDEX] == user.attributes["item"]  # type: ignore[index,union-attr]


class Blocking(pocketcore.BaseExecutor):
    """An executor that runs blocking items itself, out of the observer's sight."""

    name = "blocking-test"
    backend = "asyncio"

    def run(self, fn: Any) -> Any:
        return anyio.run(fn)

    async def map(self, fn: Any, items: Any, *, limit: Any, **keywords: Any) -> list[Any]:
        return [await fn(item) for item in items]

    async def map_blocking(self, fn: Any, items: Any, *, limit: Any, **keywords: Any) -> list[Any]:
        return [fn(item) for item in items]


class BlockingPlugin:
    @pocketcore.hookimpl
    def pocketcore_register_executors(self, register: Any) -> None:
        register(Blocking())


@pytest.fixture
def blocking() -> Any:
    plugin = BlockingPlugin()
    registry = pocketcore.get_registry()
    registry.register(plugin, name="blocking-test")
    yield plugin
    registry.unregister(plugin)


def test_items_an_executor_runs_itself_get_spans_once_the_batch_is_back(
    spans: Recorded, blocking: Any
) -> None:
    begin = pocketcore.Node()
    node = ThreadFetch()
    begin >> node
    flow = pocketcore.Flow(start=begin)
    flow.set_params({"seen": Seen(spans)})
    pocketcore.run(flow, {}, executor="blocking-test")
    tree = Tree(spans.spans())
    step = tree.one("pocketcore.node ThreadFetch")
    items = tree.named("pocketcore.item ThreadFetch")
    assert sorted(s.attributes[ITEM_INDEX] for s in items) == list(range(N))  # type: ignore[index]
    for item in items:
        assert tree.parent(item) is step
        assert item.attributes[ITEM_DEFERRED] is True  # type: ignore[index]
        assert step.start_time <= item.start_time <= item.end_time <= step.end_time  # type: ignore[operator]
    # The items ran where no hook followed them: their user spans are the step's children.
    assert all(tree.parent(user) is step for user in tree.named("user work"))
