"""The properties of a remote executor's items under a limiter: every attempt passes it.

The items of a batch that a remote executor runs, when the batch has
limiters, are sent once per attempt: the worker makes one attempt and sends
a failed one back, and the kernel decides here whether to send it again,
through the gate it hands the executor (``pocketcore.Gate``). These
properties run real nodes on the executor under test and check what a user
relies on: a retry waits its turn like a first attempt, and its
``cur_retry`` on the worker is its attempt's; a provider's rate-limit
refusal (a 429 with a ``retry-after-ms`` header, in the shape HTTP clients
raise it) pauses every start on the limiter and spends none of the node's
``max_retries``; the limiter's ``patience`` ends the refusals; and the
limiter is idle again however the batch ended. They are made for remote
executors that gate items and report their results (a failed attempt is
one); the kernel's own tests hold the executors that run items here to the
same.

The nodes and the exception are module-level classes that record to the
probes' log (a file, for a remote executor), so that copies of them travel.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import anyio
from hypothesis import strategies as st

from pocketcore._core.executor import capabilities
from pocketcore._core.results import Failed
from pocketcore._nodes.flows import AsyncFlow
from pocketcore._nodes.nodes import AsyncParallelBatchNode, ParallelBatchNode
from pocketcore._runtime.limits import Limiter

from ._probes import Log
from ._suite import CAPABILITY, SLOW, SuiteBase, suite_property

__all__ = ["Refused", "Resends"]

#: How much closer together than their turns two starts may be seen on the
#: workers: a start is paced where it is sent, and seen where it runs, after
#: a hop whose length varies from item to item (by a tenth of a second, seen
#: on a loaded two-core machine). A retry sent at once would start a hop
#: after the failure, far closer than a turn.
SLACK = 0.2
#: The rate of the pacing property: turns half a second apart, well beyond the slack.
RATE = 2.0
#: How long after a refusal an item sent before its signal reached the
#: limiter may still start (the refusal travels back first).
GRACE = 0.4
#: Examples of each property here: each takes seconds of real pacing and pauses.
EXAMPLES = 6


def remote_limiter_property(
    *strategies: st.SearchStrategy[Any],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare a property of remote executors that gate items and report their results."""

    def register(body: Callable[..., None]) -> Callable[..., None]:
        CAPABILITY[body.__name__] = lambda suite: (
            suite._declares("gates_items") and suite._is_remote() and _reports(suite)
        )
        SLOW[body.__name__] = EXAMPLES
        return suite_property(*strategies)(body)

    return register


def _reports(suite: type[SuiteBase]) -> bool:
    executor = getattr(suite, "executor", None)
    return executor is not None and capabilities(executor, warn=False).reports_results


class _Response:
    """What an HTTP client's exception carries: a status and headers."""

    def __init__(self, status_code: int, headers: dict[str, str]) -> None:
        self.status_code, self.headers = status_code, headers


class Refused(Exception):
    """A provider's 429, in the shape HTTP clients raise it, saying when to come back."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"429 too many requests (retry after {retry_after:g} s)")
        self.retry_after = retry_after
        self.response = _Response(429, {"retry-after-ms": str(round(retry_after * 1000))})

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.retry_after,), self.__dict__)


def _attempt(node: Any, item: int) -> tuple[int, int]:
    """One attempt of ``item``: the next outcome of its script ("ok", "fail" or "429").

    Records its start, and whether its ``cur_retry`` is the number of the
    item's attempts that failed before (a refusal spends none).
    """
    log: Log = node.log
    script: list[str] = node.script[item]
    before = sum(1 for kind, index, _ in log.timeline() if kind == "start" and index == item)
    log.record("start", item)
    if node.cur_retry != script[:before].count("fail"):
        log.record("miscounted", item)
    outcome = script[min(before, len(script) - 1)]
    if outcome == "fail":
        raise ValueError(f"attempt {before} of item {item} failed")
    if outcome == "429":
        log.record("refused", item)
        raise Refused(node.retry_after)
    return item, node.cur_retry


class _Scripted(AsyncParallelBatchNode):
    """Items ``0 .. len(script) - 1``, each attempt following the item's script."""

    def __init__(self, log: Log, script: list[list[str]], retry_after: float, **kw: Any) -> None:
        super().__init__(**kw)
        self.log, self.script, self.retry_after = log, script, retry_after

    async def prep_async(self, shared: dict[str, Any]) -> range:
        return range(len(self.script))

    async def exec_async(self, item: int) -> tuple[int, int]:
        return _attempt(self, item)

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


class _SyncScripted(ParallelBatchNode):
    """:class:`_Scripted` with a blocking ``exec``."""

    def __init__(self, log: Log, script: list[list[str]], retry_after: float, **kw: Any) -> None:
        super().__init__(**kw)
        self.log, self.script, self.retry_after = log, script, retry_after

    def prep(self, shared: dict[str, Any]) -> range:
        return range(len(self.script))

    def exec(self, item: int) -> tuple[int, int]:
        return _attempt(self, item)

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


def _starts(log: Log, item: int | None = None) -> list[float]:
    return sorted(
        t for kind, index, t in log.timeline() if kind == "start" and item in (None, index)
    )


#: The executors whose workers have run the nodes here once, in this process's tests.
_WARM: set[int] = set()
#: Items of the batch that warms the workers up: enough to reach each of them.
_WARM_UP = 8


class Resends(SuiteBase):
    """The properties of every attempt through the limiter (a part of ``ExecutorConformance``)."""

    async def _warm_up(self) -> None:
        """Have the workers import this module once: a start late by an import is not paced."""
        if id(self.executor) in _WARM:
            return
        with self._log() as scratch:
            node = _Scripted(scratch, [["ok"]] * _WARM_UP, 0.0, executor=self.executor)
            await node.run_async({})
        _WARM.add(id(self.executor))

    async def _run(
        self, log: Log, script: list[list[str]], blocking: bool, retry_after: float, **kw: Any
    ) -> Any:
        await self._warm_up()
        cls = _SyncScripted if blocking else _Scripted
        node = cls(log, script, retry_after, executor=self.executor, **kw)
        shared: dict[str, Any] = {}
        # A flow awaits a blocking batch on this loop, as it does an async one.
        await AsyncFlow(start=node).run_async(shared)
        assert log.count("miscounted") == 0, "an attempt's cur_retry on the worker was wrong"
        return shared["out"]

    @remote_limiter_property(
        st.lists(st.integers(min_value=0, max_value=2), min_size=1, max_size=2), st.booleans()
    )
    def test_every_attempt_of_a_remote_item_waits_its_turn(
        self, failures: list[int], blocking: bool
    ) -> None:
        """A retry is paced like a first attempt: no two starts closer than the rate allows.

        Item ``i`` fails ``failures[i]`` times, then succeeds (``max_retries=3``),
        under ``Limiter(max_per_second=2)``: every start on the workers,
        retries included, is at least 0.5 s after the one before (less
        :data:`SLACK`), each attempt's ``cur_retry`` is its number, and the
        limiter is idle once the batch is over.
        """
        rate = RATE

        async def body(log: Log) -> None:
            limiter = Limiter(max_per_second=rate)
            script = [["fail"] * count + ["ok"] for count in failures]
            out = await self._run(log, script, blocking, 0.0, limiter=limiter, max_retries=3)
            assert out == list(enumerate(failures))
            starts = _starts(log)
            assert len(starts) == sum(failures) + len(failures)
            gaps = [b - a for a, b in itertools.pairwise(starts)]
            assert min(gaps, default=1 / rate) >= 1 / rate - SLACK, (
                f"two attempts started {min(gaps):.3f} s apart under {rate:g}/s"
            )
            assert limiter.idle, f"{limiter!r} still busy after the batch"

        self._each_backend(body)

    @remote_limiter_property(st.integers(min_value=4, max_value=6), st.booleans())
    def test_a_refusal_pauses_every_start_and_spends_no_retry(
        self, others: int, blocking: bool
    ) -> None:
        """A 429 on a worker pauses every start on the limiter, and its item tries again.

        Item 0 is refused once (retry after 1 s) and has no retry to spend
        (``max_retries=1``); ``others`` items follow it at 10 a second. Item
        0 succeeds, sent again once the pause is over, and no other item
        starts during the pause (but for one sent before the refusal came
        back, within :data:`GRACE`).
        """
        pause = 1.0

        async def body(log: Log) -> None:
            limiter = Limiter(max_per_second=10)
            script = [["429", "ok"]] + [["ok"]] * others
            out = await self._run(log, script, blocking, pause, limiter=limiter)
            assert out == [(i, 0) for i in range(others + 1)]
            (refused_at,) = [t for kind, _, t in log.timeline() if kind == "refused"]
            again = _starts(log, 0)[1]
            assert again >= refused_at + pause - SLACK, "the refused item did not wait the pause"
            during = [
                t
                for kind, index, t in log.timeline()
                if kind == "start" and index and refused_at + GRACE < t < refused_at + pause - SLACK
            ]
            assert during == [], f"{len(during)} items started during the pause"
            assert limiter.idle, f"{limiter!r} still busy after the batch"

        self._each_backend(body)

    @remote_limiter_property(st.sampled_from(["collect", "raise", "cancel"]), st.booleans())
    def test_patience_ends_the_refusals_and_the_limiter_ends_idle(
        self, ending: str, blocking: bool
    ) -> None:
        """An item refused again and again gives up once the limiter's patience is over.

        Item 0 is always refused (retry after 0.1 s) under a limiter that
        bounds concurrency only (``patience=0.6``): after 0.6 s of refusals
        the item spends its one attempt, and fails: a ``Failed`` holding the
        refusal (``collect``), or the batch raises it (``raise``). Or the
        caller gives up first (``cancel``, refusals for a minute). However
        it ends, the limiter is idle afterwards.
        """
        patience = 0.6 if ending != "cancel" else 60.0

        async def body(log: Log) -> None:
            limiter = Limiter(max_concurrency=2, patience=patience)
            script = [["429"], ["ok"]]
            on_error = "collect" if ending == "collect" else "raise"
            began = time.monotonic()
            out: Any = None
            try:
                with anyio.move_on_after(1.0 if ending == "cancel" else 60.0):
                    out = await self._run(
                        log, script, blocking, 0.1, limiter=limiter, on_error=on_error
                    )
            except Refused:
                assert ending == "raise"
            else:
                if ending == "collect":
                    failed, second = out
                    assert isinstance(failed, Failed), failed
                    assert isinstance(failed.exception, Refused)
                    assert second == (1, 0)
                else:
                    assert ending == "cancel", f"the batch returned {out!r}"
            took = time.monotonic() - began
            if ending != "cancel":
                assert took >= patience, f"gave up after {took:.2f} s, patience {patience:g} s"
            assert len(_starts(log, 0)) >= 3, "the refused item was not sent again"
            assert limiter.idle, f"{limiter!r} still busy after the batch ({ending})"

        self._each_backend(body)
