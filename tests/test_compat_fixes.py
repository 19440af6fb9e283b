"""The three places where pocketcore deliberately differs from PocketFlow 0.0.3.

docs/concepts.md ("Where pocketcore differs from PocketFlow") lists them:

a. ``cur_retry`` belongs to the item, even for items running concurrently;
b. ``None`` from ``prep`` / ``prep_async`` is an empty batch for every batch class;
c. a failing parallel item stops its siblings first: none is left running once
   the error reaches the caller (and the error is the item's own exception).

Each fix has a check that passes on pocketcore, under every executor, and is
also run against PocketFlow, where it must fail in the documented way: the
defect is asserted explicitly, so these tests notice if it ever disappears
(or if the check stops being able to tell the two apart). For b, PocketFlow
has the defect only in AsyncBatchNode and AsyncParallelBatchNode; elsewhere
the check passes on both, as that page says.

The last section checks that the per-item pipeline (retries with wait,
fallback, results in input order) is the same under every executor and the
same as PocketFlow's where PocketFlow is right.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import pocketflow
import pytest

import pocketcore

from .compat_programs import EXECUTORS

MISSING = "<missing>"

Runner = Callable[[Any, dict], Any]


def run_with(executor: str, limit: int | None = None) -> Runner:
    def runner(target, shared):
        return pocketcore.run(target, shared, executor=executor, max_concurrency=limit)

    runner.__name__ = f"pocketcore.run[{executor}{'' if limit is None else f', {limit}'}]"
    return runner


def run_async_on_asyncio(target, shared):
    """``asyncio.run(target.run_async(shared))``: the only way PocketFlow runs async code."""
    return asyncio.run(target.run_async(shared))


# Every way the pocketcore side is run. The limited ones make items queue for a slot.
POCKETCORE_RUNNERS = [pytest.param(run_with(name), id=f"run-{name}") for name in EXECUTORS] + [
    pytest.param(run_with("asyncio", 2), id="run-asyncio-limit2"),
    pytest.param(run_with("trio", 2), id="run-trio-limit2"),
    pytest.param(run_async_on_asyncio, id="asyncio.run-run_async"),
]


# --------------------------------------------------------------------------
# a. cur_retry is per item
# --------------------------------------------------------------------------

# (item name, how many of its first attempts fail, sleeps per attempt). All
# succeed within MAX_RETRIES attempts. The sleeps (and wait=0) make attempts of
# different items interleave when they run concurrently: "a" retries three
# times while "b" is still in its first attempt.
RETRY_ITEMS = [("a", 3, 1), ("b", 0, 20), ("c", 1, 2), ("d", 2, 1), ("e", 1, 1)]
MAX_RETRIES = 4


@dataclass
class RetryLog:
    attempts: dict[str, int] = field(default_factory=dict)  # item -> attempts so far
    # (event, item, true attempt number, self.cur_retry as seen at that moment)
    events: list[tuple[str, str, int, Any]] = field(default_factory=list)


def async_retry_node(mod, log: RetryLog, kind: str = "AsyncParallelBatchNode"):
    """A batch node whose items fail on their first attempts and read ``self.cur_retry``.

    The true attempt number comes from a counter per item, not from
    ``cur_retry``, so the node behaves the same whatever ``cur_retry`` says.
    """

    class RetryingItems(getattr(mod, kind)):
        async def prep_async(self, shared):
            return RETRY_ITEMS

        async def exec_async(self, item):
            name, fails, sleeps = item
            attempt = log.attempts[name] = log.attempts.get(name, 0)
            log.attempts[name] += 1
            log.events.append(("start", name, attempt, getattr(self, "cur_retry", MISSING)))
            for _ in range(sleeps):
                await anyio.lowlevel.checkpoint()  # other items run (and retry) meanwhile
            log.events.append(("end", name, attempt, getattr(self, "cur_retry", MISSING)))
            if attempt < fails:
                raise ValueError(f"{name} attempt {attempt}")
            return name, getattr(self, "cur_retry", MISSING)

        async def post_async(self, shared, prep_res, exec_res):
            shared["results"] = exec_res

    return RetryingItems(max_retries=MAX_RETRIES, wait=0)


def check_cur_retry_per_item(log: RetryLog, shared: dict) -> None:
    """Every read of ``self.cur_retry`` saw the reading item's own attempt number."""
    assert log.events, "the node did not run"
    wrong = [e for e in log.events if e[3] != e[2]]
    assert not wrong, f"cur_retry did not match the item's attempt: {wrong}"
    assert shared["results"] == [(name, fails) for name, fails, _ in RETRY_ITEMS]


def overlapping_attempts(log: RetryLog) -> list[tuple[str, str]]:
    """Pairs (a, b): an attempt of item b started while one of item a was running,
    and the two were at different attempt numbers -- exactly when a retry counter
    shared by the node's items would be wrong."""
    running: dict[str, int] = {}
    pairs = []
    for event, name, attempt, _ in log.events:
        if event == "start":
            pairs += [(other, name) for other, n in running.items() if n != attempt]
            running[name] = attempt
        else:
            del running[name]
    return pairs


@pytest.mark.parametrize("runner", POCKETCORE_RUNNERS)
def test_cur_retry_is_per_item_with_concurrent_items(runner) -> None:
    log, shared = RetryLog(), {}
    runner(async_retry_node(pocketcore, log), shared)
    check_cur_retry_per_item(log, shared)
    if runner.__name__ != "pocketcore.run[sequential]":
        # The test means something only if attempts really interleaved.
        assert overlapping_attempts(log)


def test_cur_retry_is_per_item_fails_on_pocketflow() -> None:
    log, shared = RetryLog(), {}
    run_async_on_asyncio(async_retry_node(pocketflow, log), shared)
    # The items did interleave on PocketFlow too ...
    assert overlapping_attempts(log)
    # ... but its AsyncNode never sets cur_retry: every read finds nothing.
    assert {e[3] for e in log.events} == {MISSING}
    with pytest.raises(AssertionError):
        check_cur_retry_per_item(log, shared)


@pytest.mark.parametrize("runner", POCKETCORE_RUNNERS)
def test_cur_retry_in_sequential_async_batch_node(runner) -> None:
    log, shared = RetryLog(), {}
    runner(async_retry_node(pocketcore, log, "AsyncBatchNode"), shared)
    check_cur_retry_per_item(log, shared)


def test_cur_retry_in_sequential_async_batch_node_fails_on_pocketflow() -> None:
    log, shared = RetryLog(), {}
    run_async_on_asyncio(async_retry_node(pocketflow, log, "AsyncBatchNode"), shared)
    assert {e[3] for e in log.events} == {MISSING}  # no cur_retry in AsyncNode at all
    with pytest.raises(AssertionError):
        check_cur_retry_per_item(log, shared)


@pytest.mark.parametrize("mod", [pocketflow, pocketcore], ids=lambda m: m.__name__)
def test_cur_retry_in_sync_batch_node_agrees_with_pocketflow(mod) -> None:
    # Sync items run one after another, so PocketFlow's node attribute is
    # right here; pocketcore must give the same values.
    log, shared = RetryLog(), {}

    class SyncItems(mod.BatchNode):
        def prep(self, shared):
            return RETRY_ITEMS

        def exec(self, item):
            name, fails, _ = item
            attempt = log.attempts[name] = log.attempts.get(name, 0)
            log.attempts[name] += 1
            log.events.append(("start", name, attempt, self.cur_retry))
            if attempt < fails:
                raise ValueError(name)
            return name, self.cur_retry

        def post(self, shared, prep_res, exec_res):
            shared["results"] = exec_res

    SyncItems(MAX_RETRIES, 0).run(shared)
    check_cur_retry_per_item(log, shared)


# --------------------------------------------------------------------------
# b. None from prep is an empty batch
# --------------------------------------------------------------------------

BATCH_NODES = ("BatchNode", "AsyncBatchNode", "AsyncParallelBatchNode")
BATCH_FLOWS = ("BatchFlow", "AsyncBatchFlow", "AsyncParallelBatchFlow")


def _none_batch_node(base, seen: list):
    class Target(base):
        def prep(self, shared):
            return None

        def exec(self, item):
            seen.append(("exec", item))

        def post(self, shared, prep_res, exec_res):
            seen.append(("post", prep_res, exec_res))

    return Target()


def _async_none_batch_node(base, seen: list):
    class Target(base):
        async def prep_async(self, shared):
            return None

        async def exec_async(self, item):
            seen.append(("exec", item))

        async def post_async(self, shared, prep_res, exec_res):
            seen.append(("post", prep_res, exec_res))

    return Target()


def _none_batch_flow(base, seen: list, start):
    class Target(base):
        def prep(self, shared):
            return None

        def post(self, shared, prep_res, exec_res):
            seen.append(("post", prep_res, exec_res))

    return Target(start=start)


def _async_none_batch_flow(base, seen: list, start):
    class Target(base):
        async def prep_async(self, shared):
            return None

        async def post_async(self, shared, prep_res, exec_res):
            seen.append(("post", prep_res, exec_res))

    return Target(start=start)


def _pass_step(mod, seen: list):
    """The node a batch flow starts from: it records each pass's params."""

    class Step(mod.Node):
        def exec(self, _):
            seen.append(("pass", dict(self.params)))

    return Step()


def none_batch(mod, kind: str, seen: list):
    """A batch node or flow of class ``mod.<kind>`` whose prep returns None.

    ``seen`` collects what ran: item executions, flow passes, and post's
    arguments (without the shared store).
    """
    base = getattr(mod, kind)
    is_async = issubclass(base, mod.AsyncNode)
    if kind in BATCH_NODES:
        make_node = _async_none_batch_node if is_async else _none_batch_node
        return make_node(base, seen)
    make_flow = _async_none_batch_flow if is_async else _none_batch_flow
    return make_flow(base, seen, _pass_step(mod, seen))


def check_empty_batch(kind: str, seen: list) -> None:
    if kind in BATCH_NODES:
        # no item ran; post got prep's None and an empty list of results
        assert seen == [("post", None, [])]
    else:
        # no pass ran; post got [] for the passes and None as exec_res
        assert seen == [("post", [], None)]


@pytest.mark.parametrize("runner", POCKETCORE_RUNNERS)
@pytest.mark.parametrize("kind", BATCH_NODES + BATCH_FLOWS)
def test_none_from_prep_is_an_empty_batch(kind, runner) -> None:
    seen: list = []
    target = none_batch(pocketcore, kind, seen)
    if runner is run_async_on_asyncio and not isinstance(target, pocketcore.AsyncNode):
        target.run({})  # a sync node has no run_async
    else:
        runner(target, {})
    check_empty_batch(kind, seen)


@pytest.mark.parametrize("kind", BATCH_NODES + BATCH_FLOWS)
def test_none_from_prep_on_pocketflow(kind) -> None:
    seen: list = []
    target = none_batch(pocketflow, kind, seen)

    def run():
        if isinstance(target, pocketflow.AsyncNode):
            run_async_on_asyncio(target, {})
        else:
            target.run({})
        check_empty_batch(kind, seen)

    if kind in ("AsyncBatchNode", "AsyncParallelBatchNode"):
        # The defect: PocketFlow iterates over None.
        with pytest.raises(TypeError, match="not iterable"):
            run()
        assert seen == []  # post never ran
    else:
        run()  # PocketFlow already treats None as empty here; pocketcore agrees


# --------------------------------------------------------------------------
# c. A failing parallel item leaves no sibling running
# --------------------------------------------------------------------------

N_ITEMS = 5
FAILING = 1  # not the first item: with the sequential executor item 0 finishes first
SIBLING_SLEEP = 0.05


@dataclass
class FailureLog:
    in_flight: set[int] = field(default_factory=set)
    finished: list[int] = field(default_factory=list)
    raised: BaseException | None = None  # the failing item's own exception
    caught: BaseException | None = None  # what the caller caught
    in_flight_at_catch: set[int] | None = None
    finished_at_catch: list[int] | None = None
    finished_later: list[int] | None = None


async def item_work(log: FailureLog, i: int) -> int:
    log.in_flight.add(i)
    try:
        if i == FAILING:
            await anyio.lowlevel.checkpoint()  # fail quickly, once every sibling has started
            log.raised = ValueError(f"item {i} failed")
            raise log.raised
        await anyio.sleep(SIBLING_SLEEP)
        log.finished.append(i)
        return i
    finally:  # also runs when the item is cancelled
        log.in_flight.discard(i)


def failing_batch(mod, kind: str, log: FailureLog):
    """An AsyncParallelBatchNode / AsyncParallelBatchFlow where item FAILING raises."""
    if kind == "AsyncParallelBatchNode":

        class Items(mod.AsyncParallelBatchNode):
            async def prep_async(self, shared):
                return list(range(N_ITEMS))

            async def exec_async(self, i):
                return await item_work(log, i)

        return Items()

    class Step(mod.AsyncNode):
        async def exec_async(self, _):
            return await item_work(log, self.params["i"])

    class Passes(mod.AsyncParallelBatchFlow):
        async def prep_async(self, shared):
            return [{"i": i} for i in range(N_ITEMS)]

    return Passes(start=Step())


def caller(mod, inner, log: FailureLog):
    """A node that runs ``inner`` and, when it fails, looks at what is still running.

    It runs inside the same event loop, so it sees what a user would see.
    """

    class Caller(mod.AsyncNode):
        async def exec_async(self, _):
            try:
                await inner.run_async({})
            except ValueError as exc:  # an ExceptionGroup would not be caught here
                log.caught = exc
                log.in_flight_at_catch = set(log.in_flight)
                log.finished_at_catch = list(log.finished)
                await anyio.sleep(3 * SIBLING_SLEEP)  # anything left over would finish now
                log.finished_later = list(log.finished)

    return Caller()


def check_nothing_left_running(log: FailureLog) -> None:
    assert log.caught is not None, "the failure did not reach the caller"
    assert log.caught is log.raised  # the item's own exception, unwrapped
    assert log.in_flight_at_catch == set()
    assert log.finished_later == log.finished_at_catch


KINDS_C = ("AsyncParallelBatchNode", "AsyncParallelBatchFlow")


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("kind", KINDS_C)
def test_failing_parallel_item_leaves_no_sibling_running(kind, executor) -> None:
    log = FailureLog()
    pocketcore.run(
        caller(pocketcore, failing_batch(pocketcore, kind, log), log), {}, executor=executor
    )
    check_nothing_left_running(log)
    if executor == "sequential":
        # one at a time: the items before the failing one finished, none after it started
        assert log.finished_at_catch == list(range(FAILING))


@pytest.mark.parametrize("kind", KINDS_C)
def test_failing_parallel_item_on_pocketflow_leaves_siblings_running(kind) -> None:
    log = FailureLog()
    asyncio.run(caller(pocketflow, failing_batch(pocketflow, kind, log), log).run_async({}))
    # gather passes the ValueError on at once, while every sibling still runs ...
    assert log.caught is log.raised
    assert log.in_flight_at_catch == set(range(N_ITEMS)) - {FAILING}
    # ... and they go on to finish after the caller has moved on.
    assert sorted(log.finished_later) == sorted(set(range(N_ITEMS)) - {FAILING})
    with pytest.raises(AssertionError):
        check_nothing_left_running(log)


# --------------------------------------------------------------------------
# The per-item pipeline is the same under every executor (and as PocketFlow's)
# --------------------------------------------------------------------------

# (item, failing attempts, sleeps per attempt); 3 attempts at most, so the
# items failing 3 or more times end in the fallback. Later items finish first.
PIPELINE_ITEMS = [(i, fails, 6 - i) for i, fails in enumerate([0, 2, 5, 1, 3, 0])]


def pipeline_node(mod, log: dict):
    class Pipeline(mod.AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return PIPELINE_ITEMS

        async def exec_async(self, item):
            i, fails, sleeps = item
            attempt = log["attempts"][i] = log["attempts"].get(i, 0) + 1
            for _ in range(sleeps):
                await anyio.lowlevel.checkpoint()
            log["completed"].append(i)
            if attempt <= fails:
                raise ValueError(f"item {i} attempt {attempt}")
            return ("ok", i, attempt)

        async def exec_fallback_async(self, item, exc):
            return ("fallback", item[0], str(exc))

        async def post_async(self, shared, prep_res, exec_res):
            shared["post"] = (prep_res, exec_res)
            return "done"

    return Pipeline(3, 0.001)


def run_pipeline(mod, runner) -> tuple[Any, dict, dict]:
    log: dict = {"attempts": {}, "completed": []}
    shared: dict = {}
    result = runner(pipeline_node(mod, log), shared)
    return result, shared, log


@pytest.mark.parametrize("executor", EXECUTORS)
def test_per_item_pipeline_is_the_same_under_every_executor(executor) -> None:
    expected = run_pipeline(pocketflow, run_async_on_asyncio)
    result, shared, log = run_pipeline(pocketcore, run_with(executor))
    assert (result, shared, log["attempts"]) == (*expected[:2], expected[2]["attempts"])
    # results in input order even though the items completed in another order
    assert [r[1] for r in shared["post"][1]] == [i for i, _, _ in PIPELINE_ITEMS]
    if executor != "sequential":
        assert log["completed"] != sorted(log["completed"])
