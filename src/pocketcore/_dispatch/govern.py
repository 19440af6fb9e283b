"""The governor's layers: every attempt of an async item passes its limiters, and pays.

Two layers, for an async batch whose items run here and whose executor
does not gate them itself (see :attr:`~pocketcore._dispatch.plan.Plan.governed`):

- :func:`admitted` sits where the gate layer would: the item's first
  attempt enters its limiters (their slots, then each one's charge) before
  the item is reported started, and the item's :class:`Ticket` is set;
- :func:`governed` sits below the attempts layer: each attempt after the
  first enters again, and every attempt leaves once it has ended, so an
  item waiting to retry holds no slot. An attempt's charge is corrected to
  what it reported using (:func:`~pocketcore.report_usage`).

A failure that says the provider is rate limiting (see
:mod:`pocketcore._runtime.signals`) pauses every start on the item's
limiters until the provider's reset, gives the attempt's charge back (the
provider took nothing for a refusal, bar the request itself), and tries
again without spending one of the node's ``max_retries``, until the
limiters' ``patience`` runs out.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pocketcore._dispatch.cached import Keyed
from pocketcore._runtime.governor import TICKET, Ticket, prices_for
from pocketcore._runtime.limits import Limiter
from pocketcore._runtime.signals import ProviderSignal, classify

__all__ = ["admitted", "governed"]

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
            signal = classify(exc)
            if signal is None or not signal.rate_limited:
                _leave(ticket)
                raise
            _leave(ticket, refused=True)
            if not _again(ticket, signal):
                raise
        else:
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
