"""Preparing a batch for an executor that runs items in other processes.

An executor says so with a true ``remote`` attribute (the ``dask`` executor
does). Only ``exec`` travels: ``prep`` and ``post`` touch the shared store
and stay here. So the kernel sends a copy of the node without its
successors (the rest of the graph stays home), and checks that the work and
every item can be pickled, naming the node and the item, before the
executor's own serialization would fail somewhere deep inside it.

What observers send along with an item (a tracing plugin's trace context)
travels as ``(contexts, item)`` pairs, with the work wrapped by
:func:`carrying` to enter those context managers where the item runs.

What an item reports using there (:func:`pocketcore.report_usage`) comes
back with its result, when someone listens: the work is :func:`metered`
(each result returns as a :class:`Used`), and the executor's ``map`` is
:func:`metering` (the results, and each one reported as it comes back, are
unwrapped before anything else sees them).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import pickle
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import attrs

from pocketcore._core.errors import PocketcoreError
from pocketcore._core.executor import Executor
from pocketcore._runtime.usage import NOTHING, USAGE, Totals

__all__ = ["Used", "carrying", "detached", "metered", "metering", "shippable"]

N = TypeVar("N")


def detached(node: N) -> N:
    """A shallow copy of ``node`` without successors, to send with its items."""
    clone = copy.copy(node)
    clone.successors = {}  # type: ignore[attr-defined]  # any node has them
    return clone


def _dumps() -> Callable[[Any], bytes]:
    try:  # what dask and most process pools use: it pickles lambdas too
        cloudpickle = importlib.import_module("cloudpickle")
    except ImportError:  # pragma: no cover - cloudpickle comes with dask
        return pickle.dumps
    dumps: Callable[[Any], bytes] = cloudpickle.dumps
    return dumps


def shippable(
    node: Any, executor: Executor, work: Callable[..., Any], items: Iterable[Any]
) -> Iterable[Any]:
    """Check now that ``work`` can be sent; return the items, each checked as it is pulled.

    Raises:
        PocketcoreError: The work (the node with its attributes and params) or
            an item cannot be pickled; the message names the node, the item's
            index and the executor.
    """
    dumps = _dumps()
    where = f"to executor {executor.name!r}, which runs items in other processes"
    try:
        dumps(work)
    except Exception as exc:
        raise PocketcoreError(
            f"cannot send node {type(node).__name__} (its exec, attributes and params) "
            f"{where}: {type(exc).__name__}: {exc}"
        ) from exc
    return _Checked(node, items, dumps, where)


#: The types whose values always pickle (exactly these, not their subclasses).
_PLAIN = frozenset({int, float, complex, str, bytes, bool, type(None)})


class _Checked:
    """The items, each checked as it is pulled; sized when the items are."""

    def __init__(
        self, node: Any, items: Iterable[Any], dumps: Callable[[Any], bytes], where: str
    ) -> None:
        self.node, self.items, self.dumps, self.where = node, items, dumps, where

    def __len__(self) -> int:
        return len(self.items)  # type: ignore[arg-type]  # TypeError when unsized, as wanted

    def __iter__(self) -> Iterator[Any]:
        for index, item in enumerate(self.items):
            if type(item) in _PLAIN:  # always pickles; not worth a pickling per item
                yield item
                continue
            try:
                self.dumps(item)
            except Exception as exc:
                raise PocketcoreError(
                    f"cannot send item {index} of node {type(self.node).__name__} "
                    f"{self.where}: {type(exc).__name__}: {exc}"
                ) from exc
            yield item


def carrying(fn: Callable[[Any], Any], *, blocking: bool) -> Callable[[Any], Any]:
    """``fn`` for items sent as ``(contexts, item)`` pairs: the contexts are entered around it.

    The result pickles when ``fn`` does. Where it runs (on a worker), it
    enters each context manager in order, runs ``fn(item)`` (awaits it,
    unless ``blocking``), and exits them, also when ``fn`` raised.
    """
    return _Carrying(fn) if blocking else _CarryingAsync(fn)


class _Carrying:
    """A sync item's work, run inside the contexts sent with the item."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, sent: tuple[tuple[Any, ...], Any]) -> Any:
        contexts, item = sent
        with contextlib.ExitStack() as stack:
            for context in contexts:
                stack.enter_context(context)
            return self.fn(item)


class _CarryingAsync:
    """An async item's work, run inside the contexts sent with the item (in its own task)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Awaitable[Any]]) -> None:
        self.fn = fn

    async def __call__(self, sent: tuple[tuple[Any, ...], Any]) -> Any:
        contexts, item = sent
        with contextlib.ExitStack() as stack:
            for context in contexts:
                stack.enter_context(context)
            return await self.fn(item)


# --- usage that comes back with the results -------------------------------------------


@attrs.frozen
class Used:
    """A remote item's result, with what its ``exec`` reported using where it ran.

    Attributes:
        value: The result.
        usage: The amounts reported, by unit (a plain dict: it pickles).
    """

    value: Any
    usage: dict[str, float]


def metered(fn: Callable[[Any], Any], *, blocking: bool) -> Callable[[Any], Any]:
    """``fn`` for a worker: its result as a :class:`Used`, with what the item reported there.

    Reports go to totals of the item's own, never to a scope of the
    process it runs in (an executor that runs items in this very process
    would count them twice). An item that raises brings nothing back.
    """
    return _Metered(fn) if blocking else _MeteredAsync(fn)


class _Metered:
    """A sync item's work, its reports totalled on the worker."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, item: Any) -> Used:
        totals = Totals(None)
        token = USAGE.set(totals)
        try:
            result = self.fn(item)
        finally:
            USAGE.reset(token)
        return Used(result, dict(totals.close()))


class _MeteredAsync:
    """An async item's work, its reports totalled on the worker (in its own task)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Awaitable[Any]]) -> None:
        self.fn = fn

    async def __call__(self, item: Any) -> Used:
        totals = Totals(None)
        token = USAGE.set(totals)
        try:
            result = await self.fn(item)
        finally:
            USAGE.reset(token)
        return Used(result, dict(totals.close()))


RunMap = Callable[..., Awaitable[list[Any]]]


def metering(run_map: RunMap, usages: list[Mapping[str, float]]) -> RunMap:
    """``run_map`` (an executor's ``map``) for :func:`metered` work: it returns the bare results.

    Each result's usage is appended to ``usages``, in input order, and
    ``on_result`` (when given) is called with the bare result too.
    """

    async def run(call: Callable[[Any], Any], inputs: Iterable[Any], **keywords: Any) -> list[Any]:
        on_result = keywords.get("on_result")
        if on_result is not None:
            keywords["on_result"] = lambda position, result: on_result(position, _value(result))
        results = await run_map(call, inputs, **keywords)
        usages.extend(r.usage if type(r) is Used else NOTHING for r in results)
        return [_value(r) for r in results]

    return run


def _value(result: Any) -> Any:
    return result.value if type(result) is Used else result
