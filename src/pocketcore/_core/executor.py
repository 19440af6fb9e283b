"""The executor protocol: the one scheduling operation a plugin supplies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["Executor"]

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

    Two optional members are looked for with ``getattr``:

    * ``remote = True`` says items run in other processes. The kernel then
      hands ``map`` work bound to a copy of the node without its successors,
      checks that the work and each item pickle (naming the node and item
      when not), and refuses to fan out batch *flows*, whose passes touch the
      shared store.
    * ``async def map_blocking(fn, items, *, limit)`` runs a *sync* ``fn``
      per item (the items of :class:`pocketcore.ParallelBatchNode` and
      :class:`pocketcore.ParallelBatchFlow`), with the same contract as
      ``map``. Without it the kernel runs each call on a worker thread
      through ``map``.
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
