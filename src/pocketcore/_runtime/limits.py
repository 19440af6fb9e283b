"""Limiters: a budget of calls in flight and of starts per second, shared by the items that use it.

A limiter is used from async code (the tasks of a parallel batch, also those
that hand items to worker threads), possibly from more than one event loop
over its life: a module-level limiter outlives each ``pocketcore.run``, and a
sync flow nested in an async one runs its batch on a loop of its own. So its
state is guarded by a thread lock, never bound to one loop, and a waiter is
woken through the loop it waits on.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

import attrs

from pocketcore._core.errors import ConfigError
from pocketcore._runtime.budgets import Bucket, Budgets, Charge, Waiter
from pocketcore._runtime.governor import event_hooks
from pocketcore._runtime.signals import RATE_LIMITED, remaining, retry_after
from pocketcore._runtime.values import check_budgets, check_count, check_rate

__all__ = ["LIMITER_KEYS", "ONE_REQUEST", "Limiter", "as_limiter_table"]


#: Rounds of successes in a row, since the last rate-limit signal, that
#: ``max_concurrency="auto"`` grows by one before it doubles again: the provider
#: has room again (its limits leave more, now that the calls are smaller).
CLEAN_ROUNDS = 2
#: Where ``max_concurrency="auto"`` starts: a few calls, then doubling while they succeed.
_AUTO_START = 2
#: Seconds a call waiting for its budgets may be delayed by shorter calls behind
#: it that fit now (see pocketcore._runtime.budgets): what keeps a batch of
#: mixed sizes from ending bound by its request budget alone.
OVERTAKE = 2.0

ONE_REQUEST: Mapping[str, float] = MappingProxyType({"requests": 1.0})
"""The charge of a start that says nothing of its cost: one request."""


@attrs.define(eq=False)
class Limiter:
    """A budget shared by every batch item that uses it, across the whole run and beyond.

    Rate limits belong to a provider, not to one node: give the same limiter
    to every node that calls it (``limiter=`` on the node or flow, or a name
    declared under ``[tool.pocketcore.limiters.NAME]``), and all their items
    share it, in nested flows and in batches running side by side.

    Budgets (requests, tokens, any unit) refill continuously. Every attempt
    of an item waits its turn in one queue, first come first served, until
    each budget it draws on holds its charge; nothing is booked ahead, so an
    item that stops waiting (its batch failed, the run was cancelled) leaves
    the budgets as they were. While the first in the queue waits for a unit
    it lacks (the tokens of a long prompt), a call behind it whose charge
    fits now may go first, as long as the first one starts at most
    ``overtake`` seconds later for it: the request budget is not left idle
    while a long call waits, and a long call is never starved.

    Args:
        max_concurrency: At most this many calls hold the limiter at once
            (an int >= 1), ``None`` for no such bound, or ``"auto"`` for a
            provider whose limits you do not know: the bound starts at 2,
            doubles with each round of successes until the first rate-limit
            signal, then grows by one a round and halves on each signal
            (at most once a second), and doubles again after two rounds in
            a row without one, between 1 and ``ceiling``.
        max_per_second: At most this many attempts start per second (a
            positive number), spaced evenly rather than in bursts: in any
            window of ``T`` seconds at most ``floor(max_per_second * T) + 1``
            starts. ``None`` for no such bound.
        name: A name for messages and listings.
        requests_per_minute: The provider's published request limit: the
            same even spacing as ``max_per_second``, given per minute.
            Give one of the two, not both.
        tokens_per_minute: The provider's published token limit. Each
            attempt is charged an estimate of its tokens before it starts
            (see :func:`pocketcore.report_usage`), and corrected to what it
            reports using.
        budgets: Budgets in other units, per minute (``{"images": 50}``),
            charged what a node's ``cost`` gives for them.
        patience: Seconds an item keeps retrying the provider's rate-limit
            refusals without spending its ``max_retries`` (default 300).
        ceiling: The most ``max_concurrency="auto"`` grows to (default 64).
        overtake: The most seconds calls behind the first one in the queue
            may delay it by going first (default 2; ``0`` for strictly first
            come, first served).

    Raises:
        ConfigError: A bound is of the wrong type, zero, negative or not
            finite, or the request rate is given twice.
    """

    max_concurrency: int | Literal["auto"] | None = None
    max_per_second: float | None = None
    name: str | None = None
    requests_per_minute: float | None = attrs.field(default=None, kw_only=True)
    tokens_per_minute: float | None = attrs.field(default=None, kw_only=True)
    budgets: Mapping[str, float] = attrs.field(factory=dict, kw_only=True)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _in_flight: int = attrs.field(default=0, init=False, repr=False)
    _waiters: deque[Waiter] = attrs.field(factory=deque, init=False, repr=False)
    patience: float = attrs.field(default=300.0, kw_only=True)
    ceiling: int = attrs.field(default=64, kw_only=True)
    overtake: float = attrs.field(default=OVERTAKE, kw_only=True)
    _account: Budgets = attrs.field(init=False, repr=False)
    _usage: dict[str, list[float]] = attrs.field(factory=dict, init=False, repr=False)
    _strikes: int = attrs.field(default=0, init=False, repr=False)
    # Whether calm() has anything to do: after a signal, or under "auto".
    _restless: bool = attrs.field(default=False, init=False, repr=False)
    # Whether a pause may be in force (set after each, cleared once one is over).
    _paused: bool = attrs.field(default=False, init=False, repr=False)
    _watched: bool = attrs.field(default=False, init=False, repr=False)
    # The bound on slots in force: max_concurrency itself, or where "auto" stands now.
    _limit: int | None = attrs.field(default=None, init=False, repr=False)
    _slow_start: bool = attrs.field(default=True, init=False, repr=False)
    _successes: int = attrs.field(default=0, init=False, repr=False)
    _clean_rounds: int = attrs.field(default=0, init=False, repr=False)
    _last_cut: float = attrs.field(default=-math.inf, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        source = "pocketcore.Limiter()" if self.name is None else f"limiter {self.name!r}"
        ceiling = check_count(self.ceiling, source, "ceiling")
        assert ceiling is not None
        self.ceiling = ceiling
        if self.max_concurrency == "auto":
            self._limit = min(_AUTO_START, ceiling)
            self._restless = True
        else:
            self.max_concurrency = self._limit = check_count(self.max_concurrency, source)
        self.max_per_second = check_rate(self.max_per_second, source)
        rpm = check_rate(self.requests_per_minute, source, "requests_per_minute")
        tpm = check_rate(self.tokens_per_minute, source, "tokens_per_minute")
        if rpm is not None and self.max_per_second is not None:
            raise ConfigError(
                f"{source} gives both max_per_second and requests_per_minute; give one "
                "(max_per_second = requests_per_minute / 60)"
            )
        per_minute = check_budgets(self.budgets, source)
        buckets: dict[str, Bucket] = {}
        requests = self.max_per_second if rpm is None else rpm / 60
        if requests is not None:
            # A capacity of one start: evenly spaced, never a burst.
            buckets["requests"] = Bucket(rate=requests, capacity=1.0)
        if tpm is not None:
            per_minute["tokens"] = tpm
        for unit, rate in per_minute.items():
            # One second's worth held at most: a batch starts at the budget's
            # pace rather than spending a minute's worth at once.
            buckets[unit] = Bucket(rate=rate / 60, capacity=max(1.0, rate / 60))
        self.requests_per_minute, self.tokens_per_minute = rpm, tpm
        self.budgets = {unit: v for unit, v in per_minute.items() if unit != "tokens"}
        overtake = self.overtake
        if isinstance(overtake, bool) or not isinstance(overtake, (int, float)):
            raise ConfigError(
                f"overtake must be a number of seconds >= 0, got {overtake!r} "
                f"({type(overtake).__name__}) from {source}"
            )
        if not math.isfinite(overtake) or overtake < 0:
            raise ConfigError(
                f"overtake must be a finite number of seconds >= 0, got {overtake!r} from {source}"
            )
        self.overtake = float(overtake)
        # Overtaking helps only where calls differ in what they lack: with one
        # budget (pacing alone), no call behind the first fits before it does.
        self._account = Budgets(buckets, overtake=self.overtake if len(buckets) > 1 else 0.0)
        patience = check_rate(self.patience, source, "patience")
        assert patience is not None
        self.patience = patience

    @property
    def paced(self) -> bool:
        """Whether starts wait for a budget (any rate or budget is set)."""
        return bool(self._account.buckets)

    @property
    def account(self) -> Budgets:
        """The limiter's budgets (none, when it sets no rate or budget), and its pause."""
        return self._account

    def units(self) -> tuple[str, ...]:
        """The units an attempt is charged beyond its one request (``("tokens",)``, say)."""
        return tuple(unit for unit in self._account.buckets if unit != "requests")

    def estimate(self, unit: str) -> float:
        """What an attempt that says nothing of its cost is charged in ``unit``.

        The mean of what attempts on this limiter reported using so far
        (:func:`pocketcore.report_usage`); before any has, the budget's
        whole capacity (a second's worth), so that calls of unknown size
        start one at a time until the first one tells.
        """
        with self._lock:
            seen = self._usage.get(unit)
        if seen:
            return seen[0] / seen[1]
        return self._account.buckets[unit].capacity

    def learn(self, used: Mapping[str, float]) -> None:
        """Count what an attempt reported using into :meth:`estimate`."""
        with self._lock:
            for unit, amount in used.items():
                seen = self._usage.setdefault(unit, [0.0, 0.0])
                seen[0] += amount
                seen[1] += 1

    def signal(self, retry_after: float | None) -> float:
        """A rate-limit signal: pause every start on this limiter; return the pause's seconds.

        ``retry_after`` is the provider's word (seconds); without it, the
        pause doubles with each signal in a row (1 s, 2 s, ... 60 s), until
        a call succeeds (:meth:`calm`).
        """
        if self.max_concurrency == "auto":
            self._cut()
        with self._lock:
            self._strikes += 1
            strikes = self._strikes
            self._restless = True
        seconds = retry_after if retry_after is not None else min(60.0, 2.0 ** (strikes - 1))
        self._account.pause(seconds)
        with self._lock:  # after the pause: see _pause_lasts
            self._paused = True
        return seconds

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Take in what a provider's response says: what is left, and whether to pause.

        The ``x-ratelimit-remaining-*`` (or Anthropic's) counts lower the
        matching budgets to the provider's own count, which knows about
        other processes sharing the key and reserves ``max_tokens``; a 429
        or 529 pauses every start until the reset its headers give.
        """
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        for unit, left in remaining(lowered).items():
            self._account.sync(unit, left)
        if status in RATE_LIMITED:
            self.signal(retry_after(lowered))

    def event_hooks(self, *, blocking: bool = False) -> dict[str, list[Any]]:
        """``event_hooks`` for an httpx client that calls the provider this limiter guards.

        ``httpx.AsyncClient(event_hooks=limiter.event_hooks())`` (or
        ``blocking=True`` for ``httpx.Client``), handed to the provider's SDK
        (``openai.AsyncOpenAI(http_client=...)``). Then, for a call made
        inside an item that passes this limiter:

        - each request is charged what the provider will count for it (an
          OpenAI-style body: its messages' characters over four, plus its
          ``max_tokens``), in place of the estimate the item started with;
        - each response keeps the budgets in step with the provider's own
          count (:meth:`observe`); a 429, also one the SDK retries by
          itself, pauses the limiter and gives the request's tokens back;
        - the ``usage.total_tokens`` of a JSON answer corrects the charge,
          so ``exec`` need not call :func:`pocketcore.report_usage`.

        Outside such an item (and for a limiter with no budget) the requests
        are charged nothing, but an async one still waits out a pause in
        force, and the responses are still observed.
        """
        self._watched = True
        return event_hooks(self, blocking=blocking)

    @property
    def watched(self) -> bool:
        """Whether :meth:`event_hooks` were asked for: requests are charged as they are sent."""
        return self._watched

    def calm(self) -> None:
        """A call got through: the next signal without a retry time pauses briefly again.

        With ``max_concurrency="auto"``, a round of successes (as many as the
        bound) raises the bound: doubling until the first rate-limit signal,
        then by one, and doubling again from the third round in a row without
        a signal, up to the ceiling.
        """
        if self._strikes:
            with self._lock:
                self._strikes = 0
                self._restless = self.max_concurrency == "auto"
        if self.max_concurrency == "auto":
            woken: list[Waiter] = []
            with self._lock:
                assert self._limit is not None
                self._successes += 1
                if self._successes >= self._limit and self._limit < self.ceiling:
                    self._successes = 0
                    self._clean_rounds += 1
                    if self._clean_rounds > CLEAN_ROUNDS:
                        self._slow_start = True  # the provider has room again: double
                    grown = self._limit * 2 if self._slow_start else self._limit + 1
                    self._limit = min(self.ceiling, grown)
                    while self._waiters and self._in_flight < self._limit:
                        self._in_flight += 1
                        woken.append(self._waiters.popleft())
            for waiter in woken:
                if not waiter.wake():  # its loop is gone: the slot is free again
                    self.release()

    def _cut(self) -> None:
        """A rate-limit signal under ``max_concurrency="auto"``: halve the bound, once a second."""
        now = time.monotonic()
        with self._lock:
            assert self._limit is not None
            if now - self._last_cut < 1.0:
                return  # the calls already in flight when the first signal came say the same
            self._last_cut = now
            self._slow_start = False
            self._successes = 0
            self._clean_rounds = 0
            self._limit = max(1, self._limit // 2)

    @property
    def concurrency(self) -> int | None:
        """The bound on calls in flight now: ``max_concurrency``, or where "auto" stands."""
        return self._limit

    def fresh(self) -> Limiter:
        """A new limiter with the same bounds and name, and budgets of its own."""
        return type(self)(
            self.max_concurrency,
            self.max_per_second,
            self.name,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            budgets=dict(self.budgets),
            patience=self.patience,
            ceiling=self.ceiling,
            overtake=self.overtake,
        )

    async def acquire(self) -> None:
        """Wait for a slot (when bounded), then for this start's turn (when paced)."""
        await self.take_slot()
        try:
            await self.take_turn()
        except BaseException:
            self.release()
            raise

    def try_take_slot(self) -> bool:
        """Take a slot now if one is free (always, when unbounded); ``False`` takes nothing."""
        if self._limit is None:
            return True
        with self._lock:
            if self._in_flight < self._limit and not self._waiters:
                self._in_flight += 1
                return True
            return False

    def try_enter(self) -> bool:
        """Take a slot now, if one is free and no rate-limit pause holds starts back.

        For a limiter with no budget (nothing to charge): :meth:`try_take_slot`
        and :meth:`try_take_turn` at once. ``False`` takes nothing.
        """
        if self._paused and self._pause_lasts():
            return False
        limit = self._limit
        if limit is None:
            return True
        lock = self._lock
        lock.acquire()  # not ``with``: the hot path of every attempt, and this is cheaper
        try:
            if self._in_flight < limit and not self._waiters:
                self._in_flight += 1
                return True
            return False
        finally:
            lock.release()

    def held_back(self) -> bool:
        """Whether a rate-limit pause in force (or calls queued behind one) holds starts back."""
        return self._paused and self._pause_lasts()

    def _pause_lasts(self) -> bool:
        """Whether a pause (or calls queued behind one) still holds starts back.

        Once none does, the mark :meth:`signal` set is cleared, under the
        lock a new signal sets it again under, so none is missed.
        """
        with self._lock:
            if self._account.held_up():
                return True
            self._paused = False
            return False

    @property
    def restless(self) -> bool:
        """Whether a success changes anything (:meth:`calm`): after a signal, or under "auto"."""
        return self._restless

    async def take_slot(self) -> None:
        """Wait for a slot (nothing to wait for when unbounded); :meth:`release` gives it back."""
        if self.try_take_slot():
            return
        await self._wait_for_slot()

    def try_take_turn(self, charge: Charge = ONE_REQUEST) -> bool:
        """Take this start's turn now if it is due (always, when unpaced); ``False`` takes nothing.

        A turn is taken after the slot: a turn held while waiting for a slot
        would be spent late, and starts that waited would bunch together.
        """
        return self._account.try_charge(charge) is not None

    async def take_turn(self, charge: Charge = ONE_REQUEST) -> Mapping[str, float]:
        """Wait for this start's turn: until every budget holds its share of ``charge``.

        Returns what was charged (``charge`` may be a function giving the
        amounts, asked when the turn comes). A wait given up (cancelled)
        takes nothing.
        """
        account = self._account
        taken = account.try_charge(charge)
        return taken if taken is not None else await account.charge(charge)

    def release(self) -> None:
        """Give back the slot taken by :meth:`acquire` (a paced-only limiter has none)."""
        if self._limit is None:
            return
        lock = self._lock
        lock.acquire()  # not ``with``: the hot path of every attempt, and this is cheaper
        try:
            if not self._waiters or self._in_flight > self._limit:  # none waits, or "auto" cut
                self._in_flight -= 1
                return
            waiter = self._waiters.popleft()  # the slot passes to it: in_flight unchanged
        finally:
            lock.release()
        if not waiter.wake():  # its loop is gone, and its task with it: pass the slot on
            self.release()

    async def _wait_for_slot(self) -> None:
        with self._lock:
            assert self._limit is not None
            if self._in_flight < self._limit and not self._waiters:
                self._in_flight += 1
                return
            waiter = Waiter()
            self._waiters.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            with self._lock:
                granted = waiter not in self._waiters
                if not granted:
                    self._waiters.remove(waiter)
            if granted:  # woken and cancelled at once: pass the slot on
                self.release()
            raise

    @property
    def idle(self) -> bool:
        """Whether nothing holds the limiter or waits for it: what it is between runs.

        Nothing is booked ahead (a call takes its share of a budget only when
        it goes), so a limiter whose items have all ended, however their
        batch ended, is idle.
        """
        with self._lock:
            busy = self._in_flight or self._waiters
        return not busy and self._account.waiting() == 0

    def __reduce__(self) -> tuple[Any, ...]:
        # A node sent to a remote executor's workers carries its limiter
        # along: it arrives as a fresh limiter with the same bounds (a lock
        # and waiters cannot travel). The budget is kept here, where the
        # executor admits each item before sending it; a copy over there
        # limits nothing of this run.
        return (_rebuilt, (type(self), attrs.asdict(self.fresh(), filter=_public)))

    def describe(self) -> str:
        """The limiter in words, for messages: ``limiter 'llm' (8 at once, 2/s)``."""
        bounds = [
            *(
                [f"{self.max_concurrency} at once"]
                if isinstance(self.max_concurrency, int)
                else [f"auto concurrency, now {self._limit}, at most {self.ceiling}"]
                if self.max_concurrency == "auto"
                else []
            ),
            *([f"{self.max_per_second:g}/s"] if self.max_per_second is not None else []),
            *(
                [f"{_amount(self.requests_per_minute)} requests/min"]
                if self.requests_per_minute is not None
                else []
            ),
            *(
                [f"{_amount(self.tokens_per_minute)} tokens/min"]
                if self.tokens_per_minute is not None
                else []
            ),
            *(f"{_amount(v)} {unit}/min" for unit, v in self.budgets.items()),
        ]
        label = "limiter" if self.name is None else f"limiter {self.name!r}"
        return f"{label} ({', '.join(bounds) or 'no bounds'})"


def _amount(value: float) -> str:
    """``1,000,000`` for a whole amount, ``2.5`` otherwise: budgets as people write them."""
    return f"{int(value):,}" if value == int(value) else f"{value:g}"


def _public(field: attrs.Attribute[Any], value: object) -> bool:
    return field.init


def _rebuilt(cls: type[Limiter], bounds: dict[str, Any]) -> Limiter:
    return cls(**bounds)


def as_limiter_table(table: Any, where: str, name: str) -> Limiter:
    """Build the limiter declared by a ``[limiters.NAME]`` table.

    Raises:
        ConfigError: The table is not a table, has unknown keys or bad values.
    """
    source = f"[limiters.{name}] in {where}"
    if not isinstance(table, dict):
        raise ConfigError(f"{source} must be a table, got {table!r}")
    unknown = sorted(set(table) - set(LIMITER_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {source}; known keys: {', '.join(LIMITER_KEYS)}"
        )
    try:
        return Limiter(
            table.get("max_concurrency"),
            table.get("max_per_second"),
            name=name,
            requests_per_minute=table.get("requests_per_minute"),
            tokens_per_minute=table.get("tokens_per_minute"),
            budgets=table.get("budgets", {}),
            patience=table.get("patience", 300.0),
            ceiling=table.get("ceiling", 64),
            overtake=table.get("overtake", OVERTAKE),
        )
    except ConfigError as exc:
        raise ConfigError(f"{exc} (in {source})") from None


#: The keys of a ``[limiters.NAME]`` table.
LIMITER_KEYS = (
    "max_concurrency",
    "max_per_second",
    "requests_per_minute",
    "tokens_per_minute",
    "budgets",
    "patience",
    "ceiling",
    "overtake",
)
