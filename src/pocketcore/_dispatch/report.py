"""The report layer: a batch's lifecycle events, emitted where they happen.

Each function here is a call site of :class:`~pocketcore._runtime.observe.Events`:
the batch's start and end around the whole batch, an item's start and end
around its trip (:func:`reported`), each attempt around ``exec``
(:func:`attempts_reported`), each cache hit as it is pulled
(:func:`on_hit`), and, for an executor that runs the items elsewhere, what
travels with each item (:func:`sending`) and the items' ends once the
results are back (:func:`report_after`). The plan holds ``None`` for
events when nobody listens, and the stack then has no layer from here.

A batch, and each item, is a scope of usage totals
(:mod:`pocketcore._runtime.usage`) when its end is heard with its usage:
its end event carries what its items' ``exec`` reported using (every
attempt's). What items sent to other processes reported there comes back
with their results (:func:`pocketcore._dispatch.remote.metered`) and is
handed to :func:`report_after`.

An item's attempts are counted in a :class:`_Tally` in :data:`_ITEM`, which
the item layer sets and the attempt layer (below it, in the same context,
or a worker thread's copy of it) reads.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar, Token
from typing import Any

from pocketcore._core.results import Failed
from pocketcore._dispatch.cached import Keyed
from pocketcore._dispatch.plan import Plan
from pocketcore._dispatch.remote import carrying
from pocketcore._runtime.observe import Events
from pocketcore._runtime.usage import NOTHING, USAGE, Totals, closed, opened

__all__ = [
    "attempts_reported",
    "attempts_reported_async",
    "batch_reported",
    "batch_reported_async",
    "on_hit",
    "report_after",
    "reported",
    "reported_async",
    "sending",
    "sends_contexts",
]

Call = Callable[[Any], Any]
AsyncCall = Callable[[Any], Awaitable[Any]]


# --- the batch ------------------------------------------------------------------


def _started(plan: Plan, ev: Events, size: int | None) -> None:
    if ev.start is not None:
        ev.start(
            node=plan.owner,
            size=size,
            executor=plan.executor,
            limit=plan.limit,
            timeout=plan.timeout,
            limiters=plan.limiters,
        )


class _Batch:
    """A batch's report: its start on entry, its end on exit (set :attr:`results` first)."""

    __slots__ = ("ev", "plan", "results", "scope")
    scope: tuple[Totals, Token[Totals | None]] | None

    def __init__(self, plan: Plan, ev: Events, size: int | None) -> None:
        self.plan, self.ev = plan, ev
        self.results: list[Any] | None = None
        _started(plan, ev, size)

    def __enter__(self) -> _Batch:
        self.scope = opened() if self.ev.end_usage else None
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        usage = NOTHING if self.scope is None else closed(*self.scope)
        if self.ev.end is not None:
            results = self.results if exc is None else None
            self.ev.end(node=self.plan.owner, results=results, exception=exc, usage=usage)


def batch_reported(
    plan: Plan, ev: Events, size: int | None, run: Callable[[], list[Any]]
) -> list[Any]:
    """``run()`` reported as the batch of ``plan``: its start, then its end (sync)."""
    with _Batch(plan, ev, size) as batch:
        batch.results = results = run()
    return results


async def batch_reported_async(
    plan: Plan, ev: Events, size: int | None, run: Callable[[], Awaitable[list[Any]]]
) -> list[Any]:
    """:func:`batch_reported` for a batch run by a coroutine."""
    with _Batch(plan, ev, size) as batch:
        batch.results = results = await run()
    return results


# --- one item ---------------------------------------------------------------------


class _Tally:
    """The attempts of one item whose report is in progress."""

    __slots__ = ("count", "failure", "index", "node")

    def __init__(self, node: Any, index: int) -> None:
        self.node, self.index = node, index
        self.count = 0
        self.failure: BaseException | None = None  # what the latest attempt raised


_ITEM: ContextVar[_Tally | None] = ContextVar("pocketcore_observed_item", default=None)
"""The item whose report is in progress in this context, when attempts are heard."""


class _Item:
    """What the item layer reports around each item's trip (shared by both forms)."""

    __slots__ = ("done", "ev", "owner", "start", "tallied", "used")

    def __init__(self, ev: Events, owner: Any) -> None:
        self.ev, self.owner = ev, owner
        self.start, self.done, self.tallied = ev.item_start, ev.item_done, ev.attempts
        self.used = ev.item_usage

    def ended(
        self, one: Keyed, result: Any, tally: _Tally | None, usage: Mapping[str, float]
    ) -> None:
        # The last attempt failed, yet the item returned: its node's fallback
        # turned the failure into a result (a Failed is a failure kept).
        fallback = self.ev.fallback
        if (
            fallback is not None
            and tally is not None
            and tally.failure is not None
            and type(result) is not Failed
        ):
            fallback(node=self.owner, index=tally.index, exception=tally.failure, result=result)
        if self.done is not None:
            self.done(node=self.owner, index=one.index, result=result, exception=None, usage=usage)


class _Reporting:
    """One item's report: its start on entry, its end on exit (set :attr:`result` first)."""

    __slots__ = ("it", "one", "result", "tally", "token", "totals", "used")

    def __init__(self, it: _Item, one: Keyed) -> None:
        self.it, self.one = it, one
        self.result: Any = None
        self.tally: _Tally | None = None
        self.token: Token[_Tally | None] | None = None
        # The item's own totals, when its done is heard with them (else its
        # reports go to the scope around it).
        self.totals: Totals | None = None
        self.used: Token[Totals | None] | None = None

    def __enter__(self) -> _Reporting:
        it, one = self.it, self.one
        if it.start is not None:
            it.start(node=it.owner, index=one.index, item=one.item)
        if it.tallied:
            self.tally = _Tally(it.owner, one.index)  # type: ignore[arg-type]  # a batch item's
            self.token = _ITEM.set(self.tally)
        if it.used:
            self.totals = totals = Totals(USAGE.get())
            self.used = USAGE.set(totals)
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        it, one = self.it, self.one
        usage = NOTHING
        if self.used is not None:
            USAGE.reset(self.used)
            usage = self.totals.close()  # type: ignore[union-attr]  # set with used
        if exc is not None and it.done is not None:
            it.done(node=it.owner, index=one.index, result=None, exception=exc, usage=usage)
        if self.token is not None:
            _ITEM.reset(self.token)
        if exc is None:
            it.ended(one, self.result, self.tally, usage)


def reported(ev: Events, owner: Any, call: Call, *, whole: bool) -> Callable[[Keyed], Any]:
    """``call`` for a :class:`Keyed` input, reporting the item's start and end (sync).

    ``whole``: ``call`` takes the :class:`Keyed` input, else its item.
    """
    return functools.partial(_reported, _Item(ev, owner), call, whole)


def _reported(it: _Item, call: Call, whole: bool, one: Keyed) -> Any:
    with _Reporting(it, one) as report:
        report.result = result = call(one if whole else one.item)
    return result


def reported_async(
    ev: Events, owner: Any, call: AsyncCall, *, whole: bool
) -> Callable[[Keyed], Awaitable[Any]]:
    """:func:`reported` for an async ``call``; each item reports from its own task."""
    return functools.partial(_reported_async, _Item(ev, owner), call, whole)


async def _reported_async(it: _Item, call: AsyncCall, whole: bool, one: Keyed) -> Any:
    with _Reporting(it, one) as report:
        report.result = result = await call(one if whole else one.item)
    return result


def on_hit(ev: Events | None, owner: Any) -> Callable[[Keyed, Any], None] | None:
    """What to call with each cache hit of ``owner``'s batch and its result, or ``None``."""
    cached = None if ev is None else ev.item_cached
    if cached is None:
        return None

    def hit(one: Keyed, result: Any) -> None:
        cached(node=owner, index=one.index, item=one.item, result=result)

    return hit


# --- attempts ---------------------------------------------------------------------


class _Attempts:
    """``exec``'s stand-in for the items of an observed batch: reports each attempt."""

    __slots__ = ("call", "done", "node", "start")

    def __init__(self, ev: Events, node: Any, call: Call) -> None:
        self.node, self.call = node, call
        self.start, self.done = ev.attempt_start, ev.attempt_done

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


def attempts_reported(ev: Events, node: Any, call: Call) -> Call:
    """``call`` (``node``'s ``exec``) reporting each attempt of the item reported in its context."""
    return _Attempts(ev, node, call)


def attempts_reported_async(ev: Events, node: Any, call: AsyncCall) -> AsyncCall:
    """:func:`attempts_reported` for ``exec_async`` (timed already, under a timeout)."""
    return _AttemptsAsync(ev, node, call)


# --- items that run elsewhere -------------------------------------------------------


def report_after(
    ev: Events,
    owner: Any,
    results: list[Any],
    index_of: Callable[[int], int] | None,
    usages: list[Mapping[str, float]] | None = None,
) -> list[Any]:
    """Report the end of every item of a batch whose calls ran elsewhere, now they are back.

    ``index_of`` maps a position among the items handed over to the item's
    position in the input (for a batch read through the result cache).
    ``usages``: what each item reported using in another process, in the
    same order; it counts in the batch's totals too.
    """
    if usages:
        totals = USAGE.get()
        if totals is not None:
            for usage in usages:
                totals.add(usage)
    done = ev.item_done
    if done is not None:
        for position, result in enumerate(results):
            index = position if index_of is None else index_of(position)
            usage = NOTHING if not usages else usages[position]
            done(node=owner, index=index, result=result, exception=None, usage=usage)
    return results


class _Sending:
    """A remote batch's items, each paired with the contexts observers send along with it."""

    def __init__(
        self, sent: Any, owner: Any, items: Iterable[Any], index_of: Callable[[int], int] | None
    ) -> None:
        self.sent, self.owner, self.items, self.index_of = sent, owner, items, index_of

    def __len__(self) -> int:
        return len(self.items)  # type: ignore[arg-type]  # TypeError when unsized, as wanted

    def __iter__(self) -> Iterator[tuple[tuple[Any, ...], Any]]:
        sent, index_of = self.sent, self.index_of
        for position, item in enumerate(self.items):
            index = position if index_of is None else index_of(position)
            yield tuple(sent(node=self.owner, index=index, item=item)), item


def sending(
    plan: Plan,
    batch: Iterable[Any],
    fn: Call,
    index_of: Callable[[int], int] | None,
) -> tuple[Iterable[Any], Call]:
    """For items that run in other processes: the items with what travels with each, and ``fn``.

    As each item is pulled, observers are asked for a context to enter
    around it on the worker (``pocketcore_batch_item_sent``); the items
    become ``(contexts, item)`` pairs and ``fn`` enters them there.
    Unchanged when nobody listens to that hook.
    """
    sent = None if plan.events is None else plan.events.item_sent
    if sent is None:
        return batch, fn
    return _Sending(sent, plan.owner, batch, index_of), carrying(fn, blocking=plan.blocking)


def sends_contexts(plan: Plan) -> bool:
    """Whether :func:`sending` pairs each item of ``plan``'s batch with contexts."""
    return plan.events is not None and plan.events.item_sent is not None
