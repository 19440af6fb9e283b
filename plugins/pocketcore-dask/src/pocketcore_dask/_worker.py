"""What runs on a dask worker: one batch item, guarded by the batch's stop flag.

Every batch has a stop flag: a ``distributed.Event`` named after the batch,
kept by the scheduler, so every worker sees the same value. It is set by the
first item that fails (before its exception even leaves the worker), and by
the client when the caller is cancelled. A task checks it before doing any
work, so items that had not started when the batch stopped never start.

A task already running cannot be stopped by dask (``Future.cancel`` only
forgets the result). So each worker process also keeps a registry of the
async items it is running: the client broadcasts :func:`interrupt` to every
worker, which cancels those items' asyncio tasks, exactly as a local
executor cancels its in-flight items (``CancelledError`` at their next
``await``). Sync items (the items of a ``ParallelBatchNode``) run on until
they return, and so does an async item until it reaches an ``await``.

An item that raises ``SystemExit`` (``sys.exit()``) or ``KeyboardInterrupt``
must not take its worker down, as dask lets them do: the task sends it back
wrapped in :class:`Exited`, an ordinary exception, and the client raises the
item's own exception again.

This module is also the preload of the workers of a ``LocalCluster`` the
plugin starts (:func:`dask_setup`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from distributed import Event

# distributed leaves Event's methods unannotated, hence the few
# ``type: ignore[no-untyped-call]`` below.

__all__ = [
    "Exited",
    "Stopped",
    "Unsendable",
    "dask_setup",
    "forget",
    "interrupt",
    "quiet_failures",
    "run_async_item",
    "run_sync_item",
]


class Stopped(enum.Enum):
    """What a task returns instead of a result when its batch stopped (enums pickle by name)."""

    #: The batch had stopped before the item started: its work never ran.
    SKIPPED = "skipped"
    #: The item was running and its asyncio task was cancelled.
    CANCELLED = "cancelled"


class Exited(Exception):
    """An item's ``SystemExit`` or ``KeyboardInterrupt``, as an exception dask sends back.

    dask lets these two end the worker process (the nanny then starts a new
    one, and the client learns only that a worker died). Wrapped, they travel
    like any failure, with the item's traceback.

    Attributes:
        exit: The item's own exception.
    """

    def __init__(self, exit: BaseException) -> None:
        super().__init__(exit)
        self.exit = exit

    def __reduce__(self) -> tuple[Any, ...]:
        # A pickled SystemExit comes back with its code None (the code is no
        # attribute pickle saves): carry it alongside.
        return (_exited_again, (self.exit, getattr(self.exit, "code", None)))


def _exited_again(exit: BaseException, code: Any) -> Exited:
    if isinstance(exit, SystemExit):
        exit.code = code
    return Exited(exit)


def _exited(exc: BaseException) -> BaseException:
    """``exc`` as the worker should raise it: wrapped if dask would let it kill the worker."""
    if isinstance(exc, (SystemExit, KeyboardInterrupt)):
        return Exited(exc).with_traceback(exc.__traceback__)
    return exc


class Unsendable(Exception):
    """An item's result that cannot be pickled, so cannot travel back to the client.

    Raised in the worker, where the result is made, before dask tries to
    send it (and fails deep in its protocol, logging the failure at length).
    The client names the node and the item (see ``_batch``).
    """


def _drop(buffer: Any) -> None:
    """Out-of-band buffers (an array's data) are not copied: only whether it pickles counts."""


def _sendable(result: Any) -> Any:
    """``result``, once it is known to pickle; else :class:`Unsendable`, in one line."""
    # cloudpickle (which comes with distributed), as distributed's own
    # pickling falls back to; quietly, where distributed's logs each failure.
    import cloudpickle  # type: ignore[import-untyped]

    try:
        cloudpickle.dumps(result, protocol=5, buffer_callback=_drop)
    except Exception as exc:
        raise Unsendable(
            f"a {type(result).__qualname__}, which cannot be pickled: {type(exc).__name__}: {exc}"
        ) from None
    return result


#: Set to "1" in the environment of a LocalCluster's worker processes to keep
#: dask's "Compute Failed" log of an item that raised.
LOG_FAILURES_ENV = "POCKETCORE_DASK_LOG_FAILURES"


def dask_setup(worker: Any) -> None:
    """Preload of the worker processes of the plugin's ``LocalCluster``.

    Ignore SIGINT: those workers share the terminal's process group with the
    run, so Ctrl-C reaches them too. Left to it, each one dies half-way through
    its own shutdown, printing tracebacks, while the run waits for the tasks
    it held. The run is the one to stop them: interrupted, it kills them itself.

    And, unless ``log_failures`` is set, leave out dask's "Compute Failed"
    log of a failing item (see :func:`quiet_failures`).
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_failures(os.environ.get(LOG_FAILURES_ENV, "").strip().lower() not in ("1", "true"))


class _QuietFailures(logging.Filter):
    """Drops distributed's "Compute Failed" record for a pocketcore item's task.

    The item's exception, with the worker's traceback, reaches the caller of
    the run: the same traceback printed again by the worker, into the same
    terminal, is noise. Failures of other tasks are left alone.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Compute Failed"):
            return True
        key = record.args[0] if isinstance(record.args, tuple) and record.args else None
        return not (isinstance(key, tuple) and str(key[0]).startswith("pocketcore-"))


_quiet = _QuietFailures()


def quiet_failures(on: bool) -> None:
    """Leave out (``on``) or keep dask's "Compute Failed" log of pocketcore's items, here."""
    logger = logging.getLogger("distributed.worker")
    if on:
        logger.addFilter(_quiet)  # once: a filter already there is not added again
    else:
        logger.removeFilter(_quiet)


# The async items running in this worker process, per batch, and the batches
# that have stopped here. One lock makes "register unless stopped" and "mark
# stopped, then cancel what is registered" exclusive, so an item is either
# cancelled or never starts; an item leaves the registry before its event
# loop closes, so a cancellation is never sent to a closed loop.
_lock = threading.Lock()
_running: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]]] = {}
_stopped: set[str] = set()


def _should_skip(stop: Event) -> bool:
    if stop.name in _stopped:  # this process already knows: no round trip
        return True
    return bool(stop.is_set())  # type: ignore[no-untyped-call]


def _halt(stop: Event) -> None:
    """Stop the batch from a failing item: everywhere (the flag), and here at once."""
    # Best effort: should the scheduler be unreachable, the client sets the
    # flag too once the error reaches it.
    with contextlib.suppress(Exception):
        stop.set()  # type: ignore[no-untyped-call]
    interrupt(stop.name)


def run_async_item(fn: Callable[[Any], Awaitable[Any]], stop_name: str, item: Any) -> Any:
    """The task of one async item: ``asyncio.run(fn(item))`` in this worker thread.

    Returns the result, or a :class:`Stopped` marker. The item's own exception
    is re-raised (dask sends it to the client) once the batch is stopped.
    """
    stop = Event(stop_name)  # type: ignore[no-untyped-call]  # bound to the worker's client
    return asyncio.run(_guarded(fn, item, stop))


async def _call(fn: Callable[[Any], Awaitable[Any]], item: Any) -> Any:
    try:
        return await fn(item)
    except (SystemExit, KeyboardInterrupt) as exc:
        # Here, before asyncio sees it: the two would break out of the
        # item's event loop rather than end its task.
        raise _exited(exc) from None


async def _guarded(fn: Callable[[Any], Awaitable[Any]], item: Any, stop: Event) -> Any:
    # The check is made and the flag set on this item's own loop, already
    # running, so that as little as possible separates the check from the
    # item's start, and a failure from the flag. (The blocking calls to the
    # scheduler block only this loop, which runs this item alone.)
    if _should_skip(stop):
        return Stopped.SKIPPED
    name = stop.name
    loop = asyncio.get_running_loop()
    with _lock:
        if name in _stopped:
            return Stopped.SKIPPED
        task = loop.create_task(_call(fn, item))  # starts at the first await below
        entry = (loop, task)
        _running.setdefault(name, set()).add(entry)
    try:
        return _sendable(await task)
    except asyncio.CancelledError:
        # This coroutine is never cancelled itself (it is asyncio.run's main
        # task); a cancelled item task is ours when its batch has stopped.
        if task.cancelled() and name in _stopped:
            return Stopped.CANCELLED
        _halt(stop)
        raise
    except BaseException:
        _halt(stop)
        raise
    finally:
        with _lock:
            entries = _running.get(name)
            if entries is not None:
                entries.discard(entry)
                if not entries:
                    del _running[name]


def run_sync_item(fn: Callable[[Any], Any], stop_name: str, item: Any) -> Any:
    """The task of one sync item: ``fn(item)`` in this worker thread.

    It cannot be interrupted once started; it only checks the stop flag first.
    """
    stop = Event(stop_name)  # type: ignore[no-untyped-call]
    if _should_skip(stop):
        return Stopped.SKIPPED
    try:
        return _sendable(fn(item))
    except BaseException as exc:
        _halt(stop)
        wrapped = _exited(exc)
        if wrapped is exc:
            raise
        raise wrapped from None


def interrupt(stop_name: str) -> None:
    """Mark the batch stopped in this process and cancel its running async items.

    Run on every worker by the client (``Client.run``) when the batch stops.
    """
    with _lock:
        _stopped.add(stop_name)
        for loop, task in _running.get(stop_name, ()):
            loop.call_soon_threadsafe(task.cancel)


def forget(stop_name: str) -> None:
    """Drop what this process remembers of a finished batch (run on every worker)."""
    with _lock:
        _stopped.discard(stop_name)
