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
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import anyio
import attrs

from pocketcore._core.errors import ConfigError
from pocketcore._core.executor import Executor, Gate, capabilities
from pocketcore._core.remote import detached, refuse_batch_flow, shippable
from pocketcore._core.results import Failed
from pocketcore._dispatch.threads import call_sync, on_threads, run_blocking
from pocketcore._runtime import observe
from pocketcore._runtime.cache import (
    MISS,
    WHOLE_BATCH_KINDS,
    WHOLE_BATCH_MAX_BYTES,
    WHOLE_BATCH_MIN,
    Keyed,
    NodeCache,
    node_cache,
)
from pocketcore._runtime.context import (
    CUR_RETRY,
    THREAD_STOP,
    Attempt,
    Controls,
    batch_controls,
    executor_for,
)
from pocketcore._runtime.limits import Limiter, gate_of

__all__ = [
    "each",
    "each_async",
    "exec_cached",
    "exec_cached_async",
    "exec_each",
    "exec_each_async",
    "exec_item",
    "exec_item_async",
    "fan_out",
    "fan_out_blocking",
    "refuse_timeout",
    "reraises",
]


# --- the per-item pipeline ---------------------------------------------------


def exec_item(
    node: Any, item: Any, attempt: Attempt | None = None, call: Callable[[Any], Any] | None = None
) -> Any:
    """Run ``node.exec(item)`` with the node's attempts, waits and fallback (sync).

    ``attempt`` is given when items of ``node`` run concurrently (see
    :class:`~pocketcore._runtime.context.Attempt`). As in PocketFlow, the
    counter lives in the instance dict (so a class attribute ``cur_retry`` is
    shadowed, not used), and whether to give up is decided on ``cur_retry``
    after the attempt, so an ``exec`` that assigns it steers the loop.
    ``call`` stands in for ``node.exec`` (the result cache's, which notes
    that it returned).
    """
    d = node.__dict__
    for n in range(node.max_retries):
        d["cur_retry"] = n
        if attempt is not None:
            attempt.n = n
        try:
            # node.exec(item) is called as a method: no bound method is made.
            return node.exec(item) if call is None else call(item)
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
    node: Any,
    item: Any,
    attempt: Attempt | None = None,
    per_attempt: float | None = None,
    call: Callable[[Any], Awaitable[Any]] | None = None,
) -> Any:
    """Run ``await node.exec_async(item)`` with attempts, waits and fallback.

    PocketFlow's async loop neither sets ``cur_retry`` nor reads it back;
    pocketcore sets it (so ``exec_async`` can read it) and, like PocketFlow,
    decides on the loop's own counter. With ``per_attempt`` seconds (the
    node's timeout), an attempt that takes longer is cancelled and fails with
    ``TimeoutError``, like any failed attempt. ``call`` stands in for
    ``node.exec_async``, as for :func:`exec_item`.
    """
    d = node.__dict__
    if node.max_retries == 1 and call is None and per_attempt is None:
        # The usual case: no loop, and exec_async called as a method (no bound method made).
        d["cur_retry"] = 0
        try:
            return await node.exec_async(item)
        except Exception as exc:
            return await node.exec_fallback_async(item, exc)
    if call is None:
        call = node.exec_async
    if per_attempt is not None:
        call = functools.partial(_within, per_attempt, call)
    if node.max_retries == 1:
        d["cur_retry"] = 0
        try:
            return await call(item)
        except Exception as exc:
            return await node.exec_fallback_async(item, exc)
    return await _retrying_async(node, item, attempt, call)


async def _retrying_async(
    node: Any, item: Any, attempt: Attempt | None, call: Callable[[Any], Awaitable[Any]]
) -> Any:
    """The attempts of :func:`exec_item_async` for a node that makes more than one."""
    d = node.__dict__
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


async def _within(seconds: float, call: Callable[[Any], Awaitable[Any]], item: Any) -> Any:
    """One attempt of ``exec_async``, cancelled after ``seconds`` (``TimeoutError``)."""
    with anyio.fail_after(seconds):
        return await call(item)


def _concurrent_item(node: Any, item: Any, call: Callable[[Any], Any] | None = None) -> Any:
    """One item of a concurrent sync batch: the pipeline with its own ``cur_retry``."""
    attempt = Attempt(node)
    token = CUR_RETRY.set(attempt)
    try:
        return exec_item(node, item, attempt, call)
    finally:
        CUR_RETRY.reset(token)


async def _concurrent_item_async(
    node: Any,
    item: Any,
    per_attempt: float | None = None,
    call: Callable[[Any], Awaitable[Any]] | None = None,
) -> Any:
    """One item of a concurrent async batch: the pipeline with its own ``cur_retry``."""
    attempt = Attempt(node)
    token = CUR_RETRY.set(attempt)
    try:
        return await exec_item_async(node, item, attempt, per_attempt, call)
    finally:
        CUR_RETRY.reset(token)


def _collect_item(node: Any, item: Any, call: Callable[[Any], Any] | None = None) -> Any:
    """One item with ``on_error="collect"`` (sync): a failure becomes a :class:`Failed`."""
    attempt = Attempt(node)
    token = CUR_RETRY.set(attempt)
    try:
        return exec_item(node, item, attempt, call)
    except Exception as exc:
        return Failed(exc, item, -1, attempt.n + 1)  # its index is set by fan_out
    finally:
        CUR_RETRY.reset(token)


async def _collect_item_async(
    node: Any,
    item: Any,
    per_attempt: float | None = None,
    call: Callable[[Any], Awaitable[Any]] | None = None,
) -> Any:
    """One item with ``on_error="collect"``: a failure becomes a :class:`Failed`."""
    attempt = Attempt(node)
    token = CUR_RETRY.set(attempt)
    try:
        return await exec_item_async(node, item, attempt, per_attempt, call)
    except Exception as exc:
        return Failed(exc, item, -1, attempt.n + 1)  # its index is set by fan_out
    finally:
        CUR_RETRY.reset(token)


def _pipeline(
    node: Any,
    *,
    blocking: bool,
    collect: bool = False,
    timeout: float | None = None,
    call: Callable[[Any], Any] | None = None,
) -> Callable[[Any], Any]:
    """What runs for each item of ``node``'s parallel batch.

    In the usual case (one attempt, the default fallback, which re-raises)
    the pipeline is just ``exec`` / ``exec_async`` itself: every item's
    ``cur_retry`` is 0, so no per-item counter is needed, and handing the
    executor the bound method saves two frames per item. Otherwise each item
    runs the full pipeline with its own counter. ``call`` is ``exec``'s
    stand-in of an observed batch (see :func:`_observed_exec`), which takes
    ``exec``'s place.
    """
    if call is not None:
        return _observed_pipeline(node, blocking=blocking, collect=collect, call=call)
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


def _observed_pipeline(
    node: Any, *, blocking: bool, collect: bool, call: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    """:func:`_pipeline` with ``exec``'s stand-in (which holds the timeout, if any).

    In the usual case the stand-in is the whole pipeline, as ``exec`` is
    when nobody listens.
    """
    cls = type(node)
    fallback = cls.exec_fallback if blocking else cls.exec_fallback_async
    if node.max_retries == 1 and _reraises(fallback) and not collect:
        node.__dict__["cur_retry"] = 0
        return call
    if blocking:
        return functools.partial(_collect_item if collect else _concurrent_item, node, call=call)
    each_item = _collect_item_async if collect else _concurrent_item_async
    return functools.partial(each_item, node, call=call)


F = TypeVar("F", bound=Callable[..., Any])


def _observed_exec(
    node: Any, *, blocking: bool, timeout: float | None = None
) -> Callable[[Any], Any] | None:
    """``exec``'s stand-in reporting each attempt of ``node``'s items, or ``None``: nobody listens.

    For ``exec_async`` it holds the timeout, so that an attempt that times
    out is reported with its ``TimeoutError``: the pipeline is then given no
    ``per_attempt`` of its own.
    """
    if blocking:
        return observe.attempts(node, node.exec)
    run = (
        node.exec_async if timeout is None else functools.partial(_within, timeout, node.exec_async)
    )
    return observe.attempts_async(node, run)


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


# --- the result cache ------------------------------------------------------------
#
# With a cache in effect, each input is keyed and looked up before its
# pipeline runs; a hit is the result, and exec never runs. On a miss the
# pipeline runs with an exec that notes it returned: only then is the result
# stored (a fallback's result, or a Failed, never is). The write happens
# after the pipeline, outside its attempts, so a store that fails fails the
# batch rather than an attempt.


class _Returned:
    """``exec`` (sync) for one input, noting that it returned."""

    __slots__ = ("call", "returned")

    def __init__(self, call: Callable[[Any], Any]) -> None:
        self.call, self.returned = call, False

    def __call__(self, item: Any) -> Any:
        result = self.call(item)
        self.returned = True
        return result


class _ReturnedAsync:
    """``exec_async`` for one input, noting that it returned."""

    __slots__ = ("call", "returned")

    def __init__(self, call: Callable[[Any], Awaitable[Any]]) -> None:
        self.call, self.returned = call, False

    async def __call__(self, item: Any) -> Any:
        result = await self.call(item)
        self.returned = True
        return result


@attrs.frozen
class _Computed:
    """A result a remote worker's ``exec`` returned (not a fallback's): the dispatcher stores it."""

    value: Any


def _keyed_item(
    node: Any,
    cache: NodeCache,
    one: Keyed,
    concurrent: bool,
    collect: bool,
    call: Callable[[Any], Any] | None = None,
) -> Any:
    """Run one input that missed through the sync pipeline, and store what ``exec`` returned.

    ``call`` stands in for ``exec`` (an observed batch's, see :func:`_observed_exec`).
    """
    call = _Returned(node.exec if call is None else call)
    attempt = Attempt(node) if concurrent else None
    token = None if attempt is None else CUR_RETRY.set(attempt)
    try:
        result = exec_item(node, one.item, attempt, call)
    except Exception as exc:
        if not collect or attempt is None:
            raise
        return Failed(exc, one.item, -1, attempt.n + 1)
    finally:
        if token is not None:
            CUR_RETRY.reset(token)
    if call.returned and one.key is not None:
        cache.save(one.key, result, one.index)
    return result


async def _keyed_item_async(
    node: Any,
    cache: NodeCache,
    one: Keyed,
    concurrent: bool,
    collect: bool,
    per_attempt: float | None = None,
    call: Callable[[Any], Awaitable[Any]] | None = None,
) -> Any:
    """:func:`_keyed_item` for ``exec_async``."""
    call = _ReturnedAsync(node.exec_async if call is None else call)
    attempt = Attempt(node) if concurrent else None
    token = None if attempt is None else CUR_RETRY.set(attempt)
    try:
        result = await exec_item_async(node, one.item, attempt, per_attempt, call)
    except Exception as exc:
        if not collect or attempt is None:
            raise
        return Failed(exc, one.item, -1, attempt.n + 1)
    finally:
        if token is not None:
            CUR_RETRY.reset(token)
    if call.returned and one.key is not None:
        if concurrent:  # with siblings that may finish at the same moment
            await cache.save_async(one.key, result, one.index)
        else:
            cache.save(one.key, result, one.index)
    return result


async def _keyed_once_async(
    node: Any, cache: NodeCache, collect: bool, per_attempt: float | None, one: Keyed
) -> Any:
    """The usual case of :func:`_keyed_item_async`: one attempt, a fallback that re-raises.

    Then whatever ``exec_async`` returned is the result, and a failure is
    the item's; no attempt counter or stand-in is needed.
    """
    try:
        if per_attempt is None:
            result = await node.exec_async(one.item)
        else:
            result = await _within(per_attempt, node.exec_async, one.item)
    except Exception as exc:
        if not collect:
            raise
        return Failed(exc, one.item, -1, 1)
    if one.key is not None:
        await cache.save_async(one.key, result, one.index)
    return result


def _computed_item(node: Any, collect: bool, item: Any) -> Any:
    """One item on a remote worker (sync): its result, marked when ``exec`` returned it."""
    call = _Returned(node.exec)
    result = (_collect_item if collect else _concurrent_item)(node, item, call)
    return _Computed(result) if call.returned else result


async def _computed_item_async(
    node: Any, collect: bool, per_attempt: float | None, item: Any
) -> Any:
    """:func:`_computed_item` for ``exec_async``."""
    call = _ReturnedAsync(node.exec_async)
    each_item = _collect_item_async if collect else _concurrent_item_async
    result = await each_item(node, item, per_attempt, call)
    return _Computed(result) if call.returned else result


def exec_cached(node: Any, item: Any) -> Any:
    """A plain node's ``exec`` pipeline, through the run's result cache if it has one."""
    cache = node_cache(node)
    if cache is None:
        return exec_item(node, item)
    one = Keyed(None, cache.key(item, None), item)
    if one.key is not None:
        found = cache.get(one.key, None)
        if found is not MISS:
            return found
    return _keyed_item(node, cache, one, concurrent=False, collect=False)


async def exec_cached_async(node: Any, cache: NodeCache, item: Any) -> Any:
    """:func:`exec_cached` for an async node whose cache is ``cache``."""
    one = Keyed(None, cache.key(item, None), item)
    if one.key is not None:
        found = cache.get(one.key, None)
        if found is not MISS:
            return found
    return await _keyed_item_async(node, cache, one, concurrent=False, collect=False)


_PENDING: Any = object()
#: The most items keyed and looked up in one go (fewer under a lower limit).
LOOKUP_GROUP = 128


class _CachedBatch:
    """A batch read through the cache: hits are kept, misses are handed on, both in order.

    Items are pulled, keyed and looked up a group at a time as the executor
    pulls the misses, so a limit still bounds how many are held.

    A batch already in memory (a list, tuple or range of two items or more)
    is also checked against the node's whole-batch entry, which holds the
    last complete batch (a digest of every input, and every result): when
    it is the same batch, that one lookup answers for all its items. The
    entry is written once every item's result is stored, and only if the
    inputs are still those the batch started with: never when an item
    failed, fell back or was not cached, so that such an item still runs
    again next time.
    """

    def __init__(
        self,
        cache: NodeCache,
        items: Iterable[Any],
        group: int,
        on_hit: Callable[[Keyed, Any], None] | None,
        *,
        keep_missed: bool = False,
    ) -> None:
        self.cache, self.items, self.group, self.on_hit = cache, items, group, on_hit
        self.slots: list[Any] = []  # each input's result; _PENDING for a miss
        # The misses, in the order they were handed on: kept only for an
        # executor that runs them itself (their keys are needed when the
        # results come back), so that a local batch's memory follows its limit.
        self.missed: list[Keyed] = []
        self.keep_missed = keep_missed
        self.whole: bytes | None = None  # the batch's digest, while its entry is to be written
        self.size = 0
        self.n_missed = 0
        self.hit_bytes = 0
        self.saved_before, self.bytes_before = cache.saved, cache.saved_bytes

    def misses(self) -> Iterator[Keyed]:
        """The inputs that missed, pulled lazily; hits are recorded on the way."""
        if self._whole_batch_hit():
            return
        cache, slots, on_hit = self.cache, self.slots, self.on_hit
        missed = self.missed if self.keep_missed else None
        source = iter(self.items)
        first = 0
        while group := list(itertools.islice(source, self.group)):
            keys = cache.keys(group, first)
            found = cache.get_many([key for key in keys if key is not None])
            for index, (item, key) in enumerate(zip(group, keys, strict=True), first):
                raw = found.get(key) if key is not None else None
                value = MISS if raw is None else cache.load(raw, index)
                if value is MISS:
                    one = Keyed(index, key, item)
                    slots.append(_PENDING)
                    self.n_missed += 1
                    if missed is not None:
                        missed.append(one)
                    yield one
                else:
                    slots.append(value)
                    self.hit_bytes += len(raw)  # type: ignore[arg-type]
                    if on_hit is not None:
                        on_hit(Keyed(index, key, item), value)
            first += len(group)

    def _whole_batch_hit(self) -> bool:
        """Whether the node's whole-batch entry is this batch; its results then fill the slots."""
        items = self.items
        if type(items) not in WHOLE_BATCH_KINDS:
            return False
        batch: Sequence[Any] = items  # type: ignore[assignment]
        try:
            size = len(batch)
        except OverflowError:  # a range of more than sys.maxsize items
            return False
        if size < WHOLE_BATCH_MIN:
            return False
        self.whole, self.size = self.cache.batch_digest(batch), size
        if self.whole is None:
            return False
        found = self.cache.load_batch(self.whole, size)
        if found is None:
            return False
        self.slots, self.whole = found, None  # nothing to write
        if self.on_hit is not None:
            for index, (item, value) in enumerate(zip(batch, found, strict=True)):
                self.on_hit(Keyed(index, None, item), value)
        return True

    def merge(self, computed: list[Any]) -> list[Any]:
        """Every input's result, in input order: the hits, and ``computed`` for the misses.

        Writes the whole-batch entry when every result is stored.
        """
        if not self.n_missed:
            results = self.slots
        else:
            fresh = iter(computed)
            results = [next(fresh) if slot is _PENDING else slot for slot in self.slots]
        if self.whole is not None and self._complete(results):
            self.cache.save_batch(self.whole, results)
        return results

    def _complete(self, results: list[Any]) -> bool:
        """Whether every result is stored, not too large together, and of the inputs begun with.

        The inputs are fingerprinted again: a batch whose list grew, or
        whose items changed, while it ran (an ``exec`` that appends work to
        its own list) gets no entry.
        """
        cache = self.cache
        return (
            cache.saved - self.saved_before == self.n_missed
            and len(results) == self.size
            and self.hit_bytes + cache.saved_bytes - self.bytes_before <= WHOLE_BATCH_MAX_BYTES
            and cache.batch_digest(self.items) == self.whole  # type: ignore[arg-type]
        )


def _group_for(limit: int | None) -> int:
    return LOOKUP_GROUP if limit is None else max(1, min(limit, LOOKUP_GROUP))


# --- sequential batches --------------------------------------------------------


def each(owner: Any, items: Iterable[Any] | None, fn: Callable[[Any], Any]) -> list[Any]:
    """Run ``fn`` on each item in order (``None`` is an empty batch), observed."""
    return observe.each(owner, () if items is None else items, fn)


async def each_async(
    owner: Any, items: Iterable[Any] | None, fn: Callable[[Any], Awaitable[Any]]
) -> list[Any]:
    """:func:`each` for an async ``fn``."""
    return await observe.each_async(owner, () if items is None else items, fn)


def exec_each(node: Any, items: Iterable[Any] | None) -> list[Any]:
    """A sequential batch node's items through its pipeline (and the run's cache), in order."""
    cache = node_cache(node)
    call = _observed_exec(node, blocking=True)
    if cache is None:
        if call is None:
            return each(node, items, functools.partial(exec_item, node))
        return each(node, items, functools.partial(exec_item, node, call=call))

    def run(run_one: Callable[[Keyed], Any], on_hit: observe.Hit | None) -> list[Any]:
        batch = _CachedBatch(cache, () if items is None else items, 1, on_hit)
        return batch.merge([run_one(one) for one in batch.misses()])

    return observe.keyed(
        node,
        observe.batch_size(items),
        functools.partial(_keyed_item, node, cache, concurrent=False, collect=False, call=call),
        run,
    )


async def exec_each_async(node: Any, items: Iterable[Any] | None) -> list[Any]:
    """:func:`exec_each` for an async batch node."""
    cache = node_cache(node)
    call = _observed_exec(node, blocking=False)
    if cache is None:
        if call is None:
            return await each_async(node, items, functools.partial(exec_item_async, node))
        return await each_async(node, items, functools.partial(exec_item_async, node, call=call))

    async def run(
        run_one: Callable[[Keyed], Awaitable[Any]], on_hit: observe.Hit | None
    ) -> list[Any]:
        batch = _CachedBatch(cache, () if items is None else items, 1, on_hit)
        return batch.merge([await run_one(one) for one in batch.misses()])

    return await observe.keyed_async(
        node,
        observe.batch_size(items),
        functools.partial(
            _keyed_item_async, node, cache, concurrent=False, collect=False, call=call
        ),
        run,
    )


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
    cache = None if work is not None else node_cache(owner)  # a batch flow's passes: no exec
    caps = capabilities(executor)
    if caps.remote or (blocking and caps.map_blocking is not None):
        results = await _executor_runs_items(
            owner,
            executor,
            batch,
            blocking=blocking,
            work=work,
            limit=limit,
            controls=controls,
            cache=cache,
        )
    elif cache is not None:
        results = await _fan_out_cached(
            owner, executor, cache, batch, blocking=blocking, limit=limit, controls=controls
        )
    else:
        if work is None:
            call = _observed_exec(owner, blocking=blocking, timeout=timeout)
            fn = _pipeline(owner, blocking=blocking, collect=collect, timeout=timeout, call=call)
        else:
            fn = work
        fn, run_map, _ = _mapped(executor, fn, blocking=blocking, limit=limit, controls=controls)
        results = await observe.fan_out(
            owner,
            batch,
            fn,
            run_map,
            executor=executor,
            limit=limit,
            controls=controls,
        )
    if collect:
        _number_failures(results)
    return results


def _mapped(
    executor: Executor,
    fn: Callable[[Any], Any],
    *,
    blocking: bool,
    limit: int | None,
    controls: Controls | None,
) -> tuple[Callable[[Any], Awaitable[Any]], observe.MapRun, int | None]:
    """The per-item coroutine function of a local parallel batch, how to map it, and the limit.

    Sync work goes to worker threads (the limit is then the number of
    threads). The limiters are taken before the (observed) per-item
    function starts, as waiting for a turn is not running: by the executor,
    through a gate, when it gates items (:class:`~pocketcore._core.executor.GatingExecutor`),
    else by a wrapper around the function.
    """
    if blocking:
        fn, limit = on_threads(fn, limit)
    run: Callable[..., Awaitable[list[Any]]] = executor.map
    if controls is None or not controls.limiters:
        return fn, lambda each_item, items: run(each_item, items, limit=limit), limit
    limiters = controls.limiters
    if capabilities(executor).gates_items:
        gate = gate_of(limiters)
        return fn, lambda each_item, items: run(each_item, items, limit=limit, gate=gate), limit
    return (
        fn,
        lambda each_item, items: run(_limited(each_item, limiters), items, limit=limit),
        limit,
    )


async def _fan_out_cached(
    owner: Any,
    executor: Executor,
    cache: NodeCache,
    batch: Iterable[Any],
    *,
    blocking: bool,
    limit: int | None,
    controls: Controls | None,
) -> list[Any]:
    """A parallel batch read through the cache, on a local executor: only misses are mapped."""
    collect = controls is not None and controls.collect
    size = observe.batch_size(batch)
    timeout = None if controls is None else controls.timeout
    call = _observed_exec(owner, blocking=blocking, timeout=timeout)
    fn: Callable[[Keyed], Any]
    if blocking:
        fn = functools.partial(
            _keyed_item, owner, cache, concurrent=True, collect=collect, call=call
        )
    elif call is None and owner.max_retries == 1 and _reraises(type(owner).exec_fallback_async):
        owner.__dict__["cur_retry"] = 0  # as in _pipeline: every item's is 0
        fn = functools.partial(_keyed_once_async, owner, cache, collect, timeout)
    else:
        fn = functools.partial(
            _keyed_item_async,
            owner,
            cache,
            concurrent=True,
            collect=collect,
            per_attempt=timeout if call is None else None,  # the stand-in is timed
            call=call,
        )
    fn, run_map, map_limit = _mapped(
        executor, fn, blocking=blocking, limit=limit, controls=controls
    )
    group = _group_for(map_limit)

    async def run(
        each_item: Callable[[Keyed], Awaitable[Any]], on_hit: observe.Hit | None
    ) -> list[Any]:
        cached = _CachedBatch(cache, batch, group, on_hit)
        return cached.merge(await run_map(each_item, cached.misses()))

    return await observe.keyed_async(
        owner, size, fn, run, executor=executor, limit=limit, controls=controls
    )


async def _executor_runs_items(
    owner: Any,
    executor: Executor,
    batch: Iterable[Any],
    *,
    blocking: bool,
    work: Callable[[Any], Any] | None,
    limit: int | None,
    controls: Controls | None,
    cache: NodeCache | None = None,
) -> list[Any]:
    """A batch whose calls the executor runs itself: in other processes, or its ``map_blocking``.

    The kernel does not see each item start there: it prepares the work (a
    detached copy of the node, checked to pickle, for a remote executor),
    hands the batch's limiters over as a gate, which the executor enters
    before starting each item (:class:`~pocketcore._core.executor.GatingExecutor`;
    one that does not gate items cannot be paced, and is refused), and
    reports the items once they are back. With a cache, hits stay here:
    only misses are handed over, and their results are stored here, each as
    it comes back when the executor reports results
    (:class:`~pocketcore._core.executor.ReportingExecutor`).
    """
    caps = capabilities(executor)
    gate = None
    if controls is not None and controls.limiters:
        if not caps.gates_items:
            raise _refuse_limiters(owner, executor)
        gate = gate_of(controls.limiters)
    collect = controls is not None and controls.collect and work is None
    timeout = None if controls is None or work is not None else controls.timeout
    cached = None
    size = observe.batch_size(batch)
    if cache is not None:
        cached = _CachedBatch(
            cache, batch, _group_for(limit), observe.hits(owner), keep_missed=True
        )
        batch = _Items(cached, bare=caps.remote)
    if caps.remote:
        if work is not None:
            refuse_batch_flow(owner, executor)
        # The timeout travels with the work: each attempt is timed where it runs.
        home = detached(owner)
        if cached is not None:
            fn: Callable[[Any], Any] = (
                functools.partial(_computed_item, home, collect)
                if blocking
                else functools.partial(_computed_item_async, home, collect, timeout)
            )
        else:
            fn = _pipeline(home, blocking=blocking, collect=collect, timeout=timeout)
        # What observers send along (a trace context) travels with each item.
        batch, fn = observe.sending(
            owner, batch, fn, blocking=blocking, index_of=_miss_index(cached)
        )
        batch = shippable(owner, executor, fn, batch)
    elif cached is not None:
        fn = functools.partial(_keyed_item, owner, cached.cache, concurrent=True, collect=collect)
    else:
        fn = work if work is not None else _pipeline(owner, blocking=blocking, collect=collect)
    run_batch = _runner(executor, fn, blocking=blocking, limit=limit, cached=cached, gate=gate)
    done = await observe.items_after(
        owner,
        batch,
        run_batch,
        executor=executor,
        limit=limit,
        controls=controls,
        size=size,
        index_of=_miss_index(cached),
    )
    return done if cached is None else cached.merge(done)


def _refuse_limiters(owner: Any, executor: Executor) -> ConfigError:
    """The error for limiters on a batch whose executor runs the items itself, ungated."""
    return ConfigError(
        f"{type(owner).__name__} has max_per_second or a limiter, but executor "
        f"{executor.name!r} runs the items itself (in other processes, or with its own "
        "map_blocking) and does not declare gates_items, so pocketcore cannot pace or limit "
        "their starts; use an executor that does (asyncio, trio, sequential, dask), or drop "
        "the limiter"
    )


def _miss_index(cached: _CachedBatch | None) -> Callable[[int], int | None] | None:
    """The input position of each miss of ``cached`` handed over, by its position among them."""
    if cached is None:
        return None
    missed = cached.missed
    return lambda position: missed[position].index


class _Items:
    """The misses of a cached batch, as the items handed to an executor that runs them itself.

    A remote executor is handed the item itself (the key stays here); one
    with its own ``map_blocking`` runs the pipeline here, and is handed the
    :class:`Keyed` input.
    """

    def __init__(self, cached: _CachedBatch, *, bare: bool) -> None:
        self.cached, self.bare = cached, bare

    def __iter__(self) -> Iterator[Any]:
        if not self.bare:
            return self.cached.misses()
        return (one.item for one in self.cached.misses())


def _runner(
    executor: Executor,
    fn: Callable[[Any], Any],
    *,
    blocking: bool,
    limit: int | None,
    cached: _CachedBatch | None,
    gate: Gate | None = None,
) -> Callable[[Iterable[Any]], Awaitable[list[Any]]]:
    """How to run a batch through ``executor``'s own ``map`` or ``map_blocking``.

    ``gate`` is passed on when there is one (the executor gates items).
    """
    caps = capabilities(executor)
    own_blocking = caps.map_blocking if blocking else None
    run_map: Callable[..., Awaitable[list[Any]]] = (
        executor.map if own_blocking is None else own_blocking
    )
    if gate is not None:
        run_map = functools.partial(run_map, gate=gate)
    call = functools.partial(call_sync, fn) if blocking and own_blocking is None else fn
    if cached is None or not caps.remote:
        return lambda its: run_map(call, its, limit=limit)
    store = _Storing(cached)
    if caps.reports_results:

        async def reporting(its: Iterable[Any]) -> list[Any]:
            reported = await run_map(call, its, limit=limit, on_result=store.one)
            return store.unwrap(reported)

        return reporting

    async def at_the_end(its: Iterable[Any]) -> list[Any]:
        results = await run_map(call, its, limit=limit)
        for position, result in enumerate(results):
            store.one(position, result)
        return store.unwrap(results)

    return at_the_end


class _Storing:
    """Stores the results a remote executor brings back for a cached batch's misses."""

    def __init__(self, cached: _CachedBatch) -> None:
        self.cached = cached

    def one(self, position: int, result: Any) -> None:
        """Store the result of the ``position``-th miss, if its worker's ``exec`` returned it."""
        if type(result) is _Computed:
            one = self.cached.missed[position]
            if one.key is not None:
                self.cached.cache.save(one.key, result.value, one.index)

    @staticmethod
    def unwrap(results: list[Any]) -> list[Any]:
        """The results without their marks."""
        return [r.value if type(r) is _Computed else r for r in results]


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
    """``fn`` that first takes its turn of each limiter, and gives the slots back after.

    For a local executor that does not gate items: one that does is handed
    the limiters as a gate instead (:func:`~pocketcore._runtime.limits.gate_of`),
    and spares each item this extra coroutine.
    """
    if len(limiters) == 1:
        return functools.partial(_limited_by_one, fn, limiters[0])

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


async def _limited_by_one(fn: Callable[[Any], Awaitable[Any]], limiter: Limiter, item: Any) -> Any:
    """The usual case of :func:`_limited`, one limiter, with no list and no loop per item."""
    if not limiter.try_take_slot():
        await limiter.take_slot()
    try:
        if not limiter.try_take_turn():
            await limiter.take_turn()
        return await fn(item)
    finally:
        limiter.release()


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
