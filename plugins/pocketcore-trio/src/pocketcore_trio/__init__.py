"""The ``trio`` executor: items as tasks of a trio nursery, on a trio loop started by anyio.

The loop is started with ``anyio.run(..., backend="trio")``, so nodes can use
anyio (or trio) freely. The fan-out itself uses trio's own nursery rather than
an anyio task group: on the trio backend an anyio task group is a thin layer
over a nursery, and spawning through trio directly costs less per item (see
docs/performance.md). Failures are caught inside each task, so ``map`` raises
the first failure itself rather than an ``ExceptionGroup``; so does a Ctrl-C.
It builds on ``pocketcore.TaskExecutor``, which writes ``map`` and the items' loop.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from pocketcore import TaskExecutor

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from pocketcore import Gate

# anyio and trio are imported where they are used: plugins are loaded in every
# process that runs a flow, and most runs never touch trio.

__all__ = ["TrioExecutor", "pocketcore_register_executors"]

T = TypeVar("T")

hookimpl = pluggy.HookimplMarker("pocketcore")


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions a (possibly nested) exception group holds, in order."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(_leaves(exc))
        else:
            found.append(exc)
    return found


class _Batch:
    """One call of ``map``: its function, nursery, results and failures.

    The items' loop is ``pocketcore.TaskExecutor``'s (``start`` and ``pull``);
    this is the trio side of it. Every exception but trio's own cancellation
    is caught inside the tasks, so that the nursery does not wrap it in an
    exception group.
    """

    __slots__ = (
        "cancellation",
        "failures",
        "fn",
        "gate",
        "nursery",
        "results",
        "source",
        "stopped",
    )

    def __init__(
        self,
        fn: Callable[[Any], Awaitable[Any]],
        cancellation: type[BaseException],
        gate: Gate | None = None,
    ) -> None:
        self.fn = fn
        self.gate = gate
        self.cancellation = cancellation  # trio.Cancelled; trio is imported only when used
        self.nursery: Any = None
        self.results: list[Any] = []
        # The first entry is what ``map`` raises. Once there is one, no item
        # starts, even one whose task is already scheduled, and none is pulled.
        self.failures: list[BaseException] = []
        self.stopped = self.failures.__len__
        self.source: Iterator[Any] | None = None

    def spawn(self, index: int, item: Any) -> None:
        # Not a checkpoint: the task runs once ``map`` waits for the nursery.
        self.nursery.start_soon(TaskExecutor.pull, self, index, item)

    def fail(self, exc: BaseException) -> None:
        self.failures.append(exc)
        self.nursery.cancel_scope.cancel()

    def cancelled(self) -> None:
        """Nothing to do: the cancellation is the nursery's, which stops the batch."""

    def ended(self) -> None:
        """Nothing to count: the nursery waits for every task."""

    async def run(self, items: Iterable[Any], limit: int | None) -> None:
        """Start the tasks in a nursery and wait for it (``pocketcore.TaskBatch.run``)."""
        import trio

        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                TaskExecutor.start(self, items, limit)
        except BaseExceptionGroup as group:
            # Only what the tasks do not catch: trio's cancellation, and a
            # KeyboardInterrupt trio delivers to this task (Ctrl-C while it
            # waits for the nursery) or raises in the executor's own code.
            _, rest = group.split(trio.Cancelled)
            if rest is None:  # the caller's cancellation: the cancel scope wants the group
                raise
            self.failures[:0] = _leaves(rest)  # an interrupt comes before the items' failures


class TrioExecutor(TaskExecutor):
    """Runs items concurrently in one trio nursery.

    With ``limit=None`` every item is started at once. With ``limit=k``, a
    task is started for each of the first ``k`` items; from then on each
    task, once its item is done, takes the next item from the input. So there
    are never more tasks than items pulled, however large ``k`` is.

    The first failing item cancels the nursery; ``map`` raises that exception
    itself (``KeyboardInterrupt`` and ``SystemExit`` included) once every task
    has finished, with later failures attached as notes. A Ctrl-C that trio
    delivers while ``map`` waits comes out as a plain ``KeyboardInterrupt``,
    not inside an exception group, and so does one reaching :meth:`run`.
    """

    name = "trio"
    backend: str | None = "trio"

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` on a new trio event loop, started through anyio.

        Raises:
            KeyboardInterrupt: On Ctrl-C, unwrapped even when trio delivered
                it inside a nursery (of a node, say) and reports it in an
                exception group.
        """
        import anyio

        async def main() -> T:
            return await fn()

        try:
            return anyio.run(main, backend="trio")
        except BaseExceptionGroup as group:
            leaves = _leaves(group)
            # Only a group of nothing but Ctrl-C is unwrapped: any other group
            # is the program's own (a task group in a node, say) and goes on.
            if not all(isinstance(exc, KeyboardInterrupt) for exc in leaves):
                raise
            interrupt = leaves[0]
        raise interrupt

    def batch(self, fn: Callable[[Any], Awaitable[Any]], gate: Gate | None) -> _Batch:
        """The tasks of one ``map`` call, in a nursery of their own."""
        import trio

        return _Batch(fn, trio.Cancelled, gate)


@hookimpl
def pocketcore_register_executors(register: Callable[[Any], None]) -> None:
    """Register the ``trio`` executor."""
    register(TrioExecutor())
