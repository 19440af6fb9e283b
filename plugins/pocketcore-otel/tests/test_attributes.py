"""Cache hits, the batch's controls, and the trace context that travels to remote workers."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from conftest import Recorded
from opentelemetry import trace
from opentelemetry.trace import StatusCode, Tracer
from tree import Tree

import pocketcore
from pocketcore.testing import RecordingExecutor
from pocketcore_otel import (
    BATCH_CACHE_HITS,
    BATCH_LIMIT,
    BATCH_LIMITER,
    BATCH_TIMEOUT,
    EXECUTOR_NAME,
    ITEM_ATTEMPTS,
    ITEM_CACHED,
    ITEM_DEFERRED,
    ITEM_INDEX,
    ITEM_UNREPORTED,
    NODE_CACHED,
    Traceparent,
)


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


class Square(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return list(shared["items"])

    async def exec_async(self, item: int) -> int:
        return item * item


class DictStore(pocketcore.BaseStore):
    """A result-cache store in a dict."""

    location = "dict"

    def __init__(self) -> None:
        self.data: dict[bytes, tuple[bytes, str]] = {}

    def get_many(self, keys: Sequence[bytes]) -> Mapping[bytes, bytes]:
        return {k: self.data[k][0] for k in keys if k in self.data}

    def put(self, key: bytes, value: bytes, node: str) -> None:
        self.data[key] = (value, node)

    def info(self) -> pocketcore.StoreInfo:
        return pocketcore.StoreInfo(self.location, {}, 0)

    def clear(self, node: str | None = None) -> int:
        gone = len(self.data)
        self.data.clear()
        return gone

    def close(self) -> None:
        pass


@pytest.mark.parametrize("executor", ["sequential", "asyncio", "trio"])
def test_cache_hits_have_spans_of_no_duration(spans: Recorded, executor: str) -> None:
    cache = DictStore()
    pocketcore.run(Square(), {"items": [1, 3]}, executor=executor, cache=cache)
    spans.clear()
    pocketcore.run(Square(), {"items": [1, 2, 3]}, executor=executor, cache=cache)
    tree = Tree(spans.spans())
    assert attrs(tree.root)[BATCH_CACHE_HITS] == 2
    items = sorted(tree.children(tree.root), key=lambda s: attrs(s)[ITEM_INDEX])
    assert [(attrs(s)[ITEM_INDEX], attrs(s).get(ITEM_CACHED)) for s in items] == [
        (0, True),
        (1, None),
        (2, True),
    ]
    for hit in (items[0], items[2]):
        assert hit.start_time == hit.end_time
        assert ITEM_ATTEMPTS not in attrs(hit)
    assert attrs(items[1])[ITEM_ATTEMPTS] == 1


class Loaded(pocketcore.Node):
    """A plain node that opts in to the cache."""

    cache = True

    def prep(self, shared: Any) -> Any:
        return shared["x"]

    def exec(self, x: int) -> int:
        return x + 1


def test_a_cached_plain_nodes_step_says_whether_its_result_came_from_the_cache(
    spans: Recorded,
) -> None:
    cache = DictStore()
    for _ in range(2):
        pocketcore.run(pocketcore.Flow(start=Loaded()), {"x": 1}, cache=cache)
    steps = [s for s in spans.spans() if NODE_CACHED in attrs(s)]
    assert [attrs(s)[NODE_CACHED] for s in steps] == [False, True]


def test_the_batch_span_has_its_controls(
    spans: Recorded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pocketcore.toml").write_text("[limiters.llm]\nmax_concurrency = 5\n")
    pocketcore.run(
        Square(timeout=1.5, limiter="llm", max_per_second=1000),
        {"items": [1]},
        executor="trio",
        max_concurrency=7,
    )
    tree = Tree(spans.spans())
    a = attrs(tree.root)
    assert (a[EXECUTOR_NAME], a[BATCH_LIMIT], a[BATCH_TIMEOUT], a[BATCH_LIMITER]) == (
        "trio",
        7,
        1.5,
        "llm",
    )


# --- remote workers: the trace context travels with the item ------------------------

USER: list[Tracer] = []  # the tracer user code on the "worker" opens its spans with


def _run_async(work: bytes, sent: bytes) -> Any:
    return anyio.run(pickle.loads(work), pickle.loads(sent))


def _run_sync(work: bytes, sent: bytes) -> Any:
    return pickle.loads(work)(pickle.loads(sent))


class Elsewhere(pocketcore.BaseExecutor):
    """A remote-looking executor: the work and each item travel pickled, and run in a new thread.

    A new thread starts with an empty context, as another process would: only
    what travels with the item can tell user code there which trace it is in.
    """

    name = "elsewhere"
    backend = None
    remote = True

    def run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return RecordingExecutor().run(fn)

    @staticmethod
    def _in_a_thread(call: Callable[..., Any], *args: Any) -> Any:
        out: list[tuple[bool, Any]] = []

        def target() -> None:
            try:
                out.append((True, call(*args)))
            except BaseException as exc:
                out.append((False, exc))

        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
        ok, value = out[0]
        if not ok:
            raise value
        return value

    async def map(self, fn: Any, items: Any, *, limit: Any, **keywords: Any) -> list[Any]:
        work = pickle.dumps(fn)
        return [self._in_a_thread(_run_async, work, pickle.dumps(i)) for i in items]

    async def map_blocking(self, fn: Any, items: Any, *, limit: Any, **keywords: Any) -> list[Any]:
        work = pickle.dumps(fn)
        return [self._in_a_thread(_run_sync, work, pickle.dumps(i)) for i in items]


class Fetch(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[str]:
        return list(shared["pages"])

    async def exec_async(self, page: str) -> str:
        with USER[0].start_as_current_span("http get", attributes={"page": page}):
            await anyio.lowlevel.checkpoint()
        if page == "bad":
            raise ValueError(f"cannot fetch {page!r}")
        return page.upper()


class Resize(pocketcore.ParallelBatchNode):
    def prep(self, shared: dict[str, Any]) -> list[str]:
        return list(shared["pages"])

    def exec(self, page: str) -> str:
        with USER[0].start_as_current_span("http get", attributes={"page": page}):
            return page.upper()


@pytest.fixture
def user(spans: Recorded) -> Recorded:
    USER[:] = [spans.user]
    return spans


@pytest.mark.parametrize("cls", [Fetch, Resize])
def test_spans_opened_on_a_remote_worker_join_the_items_trace(
    user: Recorded, cls: type[pocketcore.BaseNode]
) -> None:
    pocketcore.run(cls(), {"pages": ["home", "faq"]}, executor=Elsewhere())
    tree = Tree(user.spans())  # one trace, one root: nothing started a trace of its own
    assert tree.root.name == f"pocketcore.run {cls.__name__}"
    items = sorted(tree.children(tree.root), key=lambda s: attrs(s)[ITEM_INDEX])
    assert [attrs(s)[ITEM_INDEX] for s in items] == [0, 1]
    for item, page in zip(items, ["home", "faq"], strict=True):
        assert attrs(item)[ITEM_DEFERRED] is True
        (worker,) = tree.children(item)
        assert (worker.name, attrs(worker)["page"]) == ("http get", page)
        assert worker.parent is not None
        assert worker.parent.is_remote  # it came through the traceparent
        assert item.start_time is not None
        assert worker.start_time is not None
        assert item.start_time <= worker.start_time  # the item's span opens when it is sent


def test_items_of_a_failed_remote_batch_are_ended_unreported(user: Recorded) -> None:
    with pytest.raises(ValueError, match="cannot fetch 'bad'"):
        pocketcore.run(Fetch(), {"pages": ["home", "bad", "never"]}, executor=Elsewhere())
    tree = Tree(user.spans())
    assert tree.root.status.status_code is StatusCode.ERROR
    items = sorted(tree.named("pocketcore.item Fetch"), key=lambda s: attrs(s)[ITEM_INDEX])
    # The executor pulled two items before the second failed; neither was reported.
    assert [(attrs(s)[ITEM_INDEX], attrs(s).get(ITEM_UNREPORTED)) for s in items] == [
        (0, True),
        (1, True),
    ]
    assert all(s.status.status_code is StatusCode.UNSET for s in items)
    assert all(s.end_time is not None for s in user.spans())


def test_a_traceparent_pickles_and_restores_the_context_it_found() -> None:
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    sent = pickle.loads(pickle.dumps(Traceparent(carrier)))
    before = trace.get_current_span()
    with sent:
        inside = trace.get_current_span().get_span_context()
        assert format(inside.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
        assert format(inside.span_id, "016x") == "b7ad6b7169203331"
        assert inside.is_remote
    assert trace.get_current_span() is before


@pytest.mark.parametrize("executor", ["sequential", "asyncio", "trio"])
@pytest.mark.parametrize("on_error", ["raise", "collect"])
def test_a_failed_item_is_an_error_whether_collected_or_not(
    spans: Recorded, executor: str, on_error: str
) -> None:
    class Flaky(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> list[int]:
            return [1, 2]

        async def exec_async(self, x: int) -> int:
            if x == 2:
                raise ValueError("two is bad")
            return x

    if on_error == "raise":
        with pytest.raises(ValueError, match="two is bad"):
            pocketcore.run(Flaky(), {}, executor=executor)
    else:
        pocketcore.run(Flaky(on_error="collect"), {}, executor=executor)
    items = {attrs(s)[ITEM_INDEX]: s for s in Tree(spans.spans()).named("pocketcore.item Flaky")}
    failed = items[1]
    assert failed.status.status_code is StatusCode.ERROR
    recorded = [e.attributes for e in failed.events if e.name == "exception"]
    assert [(a["exception.type"], a["exception.message"]) for a in recorded] == [
        ("ValueError", "two is bad")
    ]
    if 0 in items:  # with raise, the other item may have been cancelled before it started
        assert items[0].status.status_code is StatusCode.UNSET
