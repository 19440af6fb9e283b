"""A test double: :class:`RecordingExecutor` records every ``map`` call as a :class:`MapCall`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

import anyio
import attrs

from pocketcore._core.executor import BaseExecutor, Executor, Gate, OnResult, declared_executor

_T = TypeVar("_T")
_R = TypeVar("_R")


@attrs.define
class MapCall:
    """One ``map`` call seen by a :class:`RecordingExecutor`.

    Attributes:
        items: The items pulled from the input so far, in order (the input is
            passed on lazily, so this grows as the executor pulls).
        limit: The limit the kernel passed.
    """

    items: list[Any]
    limit: int | None


@attrs.define(eq=False)
class RecordingExecutor(BaseExecutor):
    """A test double that records every ``map`` call.

    It delegates the scheduling to ``inner`` when one is given; otherwise it
    awaits the items one after another. Use it to check which executor and
    which limit a node was given::

        rec = RecordingExecutor()
        pocketcore.run(flow, executor=rec, max_concurrency=4)
        assert rec.calls[0].limit == 4

    Attributes:
        inner: The executor to delegate to, or ``None``.
        name: The name it reports (default ``"recording"``).
        calls: Every ``map`` call, in order.
    """

    inner: Executor | None = None
    name: str = "recording"
    calls: list[MapCall] = attrs.field(factory=list)

    # Read-only where the base has a plain attribute: it follows ``inner``.
    @property
    def backend(self) -> str | None:  # type: ignore[override]
        """The inner executor's backend, or ``None`` (any)."""
        return None if self.inner is None else self.inner.backend

    def run(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``fn()`` with the inner executor's ``run``, or on asyncio."""
        if self.inner is not None:
            return self.inner.run(fn)

        async def main() -> _T:
            return await fn()

        return anyio.run(main)

    async def map(
        self,
        fn: Callable[[Any], Awaitable[_R]],
        items: Iterable[Any],
        *,
        limit: int | None,
        gate: Gate | None = None,
        on_result: OnResult | None = None,
    ) -> list[_R]:
        """Record the call, then schedule it (see the class docstring).

        It declares no capability, so the kernel hands it no ``gate`` and no
        ``on_result``; given them, it passes them on to the inner executor.
        """
        call = MapCall([], limit)
        self.calls.append(call)

        def recorded() -> Iterator[Any]:
            for item in items:
                call.items.append(item)
                yield item

        if self.inner is not None:
            inner = declared_executor(self.inner, warn=False)
            return await inner.map(fn, recorded(), limit=limit, gate=gate, on_result=on_result)
        return [await fn(item) for item in recorded()]
