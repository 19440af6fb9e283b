"""Limiters: a budget of calls in flight and of starts per second, shared by the items that use it.

A limiter is used from async code (the tasks of a parallel batch, also those
that hand items to worker threads), possibly from more than one event loop
over its life: a module-level limiter outlives each ``pocketcore.run``, and a
sync flow nested in an async one runs its batch on a loop of its own. So its
state is guarded by a thread lock, never bound to one loop, and a waiter is
woken through the loop it waits on.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import attrs
import sniffio

from pocketcore._core.errors import ConfigError
from pocketcore._core.executor import Gate

__all__ = ["Limiter", "check_count", "check_rate", "gate_of"]


def check_rate(value: object, source: str, what: str = "max_per_second") -> float | None:
    """Return ``value`` as a positive, finite number of seconds or calls per second.

    ``None`` means unset. ``bool``, zero, negative, NaN and infinite values
    are a :class:`ConfigError` naming ``source``.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"{what} must be a positive number, got {value!r} ({type(value).__name__}) "
            f"from {source}"
        )
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{what} must be a positive, finite number, got {value!r} from {source}")
    return float(value)


def check_count(value: object, source: str, what: str = "max_concurrency") -> int | None:
    """Return ``value`` as a count of at least one (a concurrency limit), or raise ConfigError.

    ``None`` means unset; anything else must be an ``int`` >= 1 (``bool`` is
    rejected even though it is an ``int``). The one place this rule is written:
    the settings table, limiters and flow files all use it.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"{what} must be an integer >= 1, got {value!r} ({type(value).__name__}) from {source}"
        )
    if value < 1:
        raise ConfigError(f"{what} must be >= 1, got {value} from {source}")
    return value


class _Waiter:
    """A task waiting for a slot, and how to wake it from any thread without waiting."""

    __slots__ = ("event", "soon", "thread")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.thread = threading.get_ident()
        # How to have the waiter's own loop run a call soon, from any thread,
        # without blocking the caller: the releasing thread may be running a
        # loop of its own, which must not wait on this one (two loops waking
        # each other's waiters would each wait for the other).
        if sniffio.current_async_library() == "trio":
            import trio

            self.soon: Callable[[Callable[[], object]], object] = (
                trio.lowlevel.current_trio_token().run_sync_soon
            )
        else:
            self.soon = asyncio.get_running_loop().call_soon_threadsafe

    def wake(self) -> bool:
        """Set the waiter's event; ``False`` when its loop has already ended."""
        if threading.get_ident() == self.thread:
            self.event.set()
            return True
        try:
            self.soon(self.event.set)
        except RuntimeError:  # its loop is closed (asyncio) or its run finished (trio)
            return False
        return True


@attrs.define(eq=False)
class Limiter:
    """A budget shared by every batch item that uses it, across the whole run and beyond.

    Rate limits belong to a provider, not to one node: give the same limiter
    to every node that calls it (``limiter=`` on the node or flow, or a name
    declared under ``[tool.pocketcore.limiters.NAME]``), and all their items
    share it, in nested flows and in batches running side by side.

    Args:
        max_concurrency: At most this many items hold the limiter at once
            (an int >= 1), or ``None`` for no such bound.
        max_per_second: At most this many items start per second (a
            positive number), spaced evenly rather than in bursts: in any
            window of ``T`` seconds at most ``floor(max_per_second * T) + 1``
            starts. ``None`` for no such bound.
        name: A name for messages and listings.

    Raises:
        ConfigError: A bound is of the wrong type, zero, negative or not finite.
    """

    max_concurrency: int | None = None
    max_per_second: float | None = None
    name: str | None = None
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _in_flight: int = attrs.field(default=0, init=False, repr=False)
    _waiters: deque[_Waiter] = attrs.field(factory=deque, init=False, repr=False)
    _next_start: float = attrs.field(default=-math.inf, init=False, repr=False)
    # Start times booked by waiters that were cancelled before their turn
    # came (their batch failed, or was cancelled), in order: the next
    # starts take them first, so that a failed batch leaves no gap behind.
    _returned: list[float] = attrs.field(factory=list, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        source = "pocketcore.Limiter()" if self.name is None else f"limiter {self.name!r}"
        self.max_concurrency = check_count(self.max_concurrency, source)
        self.max_per_second = check_rate(self.max_per_second, source)

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
        if self.max_concurrency is None:
            return True
        with self._lock:
            if self._in_flight < self.max_concurrency and not self._waiters:
                self._in_flight += 1
                return True
            return False

    async def take_slot(self) -> None:
        """Wait for a slot (nothing to wait for when unbounded); :meth:`release` gives it back."""
        if self.try_take_slot():
            return
        await self._wait_for_slot()

    def try_take_turn(self) -> bool:
        """Take this start's turn now if it is due (always, when unpaced); ``False`` takes nothing.

        A turn is taken after the slot: a turn held while waiting for a slot
        would be spent late, and starts that waited would bunch together.
        """
        if self.max_per_second is None:
            return True
        with self._lock:
            now = time.monotonic()
            if self._next_start > now:
                return False
            self._next_start = now + 1 / self.max_per_second
            return True

    async def take_turn(self) -> None:
        """Wait for this start's turn: starts are spaced ``1 / max_per_second`` apart.

        A wait that is cancelled gives its turn back: a batch that fails
        while items wait for theirs leaves the limiter as if they had never
        asked, and the next start is not pushed back by them.
        """
        if self.max_per_second is None:
            return
        with self._lock:
            now = time.monotonic()
            returned = self._returned
            while returned and returned[0] <= now:
                del returned[0]  # a turn handed back whose time has passed is lost
            if returned:
                start = returned.pop(0)
            else:
                start = max(now, self._next_start)
                self._next_start = start + 1 / self.max_per_second
        if start > now:
            try:
                await anyio.sleep(start - now)
            except BaseException:
                self._give_back(start)
                raise

    def _give_back(self, start: float) -> None:
        """Return the turn booked at ``start``, whose waiter will not start."""
        assert self.max_per_second is not None
        interval = 1 / self.max_per_second
        with self._lock:
            returned = self._returned
            bisect.insort(returned, start)
            # The turns at the end of the schedule are simply unbooked, so
            # that a limiter whose waiters all left is idle again at once.
            while returned and returned[-1] + interval == self._next_start:
                self._next_start = returned.pop()

    @property
    def idle(self) -> bool:
        """Whether nothing holds the limiter or waits for it, and no start is booked ahead.

        After the items that used it have ended, a limiter is idle: a paced
        one may still space the next start up to ``1 / max_per_second``
        after the last one (that is the pacing itself), but not further, as
        it would if waiters of a failed batch had kept their turns.
        """
        with self._lock:
            if self._in_flight or self._waiters:
                return False
            if self.max_per_second is None:
                return True
            now = time.monotonic()
            ahead = [t for t in self._returned if t > now]
            return not ahead and self._next_start - now <= 1 / self.max_per_second

    def release(self) -> None:
        """Give back the slot taken by :meth:`acquire` (a paced-only limiter has none)."""
        if self.max_concurrency is None:
            return
        with self._lock:
            if not self._waiters:
                self._in_flight -= 1
                return
            waiter = self._waiters.popleft()  # the slot passes to it: in_flight unchanged
        if not waiter.wake():  # its loop is gone, and its task with it: pass the slot on
            self.release()

    async def _wait_for_slot(self) -> None:
        with self._lock:
            assert self.max_concurrency is not None
            if self._in_flight < self.max_concurrency and not self._waiters:
                self._in_flight += 1
                return
            waiter = _Waiter()
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

    def __reduce__(self) -> tuple[Any, ...]:
        # A node sent to a remote executor's workers carries its limiter
        # along: it arrives as a fresh limiter with the same bounds (a lock
        # and waiters cannot travel). The budget is kept here, where the
        # executor admits each item before sending it; a copy over there
        # limits nothing of this run.
        return (type(self), (self.max_concurrency, self.max_per_second, self.name))

    def describe(self) -> str:
        """The limiter in words, for messages: ``limiter 'llm' (8 at once, 2/s)``."""
        bounds = [
            *([f"{self.max_concurrency} at once"] if self.max_concurrency is not None else []),
            *([f"{self.max_per_second:g}/s"] if self.max_per_second is not None else []),
        ]
        label = "limiter" if self.name is None else f"limiter {self.name!r}"
        return f"{label} ({', '.join(bounds) or 'no bounds'})"


def as_limiter_table(table: Any, where: str, name: str) -> Limiter:
    """Build the limiter declared by a ``[limiters.NAME]`` table.

    Raises:
        ConfigError: The table is not a table, has unknown keys or bad values.
    """
    source = f"[limiters.{name}] in {where}"
    if not isinstance(table, dict):
        raise ConfigError(f"{source} must be a table, got {table!r}")
    unknown = sorted(set(table) - {"max_concurrency", "max_per_second"})
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {source}; known keys: max_concurrency, max_per_second"
        )
    try:
        return Limiter(table.get("max_concurrency"), table.get("max_per_second"), name=name)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (in {source})") from None


# --- the gate of a batch -----------------------------------------------------------
#
# What an executor that gates items (pocketcore.GatingExecutor) is handed
# instead of items wrapped one by one: it enters the gate right before it
# starts an item, and leaves it once the item has ended. The order is the one
# of the layer the other executors get (see pocketcore._dispatch.gate):
# every slot first, then every turn, so that a turn is never held while a
# slot is awaited (it would be spent late, and starts would bunch together).


def gate_of(limiters: tuple[Limiter, ...]) -> Gate:
    """The gate through which each item of a batch with ``limiters`` (at least one) starts."""
    if len(limiters) == 1:
        return _OneLimiter(limiters[0])
    return _Limiters(limiters)


class _OneLimiter:
    """The usual gate: one limiter (the batch's own ``max_per_second``, or a shared one).

    A limiter with one bound is entered through the limiter's own methods,
    bound once per batch: the gate adds no call per item to what the
    limiter itself costs.
    """

    __slots__ = ("enter", "leave", "limiter", "try_enter")

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        self.try_enter: Callable[[], bool]
        self.enter: Callable[[], Coroutine[Any, Any, None]]
        if limiter.max_per_second is None:  # slots only (or no bound at all)
            self.try_enter, self.enter = limiter.try_take_slot, limiter.take_slot
        elif limiter.max_concurrency is None:  # turns only
            self.try_enter, self.enter = limiter.try_take_turn, limiter.take_turn
        else:
            self.try_enter, self.enter = self._try_slot_and_turn, limiter.acquire
        self.leave: Callable[[], None] = limiter.release  # nothing to give back for a turn

    def _try_slot_and_turn(self) -> bool:
        limiter = self.limiter
        if not limiter.try_take_slot():
            return False
        if limiter.try_take_turn():
            return True
        limiter.release()  # all or nothing: enter() takes both
        return False

    def __repr__(self) -> str:
        return f"<gate of {self.limiter.describe()}>"


class _Limiters:
    """The gate of several limiters (the batch's own rate and a shared limiter, say)."""

    __slots__ = ("limiters", "paced")

    def __init__(self, limiters: tuple[Limiter, ...]) -> None:
        self.limiters = limiters
        self.paced = [limiter for limiter in limiters if limiter.max_per_second is not None]

    def try_enter(self) -> bool:
        # A turn cannot be given back: with more than one to take, they are
        # taken (and waited for) in enter(), where a slot stays held.
        if len(self.paced) > 1:
            return False
        taken: list[Limiter] = []
        for limiter in self.limiters:
            if not limiter.try_take_slot():
                break
            taken.append(limiter)
        else:
            if not self.paced or self.paced[0].try_take_turn():
                return True
        for limiter in taken:
            limiter.release()
        return False

    async def enter(self) -> None:
        taken: list[Limiter] = []
        try:
            for limiter in self.limiters:
                await limiter.take_slot()
                taken.append(limiter)
            for limiter in self.paced:
                await limiter.take_turn()
        except BaseException:
            for limiter in taken:
                limiter.release()
            raise

    def leave(self) -> None:
        for limiter in self.limiters:
            limiter.release()

    def __repr__(self) -> str:
        return f"<gate of {', '.join(limiter.describe() for limiter in self.limiters)}>"
