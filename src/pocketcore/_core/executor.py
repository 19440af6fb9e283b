"""The executor protocol (the one scheduling operation a plugin supplies) and its capabilities."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import attrs

__all__ = [
    "BlockingExecutor",
    "Capabilities",
    "Executor",
    "Gate",
    "GatingExecutor",
    "RemoteExecutor",
    "ReportingExecutor",
    "capabilities",
]

T = TypeVar("T")
R = TypeVar("R")


@runtime_checkable
class Executor(Protocol):
    """A scheduling strategy for the items of a parallel batch.

    An executor only schedules. Retries, waits, fallbacks and the per-item
    ``cur_retry`` are applied by the kernel inside ``fn`` before the executor
    ever sees it, so every executor gets them for free.

    Attributes:
        name: The name users select it by (``executor="asyncio"``).
        backend: The async library it needs running: ``"asyncio"``,
            ``"trio"``, or ``None`` when it works on any backend.

    Optional capabilities are declared by the protocols
    :class:`RemoteExecutor` (items run in other processes),
    :class:`BlockingExecutor` (the executor runs blocking items itself),
    :class:`ReportingExecutor` (it reports each result as it comes back) and
    :class:`GatingExecutor` (it passes each item through a :class:`Gate`
    before starting it); :func:`capabilities` is the one place the kernel
    asks which an executor has.
    """

    name: str
    backend: str | None

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Start this executor's event loop, run ``fn()`` in it, return its result.

        Called from synchronous code with no event loop running.
        """
        ...

    async def map(
        self,
        fn: Callable[[Any], Awaitable[R]],
        items: Iterable[Any],
        *,
        limit: int | None,
    ) -> list[R]:
        """Await ``fn(item)`` for every item and return the results in input order.

        The contract (checked by :mod:`pocketcore.testing`):

        * one result per item, in input order, whatever the completion order;
        * with ``limit=k`` at most ``k`` calls are in flight, and items are
          pulled from ``items`` lazily, only when a slot frees up;
        * when a call raises, items not yet started never start, calls in
          flight are cancelled, and ``map`` raises only after all of them have
          finished; the exception raised is the first failure itself, and other
          failures are attached to it as notes;
        * when the caller is cancelled, every call in flight is cancelled and
          awaited before the cancellation propagates.
        """
        ...


@runtime_checkable
class RemoteExecutor(Executor, Protocol):
    """An executor whose items run in other processes (the ``dask`` executor is one).

    Declared with the attribute ``remote = True``. For such an executor the
    kernel hands ``map`` work bound to a copy of the node without its
    successors, checks that the work and each item pickle (naming the node
    and the item when not), and refuses to fan out batch *flows*, whose
    passes read and write the shared store, which stays in this process.
    """

    remote: Literal[True]


@runtime_checkable
class BlockingExecutor(Executor, Protocol):
    """An executor that runs blocking (sync) items itself.

    The items of :class:`pocketcore.ParallelBatchNode` and
    :class:`pocketcore.ParallelBatchFlow` are sync calls. An executor without
    ``map_blocking`` gets each one wrapped to run on a worker thread, through
    its ``map``; one with it is handed the sync ``fn`` as is, under the same
    contract as ``map``.
    """

    async def map_blocking(
        self, fn: Callable[[Any], R], items: Iterable[Any], *, limit: int | None
    ) -> list[R]:
        """Call the sync ``fn(item)`` for every item; results in input order.

        The contract of :meth:`Executor.map` applies, with ``fn`` a plain
        function rather than a coroutine function.
        """
        ...


@runtime_checkable
class ReportingExecutor(Executor, Protocol):
    """An executor that tells the kernel of each result as it comes back.

    Declared with the attribute ``reports_results = True``. Its ``map`` (and
    ``map_blocking``, if it has one) then accept a keyword argument
    ``on_result``: a function the executor calls in the dispatching process,
    with the item's position in ``items`` and its result, as soon as the
    result is back, for every item that succeeded, before ``map`` returns or
    raises. The kernel passes it only when it needs it (a result cache, which
    then writes each result as it arrives, so a killed run loses none that
    came back), and not at all to an executor that does not declare it.

    What ``on_result`` raises (a cache store that failed) is a failure of
    the batch: the executor stops the batch as for an item's failure, and
    raises that exception.

    Remote executors are the ones that need it: a local executor's items
    run in this process, where the kernel sees each one end.
    """

    reports_results: Literal[True]


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
    for the rest of the run. All three are called from the event loop that
    runs ``map``.
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


@runtime_checkable
class GatingExecutor(Executor, Protocol):
    """An executor that passes each item through a :class:`Gate` before it starts it.

    Declared with the attribute ``gates_items = True``. Its ``map`` (and
    ``map_blocking``, if it has one) then accept a keyword argument
    ``gate``: before starting each item (calling ``fn``, or sending the
    item to another process) the executor enters the gate, and once the
    item has ended it leaves it, exactly once per entry (see :class:`Gate`).
    The kernel passes a gate when the batch has limiters (``max_per_second``,
    ``limiter=``), and only to an executor that declares this; it passes
    ``None``, or nothing, otherwise.

    A local executor without it gets each item's call wrapped instead (one
    more coroutine per item); one that runs the items itself (a remote
    executor, or its own ``map_blocking``) cannot be paced without it, and a
    batch with limiters is refused there with a ``ConfigError``.
    """

    gates_items: Literal[True]


@attrs.frozen
class Capabilities:
    """The optional capabilities one executor declares.

    Attributes:
        remote: Items run in other processes (:class:`RemoteExecutor`).
        map_blocking: The executor's own ``map_blocking``
            (:class:`BlockingExecutor`), or ``None``.
        reports_results: ``map`` takes ``on_result`` (:class:`ReportingExecutor`).
        gates_items: ``map`` takes ``gate`` (:class:`GatingExecutor`).
    """

    remote: bool
    map_blocking: Callable[..., Awaitable[list[Any]]] | None
    reports_results: bool = False
    gates_items: bool = False


def capabilities(executor: Executor) -> Capabilities:
    """Which optional capabilities ``executor`` declares: the one place the kernel asks.

    An executor is remote when its ``remote`` attribute is ``True`` (a
    missing or false one means local), and runs blocking items itself when
    it has a ``map_blocking`` method. The declared attributes
    (``reports_results``, ``gates_items``) count only when they are ``True``.
    """
    remote = getattr(executor, "remote", False) is True
    blocking = executor.map_blocking if isinstance(executor, BlockingExecutor) else None
    reports = getattr(executor, "reports_results", False) is True
    gates = getattr(executor, "gates_items", False) is True
    return Capabilities(
        remote=remote, map_blocking=blocking, reports_results=reports, gates_items=gates
    )
