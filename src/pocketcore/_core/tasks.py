"""The items' loop of an executor that runs each item as a task: written once, for every backend.

A task-based executor (:class:`~pocketcore.TaskExecutor`) keeps only its
backend's part of a ``map`` call, a :class:`TaskBatch`: how a task is
spawned, how the batch is stopped and awaited. :func:`start` spawns the
first tasks and :func:`pull` is each task's loop; with a :class:`Gate`, each
item enters it in its own task (:func:`gated` is the same discipline for one
item, for a loop of the executor's own). ``BaseExecutor.start``,
``BaseExecutor.pull`` and ``BaseExecutor.gated`` are these functions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["Gate", "TaskBatch", "gated", "pull", "start"]

R = TypeVar("R")


@runtime_checkable
class Gate(Protocol):
    """What an item passes through before it starts, and leaves once it has ended.

    The kernel builds one per batch from the batch's limiters (its own
    ``max_per_second``, a shared ``limiter``) and hands it to the ``map`` of
    a :class:`GatingExecutor`, which enters it before starting each item::

        if not gate.try_enter():
            await gate.enter()
        ...  # start the item; once it has ended, however:
        gate.leave()

    Each entry is left exactly once, when its item has ended: returned,
    failed, been cancelled, or was never started because the batch stopped
    meanwhile. An entry that is never left holds a slot of a shared limiter
    for the rest of the run. An executor that gates attempts
    (``gates_attempts``) enters once per call instead, asks :meth:`again`
    after a call failed and tells :meth:`passed` after one returned (see
    :func:`gated`). Every method is called from the event loop that runs
    ``map``. The kernel makes every gate; one written for a test must have
    all five methods, as :func:`gated` and :func:`pull` call all five.
    """

    def try_enter(self) -> bool:
        """Enter now if nothing has to be waited for; ``False`` enters nothing (then ``enter``)."""
        ...

    async def enter(self) -> None:
        """Wait until the item may start, and enter.

        Cancelled or failed, it has entered nothing, and nothing is to be left.
        """
        ...

    def leave(self) -> None:
        """Leave an entry whose item has ended (or will never start)."""
        ...

    def again(self, exc: Exception, since: float | None) -> float | None:
        """After an entered call failed with ``exc``: whether to call it again (before ``leave``).

        Asked by :func:`gated` and :func:`pull` (an executor that declares
        ``gates_attempts`` asks it; see :class:`GatingExecutor`). A
        provider's refusal (a 429) pauses the gate and, while its patience
        lasts, returns when the item's run of refusals began: leave, enter
        again, call again, and hand that value back as ``since`` should the
        call fail again. ``None``: the failure is the item's own, to raise
        (or the patience has run out). The gate of items that run elsewhere
        always returns ``None``.
        """
        ...

    def passed(self) -> None:
        """An entered call returned (once its entry is left): the gate may ease off.

        Told by :func:`gated` and :func:`pull`, as an executor that declares
        ``gates_attempts`` does.
        """
        ...


class TaskBatch(Protocol):
    """One ``map`` call of an executor that runs each item as a task of its own.

    The executor keeps its backend's part (how a task is spawned, how the
    batch is stopped and awaited: :meth:`run`); the items' own loop is
    written once, in :func:`start` and :func:`pull`, and so is ``map``
    (:class:`~pocketcore.TaskExecutor`).

    Attributes:
        fn: What each item is awaited with.
        gate: What each item enters before its call, or ``None``.
        results: One slot per item pulled, in input order.
        failures: The batch's failures, in the order they happened: the
            first is what ``map`` raises, the others are named on it.
        source: The input left to pull from (``None`` until :meth:`BaseExecutor.start`
            sets it, and so while every item gets its own task at once).
        stopped: Whether the batch is stopping: no item starts any more, and
            none is pulled.
        cancellation: The backend's cancellation, which a task lets through.
    """

    source: Iterator[Any] | None

    # Read only: an attribute of the batch's own (narrower) type will do.
    @property
    def fn(self) -> Callable[[Any], Awaitable[Any]]: ...
    @property
    def gate(self) -> Gate | None: ...
    @property
    def results(self) -> list[Any]: ...
    @property
    def stopped(self) -> Callable[[], object]: ...
    @property
    def cancellation(self) -> type[BaseException]: ...
    @property
    def failures(self) -> list[BaseException]: ...

    async def run(self, items: Iterable[Any], limit: int | None) -> None:
        """Start the tasks (:func:`start`) and return once none of them runs any more.

        A failure is left in :attr:`failures` (``map`` raises it); the
        caller's own cancellation is raised, once every task has ended.
        """
        ...

    def spawn(self, index: int, item: Any) -> None:
        """Start a task that runs ``BaseExecutor.pull(self, index, item)``; it must not run yet."""
        ...

    def fail(self, exc: BaseException) -> None:
        """Record a failure (an item's, the input's, or the gate's) and stop the batch."""
        ...

    def cancelled(self) -> None:
        """A task is being cancelled (by the backend's cancellation)."""
        ...

    def ended(self) -> None:
        """A task ended without a failure: out of items, or its batch stopping after its call."""
        ...


#: What :meth:`BaseExecutor.pull` gets from an input that has no more items.
_END = object()


async def gated(gate: Gate, fn: Callable[[Any], Awaitable[R]], item: Any) -> R:
    """``await fn(item)`` on an entry of ``gate``, left once the call has ended, however.

    The gate discipline of one item, for a :meth:`map` that starts
    each item in a task (or a loop) of its own; with ``gates_attempts``
    declared, a call the gate says to make again (:meth:`Gate.again`)
    enters again and is made again.
    """
    since: float | None = None  # when the item's run of refusals began
    while True:
        if not gate.try_enter():
            await gate.enter()
        try:
            result = await fn(item)
        except Exception as exc:
            since = gate.again(exc, since)  # before the entry is left
            if since is None:
                raise
            continue
        finally:
            gate.leave()
        gate.passed()
        return result


def start(batch: TaskBatch, items: Iterable[Any], limit: int | None) -> None:
    """Spawn the tasks of ``batch``: one per item, or one per item until ``limit`` run.

    With a ``limit``, the rest of the input is left in ``batch.source``
    for the tasks to pull, one item whenever one of them is done with
    its own; so there are never more tasks than items pulled. Nothing
    here awaits, so no task runs before this is done. An input that
    raises is a failure of the batch (``batch.fail``), like an item's.
    """
    results = batch.results
    try:
        if limit is None:
            for index, item in enumerate(items):
                results.append(None)
                batch.spawn(index, item)
            return
        batch.source = source = iter(items)
        for index in range(limit):
            item = next(source, _END)
            if item is _END:
                break
            results.append(None)
            batch.spawn(index, item)
    except BaseException as exc:  # the input itself failed: a failure like any
        # The tasks spawned before it are the executor's to stop and await.
        batch.fail(exc)


async def pull(batch: TaskBatch, index: int, item: Any) -> None:
    """One task of ``batch``: its item, then each next one it pulls from ``batch.source``.

    ``batch.stopped()`` is asked before each item and before each pull:
    once the batch is stopping, no item starts and none is taken. With a
    gate, an item is pulled, then waits at it: a turn taken before the
    pull would be spent late by the pull's duration (starts would bunch
    together), and one taken at the end of the input would be wasted.
    The item's own task enters: one cancelled before it ran has entered
    nothing, one that entered leaves at its end. The gate's loop is
    :func:`gated`'s, inline (no coroutine more per item). Every exception
    but the backend's cancellation is caught here and handed to
    ``batch.fail``, so that ``map`` raises it itself, unwrapped.
    """
    stopped = batch.stopped
    if stopped():
        return
    results, fn, gate, source = batch.results, batch.fn, batch.gate, batch.source
    since: float | None = None  # when the item's run of refusals began
    try:
        while True:
            if gate is None:
                results[index] = await fn(item)
            else:
                # A refused call enters again the waiting way, which looks
                # at the batch once it has entered (it may have stopped).
                if not (since is None and gate.try_enter()) and not await _waited(batch, gate):
                    return
                try:
                    results[index] = await fn(item)
                except Exception as exc:
                    since = gate.again(exc, since)  # before the entry is left
                    if since is None:
                        raise
                    continue  # the same item, entering again
                finally:
                    gate.leave()
                gate.passed()
                since = None
            # A task per item has nothing to pull; a stopping batch takes nothing.
            item = _END if source is None or stopped() else next(source, _END)
            if item is _END:
                break
            index = len(results)
            results.append(None)
    except batch.cancellation:
        batch.cancelled()
        raise
    except BaseException as exc:  # the item's, the input's, or the gate's
        batch.fail(exc)
        return
    batch.ended()


async def _waited(batch: TaskBatch, gate: Gate) -> bool:
    """Wait to enter ``gate``; ``False`` (having left it) if the batch stopped meanwhile."""
    await gate.enter()
    if batch.stopped():
        gate.leave()
        return False
    return True
