"""The conformance suite can fail: it catches executors that break the contract.

Each broken executor below breaks one clause the way a plausible
implementation would; the suite's matching property must reject it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import pickle
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pytest

from pocketcore.testing import ExecutorConformance, RecordingExecutor
from pocketcore.testing._suite import PROPERTIES
from pocketcore_asyncio import AsyncioExecutor

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup


class _AsyncioBase:
    backend = "asyncio"

    def run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            return await fn()

        return asyncio.run(main())


class BareGather(_AsyncioBase):
    """PocketFlow's strategy: gather everything, no limit, no cancellation."""

    name = "bare-gather"

    async def map(self, fn: Any, items: Iterable[Any], *, limit: int | None) -> list[Any]:
        return list(await asyncio.gather(*(fn(i) for i in items)))


class EagerSemaphore(_AsyncioBase):
    """Honours the limit with a semaphore, but creates a task per item up front."""

    name = "eager-semaphore"

    async def map(self, fn: Any, items: Iterable[Any], *, limit: int | None) -> list[Any]:
        sem = asyncio.Semaphore(limit or 10**9)

        async def one(item: Any) -> Any:
            async with sem:
                return await fn(item)

        tasks = [asyncio.ensure_future(one(i)) for i in items]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise


class CompletionOrder(_AsyncioBase):
    """Returns results in the order they complete."""

    name = "completion-order"

    async def map(self, fn: Any, items: Iterable[Any], *, limit: int | None) -> list[Any]:
        return [await f for f in asyncio.as_completed([fn(i) for i in items])]


class CancelsButDoesNotWait(_AsyncioBase):
    """Cancels the siblings of a failure, but raises before they have finished."""

    name = "no-wait"

    async def map(self, fn: Any, items: Iterable[Any], *, limit: int | None) -> list[Any]:
        tasks = [asyncio.ensure_future(fn(i)) for i in items]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            raise


class WrapsInAGroup(_AsyncioBase):
    """Raises failures wrapped in an ExceptionGroup (as bare task groups do)."""

    name = "group"

    async def map(self, fn: Any, items: Iterable[Any], *, limit: int | None) -> list[Any]:
        try:
            return [await fn(i) for i in items]
        except Exception as exc:
            raise ExceptionGroup("wrapped", [exc]) from None


class OneAtATime(_AsyncioBase):
    """Runs items one by one while claiming to be parallel."""

    name = "one-at-a-time"

    async def map(self, fn: Any, items: Iterable[Any], *, limit: int | None) -> list[Any]:
        return [await fn(i) for i in items]


class CatchesOnlyExceptions(_AsyncioBase):
    """Catches ``Exception`` in each task: a ``KeyboardInterrupt`` leaves the event loop."""

    name = "catches-only-exceptions"

    async def map(self, fn: Any, items: Iterable[Any], *, limit: int | None) -> list[Any]:
        failures: list[Exception] = []

        async def call(item: Any) -> Any:
            try:
                return await fn(item)
            except Exception as exc:
                failures.append(exc)
                raise

        tasks = [asyncio.ensure_future(call(i)) for i in items]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise


class TaskGroupPerBatch(_AsyncioBase):
    """Catches ``Exception`` in the tasks of an anyio task group: other exceptions come wrapped."""

    name = "task-group"

    async def map(self, fn: Any, items: Iterable[Any], *, limit: int | None) -> list[Any]:
        import anyio

        results: list[Any] = []
        failures: list[Exception] = []

        async def call(scope: anyio.CancelScope, index: int, item: Any) -> None:
            if failures:
                return
            try:
                results[index] = await fn(item)
            except Exception as exc:
                failures.append(exc)
                scope.cancel()

        async with anyio.create_task_group() as tg:
            for index, item in enumerate(items):
                results.append(None)
                tg.start_soon(call, tg.cancel_scope, index, item)
        if failures:
            raise failures[0]
        return results


class Workers(_AsyncioBase):
    """A pool of workers that take items one by one, sized by ``limit`` (and ``len()``)."""

    name = "workers"

    def __init__(self, *, ask_len: bool) -> None:
        self.ask_len = ask_len

    async def map(self, fn: Any, items: Iterable[Any], *, limit: int | None) -> list[Any]:
        source = iter(items)
        results: list[Any] = []
        stop = False

        async def worker() -> None:
            nonlocal stop
            while not stop:
                item = next(source, source)
                if item is source:
                    return
                index = len(results)
                results.append(None)
                try:
                    results[index] = await fn(item)
                except BaseException:
                    stop = True
                    raise

        workers = 1 if limit is None else limit
        if self.ask_len:
            with contextlib.suppress(TypeError):  # not sized
                workers = min(workers, len(items))  # type: ignore[arg-type]
        tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return results


# --- executors that declare gates_items and break the gate's contract -----------
#
# Each is the asyncio executor (which keeps the rest of the contract), handed
# a per-item function that uses the gate in one flawed way, in place of the
# gate itself.


class _GatesItems(AsyncioExecutor):
    """The asyncio executor, whose ``map`` hands the gate to :meth:`gated` instead."""

    gates_items = True

    async def map(  # type: ignore[override]
        self, fn: Any, items: Iterable[Any], *, limit: int | None, gate: Any = None
    ) -> list[Any]:
        each = fn if gate is None else functools.partial(self.gated, fn, gate)
        return await super().map(each, items, limit=limit)

    async def gated(self, fn: Any, gate: Any, item: Any) -> Any:
        raise NotImplementedError


class IgnoresTheGate(_GatesItems):
    """Declares the capability, and never enters the gate."""

    name = "ignores-the-gate"

    async def gated(self, fn: Any, gate: Any, item: Any) -> Any:
        return await fn(item)


class LeavesOnceSent(_GatesItems):
    """Leaves the gate once the item is handed over, not once it has ended."""

    name = "leaves-once-sent"

    async def gated(self, fn: Any, gate: Any, item: Any) -> Any:
        if not gate.try_enter():
            await gate.enter()
        call = fn(item)
        gate.leave()
        return await call


class LeavesOnlyOnSuccess(_GatesItems):
    """Leaves the gate after a call that returns, not after one that fails (no ``finally``)."""

    name = "leaves-only-on-success"

    async def gated(self, fn: Any, gate: Any, item: Any) -> Any:
        if not gate.try_enter():
            await gate.enter()
        result = await fn(item)
        gate.leave()
        return result


class TakesTryEnterForAYes(_GatesItems):
    """Calls ``try_enter``, and starts the item whatever it answered."""

    name = "takes-try-enter-for-a-yes"

    async def gated(self, fn: Any, gate: Any, item: Any) -> Any:
        gate.try_enter()
        try:
            return await fn(item)
        finally:
            gate.leave()


class OneEntryPerBatch(AsyncioExecutor):
    """Enters the gate once for the whole batch, rather than once per item."""

    name = "one-entry-per-batch"
    gates_items = True

    async def map(  # type: ignore[override]
        self, fn: Any, items: Iterable[Any], *, limit: int | None, gate: Any = None
    ) -> list[Any]:
        if gate is None:
            return await super().map(fn, items, limit=limit)
        if not gate.try_enter():
            await gate.enter()
        try:
            return await super().map(fn, items, limit=limit)
        finally:
            gate.leave()


# --- executors posing as remote ones that gate items ------------------------------
#
# Each pickles the work and runs the copy in this process, so the suite treats
# it as remote (probes recording to a file, a scaled batch) without a cluster.


class _RemoteLooking(AsyncioExecutor):
    """Runs items one at a time, each once it has entered the gate; left when it ends."""

    name = "remote-looking"
    remote = True
    gates_items = True

    async def map(  # type: ignore[override]
        self,
        fn: Any,
        items: Iterable[Any],
        *,
        limit: int | None,
        gate: Any = None,
        on_result: Any = None,
    ) -> list[Any]:
        assert gate is not None, "the suite's batches here are paced"
        return await self.each(pickle.loads(pickle.dumps(fn)), items, gate)

    async def each(self, work: Any, items: Iterable[Any], gate: Any) -> list[Any]:
        results = []
        for item in items:
            if not gate.try_enter():
                await gate.enter()
            try:
                results.append(await work(item))
            finally:
                gate.leave()
        return results


class KeepsTheTurns(_RemoteLooking):
    """Queues every item at the gate at once; on failure, those still queued keep their place.

    Each waits for its turn and only then sees that the batch has stopped
    (and leaves at once, running nothing): the turns of a failed batch are
    taken after it, from the runs that come next.
    """

    name = "keeps-the-turns"

    async def each(self, work: Any, items: Iterable[Any], gate: Any) -> list[Any]:
        stopped = asyncio.Event()

        async def one(item: Any) -> Any:
            await gate.enter()
            try:
                if stopped.is_set():
                    return None
                return await work(item)
            except BaseException:
                stopped.set()
                raise
            finally:
                gate.leave()

        return list(await asyncio.gather(*(one(item) for item in items)))


CASES = [
    (BareGather(), "test_failure_stops_the_batch"),
    (BareGather(), "test_limit_bounds_calls_and_pulls"),
    (EagerSemaphore(), "test_huge_input_is_pulled_lazily"),
    (CompletionOrder(), "test_results_in_input_order"),
    (CancelsButDoesNotWait(), "test_failure_stops_the_batch"),
    (WrapsInAGroup(), "test_failure_stops_the_batch"),
    (OneAtATime(), "test_parallel_items_overlap"),
    (CatchesOnlyExceptions(), "test_base_exception_is_raised_unwrapped"),
    (TaskGroupPerBatch(), "test_base_exception_is_raised_unwrapped"),
    (Workers(ask_len=True), "test_input_length_is_not_trusted"),
    (Workers(ask_len=False), "test_huge_limit_costs_what_no_limit_costs"),
    (IgnoresTheGate(), "test_gate_bounds_the_items_in_flight"),
    (LeavesOnceSent(), "test_gate_is_entered_before_each_call_and_left_after_it"),
    (LeavesOnlyOnSuccess(), "test_gate_is_left_when_the_batch_fails"),
    (LeavesOnlyOnSuccess(), "test_gate_is_left_when_the_caller_is_cancelled"),
    (TakesTryEnterForAYes(), "test_gate_bounds_the_items_in_flight"),
    (OneEntryPerBatch(), "test_gate_is_entered_before_each_call_and_left_after_it"),
]


# A broken executor may leave coroutines it scheduled never awaited (an item's
# KeyboardInterrupt tearing its task group down, say); Python reports them when
# they are collected. That is the breakage under test, not a test failure, so
# they are collected here, inside the test, where the filter applies.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(("executor", "test_name"), CASES, ids=[f"{e.name}-{t}" for e, t in CASES])
def test_the_suite_rejects_a_broken_executor(executor: Any, test_name: str) -> None:
    suite_class = type("Suite", (ExecutorConformance,), {"executor": executor})
    try:
        with pytest.raises((AssertionError, BaseExceptionGroup, TimeoutError)):
            getattr(suite_class(), test_name)()
    finally:
        gc.collect()


class TestRecordingExecutorPassesTheSequentialContract(ExecutorConformance):
    """The test double itself, without an inner executor, is a valid sequential executor."""

    executor = RecordingExecutor()
    parallel = False


def test_the_gate_properties_are_only_for_executors_that_gate_items() -> None:
    gating = type("Suite", (ExecutorConformance,), {"executor": IgnoresTheGate()})
    plain = type("Suite", (ExecutorConformance,), {"executor": BareGather()})
    name = "test_gate_bounds_the_items_in_flight"
    assert callable(getattr(gating, name))
    assert getattr(plain, name) is None  # not collected: pytest skips what is not callable
    # A subclass that swaps in a gating executor gets the property back.
    again = type("Again", (plain,), {"executor": IgnoresTheGate()})
    assert callable(getattr(again, name))


def test_the_suite_rejects_a_remote_executor_that_keeps_the_turns() -> None:
    """The turns its queued items keep show as a limiter still busy after the failed batch.

    The property's body, on a few inputs: through Hypothesis, every example
    fails, and it would try about a hundred more before it settled on the
    smallest (half a minute of remote-sized batches).
    """
    suite = type("Suite", (ExecutorConformance,), {"executor": KeepsTheTurns()})()
    body = PROPERTIES["test_turns_are_returned_after_a_failure"][0]
    for count, limit in [(20, None), (45, 3)]:
        with pytest.raises(AssertionError, match="the items that waited kept them"):
            body(suite, count, limit)


def test_a_remote_executor_that_gives_the_turns_back_passes() -> None:
    """The property of turns given back holds for a remote executor, through the gate it enters."""
    suite_class = type("Suite", (ExecutorConformance,), {"executor": _RemoteLooking()})
    suite_class().test_turns_are_returned_after_a_failure()
