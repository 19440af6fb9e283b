"""The executor: its base class, its protocol, and the capabilities it declares.

An executor builds on :class:`BaseExecutor`, whose ``map`` always takes the
same keywords and whose capabilities are declared on the class;
:func:`capabilities` reads them once per batch. An object of the plain
:class:`Executor` protocol (the form of earlier releases) is seen through an
adapter (:func:`declared_executor`) that calls it as before.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import attrs

from .deprecation import warn_undeclared
from .errors import attach_failures
from .tasks import Gate, TaskBatch, gated, pull, start

__all__ = [
    "BaseExecutor",
    "BlockingExecutor",
    "Capabilities",
    "Executor",
    "Gate",
    "GatingExecutor",
    "RemoteExecutor",
    "ReportingExecutor",
    "TaskBatch",
    "TaskExecutor",
    "capabilities",
    "declared_executor",
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

    Build one on :class:`BaseExecutor`; this protocol is what the kernel
    accepts (through an adapter, for an object not built on the base).
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

    A local executor may also declare ``gates_attempts = True``: after an
    entered call fails, its loop asks ``gate.again`` and, if that says so,
    leaves, enters again and calls again; after a call returns, it calls
    ``gate.passed``. The kernel then hands it the gate of a batch whose
    items run here and need nothing else between the gate and the call (one
    attempt each with the default fallback, not collected, not cached,
    limiters with no rate or budget, nobody hearing single items) instead
    of wrapping each one. :meth:`BaseExecutor.pull` and
    :meth:`BaseExecutor.gated` do both.
    """

    gates_items: Literal[True]


#: What an executor that reports results calls: the item's position in ``items``, its result.
OnResult = Callable[[int, Any], None]


async def _awaited(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


class BaseExecutor(abc.ABC):
    """What an executor builds on: one ``map`` whose keywords never change, and declarations.

    A subclass sets :attr:`name` (and :attr:`backend` unless it runs on any
    backend), implements :meth:`map`, and declares each optional capability
    it has as a class attribute, which the kernel reads once per batch:

    * ``remote = True``: items run in other processes (:class:`RemoteExecutor`);
    * ``gates_items = True``: :meth:`map` enters the ``gate`` it is handed
      before starting each item (:class:`GatingExecutor`);
    * ``gates_attempts = True`` (with ``gates_items``): after an entered
      call fails, :meth:`map` asks the gate whether to call it again
      (:class:`GatingExecutor`), as :meth:`pull` and :meth:`gated` do;
    * ``reports_results = True``: :meth:`map` calls ``on_result`` as each
      result comes back (:class:`ReportingExecutor`);
    * overriding :meth:`map_blocking`: the executor runs blocking items
      itself (:class:`BlockingExecutor`); the kernel tells by the method's
      identity, not by an attribute.

    The kernel always calls ``map(fn, items, limit=..., gate=..., on_result=...)``:
    ``gate`` is ``None`` unless the executor gates items and the batch has
    limiters, ``on_result`` is ``None`` unless it reports results and the
    kernel needs them. An executor that does not declare a capability ignores
    its keyword (it is always ``None``).

    An object with the members of the :class:`Executor` protocol alone (the
    form of earlier releases) still works: the kernel puts it behind an
    adapter (:func:`declared_executor`) that calls it as before.

    Attributes:
        name: The name users select it by (``executor="asyncio"``).
        backend: ``"asyncio"``, ``"trio"``, or ``None`` (any backend; the default).
        remote: Items run in other processes (default ``False``).
        gates_items: ``map`` enters the gate it is handed (default ``False``).
        gates_attempts: ``map`` asks the gate to call a failed item again
            (default ``False``).
        reports_results: ``map`` calls ``on_result`` (default ``False``).
    """

    name: str
    backend: str | None = None
    remote: bool = False
    gates_items: bool = False
    gates_attempts: bool = False
    reports_results: bool = False

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Start an event loop, run ``fn()`` in it, return its result.

        Called from synchronous code with no event loop running. The
        default starts asyncio's (``asyncio.run``): the loop pocketcore uses
        when nothing else is asked for. Override it to start another.
        """
        return asyncio.run(_awaited(fn))

    @abc.abstractmethod
    async def map(
        self,
        fn: Callable[[Any], Awaitable[R]],
        items: Iterable[Any],
        *,
        limit: int | None,
        gate: Gate | None = None,
        on_result: OnResult | None = None,
    ) -> list[R]:
        """Await ``fn(item)`` for every item and return the results in input order.

        The contract of :meth:`Executor.map`, plus, for the capabilities the
        class declares: with a ``gate``, enter it before starting each item
        and leave it once the item has ended (see :class:`Gate`,
        :meth:`gated`); with ``on_result``, call it here with each item's
        position and result as soon as the result is back (see
        :class:`ReportingExecutor`).
        """

    async def map_blocking(
        self,
        fn: Callable[[Any], R],
        items: Iterable[Any],
        *,
        limit: int | None,
        gate: Gate | None = None,
        on_result: OnResult | None = None,
    ) -> list[R]:
        """Call the sync ``fn(item)`` for every item; results in input order.

        Override it to run blocking items yourself, under the contract of
        :meth:`map`. Without an override the kernel never calls it: it runs
        each blocking item on a worker thread, through :meth:`map`.

        Raises:
            NotImplementedError: Always, unless overridden.
        """
        raise NotImplementedError(f"{type(self).__name__} does not run blocking items itself")

    @property
    def runs_blocking(self) -> bool:
        """Whether :meth:`map_blocking` is the executor's own (an override)."""
        return type(self).map_blocking is not BaseExecutor.map_blocking

    #: The items' loop of a task-based executor (:mod:`pocketcore._core.tasks`):
    #: ``gated(gate, fn, item)``, ``start(batch, items, limit)``, ``pull(batch, index, item)``.
    gated = staticmethod(gated)
    start = staticmethod(start)
    pull = staticmethod(pull)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class TaskExecutor(BaseExecutor):
    """An executor that runs each item as a task of its backend: only the tasks are its own.

    A subclass sets :attr:`name` and :attr:`backend` and implements
    :meth:`batch`, which makes one ``map`` call's
    :class:`~pocketcore._core.tasks.TaskBatch`: how its backend spawns a
    task, and how the batch is stopped and awaited (``run``). The rest is
    written once, here: :meth:`map`, the items' loop (:meth:`start`,
    :meth:`pull`) and the gate, which it enters in each item's own task, for
    each attempt (it declares ``gates_items`` and ``gates_attempts``). The
    ``asyncio``, ``uvloop`` and ``trio`` executors are built on it.
    """

    gates_items = True
    gates_attempts = True

    @abc.abstractmethod
    def batch(self, fn: Callable[[Any], Awaitable[Any]], gate: Gate | None) -> TaskBatch:
        """The tasks of one ``map`` call, on the running event loop of this backend."""

    async def map(
        self,
        fn: Callable[[Any], Awaitable[R]],
        items: Iterable[Any],
        *,
        limit: int | None,
        gate: Gate | None = None,
        on_result: OnResult | None = None,
    ) -> list[R]:
        """Await ``fn(item)`` for all items concurrently; results in input order.

        With ``limit=None`` every item gets a task at once; with ``limit=k``
        the first ``k`` do, and each task, once its item is done, takes the
        next item from the input. With a ``gate`` (:class:`Gate`), each item
        is pulled, then waits to enter the gate in its task, and leaves it
        once its call has ended; a call the gate says to make again
        (:meth:`Gate.again`) enters again; an item that was waiting when the
        batch stopped never starts.

        Raises:
            BaseException: The first exception an item (or the input) raised,
                unwrapped; other failures are named in its notes.
        """
        batch = self.batch(fn, gate)
        await batch.run(items, limit)
        failures = batch.failures
        if failures:
            # A cancellation is no failure of an item's: not named on the first.
            others = (e for e in failures[1:] if not isinstance(e, batch.cancellation))
            attach_failures(failures[0], others)
            raise failures[0]
        return batch.results


class _Undeclared(BaseExecutor):
    """An executor of the :class:`Executor` protocol alone, seen through :class:`BaseExecutor`.

    Its capabilities are read once, here, as earlier releases read them (a
    true ``remote``, ``gates_items`` or ``reports_results`` attribute, a
    ``map_blocking`` method), and its ``map`` is called as they called it:
    with ``gate`` and ``on_result`` only when they are given.
    """

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.name = executor.name
        self.backend = executor.backend
        self.remote = getattr(executor, "remote", False) is True
        self.gates_items = getattr(executor, "gates_items", False) is True
        self.reports_results = getattr(executor, "reports_results", False) is True
        own = getattr(executor, "map_blocking", None)
        self._blocking: Callable[..., Awaitable[list[Any]]] | None = own if callable(own) else None

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        return self.executor.run(fn)

    async def map(
        self,
        fn: Callable[[Any], Awaitable[R]],
        items: Iterable[Any],
        *,
        limit: int | None,
        gate: Gate | None = None,
        on_result: OnResult | None = None,
    ) -> list[R]:
        return await _called(self.executor.map, fn, items, limit, gate, on_result)

    async def map_blocking(
        self,
        fn: Callable[[Any], R],
        items: Iterable[Any],
        *,
        limit: int | None,
        gate: Gate | None = None,
        on_result: OnResult | None = None,
    ) -> list[R]:
        if self._blocking is None:
            return await super().map_blocking(fn, items, limit=limit)
        return await _called(self._blocking, fn, items, limit, gate, on_result)

    @property
    def runs_blocking(self) -> bool:
        return self._blocking is not None

    def __repr__(self) -> str:
        return repr(self.executor)


async def _called(
    run: Callable[..., Awaitable[list[Any]]],
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    limit: int | None,
    gate: Gate | None,
    on_result: OnResult | None,
) -> list[Any]:
    """``run`` called as the :class:`Executor` protocol has it: each optional keyword if given."""
    extra: dict[str, Any] = {}
    if gate is not None:
        extra["gate"] = gate
    if on_result is not None:
        extra["on_result"] = on_result
    return await run(fn, items, limit=limit, **extra)


def declared_executor(executor: Executor, *, warn: bool = True) -> BaseExecutor:
    """``executor`` as the kernel calls it: itself, when it builds on :class:`BaseExecutor`.

    An executor of the earlier protocol (an object with the members of
    :class:`Executor`, declaring capabilities by attributes and taking
    ``gate`` / ``on_result`` only when it declares them) is put behind an
    adapter that reads its declarations once and calls it as before. The
    kernel resolves it once per batch, in the batch's plan.

    Warns:
        DeprecationWarning: Once per class of such an executor, the first
            time one is resolved (unless ``warn`` is false).
    """
    if isinstance(executor, BaseExecutor):
        return executor
    if warn:
        warn_undeclared(executor, "executor", "pocketcore.BaseExecutor")
    return _Undeclared(executor)


@attrs.frozen
class Capabilities:
    """What one executor declares, and the ``map`` the kernel calls.

    Attributes:
        remote: Items run in other processes (:class:`RemoteExecutor`).
        map_blocking: The executor's own ``map_blocking``
            (:class:`BlockingExecutor`), or ``None``; it takes the same
            keywords as :attr:`map`.
        reports_results: ``map`` calls ``on_result`` (:class:`ReportingExecutor`).
        gates_items: ``map`` enters ``gate`` (:class:`GatingExecutor`).
        gates_attempts: ``map`` also asks ``gate`` to call a failed item again.
        map: The executor's ``map`` (through its adapter, for one of the
            earlier protocol): always called with ``limit``, ``gate`` and
            ``on_result``; ``None`` where no executor runs the batch.
    """

    remote: bool
    map_blocking: Callable[..., Awaitable[list[Any]]] | None
    reports_results: bool = False
    gates_items: bool = False
    gates_attempts: bool = False
    map: Callable[..., Awaitable[list[Any]]] | None = None


def capabilities(executor: Executor, *, warn: bool = True) -> Capabilities:
    """What ``executor`` declares: the one place the kernel asks, once per batch.

    An executor built on :class:`BaseExecutor` is read as it declares
    itself; any other is first put behind :func:`declared_executor`'s
    adapter (which warns, unless ``warn`` is false).
    """
    declared = declared_executor(executor, warn=warn)
    return Capabilities(
        remote=declared.remote is True,
        map_blocking=declared.map_blocking if declared.runs_blocking else None,
        reports_results=declared.reports_results is True,
        gates_items=declared.gates_items is True,
        gates_attempts=declared.gates_items is True and declared.gates_attempts is True,
        map=declared.map,
    )
