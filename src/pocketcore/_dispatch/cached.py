"""The cache layer: hits are looked up before the items are handed on, results stored after.

A batch read through the result cache pulls its inputs a group at a time,
keys them and looks them up together (:class:`CachedBatch`): a hit is the
item's result and never reaches the executor; each miss is handed on as a
:class:`~pocketcore._dispatch.cached.Keyed` input. The write is a layer of the
item's trip (:func:`stored`), above the attempts and the collect layer, so
only what ``exec`` itself returned is stored (never a fallback's result or a
:class:`~pocketcore.Failed`), and a store that fails fails the batch.

Items that run in other processes cannot write here: on the worker,
:func:`marked` marks a result ``exec`` returned (:class:`Computed`), and the
dispatching process stores it as it comes back (:class:`Storing`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any

import attrs

from pocketcore._dispatch.attempts import counted, counted_async, retried, retried_async, timed
from pocketcore._runtime.cache import (
    MISS,
    WHOLE_BATCH_KINDS,
    WHOLE_BATCH_MAX_BYTES,
    WHOLE_BATCH_MIN,
    NodeCache,
    node_cache,
)
from pocketcore._runtime.context import CUR_RETRY
from pocketcore._runtime.observe import current

__all__ = [
    "LOOKUP_GROUP",
    "WHOLE_BATCH_MAX_BYTES",
    "BareItems",
    "CachedBatch",
    "Computed",
    "Keyed",
    "Storing",
    "exec_cached",
    "exec_cached_async",
    "group_for",
    "marked",
    "marked_async",
    "stored",
    "stored_async",
]


class Keyed:
    """An input with its key: what a cached batch hands on for each item that missed.

    Attributes:
        index: The item's position in the batch (``None`` for a plain node's input).
        key: The input's key, or ``None`` when it is not cached.
        item: The input itself.
    """

    __slots__ = ("index", "item", "key")

    def __init__(self, index: int | None, key: bytes | None, item: Any) -> None:
        self.index, self.key, self.item = index, key, item

    def __repr__(self) -> str:
        return f"Keyed({self.index!r}, {self.key!r}, {self.item!r})"


def _returned(checked: bool) -> bool:
    """Whether ``exec`` returned the result of the item running in this context.

    Unless ``checked``, the stack has no layer that could have made the
    result otherwise (one attempt, the default fallback, no collecting),
    and no state of its own to ask.
    """
    if not checked:
        return True
    state = CUR_RETRY.get()
    return state is not None and state.returned


def stored(
    cache: NodeCache, call: Callable[[Any], Any], *, concurrent: bool = False, checked: bool = True
) -> Callable[[Keyed], Any]:
    """``call`` for a :class:`Keyed` input that missed, storing what ``exec`` returned (sync).

    ``concurrent`` changes nothing for a sync item: each is written as it
    ends, from its own thread. Runs under
    :func:`~pocketcore._dispatch.attempts.counted`, whose state says whether
    ``exec`` returned.
    """
    return functools.partial(_stored, cache, call, checked)


def _stored(cache: NodeCache, call: Callable[[Any], Any], checked: bool, one: Keyed) -> Any:
    result = call(one.item)
    if one.key is not None and _returned(checked):
        cache.save(one.key, result, one.index)
    return result


def stored_async(
    cache: NodeCache,
    call: Callable[[Any], Awaitable[Any]],
    *,
    concurrent: bool,
    checked: bool = True,
) -> Callable[[Keyed], Awaitable[Any]]:
    """:func:`stored` for an async ``call``.

    ``concurrent``: siblings may finish at the same moment, and their
    results are written together (``save_async``).
    """
    return functools.partial(_stored_async, cache, call, concurrent, checked)


async def _stored_async(
    cache: NodeCache,
    call: Callable[[Any], Awaitable[Any]],
    concurrent: bool,
    checked: bool,
    one: Keyed,
) -> Any:
    result = await call(one.item)
    if one.key is not None and _returned(checked):
        if concurrent:
            await cache.save_async(one.key, result, one.index)
        else:
            cache.save(one.key, result, one.index)
    return result


@attrs.frozen
class Computed:
    """A result a remote worker's ``exec`` returned (not a fallback's): the dispatcher stores it."""

    value: Any


def marked(call: Callable[[Any], Any], *, checked: bool = True) -> Callable[[Any], Any]:
    """``call`` on a remote worker: its result, as :class:`Computed` when ``exec`` returned it."""
    return functools.partial(_marked, call, checked)


def _marked(call: Callable[[Any], Any], checked: bool, item: Any) -> Any:
    result = call(item)
    return Computed(result) if _returned(checked) else result


def marked_async(
    call: Callable[[Any], Awaitable[Any]], *, checked: bool = True
) -> Callable[[Any], Awaitable[Any]]:
    """:func:`marked` for an async ``call``."""
    return functools.partial(_marked_async, call, checked)


async def _marked_async(call: Callable[[Any], Awaitable[Any]], checked: bool, item: Any) -> Any:
    result = await call(item)
    return Computed(result) if _returned(checked) else result


class Storing:
    """Stores the results a remote executor brings back for a cached batch's misses."""

    def __init__(self, cached: CachedBatch) -> None:
        self.cached = cached

    def one(self, position: int, result: Any) -> None:
        """Store the result of the ``position``-th miss, if its worker's ``exec`` returned it."""
        if type(result) is Computed:
            one = self.cached.missed[position]
            if one.key is not None:
                self.cached.cache.save(one.key, result.value, one.index)

    def all(self, results: list[Any]) -> list[Any]:
        """Store every result (for an executor that does not report them one by one)."""
        for position, result in enumerate(results):
            self.one(position, result)
        return results

    @staticmethod
    def unwrap(results: list[Any]) -> list[Any]:
        """The results without their marks."""
        return [r.value if type(r) is Computed else r for r in results]


def exec_cached(node: Any, item: Any) -> Any:
    """A plain node's ``exec`` pipeline, through the run's result cache if it has one."""
    cache = node_cache(node, batch=False)
    if cache is None:
        return retried(node, node.exec, stateful=False)(item)
    one = Keyed(None, cache.key(item, None), item)
    if one.key is not None:
        found = cache.get(one.key, None)
        if found is not MISS:
            return _reported(node, found, hit=True)
    result = counted(node, stored(cache, retried(node, node.exec, stateful=True)))(one)
    return _reported(node, result, hit=False)


async def exec_cached_async(
    node: Any, cache: NodeCache, item: Any, timeout: float | None = None
) -> Any:
    """:func:`exec_cached` for an async node with ``cache``, each attempt in ``timeout``."""
    one = Keyed(None, cache.key(item, None), item)
    if one.key is not None:
        found = cache.get(one.key, None)
        if found is not MISS:
            return _reported(node, found, hit=True)
    call = stored_async(
        cache, retried_async(node, timed(timeout, node.exec_async), stateful=True), concurrent=False
    )
    result = await counted_async(node, call)(one)
    return _reported(node, result, hit=False)


def _reported(node: Any, result: Any, *, hit: bool) -> Any:
    """Tell the run's observers that a cached node step has its result; return it."""
    obs = current()
    if obs is not None:
        obs.pocketcore_node_cache_result(node=node, result=result, hit=hit)
    return result


_PENDING: Any = object()
#: The most items keyed and looked up in one go (fewer under a lower limit).
LOOKUP_GROUP = 128


class CachedBatch:
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


def group_for(limit: int | None) -> int:
    """How many inputs are keyed and looked up in one go under ``limit``."""
    return LOOKUP_GROUP if limit is None else max(1, min(limit, LOOKUP_GROUP))


class BareItems:
    """The misses of a cached batch as bare items, for an executor that runs them elsewhere.

    Their keys stay here, in :attr:`CachedBatch.missed`, for when the results
    come back.
    """

    def __init__(self, cached: CachedBatch) -> None:
        self.cached = cached

    def __iter__(self) -> Iterator[Any]:
        return (one.item for one in self.cached.misses())
