"""What runs in a Ray worker process: one batch item, its outcome sent back as bytes.

Each item is one Ray task of :func:`run_item`. The batch's work (the
kernel's per-item trip, bound to a copy of the node) is pickled once per
batch and sent with each task as bytes, which costs Ray less than a
reference to the object store would (a large work does go there once, and
travels as a reference); the worker unpickles it once per batch, not once
per item (:func:`_work`).

The task never raises and never lets Ray pickle what it returns: it pickles
the outcome itself, the result or the exception (with its traceback as
text). So

* an item's ``SystemExit`` or ``KeyboardInterrupt`` is the item's failure,
  sent back like any other, instead of ending the worker process (which Ray
  would report as a crashed worker);
* a result that cannot be pickled is :class:`Unsendable`, which the client
  turns into one line naming the node and the item, instead of an error
  deep inside Ray's serializer;
* the exception reaches the caller as itself, its remote traceback attached
  as its cause (as :mod:`concurrent.futures` does for process pools).

A batch is stopped through its stop flag in the cluster's key-value store,
never with ``ray.cancel``: Ray 2.60's driver aborts (a failed internal check,
exit status 1, nothing printed) when it cancels a task whose result is
arriving at that moment. An item checks the flag as it starts (see
:func:`is_stopped`), and a thread of the worker looks at it while an item
runs (:class:`_Watcher`): once it is set, a sync item gets a
``KeyboardInterrupt`` at its next line of Python, and an async item's task is
cancelled (``CancelledError`` at its next ``await``, as a local executor
cancels). A Ctrl-C (SIGINT) reaching the worker does the same, through a
SIGINT handler installed while an async item runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import pickle
import signal
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import attrs

__all__ = [
    "SKIPPED",
    "RemoteTraceback",
    "Unsendable",
    "forget",
    "is_stopped",
    "kept_failures",
    "run_item",
    "stop",
]

#: Works kept unpickled per worker process: a few batches run side by side.
_KEPT = 8
_works: OrderedDict[bytes, Callable[[Any], Any]] = OrderedDict()
_lock = threading.Lock()


class RemoteTraceback(Exception):
    """The traceback of an item's exception where it was raised, in a Ray worker.

    Set as the ``__cause__`` of the exception the caller gets, so that the
    traceback printed shows where in ``exec`` it happened.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n'''\n{self.text}'''"


@attrs.frozen
class Unsendable:
    """An item's outcome that could not be pickled to travel back.

    Attributes:
        what: ``"result"`` or ``"exception"``.
        kind: The type of the value that would not pickle.
        error: Why, in one line (``TypeError: cannot pickle '_thread.lock' object``).
    """

    what: str
    kind: str
    error: str


def _work(holder: Sequence[Any]) -> Callable[[Any], Any]:
    """The batch's work, unpickled once per worker process and batch.

    Fetched first if it was put in the object store.
    """
    import ray
    import ray.cloudpickle as cloudpickle

    payload, key = holder[0], holder[1]
    with _lock:
        kept = _works.get(key)
        if kept is not None:
            _works.move_to_end(key)
            return kept
    sent = payload if isinstance(payload, bytes) else ray.get(payload[0])
    work: Callable[[Any], Any] = cloudpickle.loads(sent)
    with _lock:
        _works[key] = work
        while len(_works) > _KEPT:
            _works.popitem(last=False)
    return work


def _dumps(ok: bool, value: Any, text: str | None = None) -> bytes:
    """The outcome ``(ok, value, traceback text)``, pickled.

    A value that cannot be pickled is sent as :class:`Unsendable`. Plain
    :mod:`pickle` first, which costs a trivial result several times less;
    cloudpickle for what only it sends (a lambda, an instance of a class the
    worker got by value): plain pickle refuses those rather than send them
    wrong, since it names a function or class by its module and name.
    """
    import ray.cloudpickle as cloudpickle

    outcome = (ok, value, text)
    with contextlib.suppress(Exception):
        return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        sent: bytes = cloudpickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[no-untyped-call]
        return sent
    except Exception as exc:
        what = "result" if ok else "exception"
        unsendable = Unsendable(what, type(value).__qualname__, f"{type(exc).__name__}: {exc}")
        return pickle.dumps((False, unsendable, text))


def _failed(exc: BaseException) -> bytes:
    # Pickling an exception drops its traceback (and its cause): the text
    # travels beside it, and the client makes it the exception's cause.
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return _dumps(False, exc, text)


#: What a task returns, pickled, when its batch had stopped before it started.
SKIPPED = pickle.dumps((None, None, None))


#: The namespace of the stop flags in the cluster's key-value store.
NAMESPACE = "pocketcore"


def is_stopped(batch: str) -> bool:
    """Whether ``batch`` has stopped: its flag is set in the cluster's key-value store.

    A batch with a limit (or a gate) submits an item whenever another one
    settles, so an item may be submitted just after a sibling failed in
    another worker, before the news reaches the driver. Such an item asks
    here before it starts, and a failing item sets its batch's flag before
    its failure travels back: then no item starts after the first failure
    but those already on their way. The store is the cluster's own (its GCS),
    asked directly, not through a task: a check costs a round trip and
    never a worker. The items of a batch without a limit or a gate (each
    submitted before any could fail) are stopped by the driver, which sets
    the flag once it knows: they ask at most every :data:`POLL` seconds in
    each worker process (see :meth:`_Watcher.stopped`).
    """
    from ray.experimental import internal_kv

    return bool(internal_kv._internal_kv_exists(batch, namespace=NAMESPACE))


def stop(batch: str, *, kill_after: float | None = None) -> None:
    """Set ``batch``'s flag: its items stop as they start, or while they run (:class:`_Watcher`).

    Set by a failing item of a batch with a limit or a gate, and by the
    driver when it stops a batch. ``kill_after``: seconds after which the
    worker of an item still running kills itself (the driver's own local
    instance only: the deadline is this machine's clock). A flag already set
    is left as it is, unless a deadline is asked for.
    """
    from ray.experimental import internal_kv

    if kill_after is None:
        internal_kv._internal_kv_put(batch, b"1", overwrite=False, namespace=NAMESPACE)
    else:
        deadline = f"kill {time.time() + kill_after!r}".encode()
        internal_kv._internal_kv_put(batch, deadline, namespace=NAMESPACE)


def _flag(batch: str) -> bytes | None:
    from ray.experimental import internal_kv

    value: bytes | None = internal_kv._internal_kv_get(batch, namespace=NAMESPACE)
    return value


def _deadline(flag: bytes) -> float | None:
    """When the worker of an item still running must be killed (see :func:`stop`), if ever."""
    kind, _, when = flag.partition(b" ")
    return float(when) if kind == b"kill" else None


def forget(batch: str) -> None:
    """Drop a finished batch's flag and the failures kept for it (from the driver)."""
    from ray.experimental import internal_kv

    with contextlib.suppress(Exception):  # never set, or a Ray Client driver: nothing to drop
        internal_kv._internal_kv_del(batch, del_by_prefix=True, namespace=NAMESPACE)


def _failure_key(batch: str, index: int) -> str:
    return f"{batch}/failed/{index}"


def _keep_failure(batch: str, index: int, sent: bytes) -> None:
    """Keep an item's failure (its pickled outcome) beside the batch's flag.

    Ray reports a task it was asked to cancel as cancelled even when the
    item had already failed and returned its failure: the driver, which
    cancels the rest of a batch once it learns of a first failure, would
    lose every other failure that happened meanwhile. Kept here, it asks
    for them (:func:`kept_failures`) for the tasks that came back cancelled.
    """
    from ray.experimental import internal_kv

    with contextlib.suppress(Exception):  # the failure still travels back as the result
        internal_kv._internal_kv_put(_failure_key(batch, index), sent, namespace=NAMESPACE)


def kept_failures(batch: str, indices: Sequence[int]) -> dict[int, bytes]:
    """The failures kept for items ``indices`` of ``batch`` (from the driver), by index."""
    from ray.experimental import internal_kv

    found: dict[int, bytes] = {}
    with contextlib.suppress(Exception):  # a Ray Client driver: what came back is all there is
        for index in indices:
            sent = internal_kv._internal_kv_get(_failure_key(batch, index), namespace=NAMESPACE)
            if sent is not None:
                found[index] = sent
    return found


#: Seconds between two looks at the stop flag of a running item's batch; how old
#: a look at it may be for an item of a batch without a limit or a gate to start.
POLL = 0.05
#: Batches a worker process remembers its last look at the flag of.
_REMEMBERED = 64


@attrs.define(eq=False)
class _Watched:
    """The item running in this process: its batch, and how to stop it."""

    batch: str
    interrupt: Callable[[], None]
    #: Undo an ``interrupt`` not delivered yet (once the item has ended).
    revoke: Callable[[], None]
    #: When the watcher looks at the flag next (the first time: once it has run for POLL).
    due: float = attrs.field(factory=lambda: time.monotonic() + POLL)
    stopped: bool = False


class _Watcher:
    """The thread that stops this worker's running item once its batch's flag is set.

    Ray runs one task at a time in a worker process, so there is at most one
    item to watch. The flag is looked at every :data:`POLL` seconds while an
    item runs (an item that ends sooner costs no look, and the thread wakes
    at most once per :data:`POLL` however many such items run); once it is
    set, the item is interrupted, and its process is killed if the flag says
    so (see :func:`stop`) and the item has not ended by then.
    """

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.current: _Watched | None = None
        self.thread: threading.Thread | None = None
        #: The thread waits for an item to start (rather than for time to pass).
        self.idle = False
        #: batch -> (when its flag was last looked at, whether it was set)
        self.looks: OrderedDict[str, tuple[float, bool]] = OrderedDict()

    def watch(
        self, batch: str, interrupt: Callable[[], None], revoke: Callable[[], None]
    ) -> _Watched:
        """Watch the item starting now, until :meth:`unwatch`."""
        watched = _Watched(batch, interrupt, revoke)
        with self.changed:
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._run, name="pocketcore-ray-stop", daemon=True
                )
                self.thread.start()
            self.current = watched
            if self.idle:
                self.changed.notify()
        return watched

    def unwatch(self, watched: _Watched) -> bool:
        """Stop watching an item that has ended; whether its batch's flag interrupted it."""
        with self.changed:
            if self.current is watched:
                self.current = None
            if watched.stopped:
                watched.revoke()
        return watched.stopped

    def stopped(self, batch: str, *, exact: bool) -> bool:
        """Whether ``batch`` has stopped, for an item about to start.

        Asked of the store unless this process saw the flag set, or (not
        ``exact``) looked at it less than :data:`POLL` seconds ago: a batch
        of many short items costs a look every :data:`POLL` seconds per
        process, not one per item.
        """
        with self.changed:
            look = self.looks.get(batch)
        if look is not None and (look[1] or (not exact and time.monotonic() - look[0] < POLL)):
            return look[1]
        stopped = is_stopped(batch)
        self.looked(batch, stopped)
        return stopped

    def looked(self, batch: str, stopped: bool) -> None:
        with self.changed:
            self.looks[batch] = (time.monotonic(), stopped)
            self.looks.move_to_end(batch)
            while len(self.looks) > _REMEMBERED:
                self.looks.popitem(last=False)

    def _run(self) -> None:
        while True:
            with self.changed:
                self.idle = self.current is None
                if self.idle:
                    self.changed.wait()
                    continue
                watched = self.current
                assert watched is not None
                wait = watched.due - time.monotonic()
                if wait > 0:
                    self.changed.wait(wait)
                    continue
                watched.due = time.monotonic() + POLL
            try:
                flag = _flag(watched.batch)
            except Exception:  # the store did not answer: look again
                continue
            self.looked(watched.batch, flag is not None)
            if flag is None:
                continue
            deadline = _deadline(flag)
            with self.changed:
                if self.current is not watched:
                    continue
                if not watched.stopped:
                    watched.stopped = True
                    watched.interrupt()
                if deadline is not None and time.time() >= deadline:
                    # A sync item in a blocking call, which no interrupt ends.
                    os.kill(os.getpid(), signal.SIGKILL)


_watcher = _Watcher()


def _raise_in(thread: int, exc: type[BaseException] | None) -> None:
    """Have ``exc`` raised in ``thread`` at its next line of Python (``None``: no more)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), exc and ctypes.py_object(exc)
    )


def _cancel_soon(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has closed: the item has ended
        loop.call_soon_threadsafe(task.cancel)


def _outcome(
    work: Callable[[Any], Any], blocking: bool, item: Any, batch: str
) -> tuple[bool, Any, bool]:
    """``(True, result)`` or ``(False, exception)``, and whether the batch's flag stopped it.

    The outcome is recorded as soon as the item has ended, so that an
    interrupt arriving afterwards (the watcher's, or a Ctrl-C while the
    event loop closes) cannot replace it.
    """
    if blocking:
        thread = threading.get_ident()
        watched = _watcher.watch(
            batch,
            functools.partial(_raise_in, thread, KeyboardInterrupt),
            functools.partial(_raise_in, thread, None),
        )
        ended: tuple[bool, Any] | None = None
        while True:
            try:
                if ended is None:
                    try:
                        ended = (True, work(item))
                    except BaseException as exc:  # the item's failure, whatever it is, travels back
                        ended = (False, exc)
                return (*ended, _watcher.unwatch(watched))
            except KeyboardInterrupt:  # noqa: PERF203 - the watcher's, landing after the item ended
                continue
    box: list[tuple[bool, Any]] = []
    stopped = [False]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        restore = _cancelled_by_sigint(loop, task)
        watched = _watcher.watch(batch, functools.partial(_cancel_soon, loop, task), lambda: None)
        try:
            box.append((True, await work(item)))
        except BaseException as exc:  # SystemExit too: it must not leave the event loop
            box.append((False, exc))
        finally:
            stopped[0] = _watcher.unwatch(watched)
            restore()

    try:
        asyncio.run(main())
    except BaseException as exc:  # a cancellation before the item started
        if not box:
            box.append((False, exc))
    return (*box[0], stopped[0])


def _cancelled_by_sigint(loop: asyncio.AbstractEventLoop, task: Any) -> Callable[[], None]:
    """Have SIGINT (Ctrl-C) cancel ``task``; return how to put the handler back.

    Through the loop's own signal handling, which wakes the loop when the
    signal arrives: a plain handler would run only once the wait in the
    selector ended.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # only the main thread has signal handlers (Ray runs tasks there)
    previous = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, task.cancel)
    except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - no such loop
        return lambda: None

    def restore() -> None:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, previous)

    return restore


def run_item(task: tuple[Sequence[Any], bool, Any, int]) -> bytes:
    """One item: ``work(item)`` (run to its end by ``asyncio.run`` unless ``blocking``).

    ``task`` is ``(holder, blocking, item, index)``, sent as one argument
    (Ray serializes each argument apart, at a cost per task). ``holder`` is
    ``(work, key, flagged, batch)``: the batch's work, pickled (or
    ``[reference]`` to it in the object store) and its key, whether the
    batch has a limit or a gate (its items check the stop flag exactly as
    they start, see :func:`is_stopped`), and the batch's name.

    Returns:
        ``(ok, value, text)`` pickled: the result, or the item's exception
        (any, ``SystemExit`` too) and its traceback, or an :class:`Unsendable`; :data:`SKIPPED` when
        the batch had stopped before the item started, or stopped it. A
        failure is also kept in the cluster's key-value store (see
        :func:`kept_failures`).
    """
    holder, blocking, item, index = task
    flagged, batch = holder[2], holder[3]
    try:
        work = _work(holder)
    except BaseException as exc:  # the work could not be fetched
        ok, value, stopped = False, exc, False
    else:
        # Once the work is at hand: the first time a process unpickles it
        # (importing what it needs), the batch may stop meanwhile.
        if _watcher.stopped(batch, exact=flagged):
            return SKIPPED
        ok, value, stopped = _outcome(work, blocking, item, batch)
    if stopped and isinstance(value, (KeyboardInterrupt, asyncio.CancelledError)):
        return SKIPPED  # the batch's stop, not the item's failure
    sent: bytes | None = None
    while True:
        try:
            if ok:
                return _dumps(True, value)
            if flagged:
                stop(batch)
            if sent is None:
                sent = _failed(value)
            _keep_failure(batch, index, sent)
            return sent
        except KeyboardInterrupt:  # noqa: PERF203 - once per cancelled item, not per loop
            # A Ctrl-C arriving once the item has ended: the outcome stands
            # (a failure must not be lost to it).
            continue
