"""``BaseExecutor.start`` and ``BaseExecutor.pull``: the items' loop task-based executors share.

The asyncio and trio plugins hold them to the whole executor contract (their
conformance suites); these tests pin the loop itself, with tasks that run
one after another, so each pull and each stop can be seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pocketcore import BaseExecutor


class Batch:
    """A batch whose tasks are kept, to be run one after another by the test."""

    cancellation = asyncio.CancelledError

    def __init__(self, fn: Callable[[Any], Awaitable[Any]], gate: Any = None) -> None:
        self.fn = fn
        self.gate = gate
        self.results: list[Any] = []
        self.source: Iterator[Any] | None = None
        self.failures: list[BaseException] = []
        self.stopped = self.failures.__len__
        self.tasks: list[Coroutine[Any, Any, None]] = []
        self.ends = 0

    def spawn(self, index: int, item: Any) -> None:
        self.tasks.append(BaseExecutor.pull(self, index, item))

    def fail(self, exc: BaseException) -> None:
        self.failures.append(exc)

    def cancelled(self) -> None:
        raise AssertionError("nothing is cancelled here")

    def ended(self) -> None:
        self.ends += 1

    def run(self) -> None:
        async def each() -> None:
            for task in self.tasks:
                await task

        asyncio.run(each())


def pulls(log: list[str], count: int) -> Iterator[int]:
    for i in range(count):
        log.append(f"pull {i}")
        yield i


def doubling(log: list[str], fails: int | None = None) -> Callable[[int], Awaitable[int]]:
    async def fn(item: int) -> int:
        log.append(f"call {item}")
        if item == fails:
            raise LookupError(item)
        return item * 2

    return fn


def test_without_a_limit_every_item_gets_a_task_at_once() -> None:
    log: list[str] = []
    batch = Batch(doubling(log))
    BaseExecutor.start(batch, pulls(log, 3), None)
    assert (len(batch.tasks), log) == (3, ["pull 0", "pull 1", "pull 2"])
    batch.run()
    assert (batch.results, batch.ends) == ([0, 2, 4], 3)


def test_with_a_limit_the_tasks_pull_the_rest_one_item_at_a_time() -> None:
    log: list[str] = []
    batch = Batch(doubling(log))
    BaseExecutor.start(batch, pulls(log, 5), 2)
    assert (len(batch.tasks), log) == (2, ["pull 0", "pull 1"])
    batch.run()
    # The first task runs alone here, so it pulls (and calls) all the rest.
    assert log[2:] == [
        "call 0",
        "pull 2",
        "call 2",
        "pull 3",
        "call 3",
        "pull 4",
        "call 4",
        "call 1",
    ]
    assert (batch.results, batch.ends) == ([0, 2, 4, 6, 8], 2)


def test_a_huge_limit_starts_no_more_tasks_than_items() -> None:
    batch = Batch(doubling([]))
    BaseExecutor.start(batch, pulls([], 3), 10**12)
    assert len(batch.tasks) == 3
    batch.run()
    assert batch.results == [0, 2, 4]


def test_a_failure_stops_the_batch_before_the_next_pull_and_start() -> None:
    log: list[str] = []
    batch = Batch(doubling(log, fails=0))
    BaseExecutor.start(batch, pulls(log, 5), 2)
    batch.run()
    assert log == ["pull 0", "pull 1", "call 0"]
    assert [type(e) for e in batch.failures] == [LookupError]
    assert batch.ends == 0


def test_an_input_that_fails_is_a_failure_of_the_batch() -> None:
    def broken() -> Iterator[int]:
        yield 0
        raise OSError("the input broke")

    batch = Batch(doubling([]))
    BaseExecutor.start(batch, broken(), None)
    assert [str(e) for e in batch.failures] == ["the input broke"]
    batch.run()  # the task made before it: stopped before its item starts
    assert batch.results == [None]


class Gate:
    def __init__(self, log: list[str], *, admits: bool) -> None:
        self.log, self.admits = log, admits

    def try_enter(self) -> bool:
        self.log.append(f"try {self.admits}")
        return self.admits

    async def enter(self) -> None:
        self.log.append("enter")

    def leave(self) -> None:
        self.log.append("leave")

    def again(self, exc: Exception, since: float | None) -> float | None:
        return None  # every failure is the item's own

    def passed(self) -> None:
        pass


@pytest.mark.parametrize("admits", [True, False])
def test_each_item_is_pulled_then_enters_the_gate_and_leaves_after_its_call(admits: bool) -> None:
    log: list[str] = []
    batch = Batch(doubling(log, fails=1), Gate(log, admits=admits))
    BaseExecutor.start(batch, pulls(log, 3), 1)
    batch.run()
    entry = [f"try {admits}"] + ([] if admits else ["enter"])
    assert log == ["pull 0", *entry, "call 0", "leave", "pull 1", *entry, "call 1", "leave"]
    assert [type(e) for e in batch.failures] == [LookupError]


class Refused(Exception):
    """A provider's refusal, as the gate below tells it."""


class RefusingGate:
    """A gate of attempts that says to call a refused item again, and checks how it is used."""

    def __init__(self) -> None:
        self.held = 0  # entries not left yet
        self.passed_calls = 0
        self.handed: list[float | None] = []  # the ``since`` each refusal came with
        self.returned: list[float] = []  # what was returned for it

    def try_enter(self) -> bool:
        self.held += 1
        return True

    async def enter(self) -> None:  # a refused call enters again this way
        self.held += 1

    def leave(self) -> None:
        assert self.held == 1, "left without an entry, or two entries at once"
        self.held -= 1

    def again(self, exc: Exception, since: float | None) -> float | None:
        assert self.held == 1, "asked before the entry is left"
        if not isinstance(exc, Refused):
            return None
        self.handed.append(since)
        self.returned.append(since if since is not None else float(len(self.returned)))
        return self.returned[-1]

    def passed(self) -> None:
        assert self.held == 0, "told of a success before the entry was left"
        self.passed_calls += 1


def refusing(refusals: list[int], fails: int | None, calls: list[int]) -> Callable[[int], Any]:
    """Item ``i`` is refused ``refusals[i]`` times, then fails if it is ``fails``, else doubles."""

    async def fn(item: int) -> int:
        calls.append(item)
        if calls.count(item) <= refusals[item]:
            raise Refused(item)
        if item == fails:
            raise LookupError(item)
        return item * 2

    return fn


@given(
    refusals=st.lists(st.integers(0, 3), max_size=6),
    fails=st.none() | st.integers(0, 5),
    limit=st.none() | st.integers(1, 3),
    through=st.sampled_from(["pull", "gated"]),
)
def test_a_refused_call_enters_again_and_is_called_again(
    refusals: list[int], fails: int | None, limit: int | None, through: str
) -> None:
    """Through ``pull`` (a task's loop) and ``gated`` (one item's): each refusal is a call more.

    Every entry is left before the next one, and the gate is asked before
    the entry is left; the item's run of refusals starts with ``since=None``
    and hands back what the gate returned; a success is told once its entry
    is left; a failure that is no refusal is the item's own.
    """
    calls: list[int] = []
    gate = RefusingGate()
    fn = refusing(refusals, fails, calls)
    items = range(len(refusals))
    if through == "pull":
        batch = Batch(fn, gate)
        BaseExecutor.start(batch, iter(items), limit)
        batch.run()
        results, failures = batch.results, batch.failures
    else:
        results, failures = [], []

        async def each() -> None:
            try:
                for item in items:
                    results.append(await BaseExecutor.gated(gate, fn, item))
            except LookupError as exc:
                failures.append(exc)

        asyncio.run(each())
    ran = sorted(set(calls))
    assert all(calls.count(item) == refusals[item] + 1 for item in ran)
    failed = fails is not None and fails in ran
    assert [type(e) for e in failures] == ([LookupError] if failed else [])
    assert gate.passed_calls == len(ran) - failed
    assert [r for r in results if r is not None] == [i * 2 for i in ran if i != fails]
    # Each item's run of refusals: None first, then what the gate returned.
    refused = [item for n, item in enumerate(calls) if calls[: n + 1].count(item) <= refusals[item]]
    assert len(refused) == len(gate.handed)
    last: dict[int, float] = {}
    for item, since, back in zip(refused, gate.handed, gate.returned, strict=True):
        assert since == last.get(item)
        last[item] = back
    assert gate.held == 0
