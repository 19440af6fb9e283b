"""Running blocking (sync) per-item work concurrently, through the run's executor.

The executor schedules; each call hands one item's sync pipeline to a worker
thread with anyio, so every executor (on asyncio or trio) can drive blocking
work. (An executor that runs blocking items itself, a
:class:`pocketcore.BlockingExecutor`, is handed the sync work instead; see
:mod:`pocketcore._dispatch.batch`.)
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import sniffio

from pocketcore._core.executor import Executor
from pocketcore._runtime.context import THREAD_STOP

__all__ = ["call_sync", "on_threads", "run_blocking"]

T = TypeVar("T")


def on_threads(
    work: Callable[[Any], Any], limit: int | None
) -> tuple[Callable[[Any], Awaitable[Any]], int | None]:
    """Turn the sync ``work(item)`` into calls on worker threads that an executor can ``map``.

    Returns the per-item coroutine function and the limit to map it with: at
    most ``limit`` threads work on the batch at once, and without a limit
    anyio's default thread limiter (40 threads) applies. Threads cannot be
    cancelled: when an item fails, items not started never start, and the
    failure is raised once the threads already running have returned (their
    results are dropped).
    """
    if limit is None:
        # No more items are started (and pulled) than threads can take: the
        # rest wait in the input, not as tasks queued for a thread.
        limiter = None
        limit = int(anyio.to_thread.current_default_thread_limiter().total_tokens)
    else:
        limiter = anyio.CapacityLimiter(limit)
    stop = threading.Event()  # one per batch: set by the first failure or cancellation

    async def on_thread(item: Any) -> Any:
        return await _ThreadCall(work, item, stop).run(limiter)

    return on_thread, limit


async def call_sync(work: Callable[[Any], Any], item: Any) -> Any:
    """``work(item)`` as a coroutine, for a remote executor without ``map_blocking``."""
    return work(item)


class _NotStarted(Exception):
    """Raised on the worker thread for an item that must not start: its batch is over."""


class _ThreadCall:
    """One item's work on a worker thread, which a cancellation waits for.

    anyio shields a worker thread from anyio cancel scopes, but a plain
    ``task.cancel()`` (what the asyncio executor, ``asyncio.wait_for`` or a
    TaskGroup use) ends the await at once and leaves the thread running. The
    contract says nothing of a batch may run on after ``map`` has raised, so
    a cancelled call either stops the work from starting or waits for it.
    """

    __slots__ = ("abandoned", "args", "finished", "lock", "started", "stop", "stopped", "work")

    def __init__(self, work: Callable[[Any], Any], item: Any, stop: threading.Event) -> None:
        self.work, self.args = work, item
        self.lock = threading.Lock()
        self.finished = threading.Event()
        # Shared by the batch and seen by each item's retry loop (THREAD_STOP).
        # Set from the failing thread itself too: on trio a call in a worker
        # thread cannot be cancelled, so the siblings would not hear of it.
        self.stop = stop
        self.started = self.abandoned = self.stopped = False

    def _on_thread(self) -> Any:
        with self.lock:
            # Cancelled before a thread picked it up, or the batch failed while
            # it waited for a thread: items not yet started never start.
            if self.abandoned or self.stop.is_set():
                self.abandoned = True
                raise _NotStarted
            self.started = True
        THREAD_STOP.set(self.stop)  # anyio runs each call in a context of its own
        try:
            return self.work(self.args)
        except BaseException:
            if self.stop.is_set():  # the batch had failed already: not a failure of its own
                self.stopped = True
            self.stop.set()
            raise
        finally:
            self.finished.set()

    async def run(self, limiter: anyio.CapacityLimiter | None) -> Any:
        try:
            # On trio a call in a worker thread cannot be cancelled: the await
            # below only returns when the thread does. A watcher task hears the
            # cancellation instead and tells the item's retry loop to stop.
            async with anyio.create_task_group() as watch:
                watch.start_soon(self._stop_when_cancelled)
                try:
                    value = await anyio.to_thread.run_sync(self._on_thread, limiter=limiter)
                except anyio.get_cancelled_exc_class():
                    raise
                except BaseException as exc:
                    # Whatever the item raised (SystemExit and KeyboardInterrupt
                    # too) is kept out of the task group, which would wrap it in
                    # a group, and raised as itself below.
                    failure: BaseException | None = exc
                else:
                    failure = None
                watch.cancel_scope.cancel()
            if isinstance(failure, _NotStarted):
                # The batch failed or was cancelled while this item waited for
                # a thread: it has no result, only the cancellation that is on
                # its way to end this call (from the executor or the caller).
                await anyio.sleep_forever()
            if failure is not None:
                raise failure
            return value
        except BaseException as exc:
            self.stop.set()
            with self.lock:
                self.abandoned = not self.started
            held = await self._wait() if self.started else None
            if held is not None:
                raise held from None
            if self.stopped and not isinstance(exc, anyio.get_cancelled_exc_class()):
                # This item gave up because a sibling failed: its error must not
                # overtake the sibling's on its way to the executor, which is
                # about to cancel this call anyway.
                await anyio.sleep_forever()
            raise

    async def _stop_when_cancelled(self) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            if not self.finished.is_set():  # cancelled while the work goes on
                self.stop.set()

    async def _wait(self) -> BaseException | None:
        """Wait for the thread to finish, whatever cancels this task meanwhile.

        Shielded from anyio scopes; a further native cancellation (asyncio's
        ``task.cancel()``, which shields do not stop) is held back, as
        returning before the thread ends would orphan it. The last one held
        back is returned, to be raised in place of the first: it carries the
        latest canceller's identity (anyio tells its own cancellations from
        others' by it), so a timeout that fired while this call waited is
        still recognised as the timeout's.
        """
        held: BaseException | None = None
        delay = 0.0005
        while not self.finished.is_set():
            with anyio.CancelScope(shield=True):
                try:
                    await anyio.sleep(delay)
                except anyio.get_cancelled_exc_class() as exc:
                    held = exc
            delay = min(delay * 2, 0.01)
        return held


def run_blocking(executor: Executor, fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn()`` to completion from sync code, on the loop ``executor`` starts.

    A sync node may run where an event loop is already running in this
    thread (a sync node inside an async flow runs inline, as in PocketFlow).
    A second loop cannot start there, so the batch then gets a loop of its
    own on a helper thread, and this thread waits for it, as any sync node
    blocks its caller.
    """
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        loop_running = False
    else:
        loop_running = True
    if not loop_running:  # outside the except block: no chained context on errors
        return executor.run(fn)
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, executor.run(fn)))
        except BaseException as exc:  # handed to the waiting thread below
            outcome.append((False, exc))

    # The run's configuration travels in context variables: take them along.
    context = contextvars.copy_context()
    helper = threading.Thread(target=context.run, args=(target,), name="pocketcore-batch")
    helper.start()
    helper.join()
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value
