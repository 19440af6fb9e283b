"""What every property of the conformance suite shares: its settings, its registry, its base class.

A property is a test body declared with :func:`suite_property` and its
Hypothesis strategies; ``ExecutorConformance`` makes it a test for each
subclass. :class:`SuiteBase` holds the class attributes a subclass sets and
runs a property's body once per backend, with the right kind of probe log.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ClassVar

import anyio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pocketcore._core.executor import Executor, capabilities

from ._probes import FileLog, ItemAbort, ItemFailure, Log, MemoryLog

#: Per-item delays, in seconds (times the suite's ``time_scale``): zero (no
#: wait at all) or a few milliseconds.
DELAYS = st.sampled_from([0.0, 0.0, 0.001, 0.002, 0.005])
LIMITS = st.one_of(st.none(), st.integers(min_value=1, max_value=8))
SETTINGS = settings(
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
EXAMPLES = 20
REMOTE_EXAMPLES = 8
#: A remote executor's items start and stop tens of milliseconds apart, not
#: microseconds: its delays (and quiet periods) are ten times longer.
REMOTE_TIME_SCALE = 10.0
#: How long after the first failure a remote executor's item may still start
#: (seconds, times ``time_scale``): its stop signal has to travel to the other
#: processes, so an item sent before the failure may pass its check just
#: before the signal arrives. A local executor gets no such grace.
REMOTE_STOP_GRACE = 0.1
#: A safety net: no property may hang the test run.
_HANG = 20.0
#: Seconds (times ``time_scale``) a remote item waits for its siblings to start.
PATIENCE = 0.5
#: Limits far above any batch the suite makes (see test_huge_limit_costs_what_no_limit_costs).
HUGE_LIMITS = (10**3, 10**4)
#: Seconds (times ``time_scale``) a batch of a few instant items may take, whatever the limit.
PROMPT = 2.0

#: Per-item delays when the caller cancels the batch (times ``time_scale``):
#: quick items, and stragglers that cannot end before the caller gives up.
STRAGGLING = st.sampled_from([0.0, 0.001, 0.05, 10.0])
#: Seconds (times ``time_scale``) a caller waits before it cancels the batch.
CANCEL_AFTER = st.sampled_from([0.0, 0.002, 0.01])

#: How many entries the suite's gates admit at a time (``None``: any number).
CAPACITIES = st.one_of(st.none(), st.integers(min_value=1, max_value=4))

#: name -> (test body, its Hypothesis strategies); made into tests per suite class.
PROPERTIES: dict[str, tuple[Callable[..., None], tuple[st.SearchStrategy[Any], ...]]] = {}
GENERATED: set[Callable[..., None]] = set()
#: The properties of an optional capability: name -> whether a suite class has it.
CAPABILITY: dict[str, Callable[[type[SuiteBase]], bool]] = {}
#: The slow properties (real pacing, seconds an example): name -> the most examples they get.
SLOW: dict[str, int] = {}


def suite_property(
    *strategies: st.SearchStrategy[Any],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare a Hypothesis property of the suite (see ``__init_subclass__``)."""

    def register(body: Callable[..., None]) -> Callable[..., None]:
        PROPERTIES[body.__name__] = (body, strategies)
        return body

    return register


def gate_property(
    *strategies: st.SearchStrategy[Any],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare a property of executors that gate items (``gates_items = True``) only."""
    return _capability_property("gates_items", strategies)


def attempts_property(
    *strategies: st.SearchStrategy[Any],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare a property of executors that gate attempts (``gates_attempts = True``) only."""
    return _capability_property("gates_attempts", strategies)


def _capability_property(
    declared: str, strategies: tuple[st.SearchStrategy[Any], ...]
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A property made into a test only for an executor whose capabilities say ``declared``."""

    def register(body: Callable[..., None]) -> Callable[..., None]:
        CAPABILITY[body.__name__] = lambda suite: suite._declares(declared)
        return suite_property(*strategies)(body)

    return register


class SuiteBase:
    """The settings of a suite class and how a property runs (see ``ExecutorConformance``)."""

    executor: ClassVar[Executor]
    parallel: ClassVar[bool] = True
    backends: ClassVar[tuple[str, ...] | None] = None
    max_examples: ClassVar[int | None] = None
    time_scale: ClassVar[float | None] = None
    patience: ClassVar[float | None] = None

    @classmethod
    def _is_remote(cls) -> bool:
        executor = vars(cls).get("executor") or getattr(cls, "executor", None)
        return executor is not None and capabilities(executor, warn=False).remote

    @classmethod
    def _declares(cls, capability: str) -> bool:
        """Whether the suite's executor declares ``capability`` (a ``Capabilities`` field)."""
        executor = getattr(cls, "executor", None)
        if executor is None:
            return False
        return bool(getattr(capabilities(executor, warn=False), capability))

    @property
    def _patience(self) -> float:
        """Seconds an item of the overlap properties waits for its siblings to start."""
        return self.patience if self.patience is not None else PATIENCE * self._scale

    @property
    def _scale(self) -> float:
        if self.time_scale is not None:
            return self.time_scale
        return REMOTE_TIME_SCALE if self._is_remote() else 1.0

    def _failing(
        self, data: st.DataObject, item_delays: list[float]
    ) -> tuple[frozenset[int], tuple[float, ...]]:
        """Which items of a batch fail (one to three of them), and each item's scaled delay."""
        count = len(item_delays)
        fail_at = data.draw(
            st.sets(st.integers(min_value=0, max_value=count - 1), min_size=1, max_size=3),
            label="fail_at",
        )
        return frozenset(fail_at), tuple(d * self._scale for d in item_delays)

    @staticmethod
    async def _failure_of(
        batch: Awaitable[object], kind: type[BaseException] = ItemFailure
    ) -> BaseException:
        """What a batch with a failing item raised, of ``kind`` (if it returns, the check fails).

        The backend's cancellation is never an item's failure: it goes on.
        """
        try:
            await batch
        except anyio.get_cancelled_exc_class():
            raise
        except kind as exc:
            return exc
        raise AssertionError("map returned although an item failed")

    async def _check_quiet(self, log: Log, what: str) -> None:
        """Check that nothing more is logged for a while: no call runs on (nor ``what``)."""
        timeline = log.timeline()
        await anyio.sleep(0.06 * self._scale)
        assert len(log.timeline()) == len(timeline), f"{what} after the caller was cancelled"

    def _backends(self) -> tuple[str, ...]:
        if self.backends is not None:
            return self.backends
        if self.executor.backend is not None:
            return (self.executor.backend,)
        if importlib.util.find_spec("trio") is not None:
            return ("asyncio", "trio")
        return ("asyncio",)

    @contextlib.contextmanager
    def _log(self) -> Iterator[Log]:
        if not self._is_remote():
            yield MemoryLog()
            return
        fd, path = tempfile.mkstemp(prefix="pocketcore-probe-", suffix=".log")
        os.close(fd)
        try:
            yield FileLog(path)
        finally:
            os.unlink(path)

    def _each_backend(self, body: Callable[[Log], Awaitable[None]]) -> None:
        if self._is_remote():
            # Inside the executor's own run: its connection serves the body.
            starts: list[Callable[[Callable[[], Awaitable[None]]], None]] = [self.executor.run]
        else:
            starts = [functools.partial(anyio.run, backend=b) for b in self._backends()]
        for start in starts:
            with self._log() as log:

                async def guarded(log: Log = log) -> None:
                    with anyio.fail_after(_HANG):
                        await body(log)

                try:
                    start(guarded)
                except (KeyboardInterrupt, SystemExit, ItemAbort) as exc:
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
