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

Ray's cancellation of a running task arrives as a simulated Ctrl-C
(``_thread.interrupt_main``) in the worker. A sync item gets it as a
``KeyboardInterrupt`` at its next line of Python; an async item's task is
cancelled instead (``CancelledError`` at its next ``await``, as a local
executor cancels), by a SIGINT handler installed while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import signal
import threading
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
    never a worker. A batch without a limit or a gate never asks (each of
    its items was submitted before any could fail).
    """
    from ray.experimental import internal_kv

    return bool(internal_kv._internal_kv_exists(batch, namespace=NAMESPACE))


def stop(batch: str) -> None:
    """Set ``batch``'s flag."""
    from ray.experimental import internal_kv

    internal_kv._internal_kv_put(batch, b"1", namespace=NAMESPACE)


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


def _outcome(work: Callable[[Any], Any], blocking: bool, item: Any) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, exception)``, recorded as soon as the item has ended.

    Recorded first, so that Ray's cancellation (a ``KeyboardInterrupt``)
    arriving afterwards, while the event loop closes, cannot replace it.
    """
    if blocking:
        try:
            return True, work(item)
        except BaseException as exc:  # the item's failure, whatever it is, travels back
            return False, exc
    box: list[tuple[bool, Any]] = []

    async def main() -> None:
        restore = _cancelled_by_sigint(asyncio.get_running_loop(), asyncio.current_task())
        try:
            box.append((True, await work(item)))
        except BaseException as exc:  # SystemExit too: it must not leave the event loop
            box.append((False, exc))
        finally:
            restore()

    try:
        asyncio.run(main())
    except BaseException as exc:  # Ray's cancellation, before the item started
        if not box:
            box.append((False, exc))
    return box[0]


def _cancelled_by_sigint(loop: asyncio.AbstractEventLoop, task: Any) -> Callable[[], None]:
    """Have SIGINT (Ray's cancellation) cancel ``task``; return how to put the handler back.

    Through the loop's own signal handling, which wakes the loop when the
    signal arrives: Ray's simulated Ctrl-C does not interrupt a wait in the
    selector, and a plain handler would run only once the wait ended.
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
    batch has a stop flag (see :func:`is_stopped`), and the batch's name.

    Returns:
        ``(ok, value, text)`` pickled: the result, or the item's exception
        (any, ``SystemExit`` too) and its traceback, or an :class:`Unsendable`; :data:`SKIPPED` when
        the batch had stopped before the item started. A failure is also
        kept in the cluster's key-value store (see :func:`kept_failures`).
    """
    holder, blocking, item, index = task
    flagged, batch = holder[2], holder[3]
    if flagged and is_stopped(batch):
        return SKIPPED
    try:
        ok, value = _outcome(_work(holder), blocking, item)
    except BaseException as exc:  # the work could not be fetched
        ok, value = False, exc
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
            # Ray's cancellation, arriving once the item has ended: the
            # outcome stands (a failure must not be lost to it).
            continue
