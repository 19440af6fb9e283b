"""The ``asyncio`` executor: items as asyncio tasks, gathered with ``asyncio.gather``.

Unlike a bare ``gather``, a failing item cancels its siblings and ``map`` waits
for them before raising the item's own exception, and ``limit`` bounds the
tasks in flight: each task takes the next item from the input once its own
is done. It imports pocketcore only where a batch has failed, to name the
other failures (the kernel is loaded by then).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

import pluggy

__all__ = ["AsyncioExecutor", "pocketcore_register_executors"]

T = TypeVar("T")
R = TypeVar("R")

hookimpl = pluggy.HookimplMarker("pocketcore")
_END = object()


def _attach(first: BaseException, others: Iterable[BaseException]) -> None:
    """Name the other failures on the one that is raised (cancellations are not failures)."""
    # The kernel is loaded wherever a batch runs; importing it only here keeps
    # this plugin free of it when it is loaded.
    from pocketcore import attach_failures

    attach_failures(first, (e for e in others if not isinstance(e, asyncio.CancelledError)))


async def _settle(tasks: list[asyncio.Task[Any]], failures: list[BaseException]) -> list[Any]:
    """Gather the batch's tasks; if that ends early, cancel them all and await every one.

    The tasks catch their items' exceptions into ``failures``, so what ends the
    gather early is a cancellation: the caller's, an item's own, or that of a
    sibling a failure cancelled. That last one gives way to the failure (``[]``
    is returned, and ``map`` raises the failure); the others go on.
    """
    try:
        return await asyncio.gather(*tasks)
    except BaseException as exc:
        failed = bool(failures)  # before the cancellation, not while it is under way
        for task in tasks:
            task.cancel()
        caller = await _wait_for_all(tasks)
        if caller is not None:
            # The caller gave up on the batch while it was being stopped: its
            # own cancellation is what it must get back (a timeout recognises
            # itself by it), with the failures named on it.
            _attach(caller, failures)
            raise caller from None
        if failed:
            return []
        _attach(exc, failures)
        raise


async def _wait_for_all(tasks: list[asyncio.Task[Any]]) -> asyncio.CancelledError | None:
    """Wait until every task is done, even if this task is cancelled meanwhile.

    Returning before then would leave items of the batch running after
    ``map`` has raised. ``asyncio.wait`` (unlike ``gather``) leaves the tasks
    alone when the waiter is cancelled, so the cancellation can be held here
    and returned, the last one received, to be raised once the tasks are done.
    """
    held = None
    pending = [task for task in tasks if not task.done()]
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError as exc:
            held = exc
        pending = [task for task in pending if not task.done()]
    return held


class _Batch:
    """One call of ``map``: its function, tasks, results and failures.

    Every exception is caught inside the tasks: a ``KeyboardInterrupt`` or
    ``SystemExit`` escaping a task would leave the event loop itself rather
    than reach the caller of ``map``.
    """

    __slots__ = ("failures", "fn", "results", "source", "tasks")

    def __init__(self, fn: Callable[[Any], Awaitable[Any]]) -> None:
        self.fn = fn
        self.tasks: list[asyncio.Task[Any]] = []
        self.results: list[Any] = []
        # The first entry is what ``map`` raises. Once there is one, no item
        # starts, even one whose task is already scheduled.
        self.failures: list[BaseException] = []
        self.source: Iterator[Any] = iter(())

    def fail(self, exc: BaseException) -> None:
        self.failures.append(exc)
        if len(self.failures) == 1:
            current = asyncio.current_task()
            for task in self.tasks:
                if task is not current:
                    task.cancel()

    async def call(self, item: Any) -> Any:
        """One item of an unlimited batch."""
        if self.failures:
            return None
        try:
            return await self.fn(item)
        except asyncio.CancelledError:
            raise  # the batch's or the caller's cancellation
        except BaseException as exc:
            self.fail(exc)
            return None

    async def worker(self, index: int, item: Any) -> None:
        """A task of a limited batch: its item, then the next ones it pulls."""
        # Checked before each item (and so before each pull): once a call has
        # failed, no item starts and none is taken.
        if self.failures:
            return
        results = self.results
        try:
            while True:
                results[index] = await self.fn(item)
                if self.failures:
                    return
                item = next(self.source, _END)
                if item is _END:
                    return
                index = len(results)
                results.append(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the item's, or the input's
            self.fail(exc)

    def start_all(self, loop: asyncio.AbstractEventLoop, items: Iterable[Any]) -> None:
        """A task for every item, at once."""
        try:
            # extend() keeps the tasks made before the input raised, so they
            # can be cancelled and awaited rather than left running.
            self.tasks.extend(loop.create_task(self.call(item)) for item in items)
        except BaseException as exc:  # the input itself failed: a failure like any
            self.fail(exc)

    def start_limited(
        self, loop: asyncio.AbstractEventLoop, items: Iterable[Any], limit: int
    ) -> None:
        """A task per item until ``limit`` are running; the tasks then take over the pulling.

        Nothing here awaits, so no task runs (or fails) before this is done.
        """
        self.source = source = iter(items)
        try:
            for index in range(limit):
                item = next(source, _END)
                if item is _END:
                    break
                self.results.append(None)
                self.tasks.append(loop.create_task(self.worker(index, item)))
        except BaseException as exc:  # the input itself failed: a failure like any
            self.fail(exc)


class AsyncioExecutor:
    """Runs items concurrently as asyncio tasks.

    With ``limit=None`` every item becomes a task at once, and the tasks are
    gathered. With ``limit=k``, a task is started for each of the first ``k``
    items; from then on each task, once its item is done, takes the next item
    from the input. So at most ``k`` calls are in flight, at most ``k`` items
    have been pulled but not finished, and there are never more tasks than
    items pulled, however large ``k`` is.

    Any exception an item raises, ``KeyboardInterrupt`` and ``SystemExit``
    included, stops the batch and is raised by ``map`` itself, unwrapped.
    """

    name = "asyncio"
    backend: str | None = "asyncio"

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` on a new asyncio event loop (``asyncio.run``)."""

        async def main() -> T:
            return await fn()

        return asyncio.run(main())

    async def map(
        self, fn: Callable[[Any], Awaitable[R]], items: Iterable[Any], *, limit: int | None
    ) -> list[R]:
        """Await ``fn(item)`` for all items concurrently; results in input order.

        Raises:
            BaseException: The first exception an item (or the input) raised,
                unwrapped; other failures are named in its notes.
        """
        loop = asyncio.get_running_loop()
        batch = _Batch(fn)
        if limit is None:
            batch.start_all(loop, items)
            results = await _settle(batch.tasks, batch.failures)
        else:
            batch.start_limited(loop, items, limit)
            await _settle(batch.tasks, batch.failures)
            results = batch.results
        if batch.failures:
            _attach(batch.failures[0], batch.failures[1:])
            raise batch.failures[0]
        return results

    def __repr__(self) -> str:
        return "AsyncioExecutor()"


@hookimpl
def pocketcore_register_executors(register: Callable[[Any], None]) -> None:
    """Register the ``asyncio`` executor."""
    register(AsyncioExecutor())
