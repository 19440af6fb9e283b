"""Tools for testing executors and flows: the conformance suite and a recording executor.

Every executor must meet the contract of :class:`pocketcore.Executor`. An
executor plugin proves it by subclassing :class:`ExecutorConformance` in its
own tests::

    from pocketcore.testing import ExecutorConformance
    from my_plugin import MyExecutor

    class TestMyExecutor(ExecutorConformance):
        executor = MyExecutor()

pytest then collects the inherited tests, which use Hypothesis to generate
item lists, per-item delays, failure positions and limits, and run each
property on every backend the executor claims. This module needs pytest and
Hypothesis (``pip install pocketcore[testing]``).

A *remote* executor (one with ``remote = True``, whose items run in other
processes) is held to the same properties. Its items cannot report to this
process's memory, so the suite's probes then append what happens to a file
that every process writes to (the worker processes must see this machine's
file system, as those of a ``LocalCluster`` do), and they are module-level
picklable objects that the workers import from here. Delays are stretched by
:attr:`ExecutorConformance.time_scale` and Hypothesis runs fewer examples.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.lowlevel
import attrs
import pytest
import sniffio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ._core.executor import Executor, capabilities

__all__ = ["ExecutorConformance", "ItemFailure", "MapCall", "RecordingExecutor"]

_T = TypeVar("_T")
_R = TypeVar("_R")

#: Per-item delays, in seconds (times the suite's ``time_scale``): zero (no
#: wait at all) or a few milliseconds.
_delays = st.sampled_from([0.0, 0.0, 0.001, 0.002, 0.005])
_limits = st.one_of(st.none(), st.integers(min_value=1, max_value=8))
_SETTINGS = settings(
    deadline=None,
    # Every subclass runs the same test functions against its own executor;
    # sharing the examples between them is harmless (they are only inputs).
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.differing_executors,
    ],
)
#: Examples per property; a remote executor pays a round trip per item, so fewer.
_EXAMPLES = 20
_REMOTE_EXAMPLES = 8
#: A remote executor's items start and stop tens of milliseconds apart, not
#: microseconds: its delays (and quiet periods) are ten times longer.
_REMOTE_TIME_SCALE = 10.0
#: How long after the first failure a remote executor's item may still start
#: (seconds, times ``time_scale``): its stop signal has to travel to the other
#: processes, so an item sent before the failure may pass its check just
#: before the signal arrives. A local executor gets no such grace.
_REMOTE_STOP_GRACE = 0.1
#: A safety net: no property may hang the test run.
_HANG = 20.0
#: Scheduler rounds an item waits for its siblings to start (each round is one
#: checkpoint; a parallel executor starts them all within a handful).
_ROUNDS = 200
#: Seconds (times ``time_scale``) a remote item waits for its siblings to start.
_PATIENCE = 0.5
#: Limits far above any batch the suite makes (see test_huge_limit_costs_what_no_limit_costs).
_HUGE_LIMITS = (10**3, 10**4)
#: Seconds (times ``time_scale``) a batch of a few instant items may take, whatever the limit.
_PROMPT = 2.0
#: Tasks an executor may keep for itself beyond one per item pulled (a feeder, say).
_HELPERS = 2
#: How the input of test_input_length_is_not_trusted answers ``len()``.
_LENGTHS = ("overflows", "raises", "says 0", "says 1", "says 3 too many")


class ItemFailure(Exception):
    """The exception the conformance suite's failing items raise (one per item)."""

    def __init__(self, index: int) -> None:
        super().__init__(f"item {index} failed")
        self.index = index

    def __reduce__(self) -> tuple[Any, ...]:
        # A remote executor sends it back pickled; the default would call
        # ItemFailure("item 3 failed"). The state keeps notes added on the way.
        return (type(self), (self.index,), self.__dict__)


class _ItemAbort(BaseException):
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
_ABORTS: dict[str, Callable[[int], BaseException]] = {
    "KeyboardInterrupt": lambda index: KeyboardInterrupt(f"item {index} interrupted"),
    "SystemExit": lambda index: SystemExit(f"item {index} exited"),
    "custom": _ItemAbort,
}

_Entry = tuple[str, int, float]


class _MemoryLog:
    """The probes' timeline, kept in memory: for executors that run items in this process."""

    __slots__ = ("counts", "entries", "raised")

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.counts: Counter[str] = Counter()
        #: The exception each failing item raised, to check identity.
        self.raised: dict[int, BaseException] = {}

    def record(self, kind: str, index: int) -> None:
        self.entries.append((kind, index, time.monotonic()))
        self.counts[kind] += 1

    def failed(self, index: int, exc: BaseException) -> None:
        self.raised[index] = exc
        self.record("fail", index)

    def timeline(self) -> list[_Entry]:
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
class _FileLog:
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

    def timeline(self) -> list[_Entry]:
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


_Log = _MemoryLog | _FileLog


@attrs.frozen
class _ItemCall:
    """One item's call: records its start, waits its delay, then fails or returns ``index * 2``.

    Every call ends with an ``exit`` record, even when cancelled. A
    module-level class with picklable fields, so that a remote executor can
    send it to its workers.
    """

    log: _Log
    delays: tuple[float, ...] = ()
    fail_at: frozenset[int] = frozenset()
    #: Yield to the scheduler once before anything else.
    pause: bool = False
    #: What a failing item raises: an ``ItemFailure``, or a key of ``_ABORTS``.
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
                exc = ItemFailure(index) if self.abort is None else _ABORTS[self.abort](index)
                self.log.failed(index, exc)
                raise exc
            self.log.record("end", index)
            return index * 2
        finally:
            self.log.record("exit", index)


@attrs.frozen
class _OverlapCall:
    """An item that, once started, waits for ``room`` items to have started, then returns."""

    log: _Log
    room: int
    patience: float

    async def __call__(self, index: int) -> int:
        self.log.record("start", index)
        await self.log.wait_for("start", self.room, self.patience)
        await anyio.lowlevel.checkpoint()
        self.log.record("exit", index)
        return index


@attrs.frozen
class _TaskCountingCall:
    """An item that checks the tasks alive in its event loop, then returns ``index * 2``.

    At its start the loop may hold no more tasks than ``baseline`` (those
    alive before ``map`` was called) plus one per item pulled so far plus
    ``_HELPERS``; otherwise it fails with an ``AssertionError`` at once, so
    an executor that starts ``limit`` workers is caught at its first item.
    """

    log: _Log
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
class _Misleading:
    """An input whose ``__len__`` raises or lies (see ``_LENGTHS``); iterating it is honest."""

    log: _Log
    count: int
    length: str

    def __iter__(self) -> Iterator[int]:
        return _pulled(self.log, self.count)

    def __len__(self) -> int:
        if self.length == "overflows":  # as len(range(10**19)) does
            raise OverflowError("Python int too large to convert to C ssize_t")
        if self.length == "raises":
            raise RuntimeError("this input has no length")
        return {"says 0": 0, "says 1": 1, "says 3 too many": self.count + 3}[self.length]


def _pulled(log: _Log, count: int) -> Iterator[int]:
    """The input, as a generator, so lazy pulling can be observed."""
    for index in range(count):
        log.record("pull", index)
        yield index


@attrs.frozen
class _Seen:
    """What a timeline says about one ``map`` call."""

    timeline: list[_Entry]

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


def _notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", ()))


#: name -> (test body, its Hypothesis strategies); made into tests per suite class.
_PROPERTIES: dict[str, tuple[Callable[..., None], tuple[st.SearchStrategy[Any], ...]]] = {}
_GENERATED: set[Callable[..., None]] = set()


def _property(
    *strategies: st.SearchStrategy[Any],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare a Hypothesis property of the suite (see ``__init_subclass__``)."""

    def register(body: Callable[..., None]) -> Callable[..., None]:
        _PROPERTIES[body.__name__] = (body, strategies)
        return body

    return register


class ExecutorConformance:
    """The executor contract as pytest tests; subclass it and set :attr:`executor`.

    Attributes:
        executor: The executor under test. When it has ``remote = True`` its
            items run in other processes, and the probes record to a file (see
            the module docstring).
        parallel: ``True`` (the default) for an executor that runs items
            concurrently; ``False`` for one that runs them one at a time in
            input order, which is then checked instead.
        backends: The backends to run every property on; by default the
            executor's own ``backend``, or asyncio and (if installed) trio for
            an executor that runs on any backend. A remote executor's
            properties run inside its own ``run``, on its backend.
        max_examples: Hypothesis examples per property; by default 20, or 8
            for a remote executor.
        time_scale: What every delay and quiet period is multiplied by; by
            default 1, or 10 for a remote executor. After the first failure,
            a remote executor's items already on their way with it (at most
            ``limit - 1``) may still start within ``0.1 * time_scale``
            seconds, while its stop signal travels; a local executor's never.

    The Hypothesis tests are made for each subclass when it is defined, from
    its own settings, so set these as class attributes. A test method a
    subclass defines itself is left alone.
    """

    executor: ClassVar[Executor]
    parallel: ClassVar[bool] = True
    backends: ClassVar[tuple[str, ...] | None] = None
    max_examples: ClassVar[int | None] = None
    time_scale: ClassVar[float | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Hypothesis reads its settings from the decorated function, which
        # would be shared by every subclass: each gets functions of its own.
        examples = cls.max_examples
        if examples is None:
            examples = _REMOTE_EXAMPLES if cls._is_remote() else _EXAMPLES
        config = settings(_SETTINGS, max_examples=examples)
        for name, (body, strategies) in _PROPERTIES.items():
            if cls._defines_own(name):
                continue
            test = config(given(*strategies)(body))
            _GENERATED.add(test)
            setattr(cls, name, test)

    @classmethod
    def _defines_own(cls, name: str) -> bool:
        for klass in cls.__mro__:
            if name in vars(klass):
                value = vars(klass)[name]
                return value is not _PROPERTIES[name][0] and value not in _GENERATED
        return False

    @classmethod
    def _is_remote(cls) -> bool:
        executor = vars(cls).get("executor") or getattr(cls, "executor", None)
        return executor is not None and capabilities(executor).remote

    @property
    def _scale(self) -> float:
        if self.time_scale is not None:
            return self.time_scale
        return _REMOTE_TIME_SCALE if self._is_remote() else 1.0

    def _backends(self) -> tuple[str, ...]:
        if self.backends is not None:
            return self.backends
        if self.executor.backend is not None:
            return (self.executor.backend,)
        if importlib.util.find_spec("trio") is not None:
            return ("asyncio", "trio")
        return ("asyncio",)

    @contextlib.contextmanager
    def _log(self) -> Iterator[_Log]:
        if not self._is_remote():
            yield _MemoryLog()
            return
        fd, path = tempfile.mkstemp(prefix="pocketcore-probe-", suffix=".log")
        os.close(fd)
        try:
            yield _FileLog(path)
        finally:
            os.unlink(path)

    def _each_backend(self, body: Callable[[_Log], Awaitable[None]]) -> None:
        if self._is_remote():
            # Inside the executor's own run: its connection serves the body.
            starts: list[Callable[[Callable[[], Awaitable[None]]], None]] = [self.executor.run]
        else:
            starts = [functools.partial(anyio.run, backend=b) for b in self._backends()]
        for start in starts:
            with self._log() as log:

                async def guarded(log: _Log = log) -> None:
                    with anyio.fail_after(_HANG):
                        await body(log)

                try:
                    start(guarded)
                except (KeyboardInterrupt, SystemExit, _ItemAbort) as exc:
                    # Only an item's: a KeyboardInterrupt of the person
                    # running the tests stops them, as it should.
                    if not str(exc).startswith("item "):
                        raise
                    # Reported as a failed check rather than let through,
                    # which would stop Hypothesis and pytest themselves.
                    raise AssertionError(
                        f"the item's {exc!r} left the event loop instead of being "
                        "raised by map to its caller"
                    ) from exc

    async def _check_stopped(
        self,
        log: _Log,
        raised: BaseException,
        count: int,
        limit: int | None,
        delays: tuple[float, ...],
    ) -> None:
        """Check what ``map`` raised and that nothing of its batch runs any more.

        ``raised`` must be the first failing item's own exception (for a
        remote executor: one of the failures, of the same type), with every
        other failure named in its notes; no call may be in flight, no item
        may start after the first failure (a remote executor's within a
        grace), and no call may run on after ``map`` has raised.
        """
        scale = self._scale
        remote = self._is_remote()
        grace = _REMOTE_STOP_GRACE * scale
        timeline = log.timeline()
        seen = _Seen(timeline)
        assert seen.peaks()[2] == 0, "map raised while calls were still in flight"
        failures = seen.events("fail")
        index = getattr(raised, "index", None)
        if remote:
            assert type(raised) in (ItemFailure, _ItemAbort), f"wrapped: {raised!r}"
            assert index in failures, "not one of the failures"
            others = [i for i in failures if i != index]
        else:
            assert isinstance(log, _MemoryLog)
            assert raised is log.raised[failures[0]], (
                f"not the first failure, or wrapped: {raised!r}"
            )
            others = failures[1:]
        for other in others:
            assert f"item {other} " in _notes(raised), f"failure {other} lost"
        first_fail = next(p for p, entry in enumerate(timeline) if entry[0] == "fail")
        late = [(i, t) for k, i, t in timeline[first_fail:] if k == "start"]
        if remote:
            # Only items already sent along with the failing one may
            # still start, and only while the stop signal travels.
            failed_at = timeline[first_fail][2]
            slow = [i for i, t in late if t - failed_at >= grace]
            assert not slow, f"items {slow} started {grace}s or more after the first failure"
            room = (count if limit is None else limit) - 1
            assert len(late) <= room, (
                f"items {[i for i, _ in late]} started after the first failure; "
                f"at most {room} could have been on their way with it"
            )
        else:
            assert not late, f"items {[i for i, _ in late]} started after the first failure"
        if not self.parallel:
            assert seen.events("start") == list(range(failures[0] + 1))
        await anyio.sleep(max(delays, default=0.0) + 0.005 * scale)
        assert len(log.timeline()) == len(timeline), "a call ran on after map raised"

    def test_declares_name_and_backend(self) -> None:
        """The executor has a non-empty name and a known kind of backend."""
        assert isinstance(self.executor.name, str)
        assert self.executor.name
        assert self.executor.backend is None or isinstance(self.executor.backend, str)

    def test_run_starts_its_backend(self) -> None:
        """``run`` starts an event loop of the declared backend and returns the result."""

        async def main() -> str:
            await anyio.lowlevel.checkpoint()
            return _backend_name()

        backend = self.executor.run(main)
        if self.executor.backend is not None:
            assert backend == self.executor.backend

    @_property(st.lists(_delays, max_size=24), _limits)
    def test_results_in_input_order(self, item_delays: list[float], limit: int | None) -> None:
        """One result per item, in input order, each item called exactly once."""
        delays = tuple(d * self._scale for d in item_delays)

        async def body(log: _Log) -> None:
            call = _ItemCall(log, delays)
            result = await self.executor.map(call, _pulled(log, len(delays)), limit=limit)
            assert result == [i * 2 for i in range(len(delays))]
            seen = _Seen(log.timeline())
            assert sorted(seen.events("start")) == list(range(len(delays)))
            if not self.parallel:
                assert seen.events("start") == list(range(len(delays)))
                assert seen.peaks()[0] <= 1

        self._each_backend(body)

    @_property(st.lists(_delays, max_size=24), st.integers(min_value=1, max_value=6))
    def test_limit_bounds_calls_and_pulls(self, item_delays: list[float], limit: int) -> None:
        """With ``limit=k`` at most k calls run, and at most k items are pulled but unfinished."""
        delays = tuple(d * self._scale for d in item_delays)

        async def body(log: _Log) -> None:
            await self.executor.map(_ItemCall(log, delays), _pulled(log, len(delays)), limit=limit)
            max_in_flight, max_pending, _ = _Seen(log.timeline()).peaks()
            assert max_in_flight <= limit
            assert max_pending <= limit

        self._each_backend(body)

    @_property(st.integers(min_value=1, max_value=5), st.integers(min_value=0, max_value=40))
    def test_huge_input_is_pulled_lazily(self, limit: int, fail_at: int) -> None:
        """A practically endless input with a limit is pulled only as calls finish.

        The input refuses to yield an item while ``limit`` pulled items are
        unfinished, so an executor that materializes its input fails at once.
        """

        async def body(log: _Log) -> None:
            def endless() -> Iterator[int]:
                for index in range(10**12):
                    unfinished = log.count("pull") - log.count("exit")
                    if unfinished >= limit:
                        raise AssertionError(
                            f"item {index} pulled while {unfinished} pulled items "
                            f"are unfinished (limit {limit})"
                        )
                    log.record("pull", index)
                    yield index

            call = _ItemCall(log, fail_at=frozenset({fail_at}), pause=True)
            with pytest.raises(ItemFailure) as info:
                await self.executor.map(call, endless(), limit=limit)
            assert info.value.index == fail_at

        self._each_backend(body)

    @_property(st.integers(min_value=1, max_value=30), _limits)
    def test_parallel_items_overlap(self, count: int, limit: int | None) -> None:
        """Parallel: with room for k, k items are in flight together.

        Each item, once started, waits until ``min(count, limit)`` items have
        started (yielding to the scheduler for a generous number of rounds;
        a remote item polls for a while), and the most calls seen in flight
        at once must then be exactly that room. A sequential executor must
        instead never overlap two items. Locally no clock is involved, so a
        slow machine cannot make this flaky.
        """
        room = count if limit is None else min(count, limit)

        async def body(log: _Log) -> None:
            call = _OverlapCall(log, room, _PATIENCE * self._scale)
            result = await self.executor.map(call, list(range(count)), limit=limit)
            assert result == list(range(count))
            max_in_flight = _Seen(log.timeline()).peaks()[0]
            if self.parallel:
                assert max_in_flight == room, f"{max_in_flight} in flight at most, room for {room}"
            else:
                assert max_in_flight == 1

        self._each_backend(body)

    @_property(st.lists(_delays, min_size=1, max_size=20), st.data(), _limits)
    def test_failure_stops_the_batch(
        self, item_delays: list[float], data: st.DataObject, limit: int | None
    ) -> None:
        """A failure cancels the batch; nothing of it runs once the error is raised.

        The exception raised is the first failing item's own; any other item
        that failed before the cancellation took effect is named in its notes;
        no item starts after the first failure; no call is in flight when
        ``map`` raises, and none finishes afterwards. For a remote executor,
        "first" is the first failure it learned of (processes share no clock
        fine enough to say more), and the items sent along with the failing
        one may still start within a grace (see ``time_scale``).
        """
        count = len(item_delays)
        fail_at = data.draw(
            st.sets(st.integers(min_value=0, max_value=count - 1), min_size=1, max_size=3),
            label="fail_at",
        )
        delays = tuple(d * self._scale for d in item_delays)

        async def body(log: _Log) -> None:
            call = _ItemCall(log, delays, frozenset(fail_at))
            try:
                await self.executor.map(call, _pulled(log, count), limit=limit)
            except ItemFailure as exc:
                raised: ItemFailure = exc
            else:
                raise AssertionError("map returned although an item failed")
            await self._check_stopped(log, raised, count, limit, delays)

        self._each_backend(body)

    @_property(
        st.lists(_delays, min_size=1, max_size=12),
        st.data(),
        _limits,
        st.sampled_from(sorted(_ABORTS)),
    )
    def test_base_exception_is_raised_unwrapped(
        self, item_delays: list[float], data: st.DataObject, limit: int | None, kind: str
    ) -> None:
        """An item's ``BaseException`` is raised as it is, and stops the batch like any failure.

        The failing item raises ``KeyboardInterrupt``, ``SystemExit``, or a
        ``BaseException`` subclass of the suite's own (anything but the
        backend's cancellation): ``map`` must raise that very object, not an
        exception group around it, and not let it leave the event loop past
        the caller. Items not yet started never start, and nothing of the
        batch runs once ``map`` has raised. A remote executor's items raise
        only the suite's own kind (``KeyboardInterrupt`` and ``SystemExit``
        in a worker process are that process's business), which must come
        back as the same type.
        """
        count = len(item_delays)
        fail_at = data.draw(st.integers(min_value=0, max_value=count - 1), label="fail_at")
        if self._is_remote():
            kind = "custom"
        delays = tuple(d * self._scale for d in item_delays)

        async def body(log: _Log) -> None:
            call = _ItemCall(log, delays, frozenset({fail_at}), abort=kind)
            try:
                await self.executor.map(call, _pulled(log, count), limit=limit)
            except anyio.get_cancelled_exc_class():
                raise
            except BaseException as exc:  # what is raised is what is checked
                raised: BaseException = exc
            else:
                raise AssertionError("map returned although an item raised")
            await self._check_stopped(log, raised, count, limit, delays)

        self._each_backend(body)

    @_property(
        st.lists(_delays, max_size=12),
        st.data(),
        _limits,
        st.sampled_from(_LENGTHS),
    )
    def test_input_length_is_not_trusted(
        self, item_delays: list[float], data: st.DataObject, limit: int | None, length: str
    ) -> None:
        """The input's ``__len__`` never decides anything: every item is pulled and called.

        The input is iterable and also has a ``__len__`` that raises (as
        ``len(range(10**19))`` raises ``OverflowError``) or lies (0, 1, or
        more items than there are). The results must still be one per item
        in input order; and when an item fails, its own exception comes out.
        """
        count = len(item_delays)
        fail_at = data.draw(
            st.none() | st.integers(min_value=0, max_value=max(count - 1, 0)), label="fail_at"
        )
        if count == 0:
            fail_at = None
        delays = tuple(d * self._scale for d in item_delays)

        async def body(log: _Log) -> None:
            fails = frozenset() if fail_at is None else frozenset({fail_at})
            call = _ItemCall(log, delays, fails)
            items = _Misleading(log, count, length)
            try:
                result = await self.executor.map(call, items, limit=limit)
            except ItemFailure as exc:
                failed: int | None = exc.index
            except Exception as exc:
                raise AssertionError(
                    f"map raised {exc!r} for an input whose len() {length}"
                ) from exc
            else:
                assert result == [i * 2 for i in range(count)]
                failed = None
            assert failed == fail_at, f"item {fail_at} should have failed, not {failed}"

        self._each_backend(body)

    @_property(st.integers(min_value=0, max_value=8), st.sampled_from(_HUGE_LIMITS))
    def test_huge_limit_costs_what_no_limit_costs(self, count: int, limit: int) -> None:
        """A limit far above the batch's size starts no more than the items need.

        The input is a generator (no ``len()``) of at most 8 items, and the
        limit is 1000 or 10000. The batch must finish within two seconds
        (times ``time_scale``), and when an item starts the event loop may
        hold no more tasks than the items pulled so far, plus two of the
        executor's own: an executor that starts ``limit`` workers up front
        fails at its first item. A remote executor is only held to the time.

        The limits stay this low on purpose: an executor that starts
        ``limit`` workers in a loop that never awaits cannot be stopped by a
        timeout, and 10**12 of them would exhaust the machine's memory
        rather than fail the test.
        """
        scale = self._scale
        remote = self._is_remote()

        async def body(log: _Log) -> None:
            # Counting tasks means nothing in other processes: a remote
            # executor's items only return.
            call: Callable[[int], Awaitable[int]] = (
                _ItemCall(log)
                if remote
                else _TaskCountingCall(log, len(anyio.get_running_tasks()), limit)
            )
            with anyio.fail_after(_PROMPT * scale):
                result = await self.executor.map(call, _pulled(log, count), limit=limit)
            assert result == [i * 2 for i in range(count)]

        self._each_backend(body)

    @_property(
        st.lists(st.sampled_from([0.0, 0.001, 0.05, 10.0]), min_size=1, max_size=20),
        _limits,
        st.sampled_from([0.0, 0.002, 0.01]),
    )
    def test_cancelling_the_caller_cancels_the_batch(
        self, item_delays: list[float], limit: int | None, after: float
    ) -> None:
        """When the caller is cancelled, every call in flight is cancelled and awaited."""
        scale = self._scale
        delays = tuple(d * scale for d in item_delays)

        async def body(log: _Log) -> None:
            done = False
            with anyio.move_on_after(after * scale) as scope:
                await self.executor.map(
                    _ItemCall(log, delays), _pulled(log, len(delays)), limit=limit
                )
                done = True
            timeline = log.timeline()
            assert _Seen(timeline).peaks()[2] == 0, (
                "cancellation returned while calls were in flight"
            )
            if max(item_delays) >= 10:  # cannot finish before the deadline
                assert scope.cancelled_caught
                assert not done
            await anyio.sleep(0.06 * scale)
            assert len(log.timeline()) == len(timeline), (
                "a call ran on after the caller was cancelled"
            )

        self._each_backend(body)


def _backend_name() -> str:
    """The name of the async library running the current task."""
    return sniffio.current_async_library()


@attrs.define
class MapCall:
    """One ``map`` call seen by a :class:`RecordingExecutor`.

    Attributes:
        items: The items pulled from the input so far, in order (the input is
            passed on lazily, so this grows as the executor pulls).
        limit: The limit the kernel passed.
    """

    items: list[Any]
    limit: int | None


@attrs.define(eq=False)
class RecordingExecutor:
    """A test double that records every ``map`` call.

    It delegates the scheduling to ``inner`` when one is given; otherwise it
    awaits the items one after another. Use it to check which executor and
    which limit a node was given::

        rec = RecordingExecutor()
        pocketcore.run(flow, executor=rec, max_concurrency=4)
        assert rec.calls[0].limit == 4

    Attributes:
        inner: The executor to delegate to, or ``None``.
        name: The name it reports (default ``"recording"``).
        calls: Every ``map`` call, in order.
    """

    inner: Executor | None = None
    name: str = "recording"
    calls: list[MapCall] = attrs.field(factory=list)

    @property
    def backend(self) -> str | None:
        """The inner executor's backend, or ``None`` (any)."""
        return None if self.inner is None else self.inner.backend

    def run(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``fn()`` with the inner executor's ``run``, or on asyncio."""
        if self.inner is not None:
            return self.inner.run(fn)

        async def main() -> _T:
            return await fn()

        return anyio.run(main)

    async def map(
        self, fn: Callable[[Any], Awaitable[_R]], items: Iterable[Any], *, limit: int | None
    ) -> list[_R]:
        """Record the call, then schedule it (see the class docstring)."""
        call = MapCall([], limit)
        self.calls.append(call)

        def recorded() -> Iterator[Any]:
            for item in items:
                call.items.append(item)
                yield item

        if self.inner is not None:
            return await self.inner.map(fn, recorded(), limit=limit)
        return [await fn(item) for item in recorded()]
