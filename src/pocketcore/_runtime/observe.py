"""Observation: the one place where lifecycle events are reported.

Every event of a run (the run, each node step, each batch and each of its
items) is reported from here, through the wrappers below. When no plugin
implements a lifecycle hook the run's observer is ``None``, and each wrapper
hands back what it was given (or a plain call), so a run nobody watches
never touches pluggy.

A new lifecycle event is a hook spec in :mod:`pocketcore.hookspecs` (listed in
its ``LIFECYCLE_HOOKS``) and a wrapper here.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from pocketcore._plugins.registry import Observer, get_registry
from pocketcore._runtime.cache import Keyed
from pocketcore._runtime.config import RunConfig
from pocketcore._runtime.context import RUN

__all__ = [
    "batch_size",
    "current",
    "items",
    "items_after",
    "items_async",
    "keyed",
    "keyed_async",
    "steppers",
    "whole_run",
    "whole_run_async",
]

T = TypeVar("T")
Step = Callable[[Any, Any], Any]
AsyncStep = Callable[[Any, Any], Awaitable[Any]]


def current() -> Observer | None:
    """Where lifecycle events of the current run go; ``None`` when nobody listens."""
    cfg = RUN.get()
    return get_registry().observer if cfg is None else cfg.observer


def batch_size(items: object) -> int | None:
    """The number of items when the iterable says so, else ``None``.

    A user's ``__len__`` may raise anything (``TypeError`` for a generator,
    ``OverflowError`` for a huge ``range``): none of it is the run's concern.
    """
    try:
        return len(items)  # type: ignore[arg-type]
    except Exception:
        return None


def whole_run(cfg: RunConfig, target: Any, shared: Any, call: Callable[[], T]) -> T:
    """Run ``call()`` as the run ``cfg`` of ``target``, reporting its start and end."""
    token = RUN.set(cfg)
    try:
        obs = cfg.observer
        if obs is None:
            return call()
        obs.pocketcore_run_start(target=target, shared=shared)
        try:
            result = call()
        except BaseException as exc:
            obs.pocketcore_run_end(target=target, shared=shared, result=None, exception=exc)
            raise
        obs.pocketcore_run_end(target=target, shared=shared, result=result, exception=None)
        return result
    finally:
        RUN.reset(token)


async def whole_run_async(
    cfg: RunConfig, target: Any, shared: Any, call: Callable[[], Awaitable[T]]
) -> T:
    """:func:`whole_run` for an async run."""
    token = RUN.set(cfg)
    try:
        obs = cfg.observer
        if obs is None:
            return await call()
        obs.pocketcore_run_start(target=target, shared=shared)
        try:
            result = await call()
        except BaseException as exc:
            obs.pocketcore_run_end(target=target, shared=shared, result=None, exception=exc)
            raise
        obs.pocketcore_run_end(target=target, shared=shared, result=result, exception=None)
        return result
    finally:
        RUN.reset(token)


def _observed_step(obs: Observer, node: Any, shared: Any) -> Any:
    obs.pocketcore_node_start(node=node, shared=shared)
    try:
        action = node._run(shared)
    except BaseException as exc:
        obs.pocketcore_node_end(node=node, shared=shared, action=None, exception=exc)
        raise
    obs.pocketcore_node_end(node=node, shared=shared, action=action, exception=None)
    return action


async def _observed_step_async(obs: Observer, node: Any, shared: Any) -> Any:
    obs.pocketcore_node_start(node=node, shared=shared)
    try:
        action = await node._run_async(shared)
    except BaseException as exc:
        obs.pocketcore_node_end(node=node, shared=shared, action=None, exception=exc)
        raise
    obs.pocketcore_node_end(node=node, shared=shared, action=action, exception=None)
    return action


def steppers() -> tuple[Step, AsyncStep] | None:
    """How a flow runs one step of a sync node and of an async node, in the current run.

    Asked once per flow pass. Each function takes ``(node, shared)`` and runs
    the node's step, reporting its start and end. ``None`` when nobody
    listens: the flow then calls the node's step itself, with no frame in
    between (the per-step cost is what the node-step benchmarks measure).
    """
    obs = current()
    if obs is None:
        return None
    return functools.partial(_observed_step, obs), functools.partial(_observed_step_async, obs)


def items(
    owner: Any, batch: Iterable[Any], fn: Callable[[Any], T]
) -> tuple[Iterable[Any], Callable[[Any], T]]:
    """Wrap a batch and its sync per-item function to report the batch and each item.

    Returns what to iterate and call instead: unchanged when nobody listens,
    else ``(index, item)`` pairs and a function that runs one pair and
    reports it. The batch is reported as started now.
    """
    obs = current()
    if obs is None:
        return batch, fn
    obs.pocketcore_batch_start(node=owner, size=batch_size(batch))

    def run_indexed(pair: tuple[int, Any]) -> T:
        index, item = pair
        obs.pocketcore_batch_item_start(node=owner, index=index, item=item)
        try:
            result = fn(item)
        except BaseException as exc:
            obs.pocketcore_batch_item_done(node=owner, index=index, result=None, exception=exc)
            raise
        obs.pocketcore_batch_item_done(node=owner, index=index, result=result, exception=None)
        return result

    return enumerate(batch), run_indexed


def items_async(
    owner: Any, batch: Iterable[Any], fn: Callable[[Any], Awaitable[T]]
) -> tuple[Iterable[Any], Callable[[Any], Awaitable[T]]]:
    """:func:`items` for an async per-item function; items report from their own task."""
    obs = current()
    if obs is None:
        return batch, fn
    obs.pocketcore_batch_start(node=owner, size=batch_size(batch))

    async def run_indexed(pair: tuple[int, Any]) -> T:
        index, item = pair
        obs.pocketcore_batch_item_start(node=owner, index=index, item=item)
        try:
            result = await fn(item)
        except BaseException as exc:
            obs.pocketcore_batch_item_done(node=owner, index=index, result=None, exception=exc)
            raise
        obs.pocketcore_batch_item_done(node=owner, index=index, result=result, exception=None)
        return result

    return enumerate(batch), run_indexed


Hit = Callable[[Keyed, Any], None]


def _report_hit(obs: Observer, owner: Any) -> Hit:
    def hit(keyed: Keyed, result: Any) -> None:
        obs.pocketcore_batch_item_cached(
            node=owner, index=keyed.index, item=keyed.item, result=result
        )

    return hit


def keyed(
    owner: Any, size: int | None, fn: Callable[[Keyed], T]
) -> tuple[Callable[[Keyed], T], Hit | None]:
    """For a batch read through the result cache: report the batch, each miss and each hit.

    ``fn`` runs one item that missed (a :class:`Keyed`, which carries its
    position in the input). Returns what to call instead of ``fn``, and what
    to call with each hit and its result (``None``: nobody listens). The
    batch is reported as started now.
    """
    obs = current()
    if obs is None:
        return fn, None
    obs.pocketcore_batch_start(node=owner, size=size)

    def run_keyed(one: Keyed) -> T:
        obs.pocketcore_batch_item_start(node=owner, index=one.index, item=one.item)
        try:
            result = fn(one)
        except BaseException as exc:
            obs.pocketcore_batch_item_done(node=owner, index=one.index, result=None, exception=exc)
            raise
        obs.pocketcore_batch_item_done(node=owner, index=one.index, result=result, exception=None)
        return result

    return run_keyed, _report_hit(obs, owner)


def keyed_async(
    owner: Any, size: int | None, fn: Callable[[Keyed], Awaitable[T]]
) -> tuple[Callable[[Keyed], Awaitable[T]], Hit | None]:
    """:func:`keyed` for an async per-item function; items report from their own task."""
    obs = current()
    if obs is None:
        return fn, None
    obs.pocketcore_batch_start(node=owner, size=size)

    async def run_keyed(one: Keyed) -> T:
        obs.pocketcore_batch_item_start(node=owner, index=one.index, item=one.item)
        try:
            result = await fn(one)
        except BaseException as exc:
            obs.pocketcore_batch_item_done(node=owner, index=one.index, result=None, exception=exc)
            raise
        obs.pocketcore_batch_item_done(node=owner, index=one.index, result=result, exception=None)
        return result

    return run_keyed, _report_hit(obs, owner)


def hits(owner: Any) -> Hit | None:
    """What to call with each cache hit of ``owner``'s batch (``None``: nobody listens)."""
    obs = current()
    return None if obs is None else _report_hit(obs, owner)


async def items_after(
    owner: Any,
    batch: Iterable[Any],
    run_batch: Callable[[Iterable[Any]], Awaitable[list[Any]]],
    *,
    size: int | None = None,
    index_of: Callable[[int], int | None] | None = None,
) -> list[Any]:
    """Run a batch whose calls happen elsewhere, reporting its items once the results are back.

    An executor that runs the calls itself (in other processes, or its own
    ``map_blocking``) cannot carry an observer to them, so the batch is
    reported here and each item when ``run_batch`` returns. When the batch
    fails, which of its items finished is not known here, and none is reported.
    ``size`` and ``index_of`` (position in ``batch`` -> position in the
    input) are given for a batch read through the result cache, whose
    ``batch`` holds only the items that missed.
    """
    obs = current()
    if obs is None:
        return await run_batch(batch)
    obs.pocketcore_batch_start(node=owner, size=batch_size(batch) if size is None else size)
    results = await run_batch(batch)
    for position, result in enumerate(results):
        index = position if index_of is None else index_of(position)
        obs.pocketcore_batch_item_done(node=owner, index=index, result=result, exception=None)
    return results
