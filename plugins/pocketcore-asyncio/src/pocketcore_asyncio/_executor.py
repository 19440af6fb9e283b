"""The ``asyncio`` executor itself (see the package docstring), on ``pocketcore.TaskExecutor``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pocketcore import TaskExecutor, attach_failures

if TYPE_CHECKING:
    from pocketcore import Gate

__all__ = ["AsyncioExecutor"]


def _attach(first: BaseException, others: Iterable[BaseException]) -> None:
    """Name the other failures on the one that is raised (cancellations are not failures)."""
    attach_failures(first, (e for e in others if not isinstance(e, asyncio.CancelledError)))


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
    """One call of ``map``: its function, tasks, results and failures, and how it ends.

    The items' loop is ``pocketcore.TaskExecutor``'s (``start`` and ``pull``);
    this is the asyncio side of it. Every exception is caught inside the
    tasks: a ``KeyboardInterrupt`` or ``SystemExit`` escaping a task would
    leave the event loop itself rather than reach the caller of ``map``.
    """

    __slots__ = (
        "done",
        "failures",
        "fn",
        "gate",
        "loop",
        "pending",
        "results",
        "source",
        "stopped",
        "tasks",
    )

    cancellation = asyncio.CancelledError

    def __init__(
        self,
        fn: Callable[[Any], Awaitable[Any]],
        loop: asyncio.AbstractEventLoop,
        gate: Gate | None = None,
    ) -> None:
        self.fn = fn
        self.gate = gate
        self.loop = loop
        self.tasks: list[asyncio.Task[Any]] = []
        self.results: list[Any] = []
        # The first entry is what ``map`` raises. Once there is one, no item
        # starts, even one whose task is already scheduled.
        self.failures: list[BaseException] = []
        self.source: Iterator[Any] | None = None
        # What ``map`` awaits: its result is set when the last task ends, or
        # at the first failure; it is cancelled with the caller, or by a task
        # cancelled from outside the batch.
        self.done: asyncio.Future[None] = loop.create_future()
        # Once ``done`` is settled (a call has failed, or the caller is
        # cancelled), no item starts and none is taken.
        self.stopped = self.done.done
        # Tasks whose coroutine has not ended yet (set once all are started).
        self.pending = 0

    def spawn(self, index: int, item: Any) -> None:
        self.tasks.append(self.loop.create_task(TaskExecutor.pull(self, index, item)))

    def fail(self, exc: BaseException) -> None:
        self.failures.append(exc)
        if len(self.failures) == 1:
            # From inside the failing task, before any other task takes a
            # step: a sibling not started yet never starts.
            current = asyncio.current_task()
            for task in self.tasks:
                if task is not current:
                    task.cancel()
            if not self.done.done():
                self.done.set_result(None)

    def ended(self) -> None:
        """A task's coroutine ended normally; the last one wakes ``map``."""
        self.pending -= 1
        # done is already settled if the caller was cancelled and a task
        # swallowed its own cancellation.
        if not self.pending and not self.done.done():
            self.done.set_result(None)

    def cancelled(self) -> None:
        """A task is being cancelled: unless the batch is stopping already, it stops now.

        Either ``map``'s caller or a failure cancelled it (``done`` is settled
        then), or something outside the batch did: ``map`` then raises that
        cancellation, as ``gather`` does when one of its tasks is cancelled.
        """
        if not self.done.done():
            self.done.cancel()

    def start(self, items: Iterable[Any], limit: int | None) -> None:
        """The first tasks (see ``TaskExecutor.start``), then what ``settle`` counts down."""
        TaskExecutor.start(self, items, limit)
        self.pending = len(self.tasks)

    async def run(self, items: Iterable[Any], limit: int | None) -> None:
        """Start the tasks, then wait for them (``pocketcore.TaskBatch.run``)."""
        self.start(items, limit)
        await self.settle()

    async def settle(self) -> None:
        """Return once no task of the batch runs any more, raising the caller's cancellation.

        In the usual case every task has ended when ``done`` is set. Otherwise
        (a failure, or a cancellation) every task is cancelled and awaited. A
        cancellation that came with a failure already recorded gives way to the
        failure, which ``map`` raises; any other is raised, with the failures
        named on it.
        """
        if not self.tasks:
            return
        try:
            await self.done
        except asyncio.CancelledError as exc:  # the caller's, or a task's from outside
            stopped: asyncio.CancelledError | None = exc
        else:
            if not self.failures:
                return
            stopped = None
        failed = bool(self.failures)  # before the cancellation, not while it is under way
        for task in self.tasks:
            task.cancel()
        caller = await _wait_for_all(self.tasks)
        if caller is not None:
            # The caller gave up on the batch while it was being stopped: its
            # own cancellation is what it must get back (a timeout recognises
            # itself by it), with the failures named on it.
            _attach(caller, self.failures)
            raise caller from None
        if stopped is not None and not failed:
            _attach(stopped, self.failures)
            raise stopped


class AsyncioExecutor(TaskExecutor):
    """Runs items concurrently as asyncio tasks.

    With ``limit=None`` every item becomes a task at once. With ``limit=k``,
    a task is started for each of the first ``k`` items; from then on each
    task, once its item is done, takes the next item from the input. So at
    most ``k`` calls are in flight, at most ``k`` items have been pulled but
    not finished, and there are never more tasks than items pulled, however
    large ``k`` is.

    Any exception an item raises, ``KeyboardInterrupt`` and ``SystemExit``
    included, stops the batch and is raised by ``map`` itself, unwrapped.
    """

    name = "asyncio"
    backend: str | None = "asyncio"

    def batch(self, fn: Callable[[Any], Awaitable[Any]], gate: Gate | None) -> _Batch:
        """The tasks of one ``map`` call, on the running asyncio loop."""
        return _Batch(fn, asyncio.get_running_loop(), gate)


# Known by its public place: in tracebacks, in the docs, and to pickle.
AsyncioExecutor.__module__ = "pocketcore_asyncio"
