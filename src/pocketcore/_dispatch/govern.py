"""The governor's layers: every attempt of an item passes its limiters, and pays.

Two layers, for a batch whose items run here and whose executor does not
gate them itself (see :attr:`~pocketcore._dispatch.plan.Plan.governed`):

- :func:`admitted` sits where the gate layer would: the item's first
  attempt enters its limiters (their slots, then each one's charge) before
  the item is reported started (and, for a blocking item, before it is
  handed to a worker thread), and the item's :class:`Ticket` is set;
- :func:`governed` (:func:`governed_blocking` on a worker thread) sits
  below the attempts layer: each attempt after the first enters again, and
  every attempt leaves once it has ended, so an item waiting to retry holds
  no slot. An attempt's charge is corrected to what it reported using
  (:func:`~pocketcore.report_usage`). A blocking attempt waits for its turn
  on the event loop it was admitted on, and gives up waiting when its batch
  stops (the batch has failed, or was cancelled).

A failure that says the provider is rate limiting (see
:mod:`pocketcore._runtime.signals`) pauses every start on the item's
limiters until the provider's reset, gives the attempt's charge back (the
provider took nothing for a refusal, bar the request itself), and tries
again without spending one of the node's ``max_retries``, until the
limiters' ``patience`` runs out.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel

from pocketcore._dispatch.cached import Keyed
from pocketcore._runtime.context import THREAD_STOP
from pocketcore._runtime.governor import TICKET, Ticket, prices_for
from pocketcore._runtime.limits import Limiter
from pocketcore._runtime.signals import ProviderSignal, classify

__all__ = ["admitted", "governed", "governed_blocking"]

AsyncCall = Callable[[Any], Awaitable[Any]]


async def _enter(ticket: Ticket, node: Any, item: Any) -> None:
    """Take the slots of every limiter, then each one's charge (all or nothing)."""
    limiters = ticket.limiters
    prices = prices_for(limiters, node, item)
    slots: list[Limiter] = []
    paid: list[tuple[Limiter, dict[str, float]]] = []
    try:
        for limiter in limiters:
            await limiter.take_slot()
            slots.append(limiter)
        # Turns after slots: a charge taken while waiting for a slot would
        # be spent late, and starts that waited would bunch together.
        for limiter, price in zip(limiters, prices, strict=True):
            charged = {} if price is None else dict(await limiter.take_turn(price))
            paid.append((limiter, charged))
    except BaseException:
        for limiter, charge in paid:
            limiter.account.correct(charge, dict.fromkeys(charge, 0.0))
        for limiter in slots:
            limiter.release()
        raise
    ticket.charges = [charge for _, charge in paid]
    ticket.requests = {}
    ticket.used = {}
    ticket.held = True


def _leave(ticket: Ticket, *, refused: bool = False) -> None:
    """End the attempt with its limiters: correct each charge, give the slots back."""
    used = ticket.used
    for limiter, charge in zip(ticket.limiters, ticket.charges, strict=True):
        if refused:
            # Nothing was used but the request that was refused.
            limiter.account.correct(charge, {u: 0.0 for u in charge if u != "requests"})
        elif used:
            reported = {unit: used[unit] for unit in charge if unit in used}
            if reported:
                limiter.account.correct(charge, reported)
                limiter.learn(reported)
        limiter.release()
    ticket.held = False


def admitted(
    limiters: tuple[Limiter, ...], node: Any, call: AsyncCall, *, keyed: bool
) -> AsyncCall:
    """``call`` entered through ``limiters`` first, with a :class:`Ticket` for its attempts.

    ``keyed``: ``call`` takes a :class:`Keyed` input (the item is its ``item``).
    """
    return functools.partial(_admitted, limiters, node, call, keyed)


async def _admitted(
    limiters: tuple[Limiter, ...], node: Any, call: AsyncCall, keyed: bool, one: Any
) -> Any:
    ticket = Ticket(limiters)
    ticket.loop = anyio.lowlevel.current_token()
    await _enter(ticket, node, one.item if keyed and isinstance(one, Keyed) else one)
    token = TICKET.set(ticket)
    try:
        return await call(one)
    finally:
        TICKET.reset(token)
        if ticket.held:  # the item ended before an attempt did (a cache write, say)
            _leave(ticket)


def governed(node: Any, call: AsyncCall) -> AsyncCall:
    """Each attempt of ``call`` through the item's limiters (below the attempts layer)."""
    return functools.partial(_governed, node, call)


async def _governed(node: Any, call: AsyncCall, item: Any) -> Any:
    ticket = TICKET.get()
    if ticket is None:  # not under admitted(): nothing to pass
        return await call(item)
    while True:
        if not ticket.held:
            await _enter(ticket, node, item)
        try:
            result = await call(item)
        except Exception as exc:
            if not _failed(ticket, exc):
                raise
        else:
            return _succeeded(ticket, result)


def governed_blocking(node: Any, call: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """:func:`governed` for a blocking item's attempts, on its worker thread."""
    return functools.partial(_governed_blocking, node, call)


def _governed_blocking(node: Any, call: Callable[[Any], Any], item: Any) -> Any:
    ticket = TICKET.get()
    if ticket is None or ticket.loop is None:  # not under admitted(): nothing to pass
        return call(item)
    while True:
        if not ticket.held:
            stop = THREAD_STOP.get()
            anyio.from_thread.run(_enter_unless, ticket, node, item, stop, token=ticket.loop)
            if not ticket.held:  # the batch stopped while the attempt waited
                raise _Stopped
        try:
            result = call(item)
        except Exception as exc:
            if not _failed(ticket, exc):
                raise
        else:
            return _succeeded(ticket, result)


class _Stopped(BaseException):
    """A blocking attempt gave up its turn because its batch stopped.

    Not an ``Exception``: no retry, fallback or collect layer may take it
    for the item's failure; the batch raises its own.
    """


#: Seconds between two looks at a stopped batch, while a blocking attempt waits its turn.
_STOP_POLL = 0.05


async def _enter_unless(ticket: Ticket, node: Any, item: Any, stop: threading.Event | None) -> None:
    """Enter for a blocking attempt, on the loop; give up waiting once ``stop`` is set."""
    if stop is None:
        await _enter(ticket, node, item)
        return
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            # A threading.Event, set from a worker thread: looked at, not awaited.
            while not stop.is_set():  # noqa: ASYNC110
                await anyio.sleep(_STOP_POLL)
            group.cancel_scope.cancel()

        group.start_soon(watch)
        await _enter(ticket, node, item)
        group.cancel_scope.cancel()


def _failed(ticket: Ticket, exc: Exception) -> bool:
    """End a failed attempt; whether to try again at once (a refusal, patience lasting)."""
    signal = classify(exc)
    if signal is None or not signal.rate_limited:
        _leave(ticket)
        return False
    _leave(ticket, refused=True)
    return _again(ticket, signal)


def _succeeded(ticket: Ticket, result: Any) -> Any:
    _leave(ticket)
    ticket.refused_since = None
    for limiter in ticket.limiters:
        limiter.calm()
    return result


def _again(ticket: Ticket, signal: ProviderSignal) -> bool:
    """Pause the limiters for a refusal; whether the item may try again (its patience lasts)."""
    for limiter in ticket.limiters:
        limiter.signal(signal.retry_after)
    now = time.monotonic()
    if ticket.refused_since is None:
        ticket.refused_since = now
    patience = min(limiter.patience for limiter in ticket.limiters)
    return now - ticket.refused_since < patience
