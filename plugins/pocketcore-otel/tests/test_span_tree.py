"""The span tree mirrors the flow, on every executor and for every kind of batch.

Hypothesis draws a batch (its size, which items fail for good, which fail
once and succeed on their retry, which the fallback rescues, how long each
takes, a limit), runs it on an executor either as a step of a flow or as the
run's target, and checks the recorded trace against what really ran: every
item span's parent is its batch node's span; there is **one span per item
that started, not one per attempt**, and each attempt of a batch node's item
is an event on that span (``pocketcore.attempt``, numbered from 0, with what
the attempt raised; none when the first attempt succeeded), their count its
``pocketcore.item.attempts``; a
fallback that gave the result marks the span and leaves it without error;
the batch's span has the executor and limit it ran with; and the failures
recorded are the ones raised, each on the span that raised it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest
from conftest import Recorded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from tree import Tree, recorded_exceptions

import pocketcore
from pocketcore_otel import (
    ATTEMPT_DURATION,
    ATTEMPT_EVENT,
    ATTEMPT_NUMBER,
    BATCH_LIMIT,
    BATCH_SIZE,
    CANCELLED,
    EXECUTOR_NAME,
    FALLBACK_EVENT,
    ITEM_ATTEMPTS,
    ITEM_FALLBACK,
    ITEM_INDEX,
)

EXECUTORS = ["sequential", "asyncio", "trio"]


class Scenario:
    """What one example asks of its items, and what they did."""

    def __init__(
        self, n: int, failing: set[int], flaky: set[int], rescued: set[int], delays: list[float]
    ) -> None:
        self.n, self.failing, self.flaky, self.delays = n, failing, flaky, delays
        self.rescued = rescued  # what the fallback returns a value for (else it re-raises)
        self.lock = threading.Lock()
        self.started: set[int] = set()
        self.attempts: dict[int, int] = {}  # item -> attempts its exec made
        self.raised: dict[int, str] = {}  # the items that failed for good
        # Everything each item raised, its retried failures too: on a worker
        # thread, an item whose batch has failed makes no further attempt and
        # gives up with the failure it had.
        self.raised_all: dict[int, list[tuple[str, str]]] = {}
        self.fell_back: set[int] = set()  # the items whose fallback gave the result
        self.returned: set[int] = set()  # the items whose exec returned (on some attempt)

    def begin(self, i: int, attempt: int) -> float:
        with self.lock:
            self.started.add(i)
            self.attempts[i] = self.attempts.get(i, 0) + 1
        return self.delays[i]

    def end(self, i: int, attempt: int) -> int:
        if i in self.flaky and attempt == 0:
            self.note(i, OSError(f"item {i} flakes"))
        if i in self.failing:
            self.note(i, ValueError(f"item {i} fails"))
        with self.lock:
            self.returned.add(i)
        return i

    def fallback(self, i: int, exc: Exception) -> int:
        with self.lock:
            if i in self.rescued:
                self.fell_back.add(i)
                return -1
            self.raised[i] = str(exc)
        raise exc

    def note(self, i: int, exc: Exception) -> None:
        with self.lock:
            self.raised_all.setdefault(i, []).append((type(exc).__name__, str(exc)))
        raise exc


# --- the batch nodes: each item is an index into the scenario ------------------


class AsyncItems:
    async def prep_async(self, shared: Any) -> list[int]:
        return list(range(self.params["scenario"].n))  # type: ignore[attr-defined]

    async def exec_async(self, i: int) -> int:
        sc: Scenario = self.params["scenario"]  # type: ignore[attr-defined]
        attempt = self.cur_retry  # type: ignore[attr-defined]
        await anyio.sleep(sc.begin(i, attempt))
        return sc.end(i, attempt)

    async def exec_fallback_async(self, i: int, exc: Exception) -> int:
        return self.params["scenario"].fallback(i, exc)  # type: ignore[attr-defined,no-any-return]


class SyncItems:
    def prep(self, shared: Any) -> list[int]:
        return list(range(self.params["scenario"].n))  # type: ignore[attr-defined]

    def exec(self, i: int) -> int:
        sc: Scenario = self.params["scenario"]  # type: ignore[attr-defined]
        attempt = self.cur_retry  # type: ignore[attr-defined]
        time.sleep(sc.begin(i, attempt))
        return sc.end(i, attempt)

    def exec_fallback(self, i: int, exc: Exception) -> int:
        return self.params["scenario"].fallback(i, exc)  # type: ignore[attr-defined,no-any-return]


class APBatch(AsyncItems, pocketcore.AsyncParallelBatchNode):
    pass


class PBatch(SyncItems, pocketcore.ParallelBatchNode):
    pass


class ABatch(AsyncItems, pocketcore.AsyncBatchNode):
    pass


class SBatch(SyncItems, pocketcore.BatchNode):
    pass


# --- the batch flows: each pass runs one node on the pass's index ---------------


class AsyncPass(pocketcore.AsyncNode):
    async def prep_async(self, shared: Any) -> int:
        return int(self.params["i"])

    async def exec_async(self, i: int) -> int:
        sc: Scenario = self.params["scenario"]
        await anyio.sleep(sc.begin(i, self.cur_retry))
        return sc.end(i, self.cur_retry)

    async def exec_fallback_async(self, i: int, exc: Exception) -> int:
        return self.params["scenario"].fallback(i, exc)  # type: ignore[no-any-return]


class SyncPass(pocketcore.Node):
    def prep(self, shared: Any) -> int:
        return int(self.params["i"])

    def exec(self, i: int) -> int:
        sc: Scenario = self.params["scenario"]
        time.sleep(sc.begin(i, self.cur_retry))
        return sc.end(i, self.cur_retry)

    def exec_fallback(self, i: int, exc: Exception) -> int:
        return self.params["scenario"].fallback(i, exc)  # type: ignore[no-any-return]


class Passes:
    async def prep_async(self, shared: Any) -> list[dict[str, int]]:
        return [{"i": i} for i in range(self.params["scenario"].n)]  # type: ignore[attr-defined]

    def prep(self, shared: Any) -> list[dict[str, int]]:
        return [{"i": i} for i in range(self.params["scenario"].n)]  # type: ignore[attr-defined]


class APFlow(Passes, pocketcore.AsyncParallelBatchFlow):
    pass


class PFlow(Passes, pocketcore.ParallelBatchFlow):
    pass


class AFlow(Passes, pocketcore.AsyncBatchFlow):
    pass


class SFlow(Passes, pocketcore.BatchFlow):
    pass


KINDS: dict[str, tuple[type[pocketcore.BaseNode], type[pocketcore.BaseNode] | None]] = {
    "AsyncParallelBatchNode": (APBatch, None),
    "ParallelBatchNode": (PBatch, None),
    "AsyncBatchNode": (ABatch, None),
    "BatchNode": (SBatch, None),
    "AsyncParallelBatchFlow": (APFlow, AsyncPass),
    "ParallelBatchFlow": (PFlow, SyncPass),
    "AsyncBatchFlow": (AFlow, AsyncPass),
    "BatchFlow": (SFlow, SyncPass),
}


class Begin(pocketcore.Node):
    pass


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n = draw(st.integers(0, 6))
    indices = st.sets(st.integers(0, max(n - 1, 0)), max_size=n) if n else st.just(set())
    return Scenario(
        n,
        failing=draw(indices),
        flaky=draw(indices),
        rescued=draw(indices),
        delays=draw(st.lists(st.sampled_from([0, 0.001, 0.004]), min_size=n, max_size=n)),
    )


def build(kind: str, sc: Scenario, own: dict[str, Any]) -> pocketcore.BaseNode:
    cls, inner = KINDS[kind]
    # Two attempts per item: a flaky item's retry must not give it a second span.
    if inner is None:
        return cls(max_retries=2, **own)  # type: ignore[call-arg]
    return cls(start=inner(max_retries=2), **own)  # type: ignore[call-arg]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("executor", EXECUTORS)
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sc=scenarios(),
    limit=st.none() | st.integers(1, 3),
    own_settings=st.booleans(),
    as_step=st.booleans(),
)
def test_the_span_tree_mirrors_the_flow(
    spans: Recorded,
    executor: str,
    kind: str,
    sc: Scenario,
    limit: int | None,
    own_settings: bool,
    as_step: bool,
) -> None:
    spans.clear()
    parallel = "Parallel" in kind
    own = {"executor": executor, "max_concurrency": limit} if own_settings and parallel else {}
    batch = build(kind, sc, own)
    run_limit = None if own else limit
    if as_step:
        begin = Begin()
        begin >> batch
        target: pocketcore.BaseNode = pocketcore.AsyncFlow(start=begin)
    else:
        target = batch
    target.set_params({"scenario": sc})
    try:
        pocketcore.run(target, {}, executor=executor, max_concurrency=run_limit)
    except ValueError as exc:
        caught: ValueError | None = exc
    else:
        caught = None

    tree = Tree(spans.spans())
    is_flow = isinstance(batch, pocketcore.Flow)
    assert tree.root.name == f"pocketcore.run {type(target).__name__}"
    if as_step:
        step_kind = "flow" if is_flow else "node"
        batch_span = tree.one(f"pocketcore.{step_kind} {type(batch).__name__}")
        assert tree.parent(batch_span) is tree.root
        assert tree.parent(tree.one("pocketcore.node Begin")) is tree.root
    else:
        batch_span = tree.root
    check_batch_attributes(batch_span, sc, kind, executor, limit)

    items = tree.named(f"pocketcore.item {type(batch).__name__}")
    assert all(tree.parent(span) is batch_span for span in items)
    indices = [attrs(span)[ITEM_INDEX] for span in items]
    assert len(indices) == len(set(indices)), "one span per item, not per attempt"
    assert sc.started <= set(indices) <= set(range(sc.n))
    for span in items:
        if attrs(span)[ITEM_INDEX] not in sc.started:  # on its way to a thread when stopped
            assert attrs(span).get(CANCELLED) is True
    if is_flow:  # each pass that ran has its one step, under the pass's span
        for span in items:
            steps = tree.children(span)
            assert [s.name for s in steps] in ([], [f"pocketcore.node {KINDS[kind][1].__name__}"])  # type: ignore[union-attr]
            # A pass has no attempts of its own: its node's step is the span to look at.
            assert not span.events
            assert ITEM_ATTEMPTS not in attrs(span)
    else:
        for span in items:
            check_attempts(span, sc)

    check_failures(tree, items, sc, caught)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def check_batch_attributes(
    span: ReadableSpan, sc: Scenario, kind: str, executor: str, limit: int | None
) -> None:
    """The executor and limit the batch ran with, its own settings or the run's alike."""
    a = attrs(span)
    assert a[BATCH_SIZE] == sc.n
    if "Parallel" in kind:
        assert a[EXECUTOR_NAME] == executor
        assert a.get(BATCH_LIMIT) == limit
    else:  # one item after another, whatever the executor
        assert EXECUTOR_NAME not in a
        assert a[BATCH_LIMIT] == 1


def check_attempts(span: ReadableSpan, sc: Scenario) -> None:
    """One event per attempt the item's exec made, with what it raised; the fallback's mark."""
    i = attrs(span)[ITEM_INDEX]
    made = sc.attempts.get(i, 0)
    events = [e for e in span.events if e.name == ATTEMPT_EVENT]
    assert attrs(span).get(ITEM_ATTEMPTS) == (made or None)
    # A first attempt that succeeded has no event: the attribute says it all.
    succeeded_at_once = made == 1 and i in sc.returned
    assert len(events) == (0 if succeeded_at_once else made)
    failed = []
    for number, event in enumerate(events):
        a = dict(event.attributes or {})
        assert a[ATTEMPT_NUMBER] == number
        assert a[ATTEMPT_DURATION] >= 0
        if "exception.type" in a and not a.get(CANCELLED):
            failed.append((a["exception.type"], a["exception.message"]))
    assert failed == sc.raised_all.get(i, [])
    fallbacks = [e for e in span.events if e.name == FALLBACK_EVENT]
    # A thread's fallback may return after its batch failed: the item was then
    # cancelled while it waited for the thread, and its result dropped.
    if i in sc.fell_back and not attrs(span).get(CANCELLED):
        assert attrs(span)[ITEM_FALLBACK] is True
        (fallback,) = fallbacks
        assert fallback.attributes is not None
        last = (fallback.attributes["exception.type"], fallback.attributes["exception.message"])
        assert last == sc.raised_all[i][-1]
        assert span.status.status_code is StatusCode.UNSET
    else:
        assert ITEM_FALLBACK not in attrs(span)
        assert not fallbacks


def check_failures(
    tree: Tree, items: list[ReadableSpan], sc: Scenario, caught: ValueError | None
) -> None:
    if caught is None:
        assert not sc.raised
        assert {attrs(s)[ITEM_INDEX] for s in items} == set(range(sc.n))
        assert all(
            s.status.status_code is StatusCode.UNSET and not recorded_exceptions(s)
            for s in tree.spans
        )
        return
    recorded = [s for s in tree.spans if recorded_exceptions(s)]
    # Each recorded failure is one an item raised, on the span of the item
    # that raised it (for a pass, the span of its node's step).
    for span in recorded:
        item = span if span in items else tree.parent(span)
        assert item in items
        i = attrs(item)[ITEM_INDEX]
        (exc,) = recorded_exceptions(span)
        assert exc in sc.raised_all[i]
        assert span.status.status_code is StatusCode.ERROR
    # The failure that reached the caller is recorded once; every span it
    # went through on its way out is an error, without recording it again.
    (origin,) = [s for s in recorded if recorded_exceptions(s)[0][1] == str(caught)]
    up = tree.parent(origin)
    while up is not None:
        assert up.status.status_code is StatusCode.ERROR
        assert str(caught) in (up.status.description or "")
        assert not recorded_exceptions(up)
        up = tree.parent(up)
    # Every item that raised says so, or was stopped (a worker thread that
    # raised after the batch had already failed is reported as cancelled).
    for span in items:
        i = attrs(span)[ITEM_INDEX]
        failed = span.status.status_code is StatusCode.ERROR
        if i in sc.raised:
            assert failed or attrs(span).get(CANCELLED) is True
        else:
            assert not failed
