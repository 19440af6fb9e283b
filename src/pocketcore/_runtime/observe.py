"""Observation: the one place where lifecycle events are reported.

Every event of a run (the run, each node step, each batch, each of its items
and each of their attempts) is reported from here, through the wrappers
below. When no plugin implements a lifecycle hook the run's observer is
``None``, and each wrapper hands back what it was given (or makes a plain
call), so a run nobody watches never touches pluggy and runs no frame of
this module per item.

Attempts are seen through ``exec``'s stand-in: dispatch's per-item pipeline
calls ``call(item)`` once per attempt, and an observed batch whose observers
listen to attempts is given :func:`attempts` (or :func:`attempts_async`) as
that ``call``. The stand-in is made once per batch; the item it serves is
the one whose report is in progress in its context (:data:`_ITEM`, set by
the item's wrapper here, and copied to the worker thread of a sync item).

A new lifecycle event is a hook spec in :mod:`pocketcore.hookspecs` (listed in
its ``LIFECYCLE_HOOKS``) and a wrapper here.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from pocketcore._core.executor import Executor
from pocketcore._core.remote import carrying
from pocketcore._core.results import Failed
from pocketcore._plugins.registry import Observer, get_registry
from pocketcore._runtime.cache import Keyed
from pocketcore._runtime.config import RunConfig
from pocketcore._runtime.context import RUN, Controls, count_caching

__all__ = [
    "attempts",
    "attempts_async",
    "batch_size",
    "current",
    "each",
    "each_async",
    "fan_out",
    "hits",
    "items_after",
    "keyed",
    "keyed_async",
    "sending",
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
    # Counted before the first step (see CACHING); a bad cache setting fails here.
    counted = cfg.cache_setting is not None
    token = RUN.set(cfg)
    if counted:
        count_caching(1)
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
        if counted:
            count_caching(-1)
        RUN.reset(token)


async def whole_run_async(
    cfg: RunConfig, target: Any, shared: Any, call: Callable[[], Awaitable[T]]
) -> T:
    """:func:`whole_run` for an async run."""
    # Counted before the first step (see CACHING); a bad cache setting fails here.
    counted = cfg.cache_setting is not None
    token = RUN.set(cfg)
    if counted:
        count_caching(1)
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
        if counted:
            count_caching(-1)
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


# --- batches ------------------------------------------------------------------
#
# A batch is reported as a whole by the functions below: its start (with the
# executor, limit and controls it runs with), each item from the item's own
# context, and its end. Each takes what runs the batch (``run``) and calls it
# with the per-item function to use, wrapped when someone listens.

Hit = Callable[[Keyed, Any], None]

_ATTEMPT_HOOKS = (
    "pocketcore_batch_item_attempt_start",
    "pocketcore_batch_item_attempt_done",
    "pocketcore_batch_item_fallback",
)


def _hears_attempts(obs: Observer) -> bool:
    """Whether a plugin listens to attempts (asked once per batch)."""
    return any(getattr(obs, name).get_hookimpls() for name in _ATTEMPT_HOOKS)


def _started(
    obs: Observer,
    owner: Any,
    size: int | None,
    executor: Executor | None,
    limit: int | None,
    controls: Controls | None,
) -> None:
    obs.pocketcore_batch_start(
        node=owner,
        size=size,
        executor=executor,
        limit=limit,
        timeout=None if controls is None else controls.timeout,
        limiters=() if controls is None else controls.limiters,
    )


def _whole(obs: Observer, owner: Any, run: Callable[[], list[Any]]) -> list[Any]:
    """Run a batch reported as started, and report its end."""
    try:
        results = run()
    except BaseException as exc:
        obs.pocketcore_batch_end(node=owner, results=None, exception=exc)
        raise
    obs.pocketcore_batch_end(node=owner, results=results, exception=None)
    return results


async def _whole_async(
    obs: Observer, owner: Any, run: Callable[[], Awaitable[list[Any]]]
) -> list[Any]:
    """:func:`_whole` for a batch run by a coroutine."""
    try:
        results = await run()
    except BaseException as exc:
        obs.pocketcore_batch_end(node=owner, results=None, exception=exc)
        raise
    obs.pocketcore_batch_end(node=owner, results=results, exception=None)
    return results


class _Tally:
    """The attempts of one item whose report is in progress, as exec's stand-in counts them."""

    __slots__ = ("count", "failure", "index", "node")

    def __init__(self, node: Any, index: int) -> None:
        self.node, self.index = node, index
        self.count = 0
        self.failure: BaseException | None = None  # what the latest attempt raised


_ITEM: ContextVar[_Tally | None] = ContextVar("pocketcore_observed_item", default=None)
"""The item whose report is in progress in this context, when attempts are heard."""


def _fell_back(obs: Observer, owner: Any, tally: _Tally | None, result: Any) -> None:
    """Report the fallback of an item that returned, when the fallback gave its result.

    The item's last attempt failed, yet it returned: its node's fallback
    turned the failure into a result (a :class:`Failed` is a failure kept).
    """
    if tally is not None and tally.failure is not None and type(result) is not Failed:
        obs.pocketcore_batch_item_fallback(
            node=owner, index=tally.index, exception=tally.failure, result=result
        )


def _reporting(
    obs: Observer, owner: Any, fn: Callable[[Any], T], *, keyed: bool
) -> Callable[[Any], T]:
    """``fn`` for one item at a time, reporting its start and end (and tallying its attempts).

    The item comes as an ``(index, item)`` pair, or as a :class:`Keyed`
    (``keyed``), which ``fn`` is then given whole.
    """
    tallied = _hears_attempts(obs)
    start = obs.pocketcore_batch_item_start
    done = obs.pocketcore_batch_item_done

    def run_one(one: Any) -> T:
        if keyed:
            index, item, arg = one.index, one.item, one
        else:
            index, item = one
            arg = item
        start(node=owner, index=index, item=item)
        tally = _Tally(owner, index) if tallied else None
        token = None if tally is None else _ITEM.set(tally)
        try:
            result = fn(arg)
        except BaseException as exc:
            done(node=owner, index=index, result=None, exception=exc)
            raise
        finally:
            if token is not None:
                _ITEM.reset(token)
        _fell_back(obs, owner, tally, result)
        done(node=owner, index=index, result=result, exception=None)
        return result

    return run_one


def _reporting_async(
    obs: Observer, owner: Any, fn: Callable[[Any], Awaitable[T]], *, keyed: bool
) -> Callable[[Any], Awaitable[T]]:
    """:func:`_reporting` for an async ``fn``; each item reports from its own task."""
    tallied = _hears_attempts(obs)
    start = obs.pocketcore_batch_item_start
    done = obs.pocketcore_batch_item_done

    async def run_one(one: Any) -> T:
        if keyed:
            index, item, arg = one.index, one.item, one
        else:
            index, item = one
            arg = item
        start(node=owner, index=index, item=item)
        tally = _Tally(owner, index) if tallied else None
        token = None if tally is None else _ITEM.set(tally)
        try:
            result = await fn(arg)
        except BaseException as exc:
            done(node=owner, index=index, result=None, exception=exc)
            raise
        finally:
            if token is not None:
                _ITEM.reset(token)
        _fell_back(obs, owner, tally, result)
        done(node=owner, index=index, result=result, exception=None)
        return result

    return run_one


def each(owner: Any, batch: Iterable[Any], fn: Callable[[Any], T]) -> list[T]:
    """Run a batch whose items run one after another: ``fn`` on each item, in order, observed."""
    obs = current()
    if obs is None:
        return [fn(item) for item in batch]
    _started(obs, owner, batch_size(batch), None, 1, None)
    run_one = _reporting(obs, owner, fn, keyed=False)
    return _whole(obs, owner, lambda: [run_one(pair) for pair in enumerate(batch)])


async def each_async(
    owner: Any, batch: Iterable[Any], fn: Callable[[Any], Awaitable[T]]
) -> list[T]:
    """:func:`each` for an async ``fn``."""
    obs = current()
    if obs is None:
        return [await fn(item) for item in batch]
    _started(obs, owner, batch_size(batch), None, 1, None)
    run_one = _reporting_async(obs, owner, fn, keyed=False)

    async def run() -> list[Any]:
        return [await run_one(pair) for pair in enumerate(batch)]

    return await _whole_async(obs, owner, run)


MapRun = Callable[[Callable[[Any], Awaitable[Any]], Iterable[Any]], Awaitable[list[Any]]]


async def fan_out(
    owner: Any,
    batch: Iterable[Any],
    fn: Callable[[Any], Awaitable[Any]],
    run_map: MapRun,
    *,
    executor: Executor,
    limit: int | None,
    controls: Controls | None,
) -> list[Any]:
    """Run a parallel batch, ``run_map(fn, batch)``, observed; items report from their own task.

    ``run_map`` hands the per-item function and the items to the executor;
    ``executor``, ``limit`` and ``controls`` are what the batch is reported
    to run with.
    """
    obs = current()
    if obs is None:
        return await run_map(fn, batch)
    _started(obs, owner, batch_size(batch), executor, limit, controls)
    run_one = _reporting_async(obs, owner, fn, keyed=False)
    return await _whole_async(obs, owner, lambda: run_map(run_one, enumerate(batch)))


def _report_hit(obs: Observer, owner: Any) -> Hit:
    def hit(keyed: Keyed, result: Any) -> None:
        obs.pocketcore_batch_item_cached(
            node=owner, index=keyed.index, item=keyed.item, result=result
        )

    return hit


def keyed(
    owner: Any,
    size: int | None,
    fn: Callable[[Keyed], T],
    run: Callable[[Callable[[Keyed], T], Hit | None], list[Any]],
) -> list[Any]:
    """Run a sequential batch read through the result cache: report it, each miss and each hit.

    ``fn`` runs one item that missed (a :class:`Keyed`, which carries its
    position in the input); ``run(fn, on_hit)`` runs the batch with the
    function to call for each miss and what to call with each hit and its
    result (``None``: nobody listens).
    """
    obs = current()
    if obs is None:
        return run(fn, None)
    _started(obs, owner, size, None, 1, None)
    run_one = _reporting(obs, owner, fn, keyed=True)
    hit = _report_hit(obs, owner)
    return _whole(obs, owner, lambda: run(run_one, hit))


async def keyed_async(
    owner: Any,
    size: int | None,
    fn: Callable[[Keyed], Awaitable[T]],
    run: Callable[[Callable[[Keyed], Awaitable[T]], Hit | None], Awaitable[list[Any]]],
    *,
    executor: Executor | None = None,
    limit: int | None = 1,
    controls: Controls | None = None,
) -> list[Any]:
    """:func:`keyed` for an async per-item function; items report from their own task.

    Also for a parallel batch, run with ``executor``, ``limit`` and ``controls``.
    """
    obs = current()
    if obs is None:
        return await run(fn, None)
    _started(obs, owner, size, executor, limit, controls)
    run_one = _reporting_async(obs, owner, fn, keyed=True)
    hit = _report_hit(obs, owner)
    return await _whole_async(obs, owner, lambda: run(run_one, hit))


def hits(owner: Any) -> Hit | None:
    """What to call with each cache hit of ``owner``'s batch (``None``: nobody listens)."""
    obs = current()
    return None if obs is None else _report_hit(obs, owner)


async def items_after(
    owner: Any,
    batch: Iterable[Any],
    run_batch: Callable[[Iterable[Any]], Awaitable[list[Any]]],
    *,
    executor: Executor,
    limit: int | None,
    controls: Controls | None,
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
    _started(obs, owner, batch_size(batch) if size is None else size, executor, limit, controls)

    async def run() -> list[Any]:
        results = await run_batch(batch)
        for position, result in enumerate(results):
            index = position if index_of is None else index_of(position)
            obs.pocketcore_batch_item_done(node=owner, index=index, result=result, exception=None)
        return results

    return await _whole_async(obs, owner, run)


# --- attempts -------------------------------------------------------------------


def _implemented(caller: Any) -> Any:
    """A hook's caller, or ``None`` when no plugin implements it (not worth a call per attempt)."""
    return caller if caller.get_hookimpls() else None


class _Attempts:
    """``exec``'s stand-in for the items of an observed batch: reports each attempt."""

    __slots__ = ("call", "done", "node", "start")

    def __init__(self, obs: Observer, node: Any, call: Callable[[Any], Any]) -> None:
        self.node, self.call = node, call
        self.start = _implemented(obs.pocketcore_batch_item_attempt_start)
        self.done = _implemented(obs.pocketcore_batch_item_attempt_done)

    def _begin(self, tally: _Tally) -> int:
        attempt = tally.count
        tally.count = attempt + 1
        if self.start is not None:
            self.start(node=self.node, index=tally.index, attempt=attempt)
        return attempt

    def _end(
        self, tally: _Tally, attempt: int, began: float, exception: BaseException | None
    ) -> None:
        tally.failure = exception
        if self.done is not None:
            self.done(
                node=self.node,
                index=tally.index,
                attempt=attempt,
                exception=exception,
                duration=time.perf_counter() - began,
            )

    def __call__(self, item: Any) -> Any:
        tally = _ITEM.get()
        if tally is None or tally.node is not self.node:  # not an item reported here
            return self.call(item)
        attempt = self._begin(tally)
        began = time.perf_counter()
        try:
            result = self.call(item)
        except BaseException as exc:
            self._end(tally, attempt, began, exc)
            raise
        self._end(tally, attempt, began, None)
        return result


class _AttemptsAsync(_Attempts):
    """:class:`_Attempts` for ``exec_async``."""

    __slots__ = ()

    async def __call__(self, item: Any) -> Any:
        tally = _ITEM.get()
        if tally is None or tally.node is not self.node:
            return await self.call(item)
        attempt = self._begin(tally)
        began = time.perf_counter()
        try:
            result = await self.call(item)
        except BaseException as exc:
            self._end(tally, attempt, began, exc)
            raise
        self._end(tally, attempt, began, None)
        return result


def attempts(owner: Any, call: Callable[[Any], Any]) -> Callable[[Any], Any] | None:
    """``call`` (``owner``'s ``exec``) reporting each attempt of ``owner``'s items.

    ``None`` when nobody listens to attempts: the pipeline then calls
    ``exec`` itself. Asked once per batch, before it starts.
    """
    obs = current()
    if obs is None or not _hears_attempts(obs):
        return None
    return _Attempts(obs, owner, call)


def attempts_async(
    owner: Any, call: Callable[[Any], Awaitable[Any]]
) -> Callable[[Any], Awaitable[Any]] | None:
    """:func:`attempts` for ``exec_async``.

    ``call`` is already timed when the batch has a timeout, so an attempt
    that times out is reported ended by its ``TimeoutError``.
    """
    obs = current()
    if obs is None or not _hears_attempts(obs):
        return None
    return _AttemptsAsync(obs, owner, call)


# --- items sent to other processes -----------------------------------------------


class _Sending:
    """A remote batch's items, each paired with the contexts observers send along with it."""

    def __init__(
        self,
        obs: Observer,
        owner: Any,
        items: Iterable[Any],
        index_of: Callable[[int], int | None] | None,
    ) -> None:
        self.obs, self.owner, self.items, self.index_of = obs, owner, items, index_of

    def __len__(self) -> int:
        return len(self.items)  # type: ignore[arg-type]  # TypeError when unsized, as wanted

    def __iter__(self) -> Iterator[tuple[tuple[Any, ...], Any]]:
        sent, index_of = self.obs.pocketcore_batch_item_sent, self.index_of
        for position, item in enumerate(self.items):
            index = position if index_of is None else index_of(position)
            contexts = sent(node=self.owner, index=index, item=item)
            yield tuple(contexts), item


def sending(
    owner: Any,
    batch: Iterable[Any],
    fn: Callable[[Any], Any],
    *,
    blocking: bool,
    index_of: Callable[[int], int | None] | None = None,
) -> tuple[Iterable[Any], Callable[[Any], Any]]:
    """For an executor that runs items in other processes: what travels with each item.

    As each item is pulled, observers are asked for a context to enter
    around it on the worker (``pocketcore_batch_item_sent``); the items
    become ``(contexts, item)`` pairs and ``fn`` (sync when ``blocking``)
    enters them there. Unchanged when nobody listens to that hook.
    ``index_of`` maps a position in ``batch`` to the item's position in the
    input, for a batch read through the result cache.
    """
    obs = current()
    if obs is None or not obs.pocketcore_batch_item_sent.get_hookimpls():
        return batch, fn
    return _Sending(obs, owner, batch, index_of), carrying(fn, blocking=blocking)
