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
"""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.lowlevel
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ._executor import Executor

__all__ = ["ExecutorConformance", "ItemFailure", "MapCall", "RecordingExecutor"]

_T = TypeVar("_T")
_R = TypeVar("_R")

#: Per-item delays, in seconds: zero (no wait at all) or a few milliseconds.
_delays = st.sampled_from([0.0, 0.0, 0.001, 0.002, 0.005])
_limits = st.one_of(st.none(), st.integers(min_value=1, max_value=8))
_SETTINGS = settings(
    max_examples=20,
    deadline=None,
    # Every subclass runs the same test functions against its own executor;
    # sharing the examples between them is harmless (they are only inputs).
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.differing_executors,
    ],
)
#: A safety net: no property may hang the test run.
_HANG = 20.0
#: Scheduler rounds an item waits for its siblings to start (each round is one
#: checkpoint; a parallel executor starts them all within a handful).
_ROUNDS = 200


class ItemFailure(Exception):
    """The exception the conformance suite's failing items raise (one per item)."""

    def __init__(self, index: int) -> None:
        super().__init__(f"item {index} failed")
        self.index = index


@attrs.define
class _Probe:
    """Records what the executor did with the items, in one timeline."""

    delays: list[float]
    fail_at: frozenset[int] = frozenset()
    timeline: list[tuple[str, int]] = attrs.field(factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    pulled: int = 0
    finished: int = 0
    max_pending: int = 0
    raised: dict[int, ItemFailure] = attrs.field(factory=dict)

    def items(self) -> Iterator[int]:
        """The input, as a generator, so lazy pulling can be observed."""
        for index in range(len(self.delays)):
            self.pulled += 1
            self.max_pending = max(self.max_pending, self.pulled - self.finished)
            self.timeline.append(("pull", index))
            yield index

    async def call(self, index: int) -> int:
        self.timeline.append(("start", index))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delays[index]:
                await anyio.sleep(self.delays[index])
            if index in self.fail_at:
                exc = self.raised[index] = ItemFailure(index)
                self.timeline.append(("fail", index))
                raise exc
            self.timeline.append(("end", index))
            return index * 2
        finally:
            self.in_flight -= 1
            self.finished += 1

    def events(self, kind: str) -> list[int]:
        return [i for k, i in self.timeline if k == kind]


def _notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", ()))


class ExecutorConformance:
    """The executor contract as pytest tests; subclass it and set :attr:`executor`.

    Attributes:
        executor: The executor under test.
        parallel: ``True`` (the default) for an executor that runs items
            concurrently; ``False`` for one that runs them one at a time in
            input order, which is then checked instead.
        backends: The backends to run every property on; by default the
            executor's own ``backend``, or asyncio and (if installed) trio for
            an executor that runs on any backend.
    """

    executor: ClassVar[Executor]
    parallel: ClassVar[bool] = True
    backends: ClassVar[tuple[str, ...] | None] = None

    def _backends(self) -> tuple[str, ...]:
        if self.backends is not None:
            return self.backends
        if self.executor.backend is not None:
            return (self.executor.backend,)
        if importlib.util.find_spec("trio") is not None:
            return ("asyncio", "trio")
        return ("asyncio",)

    def _each_backend(self, body: Callable[[], Awaitable[None]]) -> None:
        async def guarded() -> None:
            with anyio.fail_after(_HANG):
                await body()

        for backend in self._backends():
            anyio.run(guarded, backend=backend)

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

    @_SETTINGS
    @given(st.lists(_delays, max_size=24), _limits)
    def test_results_in_input_order(self, item_delays: list[float], limit: int | None) -> None:
        """One result per item, in input order, each item called exactly once."""

        async def body() -> None:
            probe = _Probe(list(item_delays))
            result = await self.executor.map(probe.call, probe.items(), limit=limit)
            assert result == [i * 2 for i in range(len(item_delays))]
            assert sorted(probe.events("start")) == list(range(len(item_delays)))
            if not self.parallel:
                assert probe.events("start") == list(range(len(item_delays)))
                assert probe.max_in_flight <= 1

        self._each_backend(body)

    @_SETTINGS
    @given(st.lists(_delays, max_size=24), st.integers(min_value=1, max_value=6))
    def test_limit_bounds_calls_and_pulls(self, item_delays: list[float], limit: int) -> None:
        """With ``limit=k`` at most k calls run, and at most k items are pulled but unfinished."""

        async def body() -> None:
            probe = _Probe(list(item_delays))
            await self.executor.map(probe.call, probe.items(), limit=limit)
            assert probe.max_in_flight <= limit
            assert probe.max_pending <= limit

        self._each_backend(body)

    @_SETTINGS
    @given(st.integers(min_value=1, max_value=5), st.integers(min_value=0, max_value=40))
    def test_huge_input_is_pulled_lazily(self, limit: int, fail_at: int) -> None:
        """A practically endless input with a limit is pulled only as calls finish.

        The input refuses to yield an item while ``limit`` pulled items are
        unfinished, so an executor that materializes its input fails at once.
        """

        async def body() -> None:
            pulled = finished = 0

            def endless() -> Iterator[int]:
                nonlocal pulled
                for index in range(10**12):
                    if pulled - finished >= limit:
                        raise AssertionError(
                            f"item {index} pulled while {pulled - finished} pulled items "
                            f"are unfinished (limit {limit})"
                        )
                    pulled += 1
                    yield index

            async def call(index: int) -> int:
                nonlocal finished
                try:
                    await anyio.lowlevel.checkpoint()
                    if index == fail_at:
                        raise ItemFailure(index)
                    return index
                finally:
                    finished += 1

            with pytest.raises(ItemFailure) as info:
                await self.executor.map(call, endless(), limit=limit)
            assert info.value.index == fail_at

        self._each_backend(body)

    @_SETTINGS
    @given(st.integers(min_value=1, max_value=30), _limits)
    def test_parallel_items_overlap(self, count: int, limit: int | None) -> None:
        """Parallel: with room for k, k items are in flight together.

        Each item, once started, yields to the scheduler until
        ``min(count, limit)`` items have started (or a generous number of
        rounds has passed), and the most calls seen in flight at once must
        then be exactly that room. A sequential executor must instead never
        overlap two items. No clock is involved, so a slow machine cannot
        make this flaky.
        """

        async def body() -> None:
            room = count if limit is None else min(count, limit)
            started = in_flight = max_in_flight = 0

            async def call(index: int) -> int:
                nonlocal started, in_flight, max_in_flight
                started += 1
                in_flight += 1
                max_in_flight = max(max_in_flight, in_flight)
                for _ in range(_ROUNDS):
                    if started >= room:
                        break
                    await anyio.lowlevel.checkpoint()
                await anyio.lowlevel.checkpoint()
                in_flight -= 1
                return index

            result = await self.executor.map(call, list(range(count)), limit=limit)
            assert result == list(range(count))
            if self.parallel:
                assert max_in_flight == room, f"{max_in_flight} in flight at most, room for {room}"
            else:
                assert max_in_flight == 1

        self._each_backend(body)

    @_SETTINGS
    @given(
        st.lists(_delays, min_size=1, max_size=20),
        st.data(),
        _limits,
    )
    def test_failure_stops_the_batch(
        self, item_delays: list[float], data: st.DataObject, limit: int | None
    ) -> None:
        """A failure cancels the batch; nothing of it runs once the error is raised.

        The exception raised is the first failing item's own; any other item
        that failed before the cancellation took effect is named in its notes;
        no item starts after the first failure; no call is in flight when
        ``map`` raises, and none finishes afterwards.
        """
        count = len(item_delays)
        fail_at = data.draw(
            st.sets(st.integers(min_value=0, max_value=count - 1), min_size=1, max_size=3),
            label="fail_at",
        )

        async def body() -> None:
            probe = _Probe(list(item_delays), frozenset(fail_at))
            try:
                await self.executor.map(probe.call, probe.items(), limit=limit)
            except ItemFailure as exc:
                raised: ItemFailure = exc
            else:
                raise AssertionError("map returned although an item failed")
            assert probe.in_flight == 0, "map raised while calls were still in flight"
            failures = probe.events("fail")
            assert raised is probe.raised[failures[0]], "not the first failure, or wrapped"
            for index in failures[1:]:
                assert str(probe.raised[index]) in _notes(raised), f"failure {index} lost"
            first_fail = probe.timeline.index(("fail", failures[0]))
            late = [i for k, i in probe.timeline[first_fail:] if k == "start"]
            assert not late, f"items {late} started after the first failure"
            if not self.parallel:
                assert probe.events("start") == list(range(failures[0] + 1))
            seen = len(probe.timeline)
            await anyio.sleep(max(item_delays) + 0.005)
            assert len(probe.timeline) == seen, "a call ran on after map raised"

        self._each_backend(body)

    @_SETTINGS
    @given(
        st.lists(st.sampled_from([0.0, 0.001, 0.05, 10.0]), min_size=1, max_size=20),
        _limits,
        st.sampled_from([0.0, 0.002, 0.01]),
    )
    def test_cancelling_the_caller_cancels_the_batch(
        self, item_delays: list[float], limit: int | None, after: float
    ) -> None:
        """When the caller is cancelled, every call in flight is cancelled and awaited."""

        async def body() -> None:
            probe = _Probe(list(item_delays))
            done = False
            with anyio.move_on_after(after) as scope:
                await self.executor.map(probe.call, probe.items(), limit=limit)
                done = True
            assert probe.in_flight == 0, "cancellation returned while calls were in flight"
            if max(item_delays) >= 10:  # cannot finish before the deadline
                assert scope.cancelled_caught
                assert not done
            seen = len(probe.timeline)
            await anyio.sleep(0.06)
            assert len(probe.timeline) == seen, "a call ran on after the caller was cancelled"

        self._each_backend(body)


def _backend_name() -> str:
    """The name of the async library running the current task."""
    import sniffio

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
