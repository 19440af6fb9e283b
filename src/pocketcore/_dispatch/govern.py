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

Where no ticket is needed (:attr:`~pocketcore._dispatch.plan.Plan.ticketed`:
async items nobody hears start, limiters with no budget), one layer does
both: :func:`gated`, in the place of :func:`governed`, enters for every
attempt, the first one included, and has nothing to price or correct. A
limiter that never limits then costs an item a slot taken and given back.

A failure that says the provider is rate limiting (see
:mod:`pocketcore._runtime.signals`) pauses every start on the item's
limiters until the provider's reset, gives the attempt's charge back (the
provider took nothing for a refusal, bar the request itself), and tries
again without spending one of the node's ``max_retries``, until the
limiters' ``patience`` runs out (counted from the first refusal of a run
of them: an attempt that fails otherwise, or succeeds, ends the run).
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

from pocketcore._core.executor import Gate
from pocketcore._dispatch.cached import Keyed
from pocketcore._runtime.context import THREAD_STOP
from pocketcore._runtime.governor import TICKET, Ticket, prices_for
from pocketcore._runtime.limits import Limiter
from pocketcore._runtime.signals import ProviderSignal, classify

__all__ = [
    "admitted",
    "attempt_gate",
    "calm",
    "gated",
    "governed",
    "governed_blocking",
    "try_again",
]

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
    _entered(ticket, [charge for _, charge in paid])


def _enter_now(ticket: Ticket) -> bool:
    """Enter limiters with no budget at once, if nothing makes the attempt wait.

    Nothing to price or charge: an attempt waits only for a slot, or for a
    rate-limit pause in force (or calls queued behind one). ``False`` (it
    would wait) takes nothing: :func:`_enter` waits.
    """
    if not _take_now(ticket.limiters):
        return False
    _entered(ticket, ticket.charges)
    return True


def _take_now(limiters: tuple[Limiter, ...]) -> bool:
    """Take a slot of each of ``limiters`` (with no budget) now, if none would wait."""
    for taken, limiter in enumerate(limiters):
        if not limiter.try_enter():
            _release(limiters[:taken])
            return False
    return True


async def _take(limiters: tuple[Limiter, ...]) -> None:
    """Wait for a slot of each of ``limiters`` (with no budget), then for any pause to end."""
    taken = 0
    try:
        for limiter in limiters:
            await limiter.take_slot()
            taken += 1
        for limiter in limiters:
            if limiter.account.held_up():
                await limiter.take_turn()  # charges nothing: there is no budget
    except BaseException:
        _release(limiters[:taken])
        raise


def _release(limiters: tuple[Limiter, ...]) -> None:
    for limiter in limiters:
        limiter.release()


def _entered(ticket: Ticket, charges: list[dict[str, float]]) -> None:
    ticket.charges = charges
    ticket.requests.clear()
    ticket.used.clear()
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
    limiters: tuple[Limiter, ...], node: Any, call: AsyncCall, *, keyed: bool, blocking: bool
) -> AsyncCall:
    """``call`` entered through ``limiters`` first, with a :class:`Ticket` for its attempts.

    ``keyed``: ``call`` takes a :class:`Keyed` input (the item is its
    ``item``). ``blocking``: its attempts run on worker threads, and wait
    for their turns on this event loop.
    """
    paced = any(limiter.paced for limiter in limiters)
    return functools.partial(_admitted, limiters, paced, blocking, node, call, keyed)


async def _admitted(
    limiters: tuple[Limiter, ...],
    paced: bool,
    blocking: bool,
    node: Any,
    call: AsyncCall,
    keyed: bool,
    one: Any,
) -> Any:
    ticket = Ticket(limiters, paced=paced)
    if blocking:
        ticket.loop = anyio.lowlevel.current_token()
    if paced or not _enter_now(ticket):
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
        if not ticket.held and (ticket.paced or not _enter_now(ticket)):
            await _enter(ticket, node, item)
        try:
            result = await call(item)
        except Exception as exc:
            if not _failed(ticket, exc):
                raise
        else:
            return _succeeded(ticket, result)


def gated(limiters: tuple[Limiter, ...], call: AsyncCall) -> AsyncCall:
    """Each attempt of ``call`` through ``limiters`` alone, the first one included.

    For the async items of a batch whose limiters have no budget (they bound
    concurrency only) and whose items nobody hears start: there is nothing
    to price, charge or correct, and nothing to enter before the item is
    reported, so no :class:`Ticket` and no :func:`admitted` layer. Each
    attempt takes the slots (waiting out a pause in force), and gives them
    back when it ends; a refusal pauses the limiters and tries again, as
    :func:`governed` does.
    """
    if len(limiters) == 1:  # the usual case, without the loops
        return functools.partial(_gated_by_one, limiters[0], call)
    return functools.partial(_gated, limiters, call)


async def _gated(limiters: tuple[Limiter, ...], call: AsyncCall, item: Any) -> Any:
    since: float | None = None  # when the item's run of refusals began
    while True:
        if not _take_now(limiters):
            await _take(limiters)
        try:
            result = await call(item)
        except Exception as exc:
            # Paused before the slots go back: whoever takes one waits.
            since = try_again(limiters, exc, since)
            if since is None:
                raise
            continue
        finally:
            _release(limiters)
        calm(limiters)
        return result


async def _gated_by_one(limiter: Limiter, call: AsyncCall, item: Any) -> Any:
    """:func:`_gated` through one limiter."""
    since: float | None = None
    while True:
        if not limiter.try_enter():
            await _take((limiter,))
        try:
            result = await call(item)
        except Exception as exc:
            since = try_again((limiter,), exc, since)
            if since is None:
                raise
            continue
        finally:
            limiter.release()
        if limiter.restless:
            limiter.calm()
        return result


def attempt_gate(limiters: tuple[Limiter, ...]) -> Gate:
    """:func:`gated` as a gate, for an executor whose own loop gates each attempt.

    Handed to the ``map`` of an executor that declares ``gates_attempts``
    (see :attr:`~pocketcore._dispatch.plan.Plan.loop_gated`) in the place of
    the :func:`gated` layer: the same entries, refusals and easing off, with
    no coroutine more per item.
    """
    if len(limiters) == 1:
        return _OneGate(limiters[0])
    return _AttemptGate(limiters)


class _AttemptGate:
    """Limiters with no budget as one gate of attempts (see :func:`attempt_gate`)."""

    __slots__ = ("limiters",)

    def __init__(self, limiters: tuple[Limiter, ...]) -> None:
        self.limiters = limiters

    def try_enter(self) -> bool:
        return _take_now(self.limiters)

    async def enter(self) -> None:
        await _take(self.limiters)

    def leave(self) -> None:
        _release(self.limiters)

    def again(self, exc: Exception, since: float | None) -> float | None:
        return try_again(self.limiters, exc, since)

    def passed(self) -> None:
        calm(self.limiters)

    def __repr__(self) -> str:
        return f"<gate of {', '.join(limiter.describe() for limiter in self.limiters)}>"


class _OneGate:
    """:class:`_AttemptGate` of one limiter, whose own methods enter and leave."""

    __slots__ = ("leave", "limiter", "try_enter")

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        # Bound methods of the limiter: no call of the gate's own on the hot path.
        self.try_enter = limiter.try_enter
        self.leave = limiter.release

    async def enter(self) -> None:
        await _take((self.limiter,))

    def again(self, exc: Exception, since: float | None) -> float | None:
        return try_again((self.limiter,), exc, since)

    def passed(self) -> None:
        if self.limiter.restless:
            self.limiter.calm()

    def __repr__(self) -> str:
        return f"<gate of {self.limiter.describe()}>"


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
        ticket.refused_since = None  # the run of refusals ended
        return False
    _leave(ticket, refused=True)
    return _again(ticket, signal)


def _succeeded(ticket: Ticket, result: Any) -> Any:
    _leave(ticket)
    ticket.refused_since = None
    calm(ticket.limiters)
    return result


def calm(limiters: tuple[Limiter, ...]) -> None:
    """A call got through ``limiters``: each may ease off (see :meth:`Limiter.calm`)."""
    for limiter in limiters:
        limiter.calm()


def _again(ticket: Ticket, signal: ProviderSignal) -> bool:
    """Pause the limiters for a refusal; whether the item may try again (its patience lasts)."""
    ticket.refused_since = _refused(ticket.limiters, signal, ticket.refused_since)
    return ticket.refused_since is not None


def try_again(limiters: tuple[Limiter, ...], exc: Exception, since: float | None) -> float | None:
    """After a failed attempt: when the run of refusals began, if the item may try again.

    ``None``: the failure is not a refusal, or the limiters' patience has
    run out. A refusal pauses the limiters either way.
    """
    signal = classify(exc)
    if signal is None or not signal.rate_limited:
        return None
    return _refused(limiters, signal, since)


def _refused(
    limiters: tuple[Limiter, ...], signal: ProviderSignal, since: float | None
) -> float | None:
    """Pause ``limiters`` for a refusal; when the item's run of refusals began.

    ``since``: when it began, if the attempt before was refused too.
    ``None``: the limiters' patience has run out, the item may not try again.
    """
    for limiter in limiters:
        limiter.signal(signal.retry_after)
    now = time.monotonic()
    since = now if since is None else since
    patience = min(limiter.patience for limiter in limiters)
    return since if now - since < patience else None
