"""The attempts layer: retries, the wait between them, the fallback and ``cur_retry``.

Also the two layers it leans on: :func:`counted`, which gives each item of a
batch its own :class:`~pocketcore._runtime.context.ItemState` (its
``cur_retry``, and whether ``exec`` returned its result), and :func:`timed`,
the per-attempt timeout. Each layer takes the call below it and returns the
call above it; a layer that has nothing to do returns the call unchanged.

PocketFlow's semantics are kept: the counter lives in the node's instance
dict (a class attribute ``cur_retry`` is shadowed, not used); the sync loop
decides whether to give up on ``cur_retry`` read back after the attempt (so
an ``exec`` that assigns it steers the loop), the async loop on its own
counter. Under an :class:`~pocketcore._runtime.context.ItemState` the counter
is the item's, not the node's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from pocketcore._runtime.backoff import pause_before
from pocketcore._runtime.context import CUR_RETRY, THREAD_STOP, ItemState

__all__ = [
    "counted",
    "counted_async",
    "reraise",
    "reraise_async",
    "retried",
    "retried_async",
    "retry",
    "retry_async",
    "single",
    "timed",
]

Call = Callable[[Any], Any]
AsyncCall = Callable[[Any], Awaitable[Any]]


def reraise(self: Any, prep_res: Any, exc: Exception) -> Any:
    """Called with the last exception once every attempt failed; re-raises it by default."""
    raise exc


async def reraise_async(self: Any, prep_res: Any, exc: Exception) -> Any:
    """Async :meth:`~pocketcore.Node.exec_fallback`; re-raises ``exc`` by default."""
    raise exc


def single(node: Any, *, blocking: bool) -> bool:
    """Whether ``node`` makes one attempt and keeps the default fallback (which re-raises).

    Then an item's result is whatever ``exec`` returned, a failure is the
    item's own, and every item's ``cur_retry`` is 0: the attempts layer has
    nothing to do. Decided by method identity, once per batch.
    """
    cls = type(node)
    fallback = cls.exec_fallback if blocking else cls.exec_fallback_async
    return node.max_retries == 1 and fallback is (reraise if blocking else reraise_async)


# --- one item's state ---------------------------------------------------------


def counted(node: Any, call: Call) -> Call:
    """``call`` with an :class:`ItemState` of its own in :data:`CUR_RETRY` (sync)."""
    return functools.partial(_counted, node, call)


def _counted(node: Any, call: Call, item: Any) -> Any:
    token = CUR_RETRY.set(ItemState(node))
    try:
        return call(item)
    finally:
        CUR_RETRY.reset(token)


def counted_async(node: Any, call: AsyncCall) -> AsyncCall:
    """:func:`counted` for an async ``call``."""
    return functools.partial(_counted_async, node, call)


async def _counted_async(node: Any, call: AsyncCall, item: Any) -> Any:
    token = CUR_RETRY.set(ItemState(node))
    try:
        return await call(item)
    finally:
        CUR_RETRY.reset(token)


# --- attempts -----------------------------------------------------------------


def retried(node: Any, call: Call, *, stateful: bool) -> Call:
    """``call`` (``exec``, or what stands in for it) with ``node``'s attempts and fallback.

    ``stateful``: an :class:`ItemState` is in force for the item (see
    :func:`counted`); its counter is the item's ``cur_retry``, and it is told
    when ``exec`` returned.
    """
    return functools.partial(retry, node, call, stateful)


def retry(node: Any, call: Call, stateful: bool, item: Any) -> Any:
    """One item through ``node``'s attempts (the body of :func:`retried`)."""
    d = node.__dict__
    state = CUR_RETRY.get() if stateful else None
    for n in range(node.max_retries):
        d["cur_retry"] = n
        if state is not None:
            state.n = n
        try:
            result = call(item)
        except Exception as exc:
            cur = d["cur_retry"] if state is None else state.n
            if cur == node.max_retries - 1:
                return node.exec_fallback(item, exc)
            stop = THREAD_STOP.get()
            pause = pause_before(node.wait, n, exc) if node.wait else 0.0
            if stop is None:
                if pause > 0:
                    time.sleep(pause)
            # On a worker thread of a batch that has failed or been
            # cancelled, make no further attempt (and cut the wait short):
            # the result would be dropped, and the caller is waiting.
            elif stop.is_set() or (pause > 0 and stop.wait(pause)):
                raise
        else:
            if state is not None:
                state.returned = True
            return result
    return None


def retried_async(node: Any, call: AsyncCall, *, stateful: bool) -> AsyncCall:
    """:func:`retried` for ``exec_async``: the loop decides on its own counter."""
    return functools.partial(retry_async, node, call, stateful)


async def retry_async(node: Any, call: AsyncCall, stateful: bool, item: Any) -> Any:
    """:func:`retry` for ``exec_async`` (the body of :func:`retried_async`)."""
    d = node.__dict__
    state = CUR_RETRY.get() if stateful else None
    last = node.max_retries - 1
    for n in range(node.max_retries):
        d["cur_retry"] = n
        if state is not None:
            state.n = n
        try:
            result = await call(item)
        except Exception as exc:
            if n == last:
                return await node.exec_fallback_async(item, exc)
            if node.wait:
                pause = pause_before(node.wait, n, exc)
                if pause > 0:
                    await anyio.sleep(pause)
        else:
            if state is not None:
                state.returned = True
            return result
    return None


def timed(seconds: float | None, call: AsyncCall) -> AsyncCall:
    """``call`` whose every attempt is cancelled after ``seconds``.

    The attempt then fails with ``TimeoutError("attempt timed out after 0.5 s")``,
    naming the limit; a ``TimeoutError`` that ``call`` raises itself passes unchanged.
    """
    if seconds is None:
        return call
    return functools.partial(_within, seconds, call)


async def _within(seconds: float, call: AsyncCall, item: Any) -> Any:
    with anyio.move_on_after(seconds):
        return await call(item)
    # Reached only when the scope cancelled the attempt: a return, or an
    # exception of the call's own, leaves the block otherwise.
    raise TimeoutError(f"attempt timed out after {seconds:g} s")
