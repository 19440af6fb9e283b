"""The probes: items that record what happens to them, and the logs they record to.

Every item of a property is a call object here: it records its start, its
end or failure, and its exit (even when cancelled), and an input records
each item pulled from it. A local executor's probes record to memory
(:class:`MemoryLog`); a remote executor's, running in other processes, append
to a file (:class:`FileLog`), so they are module-level picklable objects
that the workers import from this package. :class:`Seen` reads a timeline.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import attrs

#: Scheduler rounds an item waits for its siblings to start (each round is one
#: checkpoint; a parallel executor starts them all within a handful).
_ROUNDS = 200
#: Tasks an executor may keep for itself beyond one per item pulled (a feeder, say).
_HELPERS = 2
#: How the input of test_input_length_is_not_trusted answers ``len()``.
LENGTHS = ("overflows", "raises", "says 0", "says 1", "says 3 too many")


class ItemFailure(Exception):
    """The exception the conformance suite's failing items raise (one per item)."""

    def __init__(self, index: int) -> None:
        super().__init__(f"item {index} failed")
        self.index = index

    def __reduce__(self) -> tuple[Any, ...]:
        # A remote executor sends it back pickled; the default would call
        # ItemFailure("item 3 failed"). The state keeps notes added on the way.
        return (type(self), (self.index,), self.__dict__)


class ItemAbort(BaseException):
    """A BaseException of the suite's own that is neither an ``Exception`` nor a cancellation.

    It stands for whatever a program may raise that ``except Exception``
    does not catch (as ``GeneratorExit`` is not caught).
    """

    def __init__(self, index: int) -> None:
        super().__init__(f"item {index} aborted")
        self.index = index

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.index,), self.__dict__)


#: What the items of ``test_base_exception_is_raised_unwrapped`` raise.
ABORTS: dict[str, Callable[[int], BaseException]] = {
    "KeyboardInterrupt": lambda index: KeyboardInterrupt(f"item {index} interrupted"),
    "SystemExit": lambda index: SystemExit(f"item {index} exited"),
    "custom": ItemAbort,
}

Entry = tuple[str, int, float]


class MemoryLog:
    """The probes' timeline, kept in memory: for executors that run items in this process."""

    __slots__ = ("counts", "entries", "raised")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.counts: Counter[str] = Counter()
        #: The exception each failing item raised, to check identity.
        self.raised: dict[int, BaseException] = {}

    def record(self, kind: str, index: int) -> None:
        self.entries.append((kind, index, time.monotonic()))
        self.counts[kind] += 1

    def failed(self, index: int, exc: BaseException) -> None:
        self.raised[index] = exc
        self.record("fail", index)

    def timeline(self) -> list[Entry]:
        return self.entries

    def count(self, kind: str) -> int:
        return self.counts[kind]

    async def wait_for(self, kind: str, n: int, patience: float) -> None:
        """Yield to the scheduler until ``n`` records of ``kind`` exist (or rounds run out)."""
        for _ in range(_ROUNDS):
            if self.counts[kind] >= n:
                return
            await anyio.lowlevel.checkpoint()


@attrs.frozen
class FileLog:
    """The probes' timeline in a file, written by every process that runs an item.

    Each record is one line, written with a single ``write`` to a file opened
    with ``O_APPEND``: the operating system keeps such writes whole and in
    the order they happen, across processes. Times are wall-clock times,
    which the processes of one machine share.
    """

    path: str

    def record(self, kind: str, index: int) -> None:
        line = f"{kind} {index} {time.time()!r}\n".encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def failed(self, index: int, exc: BaseException) -> None:
        self.record("fail", index)

    def timeline(self) -> list[Entry]:
        with open(self.path) as f:
            return [(kind, int(i), float(t)) for kind, i, t in (line.split() for line in f)]

    def count(self, kind: str) -> int:
        return sum(1 for entry in self.timeline() if entry[0] == kind)

    async def wait_for(self, kind: str, n: int, patience: float) -> None:
        """Poll until ``n`` records of ``kind`` exist, for at most ``patience`` seconds."""
        deadline = time.monotonic() + patience
        # Other processes write the file: there is nothing to wait on but it.
        while self.count(kind) < n and time.monotonic() < deadline:  # noqa: ASYNC110
            await anyio.sleep(0.002)


Log = MemoryLog | FileLog


@attrs.frozen
class ItemCall:
    """One item's call: records its start, waits its delay, then fails or returns ``index * 2``.

    Every call ends with an ``exit`` record, even when cancelled. A
    module-level class with picklable fields, so that a remote executor can
    send it to its workers.
    """

    log: Log
    delays: tuple[float, ...] = ()
    fail_at: frozenset[int] = frozenset()
    #: Yield to the scheduler once before anything else.
    pause: bool = False
    #: What a failing item raises: an ``ItemFailure``, or a key of ``ABORTS``.
    abort: str | None = None

    async def __call__(self, index: int) -> int:
        self.log.record("start", index)
        try:
            if self.pause:
                await anyio.lowlevel.checkpoint()
            delay = self.delays[index] if index < len(self.delays) else 0.0
            if delay:
                await anyio.sleep(delay)
            if index in self.fail_at:
                exc = ItemFailure(index) if self.abort is None else ABORTS[self.abort](index)
                self.log.failed(index, exc)
                raise exc
            self.log.record("end", index)
            return index * 2
        finally:
            self.log.record("exit", index)


class ProbeRefusal(Exception):
    """What :class:`RefusedCall` raises: a refusal that :meth:`ProbeGate.again` retries."""


@attrs.frozen
class RefusedCall:
    """An item's call, refused ``refusals[index]`` times before it returns ``index * 2``.

    Each call records its start and its exit; the attempts are counted in
    ``made`` (one entry per call, the item's index), in this process.
    """

    log: Log
    refusals: tuple[int, ...]
    made: list[int]

    async def __call__(self, index: int) -> int:
        self.log.record("start", index)
        try:
            await anyio.lowlevel.checkpoint()
            self.made.append(index)
            if self.made.count(index) <= self.refusals[index]:
                raise ProbeRefusal(index)
            return index * 2
        finally:
            self.log.record("exit", index)


@attrs.frozen
class OverlapCall:
    """An item that, once started, waits for ``room`` items to have started, then returns."""

    log: Log
    room: int
    patience: float

    async def __call__(self, index: int) -> int:
        self.log.record("start", index)
        await self.log.wait_for("start", self.room, self.patience)
        await anyio.lowlevel.checkpoint()
        self.log.record("exit", index)
        return index


@attrs.frozen
class TaskCountingCall:
    """An item that checks the tasks alive in its event loop, then returns ``index * 2``.

    At its start the loop may hold no more tasks than ``baseline`` (those
    alive before ``map`` was called) plus one per item pulled so far plus
    ``_HELPERS``; otherwise it fails with an ``AssertionError`` at once, so
    an executor that starts ``limit`` workers is caught at its first item.
    """

    log: Log
    baseline: int
    limit: int

    async def __call__(self, index: int) -> int:
        self.log.record("start", index)
        try:
            pulled = self.log.count("pull")
            extra = len(anyio.get_running_tasks()) - self.baseline - pulled
            assert extra <= _HELPERS, (
                f"{extra} more tasks than the {pulled} items pulled while item {index} "
                f"ran (limit {self.limit})"
            )
            await anyio.lowlevel.checkpoint()
            return index * 2
        finally:
            self.log.record("exit", index)


@attrs.frozen
class Misleading:
    """An input whose ``__len__`` raises or lies (see ``LENGTHS``); iterating it is honest."""

    log: Log
    count: int
    length: str

    def __iter__(self) -> Iterator[int]:
        return pulled(self.log, self.count)

    def __len__(self) -> int:
        if self.length == "overflows":  # as len(range(10**19)) does
            raise OverflowError("Python int too large to convert to C ssize_t")
        if self.length == "raises":
            raise RuntimeError("this input has no length")
        return {"says 0": 0, "says 1": 1, "says 3 too many": self.count + 3}[self.length]


class ProbeGate:
    """A gate (``pocketcore.Gate``) that admits ``capacity`` entries at a time, and records them.

    Each entry is recorded as ``enter`` and each leave as ``leave``, on the
    log the items record to, so that the timeline shows whether every item
    entered before its call started and left after it ended. With ``eager``
    false, ``try_enter`` never admits, so every entry goes through the
    executor's ``await gate.enter()``; ``enter`` always yields to the
    scheduler first. Waiters are admitted in order, and a leave hands its
    slot to the first one, as a shared limiter does. It lives in the process
    that calls ``map`` (a remote executor's gate stays on its client side).
    """

    def __init__(self, log: Log, capacity: int | None = None, *, eager: bool = True) -> None:
        self.log, self.capacity, self.eager = log, capacity, eager
        self.held = self.entries = self.leaves = self.passes = 0
        self.waiters: deque[anyio.Event] = deque()
        #: Each refusal (a :class:`ProbeRefusal`) ``again`` was asked about, in
        #: order: the item's index, the ``since`` it came with, what was returned,
        #: and how many entries were not left yet (its own must be one of them).
        self.refusals: list[tuple[int, float | None, float, int]] = []

    def _room(self) -> bool:
        return not self.waiters and (self.capacity is None or self.held < self.capacity)

    def _entered(self) -> None:
        self.entries += 1
        self.log.record("enter", self.entries)

    def try_enter(self) -> bool:
        if not self.eager or not self._room():
            return False
        self.held += 1
        self._entered()
        return True

    async def enter(self) -> None:
        await anyio.lowlevel.checkpoint()
        if self._room():
            self.held += 1
            self._entered()
            return
        waiter = anyio.Event()
        self.waiters.append(waiter)
        try:
            await waiter.wait()
        except BaseException:
            if waiter in self.waiters:
                self.waiters.remove(waiter)
            else:  # admitted and cancelled at once: the slot passes on
                self._release()
            raise
        self._entered()  # the slot was handed over: held already counts it

    def leave(self) -> None:
        self.leaves += 1
        self.log.record("leave", self.leaves)
        self._release()

    def again(self, exc: Exception, since: float | None) -> float | None:
        """A :class:`ProbeRefusal` is to be called again (its run began at its first); else not."""
        if not isinstance(exc, ProbeRefusal):
            return None
        began = float(len(self.refusals) + 1) if since is None else since
        self.refusals.append((exc.args[0], since, began, self.entries - self.leaves))
        return began

    def passed(self) -> None:
        self.passes += 1

    def _release(self) -> None:
        if self.waiters:
            self.waiters.popleft().set()
        else:
            self.held -= 1


def pulled(log: Log, count: int) -> Iterator[int]:
    """The input, as a generator, so lazy pulling can be observed."""
    for index in range(count):
        log.record("pull", index)
        yield index


@attrs.frozen
class Seen:
    """What a timeline says about one ``map`` call."""

    timeline: list[Entry]

    def events(self, kind: str) -> list[int]:
        return [index for k, index, _ in self.timeline if k == kind]

    def peaks(self) -> tuple[int, int, int]:
        """Calls in flight at most, pulled-but-unfinished items at most, calls in flight now."""
        pulled = started = exited = max_in_flight = max_pending = 0
        for kind, _, _ in self.timeline:
            if kind == "pull":
                pulled += 1
                max_pending = max(max_pending, pulled - exited)
            elif kind == "start":
                started += 1
                max_in_flight = max(max_in_flight, started - exited)
            elif kind == "exit":
                exited += 1
        return max_in_flight, max_pending, started - exited

    def gate_problem(self, capacity: int | None) -> str | None:
        """What breaks the gate's contract on this timeline (``None``: nothing).

        Every call starts on an entry of its own, made before it (the starts
        so far never outnumber the entries so far); an entry is left only
        once its call has ended (the entries not yet left never fall below
        the calls in flight), and only once; at most ``capacity`` calls are
        in flight; and by the end every entry has been left.
        """
        entered = started = exited = left = 0
        for kind, _, _ in self.timeline:
            if kind == "enter":
                entered += 1
            elif kind == "start":
                started += 1
                if started > entered:
                    return f"call {started} started without an entry of its own ({entered} entries)"
            elif kind == "exit":
                exited += 1
            elif kind == "leave":
                left += 1
            else:
                continue
            in_flight = started - exited
            if entered - left < in_flight:
                return f"{left} leaves of {entered} entries while {in_flight} calls were in flight"
            if capacity is not None and in_flight > capacity:
                return f"{in_flight} calls in flight through a gate that admits {capacity}"
        if left != entered:
            return f"{entered} entries but {left} leaves"
        return None


def notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", ()))
