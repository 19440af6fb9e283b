"""Executors of the earlier protocol: still run, through an adapter, with a DeprecationWarning.

Before ``pocketcore.BaseExecutor``, an executor was any object with
``name``, ``backend``, ``run`` and ``map(fn, items, *, limit)``, declaring
its optional capabilities by attributes. Such an executor keeps working for
one release: the kernel puts it behind an adapter once per batch, and says
so once per class.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pocketcore
from pocketcore.testing import ExecutorConformance


def _earlier_executor_class() -> type:
    """A new class each time, so that its warning has not been given yet."""

    class Earlier:
        name = "earlier"
        backend = "asyncio"

        def run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
            return asyncio.run(fn())

        async def map(
            self, fn: Callable[[Any], Awaitable[Any]], items: Iterable[Any], *, limit: int | None
        ) -> list[Any]:
            # One at a time: the contract's sequential form, with no new keyword.
            return [await fn(item) for item in items]

    return Earlier


class Double(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return shared["items"]

    async def exec_async(self, item: int) -> int:
        return item * 2

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


@given(items=st.lists(st.integers(), max_size=20))
def test_an_executor_of_the_earlier_protocol_runs_a_batch_as_before(items: list[int]) -> None:
    executor = _earlier_executor_class()()
    shared: dict[str, Any] = {"items": items}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pocketcore.run(Double(), shared, executor=executor)
    assert shared["out"] == [item * 2 for item in items]


def test_the_earlier_protocol_is_warned_about_once_per_class() -> None:
    cls = _earlier_executor_class()
    with pytest.warns(DeprecationWarning, match="does not build on pocketcore.BaseExecutor"):
        pocketcore.run(Double(), {"items": [1, 2]}, executor=cls())
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # a second warning would raise
        pocketcore.run(Double(), {"items": [3]}, executor=cls())


def test_an_executor_on_the_base_is_not_warned_about() -> None:
    class OnTheBase(pocketcore.BaseExecutor):
        name = "on-the-base"
        backend = "asyncio"

        async def map(
            self, fn: Any, items: Any, *, limit: Any, gate: Any = None, on_result: Any = None
        ) -> list[Any]:
            return [await fn(item) for item in items]

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        shared: dict[str, Any] = {"items": [1, 2, 3]}
        pocketcore.run(Double(), shared, executor=OnTheBase())
    assert shared["out"] == [2, 4, 6]


class TestEarlierProtocolConforms(ExecutorConformance):
    """The conformance suite holds an adapted executor of the earlier protocol to the contract."""

    executor = _earlier_executor_class()()
    parallel = False
