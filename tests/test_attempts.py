"""Attempts, fallbacks and batch ends as observers see them, and contexts sent with remote items.

The property at the heart of it: for every batch node class, executor,
limit, error policy and cache setting, each item that ran reports exactly the
attempts its ``exec`` made (numbered from 0, each ended with what it raised),
inside the item's own start and done and in the item's context; a fallback
that gave the result is reported once, with the failure it replaced; and
every batch reports one start, with the executor and limit it ran with, and
one end, with what ``post`` received or what the batch raised.
"""

from __future__ import annotations

import contextvars
import pickle
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore.testing import RecordingExecutor

from .strategies import executor_names, limits
from .test_cache import DictStore

# The item whose start the recorder saw last, in this context.
SEEN_ITEM: contextvars.ContextVar[int | None] = contextvars.ContextVar("seen_item", default=None)


class Events:
    """Records the batch, item and attempt events, in order, from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[Any, ...]] = []

    def add(self, *event: Any) -> None:
        with self.lock:
            self.log.append(event)

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [e for e in self.log if e[0] == kind]

    @pocketcore.hookimpl
    def pocketcore_batch_start(
        self, node: Any, size: Any, executor: Any, limit: Any, timeout: Any, limiters: Any
    ) -> None:
        name = None if executor is None else executor.name
        self.add("batch_start", type(node).__name__, size, name, limit, timeout, limiters)

    @pocketcore.hookimpl
    def pocketcore_batch_end(self, node: Any, results: Any, exception: Any) -> None:
        self.add("batch_end", type(node).__name__, results, exception)

    @pocketcore.hookimpl
    def pocketcore_batch_item_start(self, index: int) -> None:
        SEEN_ITEM.set(index)
        self.add("start", index)

    @pocketcore.hookimpl
    def pocketcore_batch_item_done(self, index: int, result: Any, exception: Any) -> None:
        self.add("done", index, result, exception)

    @pocketcore.hookimpl
    def pocketcore_batch_item_attempt_start(self, index: int, attempt: int) -> None:
        self.add("attempt_start", index, attempt, SEEN_ITEM.get())

    @pocketcore.hookimpl
    def pocketcore_batch_item_attempt_done(
        self, index: int, attempt: int, exception: Any, duration: float
    ) -> None:
        assert duration >= 0
        self.add("attempt_done", index, attempt, exception, SEEN_ITEM.get())

    @pocketcore.hookimpl
    def pocketcore_batch_item_fallback(self, index: int, exception: Any, result: Any) -> None:
        self.add("fallback", index, exception, result, SEEN_ITEM.get())

    @pocketcore.hookimpl
    def pocketcore_batch_item_cached(self, index: int, result: Any) -> None:
        self.add("cached", index, result)


@pytest.fixture
def events() -> Iterator[Events]:
    """An :class:`Events` in the process-wide registry (Hypothesis examples clear it)."""
    plugin = Events()
    registry = pocketcore.get_registry()
    registry.register(plugin, name="attempt-events")
    yield plugin
    registry.unregister(plugin)


# --- the batch nodes ----------------------------------------------------------------


class Flaky(Exception):
    """What a failing attempt raises."""


class Plan:
    """What each item does: how many attempts fail before one succeeds, and what it raised."""

    def __init__(self, failures: dict[int, int], rescue: bool) -> None:
        self.failures = failures  # item -> attempts that fail before one succeeds
        self.rescue = rescue  # the fallback returns a value (else it re-raises)
        self.lock = threading.Lock()
        self.raised: dict[int, list[BaseException]] = {}  # item -> each attempt's exception
        self.attempts: dict[int, int] = {}  # item -> attempts made
        self.rescued: dict[int, tuple[BaseException, Any]] = {}

    def __getstate__(self) -> object:
        # What identifies a plan to the result cache (it is a node attribute,
        # part of the key): what exec returns of it, item * 10 for every plan.
        return "item * 10"

    def begin(self, item: int) -> int:
        with self.lock:
            n = self.attempts[item] = self.attempts.get(item, 0) + 1
        return n

    def end(self, item: int, n: int) -> int:
        if n <= self.failures.get(item, 0):
            exc = Flaky(f"item {item} attempt {n - 1} fails")
            with self.lock:
                self.raised.setdefault(item, []).append(exc)
            raise exc
        return item * 10

    def fallback(self, item: int, exc: Exception) -> Any:
        if not self.rescue:
            raise exc
        result = -item - 1
        with self.lock:
            self.rescued[item] = (exc, result)
        return result


class SyncItems:
    def prep(self, shared: dict[str, Any]) -> list[int]:
        return list(shared["items"])

    def exec(self, item: int) -> int:
        plan: Plan = self.plan  # type: ignore[attr-defined]
        return plan.end(item, plan.begin(item))

    def exec_fallback(self, item: int, exc: Exception) -> Any:
        return self.plan.fallback(item, exc)  # type: ignore[attr-defined]

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


class AsyncItems:
    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return list(shared["items"])

    async def exec_async(self, item: int) -> int:
        plan: Plan = self.plan  # type: ignore[attr-defined]
        n = plan.begin(item)  # counted before the await: a sibling's failure may cancel it there
        await anyio.lowlevel.checkpoint()
        return plan.end(item, n)

    async def exec_fallback_async(self, item: int, exc: Exception) -> Any:
        return self.plan.fallback(item, exc)  # type: ignore[attr-defined]

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


class OneByOne(SyncItems, pocketcore.BatchNode):
    pass


class OneByOneAsync(AsyncItems, pocketcore.AsyncBatchNode):
    pass


class OnThreads(SyncItems, pocketcore.ParallelBatchNode):
    pass


class Concurrent(AsyncItems, pocketcore.AsyncParallelBatchNode):
    pass


CLASSES = [OneByOne, OneByOneAsync, OnThreads, Concurrent]


@st.composite
def plans(draw: st.DrawFn) -> tuple[list[int], dict[int, int], bool]:
    items = draw(st.lists(st.integers(0, 30), unique=True, max_size=8))
    failures = {i: draw(st.integers(0, 3)) for i in items}
    return items, failures, draw(st.booleans())


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cls=st.sampled_from(CLASSES),
    plan=plans(),
    retries=st.integers(1, 3),
    executor=executor_names,
    limit=limits,
    collect=st.booleans(),
    cached=st.booleans(),
)
def test_attempts_and_fallbacks_are_reported_as_they_happen(
    events: Events,
    cls: type[pocketcore.BaseNode],
    plan: tuple[list[int], dict[int, int], bool],
    retries: int,
    executor: str,
    limit: int | None,
    collect: bool,
    cached: bool,
) -> None:
    items, failures, rescue = plan
    parallel = cls.fans_out
    on_error = "collect" if collect and parallel else None
    store = DictStore() if cached else None
    # With a cache, a first run stores every other item; the second is observed.
    runs = [items[::2], items] if cached else [items]
    for run, batch in enumerate(runs):
        events.log.clear()
        p = Plan(failures if run == len(runs) - 1 else {}, rescue)
        node = cls(max_retries=retries)  # type: ignore[call-arg]
        node.plan = p  # type: ignore[attr-defined]  # keyed as its __getstate__ says
        shared: dict[str, Any] = {"items": batch}
        try:
            pocketcore.run(
                node,
                shared,
                executor=executor,
                max_concurrency=limit,
                on_error=on_error,
                cache=store,
            )
        except Flaky as exc:
            raised: Flaky | None = exc
        else:
            raised = None
    hits = {e[1] for e in events.of("cached")}
    stored = set(range(0, len(items), 2)) if cached else set()
    # Hits are reported as the items are pulled: a failed batch may not pull them all.
    assert hits == stored if raised is None else hits <= stored
    check_batch(events, cls, items, executor, limit, shared, raised)
    for index, item in enumerate(items):
        check_item(events, index, item, p, retries, hit=index in hits)


def check_batch(
    events: Events,
    cls: type[pocketcore.BaseNode],
    items: list[int],
    executor: str,
    limit: int | None,
    shared: dict[str, Any],
    raised: BaseException | None,
) -> None:
    ((_, name, size, executor_name, batch_limit, timeout, limiters),) = events.of("batch_start")
    assert (name, size, timeout, limiters) == (cls.__name__, len(items), None, ())
    assert (executor_name, batch_limit) == ((executor, limit) if cls.fans_out else (None, 1))
    ((_, _, results, exception),) = events.of("batch_end")
    assert events.log[0][0] == "batch_start"
    assert events.log[-1][0] == "batch_end"
    if raised is None:
        assert exception is None
        assert results == shared["out"]
    else:
        assert results is None
        assert exception is raised


def check_item(
    events: Events, index: int, item: int, plan: Plan, retries: int, *, hit: bool
) -> None:
    mine = [e for e in events.log if e[0] != "batch_start" and len(e) > 1 and e[1] == index]
    if hit or item not in plan.attempts:  # a cache hit, or never started (a sibling failed)
        assert [e[0] for e in mine] in ([], ["cached"], ["start", "done"])
        assert not [e for e in mine if e[0].startswith(("attempt", "fallback"))]
        return
    made = plan.attempts[item]
    assert 1 <= made <= retries
    kinds = [e[0] for e in mine]
    assert kinds[0] == "start"
    assert kinds[-1] == "done"
    attempts = [e for e in mine if e[0].startswith("attempt")]
    assert [e[0] for e in attempts] == ["attempt_start", "attempt_done"] * made
    assert [e[2] for e in attempts] == [n for n in range(made) for _ in (0, 1)]
    # Reported in the item's context: where its start hook set the variable.
    assert all(e[-1] == index for e in mine if e[0].startswith(("attempt", "fallback")))
    failed = plan.raised.get(item, [])
    ends = [e[3] for e in attempts if e[0] == "attempt_done"]
    assert ends[: len(failed)] == failed[:made]
    (_, _, result, exception) = mine[-1]
    fallbacks = [e for e in mine if e[0] == "fallback"]
    # A thread's fallback may return after its batch failed: the item was then
    # cancelled while it waited for the thread, and its result dropped.
    if item in plan.rescued and exception is None:
        exc, rescued = plan.rescued[item]
        assert fallbacks == [("fallback", index, exc, rescued, index)]
        assert ends[-1] is exc
        assert kinds[-2] == "fallback"
        assert (result, exception) == (rescued, None)
    else:
        assert fallbacks == []
        if exception is None and len(failed) < made:  # the last attempt succeeded
            assert ends[-1] is None
            assert result == item * 10


# --- nobody listening to attempts ---------------------------------------------------


class Retried(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return [1, 2, 3]

    async def exec_async(self, item: int) -> bool:
        frame: Any = sys._getframe()
        while frame is not None:
            if frame.f_code.co_name == "__call__" and frame.f_code.co_filename.endswith(
                "report.py"
            ):
                return True
            frame = frame.f_back
        return False

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["stand-in"] = exec_res


class ItemsOnly:
    @pocketcore.hookimpl
    def pocketcore_batch_item_done(self, index: int) -> None:
        pass


@pytest.mark.parametrize("listener", [None, ItemsOnly, Events])
def test_exec_has_a_stand_in_only_when_attempts_are_heard(listener: Any) -> None:
    registry = pocketcore.get_registry()
    plugin = None if listener is None else listener()
    if plugin is not None:
        registry.register(plugin, name="stand-in-listener")
    try:
        shared: dict[str, Any] = {}
        pocketcore.run(Retried(max_retries=3), shared)
    finally:
        if plugin is not None:
            registry.unregister(plugin)
    assert shared["stand-in"] == [listener is Events] * 3


# --- what a batch is reported to run with ---------------------------------------------


def test_batch_start_has_the_resolved_settings(events: Events, tmp_path: Any) -> None:
    (tmp_path / "pocketcore.toml").write_text(
        'executor = "trio"\nmax_concurrency = 3\n[limiters.llm]\nmax_concurrency = 5\n'
    )
    events.log.clear()
    node = Concurrent(timeout=2.5, max_per_second=1000.0, limiter="llm")
    node.plan = Plan({}, rescue=False)  # type: ignore[attr-defined]
    pocketcore.run(node, {"items": [1, 2]})
    ((_, _, size, executor, limit, timeout, limiters),) = events.of("batch_start")
    assert (size, executor, limit, timeout) == (2, "trio", 3, 2.5)
    assert [(lim.name, lim.max_per_second, lim.max_concurrency) for lim in limiters] == [
        (None, 1000.0, None),
        ("llm", None, 5),
    ]


def test_a_batch_that_fails_ends_with_its_exception(events: Events) -> None:
    events.log.clear()
    node = OnThreads()
    node.plan = Plan({1: 5}, rescue=False)  # type: ignore[attr-defined]
    with pytest.raises(Flaky, match="item 1 attempt 0 fails") as caught:
        pocketcore.run(node, {"items": [0, 1, 2]}, executor="trio", max_concurrency=1)
    assert events.of("batch_end") == [("batch_end", "OnThreads", None, caught.value)]


def test_batch_flows_report_their_end_and_no_attempts(events: Events) -> None:
    class Leaf(pocketcore.Node):
        def exec(self, prep_res: Any) -> str:
            return "ran"

    class Passes(pocketcore.BatchFlow):
        def prep(self, shared: Any) -> list[dict[str, int]]:
            return [{"k": 1}, {"k": 2}]

    events.log.clear()
    pocketcore.run(Passes(start=Leaf(max_retries=2)), {})
    assert [e[0] for e in events.log] == ["batch_start", *["start", "done"] * 2, "batch_end"]
    assert events.log[0][3:5] == (None, 1)
    assert events.log[-1][2:] == ([None, None], None)


# --- contexts sent with items to other processes ---------------------------------------

# What the worker side saw: (index entered, index the item's exec read, exited).
SENT: list[tuple[str, int]] = []
CARRIED: contextvars.ContextVar[int | None] = contextvars.ContextVar("carried", default=None)


class Stamp:
    """A picklable context manager: the index of the item it was sent with, entered around it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.token: contextvars.Token[int | None] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"index": self.index, "token": None}

    def __enter__(self) -> None:
        SENT.append(("enter", self.index))
        self.token = CARRIED.set(self.index)

    def __exit__(self, *exc: object) -> None:
        assert self.token is not None
        CARRIED.reset(self.token)
        SENT.append(("exit", self.index))


class Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[int, Any]] = []
        self.thread: set[int] = set()

    @pocketcore.hookimpl
    def pocketcore_batch_item_sent(self, index: int, item: Any) -> Stamp:
        self.sent.append((index, item))
        return Stamp(index)


def _run_async(work: bytes, sent: bytes) -> Any:
    return anyio.run(pickle.loads(work), pickle.loads(sent))


def _run_sync(work: bytes, sent: bytes) -> Any:
    return pickle.loads(work)(pickle.loads(sent))


class ElsewhereAsync:
    """A remote-looking executor: each item and the work travel pickled, and run in a thread.

    A new thread starts with an empty context, as another process would: only
    what was sent with the item reaches ``exec``.
    """

    name = "elsewhere"
    backend = None
    remote = True

    def run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return RecordingExecutor().run(fn)

    def _in_a_thread(self, call: Callable[..., Any], *args: Any) -> Any:
        out: list[Any] = []
        thread = threading.Thread(target=lambda: out.append(call(*args)))
        thread.start()
        thread.join()
        return out[0]

    async def map(
        self, fn: Callable[[Any], Awaitable[Any]], items: Iterable[Any], *, limit: int | None
    ) -> list[Any]:
        work = pickle.dumps(fn)
        results = []
        for item in items:
            sent = pickle.dumps(item)
            results.append(self._in_a_thread(_run_async, work, sent))
        return results

    async def map_blocking(
        self, fn: Callable[[Any], Any], items: Iterable[Any], *, limit: int | None
    ) -> list[Any]:
        work = pickle.dumps(fn)
        results = []
        for item in items:
            sent = pickle.dumps(item)
            results.append(self._in_a_thread(_run_sync, work, sent))
        return results


class Elsewhere(ElsewhereAsync):
    """:class:`ElsewhereAsync` without ``map_blocking``: sync items reach ``map``."""

    map_blocking = None  # type: ignore[assignment]


class ReadsAsync(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return list(shared["items"])

    async def exec_async(self, item: int) -> tuple[int, int | None]:
        return item, CARRIED.get()

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


class Reads(pocketcore.ParallelBatchNode):
    def prep(self, shared: dict[str, Any]) -> list[int]:
        return list(shared["items"])

    def exec(self, item: int) -> tuple[int, int | None]:
        return item, CARRIED.get()

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


@pytest.mark.parametrize("cls", [ReadsAsync, Reads])
@pytest.mark.parametrize("executor_cls", [ElsewhereAsync, Elsewhere])
@pytest.mark.parametrize("cached", [False, True])
def test_what_an_observer_sends_is_entered_around_the_item_where_it_runs(
    cls: type[pocketcore.BaseNode], executor_cls: type[ElsewhereAsync], cached: bool
) -> None:
    sender = Sender()
    registry = pocketcore.get_registry()
    registry.register(sender, name="sender")
    store = DictStore() if cached else None
    try:
        if cached:  # items 20 and 40 are hits: they stay here and are not sent
            pocketcore.run(cls(), {"items": [20, 40]}, executor=executor_cls(), cache=store)
        SENT.clear()
        sender.sent.clear()
        shared: dict[str, Any] = {"items": [10, 20, 30, 40]}
        pocketcore.run(cls(), shared, executor=executor_cls(), cache=store)
    finally:
        registry.unregister(sender)
    missed = [0, 2] if cached else [0, 1, 2, 3]
    assert sender.sent == [(i, shared["items"][i]) for i in missed]
    assert [(what, i) for i in missed for what in ("enter", "exit")] == SENT
    ran_with = dict(shared["out"])
    assert [ran_with[shared["items"][i]] for i in missed] == missed
    if cached:  # hits come from the store: what they read when they first ran
        assert ran_with[20] == 0
        assert ran_with[40] == 1


def test_nothing_travels_when_nobody_sends(events: Events) -> None:
    events.log.clear()
    shared: dict[str, Any] = {"items": [1, 2]}
    pocketcore.run(ReadsAsync(), shared, executor=ElsewhereAsync(), max_concurrency=4)
    assert shared["out"] == [(1, None), (2, None)]
    # Items run elsewhere are reported once back, within their batch's start and end.
    assert events.log == [
        ("batch_start", "ReadsAsync", 2, "elsewhere", 4, None, ()),
        ("done", 0, (1, None), None),
        ("done", 1, (2, None), None),
        ("batch_end", "ReadsAsync", [(1, None), (2, None)], None),
    ]


class Slow(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return [7]

    async def exec_async(self, item: int) -> int:
        if self.cur_retry == 0:
            await anyio.sleep(5)
        return item


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
@pytest.mark.parametrize("cached", [False, True])
def test_an_attempt_that_times_out_ends_with_its_timeout(
    events: Events, executor: str, cached: bool
) -> None:
    events.log.clear()
    store = DictStore() if cached else None
    pocketcore.run(Slow(max_retries=2, timeout=0.05), {}, executor=executor, cache=store)
    ends = [(e[2], type(e[3]).__name__) for e in events.of("attempt_done")]
    assert ends == [(0, "TimeoutError"), (1, "NoneType")]
    assert events.of("batch_start")[0][5] == 0.05
