"""Budgets refilled continuously, and the queue of calls waiting to be charged to them.

The provider governor's core (see docs/architecture.md, "Provider limits"):
a :class:`Budgets` holds one bucket per unit (requests, tokens, or any other),
each refilled at its rate up to its capacity. A call waits in one queue, first
come first served, until every bucket it draws on holds its charge, then is
charged and starts. Nothing is booked ahead: a call that gives up waiting
(cancelled, its batch failed) leaves the buckets as they were, and the next
call in the queue moves up.

**Overtaking, bounded.** While the call at the head waits for a unit it lacks
(tokens for a long prompt), the others may hold what a call behind it needs
(a request, and the few tokens of a short prompt); left unused, the request
budget's share of that time is lost for good, and a batch of mixed sizes
ends request-bound. So a call behind the head whose charge fits now may go
first, as long as the head then starts at most ``overtake`` seconds later
than it would have without being overtaken. A long call is delayed a
bounded time; never starved.

Three things change what a call waits for while it waits:

- a **correction**: a call charged an estimate reports what it really used,
  and the difference goes back into (or comes out of) the buckets;
- a **pause**: a rate-limit signal from the provider stops every start until
  the time it gives;
- a **sync**: the provider's own count of what is left (its
  ``x-ratelimit-remaining-*`` headers) lowers a bucket that thought it held
  more.

A call larger than a bucket's capacity is not refused: it waits until that
bucket is full, and the bucket goes into debt that later calls wait out. So
over any window of ``T`` seconds a bucket admits at most
``capacity + rate * T`` plus one call's excess over capacity.

Budgets are shared by the batches of every thread and event loop that use a
limiter, so the state is guarded by a thread lock, and a waiter is woken
through its own loop (:class:`Waiter`).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from time import monotonic
from typing import TypeAlias

import anyio
import attrs
import sniffio

__all__ = ["Bucket", "Budgets", "Charge", "Waiter"]

Charge: TypeAlias = "Mapping[str, float] | Callable[[], Mapping[str, float]]"
"""What a call is charged by unit, or a function giving it when the charge is made."""


class Waiter:
    """A task waiting its turn, and how to wake it from any thread without blocking."""

    __slots__ = ("charge", "event", "granted", "soon", "thread")

    def __init__(self, charge: Charge | None = None) -> None:
        self.event = anyio.Event()
        self.thread = threading.get_ident()
        #: What the call is charged; and what it was charged when a call
        #: ahead of it let it go first (see :class:`Budgets`).
        self.charge = charge
        self.granted: Mapping[str, float] | None = None
        # The releasing thread may be running a loop of its own, which must
        # not wait on this one (two loops waking each other's waiters would
        # each wait for the other): ask the waiter's loop to set the event.
        if sniffio.current_async_library() == "trio":
            import trio

            self.soon: Callable[[Callable[[], object]], object] = (
                trio.lowlevel.current_trio_token().run_sync_soon
            )
        else:
            self.soon = asyncio.get_running_loop().call_soon_threadsafe

    def wake(self) -> bool:
        """Set the waiter's event; ``False`` when its loop has already ended."""
        event = self.event
        if threading.get_ident() == self.thread:
            event.set()
            return True
        try:
            self.soon(event.set)
        except RuntimeError:  # its loop is closed (asyncio) or its run finished (trio)
            return False
        return True


@attrs.define(eq=False)
class Bucket:
    """One unit's budget: ``rate`` units a second flow in, up to ``capacity``.

    ``level`` may go below zero (debt) after a call larger than the
    capacity, or a correction upwards.
    """

    rate: float
    capacity: float
    level: float = attrs.field(init=False)
    stamp: float = attrs.field(init=False, factory=time.monotonic)

    def __attrs_post_init__(self) -> None:
        self.level = self.capacity

    def refill(self, now: float) -> None:
        """Add what flowed in since the last look, up to the capacity."""
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def delay(self, amount: float) -> float:
        """Seconds until the bucket can be charged ``amount`` (``0.0``: now).

        A charge larger than the capacity waits for a full bucket.
        """
        short = min(amount, self.capacity) - self.level
        return short / self.rate if short > 0 else 0.0


class Budgets:
    """Buckets by unit, a pause, and one queue of calls waiting to be charged.

    Args:
        buckets: The budget of each unit (``{"requests": Bucket(...), ...}``).
        overtake: The most seconds calls behind the head of the queue may
            delay its start by going first (``0.0``: strictly first come,
            first served).
    """

    __slots__ = ("_due", "_head", "_lock", "_paused_until", "_queue", "buckets", "overtake")

    #: How far behind the head the queue is searched for a call that fits now.
    REACH = 64

    def __init__(self, buckets: Mapping[str, Bucket], *, overtake: float = 0.0) -> None:
        self.buckets = dict(buckets)
        self.overtake = overtake
        self._lock = threading.Lock()
        self._queue: deque[Waiter] = deque()
        self._paused_until = -math.inf
        # The head of the queue, and when it would start if nobody overtook it.
        self._head: Waiter | None = None
        self._due = math.inf

    # --- waiting and charging ---------------------------------------------------

    def _delay(self, charge: Mapping[str, float], now: float) -> float:
        wait = self._paused_until - now
        for unit, amount in charge.items():
            bucket = self.buckets.get(unit)
            if bucket is not None:
                bucket.refill(now)
                wait = max(wait, bucket.delay(amount))
        return wait

    def _debit(self, charge: Mapping[str, float], sign: float = 1.0) -> None:
        for unit, amount in charge.items():
            bucket = self.buckets.get(unit)
            if bucket is not None:
                bucket.level -= sign * amount

    def _let_pass(
        self, head: Mapping[str, float], now: float, wait: float, behind: Iterable[Waiter]
    ) -> float:
        """Let the calls ``behind`` the head that fit now go first, within ``overtake``.

        Under the lock, with the head short of something (``wait > 0``).
        Returns how long the head may sleep: until its own charge fits, or
        until one that could not go yet fits (a request comes back), when
        sooner.
        """
        if self._head is not self._queue[0]:
            self._head, self._due = self._queue[0], now + wait
        if self.overtake <= 0 or self._paused_until > now:
            return wait
        latest = self._due + self.overtake
        passed = []
        soonest = math.inf
        for waiter in behind:
            charge = waiter.charge
            if charge is None:
                continue
            amounts = charge() if callable(charge) else charge
            fits = self._delay(amounts, now)
            if fits > 0:
                soonest = min(soonest, fits)
                continue
            self._debit(amounts)
            after = self._delay(head, now)
            if now + after > latest:
                self._debit(amounts, -1.0)  # it would hold the head back too long
                continue
            wait = after
            waiter.granted = amounts
            passed.append(waiter)
        for waiter in passed:
            self._queue.remove(waiter)
            granted = waiter.granted
            if not waiter.wake() and granted is not None:  # its loop has ended: give it back
                waiter.granted = None
                self._debit(granted, -1.0)
        if now + wait + 1e-9 >= latest:
            return wait  # nobody may go before the head any more
        return min(wait, soonest)

    def _behind(self) -> list[Waiter]:
        """The calls behind the head that may be let go first (as far as ``REACH``)."""
        return [self._queue[i] for i in range(1, min(len(self._queue), self.REACH + 1))]

    def try_charge(self, charge: Charge) -> Mapping[str, float] | None:
        """Charge now if nobody is waiting and every bucket holds its share; else take nothing.

        Returns what was charged (``None``: nothing). ``charge`` is a mapping
        of unit to amount, or a function giving one, asked when the charge
        is made (an estimate that improves while a call waits).
        """
        with self._lock:
            if self._queue:
                return None
            amounts = charge() if callable(charge) else charge
            if self._delay(amounts, time.monotonic()) > 0:
                return None
            self._debit(amounts)
            return amounts

    async def charge(self, charge: Charge) -> Mapping[str, float]:
        """Wait in the queue until every bucket holds its share of ``charge``, then take it.

        Returns what was charged (see :meth:`try_charge` for a function as
        ``charge``). A cancelled wait takes nothing.
        """
        taken = self.try_charge(charge)
        if taken is not None:
            return taken
        waiter = Waiter(charge)
        with self._lock:
            self._queue.append(waiter)
            if self.overtake > 0 and len(self._queue) > 1:
                self._arrived(waiter)
        try:
            while True:
                with self._lock:
                    if waiter.granted is not None:
                        return waiter.granted
                    if self._queue[0] is waiter:
                        amounts = charge() if callable(charge) else charge
                        now = time.monotonic()
                        wait = self._delay(amounts, now)
                        if wait <= 0:
                            self._queue.popleft()
                            self._debit(amounts)
                            self._wake_head()
                            return amounts
                        wait = self._let_pass(amounts, now, wait, self._behind())
                    else:
                        wait = math.inf
                    event = waiter.event = anyio.Event()
                # The head sleeps until its charge fits, unless something
                # (a correction, a pause, the head leaving) wakes it sooner.
                with anyio.move_on_after(wait):
                    await event.wait()
        except BaseException:
            with self._lock:
                if waiter.granted is not None:  # let go first, then cancelled: give it back
                    self._debit(waiter.granted, -1.0)
                    waiter.granted = None
                    self._wake_head()
                else:
                    head = self._queue[0] is waiter
                    self._queue.remove(waiter)
                    if head:
                        self._wake_head()
            raise

    def _arrived(self, waiter: Waiter) -> None:
        """A call joined the queue behind others: it goes first now if the head allows it."""
        head = self._queue[0]
        charge = head.charge
        if charge is None:
            return
        now = time.monotonic()
        amounts = charge() if callable(charge) else charge
        wait = self._delay(amounts, now)
        if wait > 0 and self._let_pass(amounts, now, wait, (waiter,)) < wait:
            self._wake_head()  # it fits before the head's turn: the head lets it go then

    def _wake_head(self) -> None:
        # Under the lock: the new head (if any) works out its own wait. A
        # head whose loop has ended is gone with its task: drop it.
        while self._queue and not self._queue[0].wake():
            self._queue.popleft()

    # --- what changes a wait ----------------------------------------------------

    def correct(self, charged: Mapping[str, float], used: Mapping[str, float]) -> None:
        """Put back what a call was charged beyond what it ``used`` (or take the excess)."""
        with self._lock:
            now = time.monotonic()
            for unit, amount in used.items():
                bucket = self.buckets.get(unit)
                if bucket is not None:
                    bucket.refill(now)
                    bucket.level = min(
                        bucket.capacity, bucket.level + charged.get(unit, 0.0) - amount
                    )
            self._wake_head()

    def pause(self, seconds: float) -> None:
        """Start nothing for ``seconds`` from now (a later pause than the current one wins)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
            self._wake_head()

    def held_up(self) -> bool:
        """Whether a call could not be charged at once for the pause or the queue alone.

        Without the lock (a glance, for budgets with no bucket): ``False``
        means no pause is in force and nobody waits; ``True``, to ask
        :meth:`charge`.
        """
        return self._paused_until > monotonic() or bool(self._queue)

    def paused_for(self) -> float:
        """Seconds left of the current pause (``0.0`` when none)."""
        with self._lock:
            return max(0.0, self._paused_until - time.monotonic())

    def sync(self, unit: str, remaining: float) -> None:
        """Lower ``unit``'s bucket to ``remaining``, the provider's own count, if it held more."""
        with self._lock:
            bucket = self.buckets.get(unit)
            if bucket is not None:
                bucket.refill(time.monotonic())
                bucket.level = min(bucket.level, remaining)

    def waiting(self) -> int:
        """How many calls are in the queue."""
        with self._lock:
            return len(self._queue)

    def levels(self, units: Iterable[str] | None = None) -> dict[str, float]:
        """Each bucket's level now (refilled to this moment)."""
        with self._lock:
            now = time.monotonic()
            out = {}
            for unit, bucket in self.buckets.items():
                if units is None or unit in units:
                    bucket.refill(now)
                    out[unit] = bucket.level
            return out
