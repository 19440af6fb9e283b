"""The collect layer: with ``on_error="collect"``, a failed item becomes a :class:`Failed`.

The item's failure is what its attempts and fallback left: the layer sits
above :mod:`~pocketcore._dispatch.attempts`. It sits below the cache's write,
so that a store that fails fails the batch rather than becoming one item's
failure.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from pocketcore._core.results import Failed
from pocketcore._runtime.context import CUR_RETRY

__all__ = ["collected", "collected_async", "number_failures"]


def _attempts(stateful: bool) -> int:
    """How many attempts the failed item made (one, unless it kept a count)."""
    state = CUR_RETRY.get() if stateful else None
    return 1 if state is None else state.n + 1


def collected(call: Callable[[Any], Any], *, stateful: bool) -> Callable[[Any], Any]:
    """``call`` whose failure is returned as a :class:`Failed` (sync)."""
    return functools.partial(_collected, call, stateful)


def _collected(call: Callable[[Any], Any], stateful: bool, item: Any) -> Any:
    try:
        return call(item)
    except Exception as exc:
        return Failed(exc, item, -1, _attempts(stateful))  # its index is set by number_failures


def collected_async(
    call: Callable[[Any], Awaitable[Any]], *, stateful: bool
) -> Callable[[Any], Awaitable[Any]]:
    """:func:`collected` for an async ``call``."""
    return functools.partial(_collected_async, call, stateful)


async def _collected_async(call: Callable[[Any], Awaitable[Any]], stateful: bool, item: Any) -> Any:
    try:
        return await call(item)
    except Exception as exc:
        return Failed(exc, item, -1, _attempts(stateful))


def number_failures(results: list[Any]) -> list[Any]:
    """Give each :class:`Failed` of a collected batch its index: its slot in the results."""
    for index, result in enumerate(results):
        if type(result) is Failed:
            results[index] = attrs.evolve(result, index=index)
    return results
