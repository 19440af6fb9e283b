"""Dispatch: the one place where a node's items meet their pipeline and an executor.

Every ``exec`` of every node runs through here:

* :func:`exec_item` / :func:`exec_item_async` are the per-item pipeline:
  attempts, the wait between them, the fallback, and the per-item
  ``cur_retry``. A plain node runs its one input through it, a batch node
  each item.
* :func:`each` / :func:`each_async` run a sequential batch (``BatchNode``,
  ``AsyncBatchNode``, the passes of ``BatchFlow`` and ``AsyncBatchFlow``).
* :func:`fan_out` runs a parallel batch (the four *Parallel* classes): it
  resolves the executor, prepares the work for a remote executor or worker
  threads, applies observation and calls the executor.

A per-item control (a cache lookup, a rate limit, a timeout per attempt)
belongs in this module: in the pipeline when it wraps one item or one
attempt, in :func:`fan_out` when it paces a whole batch.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import anyio
import attrs

from pocketcore._core.errors import ConfigError
from pocketcore._core.executor import Executor, capabilities
from pocketcore._core.remote import detached, refuse_batch_flow, shippable
from pocketcore._core.results import Failed
from pocketcore._dispatch.threads import call_sync, on_threads, run_blocking
from pocketcore._runtime import observe
from pocketcore._runtime.context import (
    CUR_RETRY,
    THREAD_STOP,
    Attempt,
    Controls,
    batch_controls,
    executor_for,
)
from pocketcore._runtime.limits import Limiter

__all__ = [
    "each",
    "each_async",
    "exec_item",
    "exec_item_async",
    "fan_out",
    "fan_out_blocking",
    "refuse_timeout",
    "reraises",
]


# --- the per-item pipeline ---------------------------------------------------


def exec_item(node: Any, item: Any, attempt: Attempt | None = None) -> Any:
    """Run ``node.exec(item)`` with the node's attempts, waits and fallback (sync).

    ``attempt`` is given when items of ``node`` run concurrently (see
    :class:`~pocketcore._runtime.context.Attempt`). As in PocketFlow, the
    counter lives in the instance dict (so a class attribute ``cur_retry`` is
    shadowed, not used), and whether to give up is decided on ``cur_retry``
    after the attempt, so an ``exec`` that assigns it steers the loop.
    """
    d = node.__dict__
    for n in range(node.max_retries):
        d["cur_retry"] = n
        if attempt is not None:
            attempt.n = n
        try:
            return node.exec(item)
        except Exception as exc:
            cur = d["cur_retry"] if attempt is None else attempt.n
            if cur == node.max_retries - 1:
                return node.exec_fallback(item, exc)
            stop = THREAD_STOP.get()
            if stop is None:
                if node.wait > 0:
                    time.sleep(node.wait)
            # On a worker thread of a batch that has failed or been
            # cancelled, make no further attempt (and cut the wait short):
            # the result would be dropped, and the caller is waiting.
            elif stop.is_set() or (node.wait > 0 and stop.wait(node.wait)):
                raise
    return None


async def exec_item_async(
    node: Any, item: Any, attempt: Attempt | None = None, per_attempt: float | None = None
) -> Any:
    """Run ``await node.exec_async(item)`` with attempts, waits and fallback.

    PocketFlow's async loop neither sets ``cur_retry`` nor reads it back;
    pocketcore sets it (so ``exec_async`` can read it) and, like PocketFlow,
    decides on the loop's own counter. With ``per_attempt`` seconds (the
    node's timeout), an attempt that takes longer is cancelled and fails with
    ``TimeoutError``, like any failed attempt.
    """
    d = node.__dict__
    call = node.exec_async if per_attempt is None else functools.partial(_within, per_attempt, node)
    if node.max_retries == 1:  # the usual case, without the loop's overhead
        d["cur_retry"] = 0
        try:
            return await call(item)
        except Exception as exc:
            return await node.exec_fallback_async(item, exc)
    for n in range(node.max_retries):
        d["cur_retry"] = n
        if attempt is not None:
            attempt.n = n
        try:
            return await call(item)
        except Exception as exc:
            if n == node.max_retries - 1:
                return await node.exec_fallback_async(item, exc)
            if node.wait > 0:
                await anyio.sleep(node.wait)
    return None


async def _within(seconds: float, node: Any, item: Any) -> Any:
    """One attempt of ``exec_async``, cancelled after ``seconds`` (``TimeoutError``)."""
    with anyio.fail_after(seconds):
        return await node.exec_async(item)


def _concurrent_item(node: Any, item: Any) -> Any:
    """One item of a concurrent sync batch: the pipeline with its own ``cur_retry``."""
    attempt = Attempt(node)
    token = CUR_RETRY.set(attempt)
    try:
        return exec_item(node, item, attempt)
    finally:
        CUR_RETRY.reset(token)


async def _concurrent_item_async(node: Any, item: Any, per_attempt: float | None = None) -> Any:
    """One item of a concurrent async batch: the pipeline with its own ``cur_retry``."""
    attempt = Attempt(node)
    token = CUR_RETRY.set(attempt)
    try:
        return await exec_item_async(node, item, attempt, per_attempt)
    finally:
        CUR_RETRY.reset(token)


def _collect_item(node: Any, item: Any) -> Any:
    """One item with ``on_error="collect"`` (sync): a failure becomes a :class:`Failed`."""
    attempt = Attempt(node)
    token = CUR_RETRY.set(attempt)
    try:
        return exec_item(node, item, attempt)
    except Exception as exc:
        return Failed(exc, item, -1, attempt.n + 1)  # its index is set by fan_out
    finally:
        CUR_RETRY.reset(token)


async def _collect_item_async(node: Any, item: Any, per_attempt: float | None = None) -> Any:
    """One item with ``on_error="collect"``: a failure becomes a :class:`Failed`."""
    attempt = Attempt(node)
    token = CUR_RETRY.set(attempt)
    try:
        return await exec_item_async(node, item, attempt, per_attempt)
    except Exception as exc:
        return Failed(exc, item, -1, attempt.n + 1)  # its index is set by fan_out
    finally:
        CUR_RETRY.reset(token)


def _pipeline(
    node: Any, *, blocking: bool, collect: bool = False, timeout: float | None = None
) -> Callable[[Any], Any]:
    """What runs for each item of ``node``'s parallel batch.

    In the usual case (one attempt, the default fallback, which re-raises)
    the pipeline is just ``exec`` / ``exec_async`` itself: every item's
    ``cur_retry`` is 0, so no per-item counter is needed, and handing the
    executor the bound method saves two frames per item. Otherwise each item
    runs the full pipeline with its own counter.
    """
    if blocking:
        if collect:
            return functools.partial(_collect_item, node)
    elif collect or timeout is not None:
        each_item = _collect_item_async if collect else _concurrent_item_async
        return functools.partial(each_item, node, per_attempt=timeout)
    cls = type(node)
    fallback = cls.exec_fallback if blocking else cls.exec_fallback_async
    if node.max_retries == 1 and _reraises(fallback):
        node.__dict__["cur_retry"] = 0
        return node.exec if blocking else node.exec_async  # type: ignore[no-any-return]
    return functools.partial(_concurrent_item if blocking else _concurrent_item_async, node)


F = TypeVar("F", bound=Callable[..., Any])


def reraises(fallback: F) -> F:
    """Declare that a fallback method only re-raises the exception it is given.

    The node classes mark their default ``exec_fallback`` /
    ``exec_fallback_async`` with it. A node whose fallback is so marked and
    that makes one attempt gets the cheaper pipeline of :func:`_pipeline`.
    """
    fallback.__pocketcore_reraises__ = True  # type: ignore[attr-defined]
    return fallback


def _reraises(fallback: object) -> bool:
    return getattr(fallback, "__pocketcore_reraises__", False) is True


# --- sequential batches --------------------------------------------------------


def each(owner: Any, items: Iterable[Any] | None, fn: Callable[[Any], Any]) -> list[Any]:
    """Run ``fn`` on each item in order (``None`` is an empty batch), observed."""
    batch, run_one = observe.items(owner, () if items is None else items, fn)
    return [run_one(item) for item in batch]


async def each_async(
    owner: Any, items: Iterable[Any] | None, fn: Callable[[Any], Awaitable[Any]]
) -> list[Any]:
    """:func:`each` for an async ``fn``."""
    batch, run_one = observe.items_async(owner, () if items is None else items, fn)
    return [await run_one(item) for item in batch]


# --- parallel batches: the fan-out ---------------------------------------------


async def fan_out(
    owner: Any,
    items: Iterable[Any] | None,
    *,
    blocking: bool = False,
    work: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """Run every item of ``owner``'s parallel batch through the run's executor.

    Args:
        owner: The parallel node or batch flow; its own ``executor`` /
            ``max_concurrency`` win over the run's.
        items: The batch (``None`` is an empty one), pulled lazily.
        blocking: The per-item work is sync: it runs on worker threads, or
            through the executor's own ``map_blocking``.
        work: The per-item function of a batch flow's passes, which read and
            write the shared store and so must stay in this process (a remote
            executor is refused). By default, the node's ``exec`` pipeline,
            which may travel to a remote executor with a detached copy of
            the node.

    Returns:
        The results in input order.

    Raises:
        ConfigError: The executor is unusable, or remote for a batch flow.
        PocketcoreError: The work or an item cannot be sent to a remote executor.
        BaseException: The first item's failure, unchanged.
    """
    executor, limit = executor_for(owner)
    controls = batch_controls(owner)
    collect = controls is not None and controls.collect and work is None
    timeout = None if controls is None or work is not None else controls.timeout
    if timeout is not None and blocking:
        raise refuse_timeout(owner, timeout)
    batch: Iterable[Any] = () if items is None else items
    caps = capabilities(executor)
    if caps.remote or (blocking and caps.map_blocking is not None):
        results = await _executor_runs_items(
            owner, executor, batch, blocking=blocking, work=work, limit=limit, controls=controls
        )
    else:
        fn = (
            work
            if work is not None
            else _pipeline(owner, blocking=blocking, collect=collect, timeout=timeout)
        )
        if blocking:
            fn, limit = on_threads(fn, limit)
        batch, fn = observe.items_async(owner, batch, fn)
        if controls is not None and controls.limiters:
            fn = _limited(fn, controls.limiters)  # outside observation: waiting is not running
        results = await executor.map(fn, batch, limit=limit)
    if collect:
        _number_failures(results)
    return results


async def _executor_runs_items(
    owner: Any,
    executor: Executor,
    batch: Iterable[Any],
    *,
    blocking: bool,
    work: Callable[[Any], Any] | None,
    limit: int | None,
    controls: Controls | None,
) -> list[Any]:
    """A batch whose calls the executor runs itself: in other processes, or its ``map_blocking``.

    The kernel does not see each item start there, so it cannot pace or
    limit them; it prepares the work (a detached copy of the node, checked
    to pickle, for a remote executor) and reports the items once they are back.
    """
    caps = capabilities(executor)
    if controls is not None and controls.limiters:
        raise ConfigError(
            f"{type(owner).__name__} has max_per_second or a limiter, but executor "
            f"{executor.name!r} runs the items itself (in other processes, or with its own "
            "map_blocking), so pocketcore cannot pace their starts; this is not supported yet"
        )
    collect = controls is not None and controls.collect and work is None
    timeout = None if controls is None or work is not None else controls.timeout
    if caps.remote:
        if work is not None:
            refuse_batch_flow(owner, executor)
        # The timeout travels with the work: each attempt is timed where it runs.
        fn = _pipeline(detached(owner), blocking=blocking, collect=collect, timeout=timeout)
        batch = shippable(owner, executor, fn, batch)
    else:
        fn = work if work is not None else _pipeline(owner, blocking=blocking, collect=collect)
    if blocking and caps.map_blocking is not None:
        run_blocking_batch = caps.map_blocking
        return await observe.items_after(
            owner, batch, lambda its: run_blocking_batch(fn, its, limit=limit)
        )
    call = functools.partial(call_sync, fn) if blocking else fn
    return await observe.items_after(owner, batch, lambda its: executor.map(call, its, limit=limit))


def refuse_timeout(node: Any, timeout: float) -> ConfigError:
    """The error for a timeout on items whose ``exec`` blocks: it could not stop them."""
    return ConfigError(
        f"{type(node).__name__} has a timeout ({timeout:g} s), but its exec is blocking and "
        "runs on a worker thread (or a remote worker), where a timeout cannot stop it: the "
        "attempt would go on running after the batch ends. Make exec async (an "
        "AsyncParallelBatchNode), or bound the call inside exec itself"
    )


def _limited(
    fn: Callable[[Any], Awaitable[Any]], limiters: tuple[Limiter, ...]
) -> Callable[[Any], Awaitable[Any]]:
    """``fn`` that first takes its turn of each limiter, and gives the slots back after."""

    async def limited(item: Any) -> Any:
        taken: list[Limiter] = []
        try:
            # Every slot first, then every turn: a turn taken while waiting for
            # a slot would be spent late, and starts would bunch together.
            for limiter in limiters:
                if not limiter.try_take_slot():
                    await limiter.take_slot()
                taken.append(limiter)
            for limiter in limiters:
                if not limiter.try_take_turn():
                    await limiter.take_turn()
            return await fn(item)
        finally:
            for limiter in taken:
                limiter.release()

    return limited


def _number_failures(results: list[Any]) -> None:
    """Give each :class:`Failed` of a collected batch its index: its slot in the results."""
    for index, result in enumerate(results):
        if type(result) is Failed:
            results[index] = attrs.evolve(result, index=index)


def fan_out_blocking(
    owner: Any, items: Iterable[Any] | None, *, work: Callable[[Any], Any] | None = None
) -> list[Any]:
    """:func:`fan_out` of sync work, from sync code: on the loop the executor starts."""
    executor, _ = executor_for(owner)
    return run_blocking(executor, lambda: fan_out(owner, items, blocking=True, work=work))
