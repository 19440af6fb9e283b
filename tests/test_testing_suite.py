"""The conformance suite can fail: it catches executors that break the contract.

Each broken executor below breaks one clause the way a plausible
implementation would; the suite's matching property must reject it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pytest

from pocketcore.testing import ExecutorConformance, RecordingExecutor

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
