"""The ``trio`` executor: items as tasks of a trio nursery, on a trio loop started by anyio.

The loop is started with ``anyio.run(..., backend="trio")``, so nodes can use
anyio (or trio) freely. The fan-out itself uses trio's own nursery rather than
an anyio task group: on the trio backend an anyio task group is a thin layer
over a nursery, and spawning through trio directly costs less per item (see
docs/performance.md). Failures are caught inside each task, so ``map`` raises
the first failure itself rather than an ``ExceptionGroup``. This module does
not import pocketcore.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

import pluggy

# anyio and trio are imported where they are used: plugins are loaded in every
# process that runs a flow, and most runs never touch trio.

__all__ = ["TrioExecutor", "pocketcore_register_executors"]

T = TypeVar("T")
R = TypeVar("R")

hookimpl = pluggy.HookimplMarker("pocketcore")
_END = object()


def _attach(first: BaseException, others: Iterable[BaseException]) -> None:
    """Record the other failures on the one that is raised, as notes."""
    for exc in others:
        note = f"another item failed before the batch was cancelled: {type(exc).__name__}: {exc}"
        if hasattr(first, "add_note"):
            first.add_note(note)
        else:  # Python 3.10: same attribute that 3.11's add_note fills
            notes = getattr(first, "__notes__", None)
            if notes is None:
                notes = []
                first.__notes__ = notes  # type: ignore[attr-defined]
            notes.append(note)


class TrioExecutor:
    """Runs items concurrently in one trio nursery.

    With ``limit=None`` every item is started at once. With ``limit=k``, ``k``
    tasks pull items from the input one at a time. The first failing item
    cancels the nursery; ``map`` re-raises that exception once every task has
    finished, with later failures attached as notes.
    """

    name = "trio"
    backend: str | None = "trio"

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` on a new trio event loop, started through anyio."""
        import anyio

        async def main() -> T:
            return await fn()

        return anyio.run(main, backend="trio")

    async def map(
        self, fn: Callable[[Any], Awaitable[R]], items: Iterable[Any], *, limit: int | None
    ) -> list[R]:
        """Await ``fn(item)`` for all items concurrently; results in input order."""
        import trio

        results: list[Any] = []
        failures: list[Exception] = []

        async with trio.open_nursery() as nursery:
            cancel = nursery.cancel_scope.cancel

            if limit is None:

                async def call(index: int, item: Any) -> None:
                    if failures:  # scheduled before the failure: never start
                        return
                    try:
                        results[index] = await fn(item)
                    except Exception as exc:
                        failures.append(exc)
                        cancel()

                try:
                    for index, item in enumerate(items):
                        results.append(None)
                        nursery.start_soon(call, index, item)
                except Exception as exc:  # the input itself failed: a failure like any
                    failures.append(exc)
                    cancel()
            else:
                source: Iterator[Any] = iter(items)

                async def worker() -> None:
                    # Check before pulling: once a call has failed, no item is taken.
                    while not failures:
                        try:
                            item = next(source, _END)
                        except Exception as exc:  # the input itself failed
                            failures.append(exc)
                            cancel()
                            return
                        if item is _END:
                            return
                        index = len(results)
                        results.append(None)
                        try:
                            results[index] = await fn(item)
                        except Exception as exc:
                            failures.append(exc)
                            cancel()
                            return

                try:
                    workers = min(limit, len(items))  # type: ignore[arg-type]
                except TypeError:  # not sized: each surplus worker stops at the end
                    workers = limit
                for _ in range(workers):
                    nursery.start_soon(worker)

        if failures:
            _attach(failures[0], failures[1:])
            raise failures[0]
        return results

    def __repr__(self) -> str:
        return "TrioExecutor()"


@hookimpl
def pocketcore_register_executors(register: Callable[[Any], None]) -> None:
    """Register the ``trio`` executor."""
    register(TrioExecutor())
