"""The properties of a batch that stops: an item's failure or ``BaseException``, a cancelled caller.

A failure or a ``BaseException`` of an item comes out of ``map`` as that
item's own exception, and stops the batch; cancelling the caller cancels
the batch. Either way, nothing of the batch runs once ``map`` is over.
"""

from __future__ import annotations

import anyio
from hypothesis import strategies as st

from ._probes import ABORTS, ItemAbort, ItemCall, ItemFailure, Log, MemoryLog, Seen, notes, pulled
from ._suite import (
    CANCEL_AFTER,
    DELAYS,
    LIMITS,
    REMOTE_STOP_GRACE,
    STRAGGLING,
    SuiteBase,
    suite_property,
)


class Failures(SuiteBase):
    """The properties of how a batch stops (a part of ``ExecutorConformance``)."""

    async def _check_stopped(
        self,
        log: Log,
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
        grace = REMOTE_STOP_GRACE * scale
        timeline = log.timeline()
        seen = Seen(timeline)
        assert seen.peaks()[2] == 0, "map raised while calls were still in flight"
        failures = seen.events("fail")
        index = getattr(raised, "index", None)
        if remote:
            assert type(raised) in (ItemFailure, ItemAbort), f"wrapped: {raised!r}"
            assert index in failures, "not one of the failures"
            others = [i for i in failures if i != index]
        else:
            assert isinstance(log, MemoryLog)
            assert raised is log.raised[failures[0]], (
                f"not the first failure, or wrapped: {raised!r}"
            )
            others = failures[1:]
        for other in others:
            assert f"item {other} " in notes(raised), f"failure {other} lost"
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

    @suite_property(st.lists(DELAYS, min_size=1, max_size=20), st.data(), LIMITS)
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
        fail_at, delays = self._failing(data, item_delays)

        async def body(log: Log) -> None:
            call = ItemCall(log, delays, fail_at)
            raised = await self._failure_of(
                self.executor.map(call, pulled(log, count), limit=limit)
            )
            await self._check_stopped(log, raised, count, limit, delays)

        self._each_backend(body)

    @suite_property(
        st.lists(DELAYS, min_size=1, max_size=12),
        st.data(),
        LIMITS,
        st.sampled_from(sorted(ABORTS)),
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

        async def body(log: Log) -> None:
            call = ItemCall(log, delays, frozenset({fail_at}), abort=kind)
            batch = self.executor.map(call, pulled(log, count), limit=limit)
            raised = await self._failure_of(batch, BaseException)  # what is raised is checked
            await self._check_stopped(log, raised, count, limit, delays)

        self._each_backend(body)

    @suite_property(st.lists(STRAGGLING, min_size=1, max_size=20), LIMITS, CANCEL_AFTER)
    def test_cancelling_the_caller_cancels_the_batch(
        self, item_delays: list[float], limit: int | None, after: float
    ) -> None:
        """When the caller is cancelled, every call in flight is cancelled and awaited."""
        scale = self._scale
        delays = tuple(d * scale for d in item_delays)

        async def body(log: Log) -> None:
            done = False
            with anyio.move_on_after(after * scale) as scope:
                await self.executor.map(
                    ItemCall(log, delays), pulled(log, len(delays)), limit=limit
                )
                done = True
            timeline = log.timeline()
            assert Seen(timeline).peaks()[2] == 0, (
                "cancellation returned while calls were in flight"
            )
            if max(item_delays) >= 10:  # cannot finish before the deadline
                assert scope.cancelled_caught
                assert not done
            await self._check_quiet(log, "a call ran on")

        self._each_backend(body)
