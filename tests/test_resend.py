"""Every attempt of a remote item passes the batch's limiters here, one send per attempt.

A remote executor that reports its results (``Elsewhere`` below: the work
and each item pickled, as a process pool would) runs one attempt per send
when the batch has limiters; the kernel decides on each failed attempt as
it does for items that run here. A batch without limiters runs as before:
one ``map``, the attempts on the worker. (The same is checked on dask and
Ray by their suites, through ``pocketcore.testing``.)
"""

from __future__ import annotations

import functools
import itertools
import pickle
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio.to_thread
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import Failed, Gate, Limiter
from pocketcore._runtime.context import CUR_RETRY
from pocketcore.testing._resends import Refused
from pocketcore_asyncio import AsyncioExecutor
from tests.test_usage import Totals

SLACK = 0.03


async def _in_thread(fn: Callable[[Any], Any], item: Any) -> Any:
    return await anyio.to_thread.run_sync(fn, item)


class Elsewhere(AsyncioExecutor):
    """Items on copies of the work (pickled), each result reported as it comes back."""

    name = "elsewhere"
    remote = True
    reports_results = True

    def __init__(self) -> None:
        self.maps = 0

    async def map(  # type: ignore[override]
        self,
        fn: Callable[[Any], Awaitable[Any]],
        items: Iterable[Any],
        *,
        limit: int | None,
        gate: Gate | None = None,
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        self.maps += 1
        work = pickle.loads(pickle.dumps(fn))

        async def one(sent: tuple[int, Any]) -> Any:
            position, item = sent
            result = pickle.loads(pickle.dumps(await work(pickle.loads(pickle.dumps(item)))))
            if on_result is not None:
                on_result(position, result)
            return result

        return await super().map(one, enumerate(items), limit=limit, gate=gate)

    async def map_blocking(  # type: ignore[override]
        self, fn: Callable[[Any], Any], items: Iterable[Any], **keywords: Any
    ) -> list[Any]:
        return await self.map(functools.partial(_in_thread, fn), items, **keywords)


#: What each item did, by test and item: (attempt's cur_retry, when it started).
ATTEMPTS: dict[tuple[str, int], list[tuple[int, float]]] = {}
_LOCK = threading.Lock()
#: How many attempts run now, and the most that ever did, by test.
RUNNING: dict[str, list[int]] = {}


def _attempt(node: Any, item: int) -> tuple[int, int]:
    """One attempt of ``item``, following its script: "ok", "fail" or "429" (retry after 1 ms)."""
    with _LOCK:
        done = ATTEMPTS.setdefault((node.test, item), [])
        turn = len(done)
        done.append((node.cur_retry, time.monotonic()))
    script = node.script[item]
    outcome = script[min(turn, len(script) - 1)]
    pocketcore.report_usage(tokens=10)
    if outcome == "fail":
        raise ValueError(f"item {item} failed attempt {turn}")
    if outcome == "429":
        raise Refused(0.001)
    if outcome == "abort":
        raise Abort(item)
    return item, node.cur_retry


class Abort(BaseException):
    """Not an ``Exception``: no attempt, fallback or collect may take it for the item's failure."""


class Scripted(pocketcore.AsyncParallelBatchNode):
    """Items ``0 ..``, each attempt following the item's script; a fallback of its own."""

    def __init__(self, test: str, script: list[list[str]], hold: float = 0.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.test, self.script, self.hold = test, script, hold

    async def prep_async(self, shared: Any) -> Any:
        return range(len(self.script))

    async def exec_async(self, item: int) -> Any:
        with _LOCK:
            running = RUNNING.setdefault(self.test, [0, 0])
            running[0] += 1
            running[1] = max(running)
        try:
            await anyio.sleep(self.hold)
            return _attempt(self, item)
        finally:
            with _LOCK:
                running[0] -= 1

    async def exec_fallback_async(self, item: int, exc: Exception) -> Any:
        return fallback(self, item, exc)

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


class SyncScripted(pocketcore.ParallelBatchNode):
    """:class:`Scripted` with blocking steps."""

    def __init__(self, test: str, script: list[list[str]], **kw: Any) -> None:
        super().__init__(**kw)
        self.test, self.script = test, script

    def prep(self, shared: Any) -> Any:
        return range(len(self.script))

    def exec(self, item: int) -> Any:
        return _attempt(self, item)

    def exec_fallback(self, item: int, exc: Exception) -> Any:
        return fallback(self, item, exc)

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


def fallback(node: Any, item: int, exc: Exception) -> Any:
    """Odd items' fallbacks answer (here, with the last attempt's cur_retry); even ones re-raise."""
    state = CUR_RETRY.get()
    assert state is not None, "the fallback runs with the item's state"
    assert state.node is node, "the fallback runs here, on the node"
    if item % 2:
        return "fallback", item, node.cur_retry
    raise exc


def expected(script: list[str], retries: int, collect: bool, item: int) -> tuple[Any, int]:
    """What an item's script makes of it under ``max_retries=retries``, and its attempts' count."""
    failed = 0
    for turn in itertools.count():
        outcome = script[min(turn, len(script) - 1)]
        if outcome == "ok":
            return (item, failed), turn + 1
        if outcome == "429":
            continue
        if failed == retries - 1:
            if item % 2:
                return ("fallback", item, failed), turn + 1
            return ("failed", failed + 1) if collect else ("raised",), turn + 1
        failed += 1
    raise AssertionError  # pragma: no cover


SCRIPTS = st.lists(
    st.lists(st.sampled_from(["ok", "fail", "429"]), max_size=4).map(lambda s: [*s, "fail"])
    | st.lists(st.sampled_from(["fail", "429"]), max_size=4).map(lambda s: [*s, "ok"]),
    min_size=1,
    max_size=5,
)
_TESTS = itertools.count()


@settings(max_examples=40, deadline=None)
@given(
    SCRIPTS,
    st.integers(min_value=1, max_value=3),
    st.booleans(),
    st.booleans(),
    st.one_of(st.none(), st.integers(min_value=1, max_value=3)),
)
def test_the_attempts_of_remote_items_are_decided_here(
    scripts: list[list[str]], retries: int, collect: bool, blocking: bool, limit: int | None
) -> None:
    """Each item's fate is what its script says under ``max_retries``, a 429 costing no retry.

    Every attempt ran with its own ``cur_retry`` (a refusal repeats it), the
    fallback ran here once the attempts were spent (odd items' answer, even
    ones' re-raise: collected, or the batch fails), one ``map`` per send,
    and the limiter is idle afterwards.
    """
    test = f"decided-{next(_TESTS)}"
    limiter = Limiter(max_concurrency=2)
    executor = Elsewhere()
    cls = SyncScripted if blocking else Scripted
    policy: dict[str, Any] = {"on_error": "collect"} if collect else {}
    node = cls(test, scripts, limiter=limiter, max_retries=retries, max_concurrency=limit, **policy)
    wanted = [expected(script, retries, collect, i) for i, script in enumerate(scripts)]
    shared: dict[str, Any] = {}
    try:
        pocketcore.run(node, shared, executor=executor)
    except ValueError:
        raised = True
    else:
        raised = False
    assert raised == (not collect and ("raised",) in [fate for fate, _ in wanted])
    if not raised:
        out = [("failed", r.attempts) if isinstance(r, Failed) else r for r in shared["out"]]
        assert out == [fate for fate, _ in wanted]
        assert executor.maps == sum(sends for _, sends in wanted) - len(scripts) + 1
        for item, (_, sends) in enumerate(wanted):
            script = scripts[item]
            failed, counts = 0, []
            for turn in range(sends):  # an attempt's cur_retry: the item's failures before it
                counts.append(failed)
                failed += script[min(turn, len(script) - 1)] == "fail"
            assert [retry for retry, _ in ATTEMPTS[(test, item)]] == counts
    assert limiter.idle


def test_without_limiters_the_attempts_run_on_the_worker_in_one_map() -> None:
    executor = Elsewhere()
    node = Scripted("unlimited", [["fail", "fail", "ok"], ["ok"]], max_retries=3)
    shared: dict[str, Any] = {}
    pocketcore.run(node, shared, executor=executor)
    assert shared["out"] == [(0, 2), (1, 0)]
    assert executor.maps == 1


@pytest.mark.parametrize("cls", [Scripted, SyncScripted])
def test_a_retry_waits_its_turn(cls: type[Any]) -> None:
    test = f"turns-{cls.__name__}"
    node = cls(test, [["fail", "fail", "ok"]], limiter=Limiter(max_per_second=10), max_retries=3)
    pocketcore.run(node, {}, executor=Elsewhere())
    starts = [t for _, t in ATTEMPTS[(test, 0)]]
    assert len(starts) == 3
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.1 - SLACK


def test_an_item_waiting_to_retry_holds_no_slot() -> None:
    limiter = Limiter(max_concurrency=1)
    node = Scripted("slot", [["fail", "ok"], ["ok"]], limiter=limiter, max_retries=2, wait=0.3)
    pocketcore.run(node, {}, executor=Elsewhere())
    first, second = (t for _, t in ATTEMPTS[("slot", 0)])
    ((_, b),) = ATTEMPTS[("slot", 1)]
    assert first < b < second  # b ran while a waited to retry
    assert second - first >= 0.3 - SLACK


def test_the_batch_limit_bounds_every_send() -> None:
    # Retries are further maps: the batch's max_concurrency still bounds them all.
    node = Scripted(
        "bound", [["fail", "ok"]] * 6, hold=0.02, limiter=Limiter(), max_retries=2,
        max_concurrency=2,
    )  # fmt: skip
    shared: dict[str, Any] = {}
    pocketcore.run(node, shared, executor=Elsewhere())
    assert shared["out"] == [(i, 1) for i in range(6)]
    assert RUNNING["bound"][1] == 2


def test_the_error_raised_here_has_its_worker_traceback_as_its_cause() -> None:
    node = Scripted("trace", [["fail"]], limiter=Limiter(), max_retries=2)  # item 0 re-raises
    with pytest.raises(ValueError, match="item 0 failed attempt 1") as caught:
        pocketcore.run(node, {}, executor=Elsewhere())
    assert "in _attempt" in str(caught.value.__cause__)


def test_a_base_exception_still_fails_the_batch() -> None:
    limiter = Limiter(max_concurrency=3)
    node = Scripted("abort", [["abort"], ["fail", "ok"]], limiter=limiter, max_retries=2)
    with pytest.raises(Abort):
        pocketcore.run(node, {}, executor=Elsewhere())
    assert limiter.idle


def test_only_what_exec_returned_is_stored_here(tmp_path: Any) -> None:
    script = [["fail", "ok"], ["fail"], ["ok"]]  # item 1 falls back
    store = f"sqlite:{tmp_path / 'cache.db'}"
    outs = []
    for _ in range(2):
        shared: dict[str, Any] = {}
        node = Scripted("cache", script, limiter=Limiter(), max_retries=2, cache=store)
        pocketcore.run(node, shared, executor=Elsewhere())
        outs.append(shared["out"])
    assert outs[0] == outs[1] == [(0, 1), ("fallback", 1, 1), (2, 0)]
    # The second run made only the attempts of the item that fell back.
    assert [len(ATTEMPTS[("cache", item)]) for item in range(3)] == [2, 4, 1]


def test_every_attempt_counts_in_the_items_usage() -> None:
    totals = Totals()
    registry = pocketcore.get_registry()
    registry.register(totals, name="test-resend-totals")
    node = Scripted("usage", [["fail", "429", "ok"], ["ok"]], limiter=Limiter(), max_retries=2)
    try:
        pocketcore.run(node, {}, executor=Elsewhere())
    finally:
        registry.unregister(totals)
    assert totals.items[("Scripted", 0)] == {"tokens": 30.0}
    assert totals.items[("Scripted", 1)] == {"tokens": 10.0}
    assert totals.batches == [("Scripted", {"tokens": 40.0})]


def test_a_limiter_learns_what_to_charge_a_send_from_the_usage_reported_on_the_worker() -> None:
    # Every attempt reports 10 tokens on the worker; with no cost of its own,
    # a send is charged the limiter's estimate, which must become their mean.
    limiter = Limiter(tokens_per_minute=600_000)  # 10,000 tokens held: no send waits
    assert limiter.estimate("tokens") == 10_000  # a second's worth, before any report
    node = Scripted("learns", [["ok"], ["fail", "ok"], ["ok"]], limiter=limiter, max_retries=2)
    pocketcore.run(node, {}, executor=Elsewhere())
    assert limiter.estimate("tokens") == 10
    assert limiter.idle
