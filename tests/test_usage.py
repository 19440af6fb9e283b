"""Usage totals: what ``exec`` reports with ``report_usage`` reaches observers, per scope."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import anyio.lowlevel
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import Failed, Limiter
from pocketcore._runtime.usage import USAGE
from tests.provider import FakeProvider, serve
from tests.test_governor import Ask
from tests.test_remote import Pickling


class Totals:
    """An observer keeping the usage each end event carries."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, int], dict[str, float]] = {}
        self.batches: list[tuple[str, dict[str, float]]] = []
        self.steps: list[tuple[str, dict[str, float]]] = []
        self.runs: list[tuple[str, dict[str, float]]] = []
        self._lock = threading.Lock()

    @pocketcore.hookimpl
    def pocketcore_batch_item_done(self, node: Any, index: int, usage: Mapping[str, float]) -> None:
        with self._lock:
            self.items[(type(node).__name__, index)] = dict(usage)

    @pocketcore.hookimpl
    def pocketcore_batch_end(self, node: Any, usage: Mapping[str, float]) -> None:
        self.batches.append((type(node).__name__, dict(usage)))

    @pocketcore.hookimpl
    def pocketcore_node_end(self, node: Any, usage: Mapping[str, float]) -> None:
        self.steps.append((type(node).__name__, dict(usage)))

    @pocketcore.hookimpl
    def pocketcore_run_end(self, target: Any, usage: Mapping[str, float]) -> None:
        self.runs.append((type(target).__name__, dict(usage)))


@pytest.fixture
def totals() -> Iterator[Totals]:
    plugin = Totals()
    registry = pocketcore.get_registry()
    registry.register(plugin, name="test-usage-totals")
    yield plugin
    registry.unregister(plugin)


def _scripted(item: Any, attempt: int) -> str:
    """Report the attempt's amounts, then fail it when the script says so."""
    amounts, fails = item
    pocketcore.report_usage(tokens=amounts[attempt], calls=1)
    if attempt < fails:
        raise ValueError(f"attempt {attempt} fails")
    return "ok"


class AsyncItems(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: Any) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        await anyio.lowlevel.checkpoint()  # siblings interleave
        return _scripted(item, self.cur_retry)

    async def exec_fallback_async(self, prep_res: Any, exc: Exception) -> Any:
        return "fallback"


class Failing(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: Any) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        return _scripted(item, self.cur_retry)


class SequentialItems(pocketcore.AsyncBatchNode):
    async def prep_async(self, shared: Any) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        return _scripted(item, self.cur_retry)

    async def exec_fallback_async(self, prep_res: Any, exc: Exception) -> Any:
        return "fallback"


class _SyncScript:
    """The scripted items of a sync batch node, whichever batch class it is."""

    cur_retry: int

    def prep(self, shared: Any) -> Any:
        return shared["items"]

    def exec(self, item: Any) -> Any:
        return _scripted(item, self.cur_retry)

    def exec_fallback(self, prep_res: Any, exc: Exception) -> Any:
        return "fallback"


class ThreadItems(_SyncScript, pocketcore.ParallelBatchNode):
    pass


class SyncItems(_SyncScript, pocketcore.BatchNode):
    pass


class Plain(pocketcore.Node):
    """A plain node whose attempts report too: its first one fails."""

    def exec(self, prep_res: Any) -> Any:
        pocketcore.report_usage(tokens=7)
        if self.cur_retry == 0:
            raise ValueError("first attempt")
        return "ok"


CLASSES = {
    "AsyncItems": AsyncItems,
    "SequentialItems": SequentialItems,
    "ThreadItems": ThreadItems,
    "SyncItems": SyncItems,
}
PARALLEL = ("AsyncItems", "ThreadItems")  # the classes a limiter applies to
RETRIES = 3

# Each item: the tokens each of its attempts reports, and how many of them fail
# (all of them: its fallback gives the result).
items = st.lists(
    st.tuples(
        st.lists(st.integers(0, 10_000), min_size=RETRIES, max_size=RETRIES),
        st.integers(0, RETRIES),
    ),
    max_size=12,
)


def expected(item: Any) -> float:
    amounts, fails = item
    return float(sum(amounts[: min(fails + 1, RETRIES)]))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batch=items,
    kind=st.sampled_from(sorted(CLASSES)),
    executor=st.sampled_from(["asyncio", "trio", "sequential"]),
    limited=st.booleans(),
)
def test_totals_are_the_sum_of_every_attempts_reports(
    totals: Totals, batch: list[Any], kind: str, executor: str, limited: bool
) -> None:
    # Failed attempts count: the provider billed them. Each scope holds what
    # was reported inside it: the item, its batch, the batch's step, the run.
    totals.__init__()  # type: ignore[misc]  # one observer across the examples
    cls = CLASSES[kind]
    if limited and kind in PARALLEL:
        node = cls(max_retries=RETRIES, limiter=Limiter(max_concurrency=2))
    else:
        node = cls(max_retries=RETRIES)
    plain = Plain(max_retries=2)
    node >> plain
    flow = pocketcore.AsyncFlow(start=node)
    pocketcore.run(flow, {"items": batch}, executor=executor)

    want = [expected(item) for item in batch]
    for index, amount in enumerate(want):
        assert totals.items[(kind, index)].get("tokens", 0.0) == amount
        assert totals.items[(kind, index)]["calls"] == min(batch[index][1] + 1, RETRIES)
    assert len(totals.items) == len(batch)
    whole = sum(want)
    ((name, batch_usage),) = totals.batches
    assert name == kind
    assert batch_usage.get("tokens", 0.0) == whole
    assert dict(totals.steps) == {kind: batch_usage, "Plain": {"tokens": 14.0}}
    ((_, run_usage),) = totals.runs
    assert run_usage["tokens"] == whole + 14
    assert run_usage.get("calls", 0.0) == sum(min(f + 1, RETRIES) for _, f in batch)


def test_a_failed_batch_carries_what_its_items_reported(totals: Totals) -> None:
    with pytest.raises(ValueError, match="attempt 0 fails"):
        pocketcore.run(Failing(), {"items": [([5], 1)]}, executor="sequential")
    assert totals.items[("Failing", 0)] == {"tokens": 5.0, "calls": 1.0}
    assert totals.batches == [("Failing", {"tokens": 5.0, "calls": 1.0})]
    assert totals.runs == [("Failing", {"tokens": 5.0, "calls": 1.0})]


def test_nothing_reported_is_an_empty_mapping(totals: Totals) -> None:
    class Quiet(pocketcore.Node):
        def exec(self, prep_res: Any) -> Any:
            return 1

    pocketcore.run(pocketcore.Flow(start=Quiet()), {})
    assert totals.steps == [("Quiet", {})]
    assert totals.runs == [("Flow", {})]


def test_report_usage_outside_an_observed_run_keeps_nothing() -> None:
    seen: list[object] = []

    class Look(pocketcore.Node):
        def exec(self, prep_res: Any) -> Any:
            pocketcore.report_usage(tokens=3)
            seen.append(USAGE.get())

    pocketcore.run(Look(), {})
    pocketcore.report_usage(tokens=3)
    assert seen == [None]
    assert USAGE.get() is None


# --- against a provider -------------------------------------------------------------


def test_the_event_hooks_report_what_the_provider_counted(totals: Totals) -> None:
    # The real openai SDK, with a limiter's event hooks on its client and no
    # report_usage in exec: the answers' usage is what the totals hold.
    sizes = [30, 400, 120, 75, 900, 10] * 3
    with serve(FakeProvider(rpm=6000, tpm=2_000_000, latency=0.01, seed=5)) as provider:
        limiter = Limiter(requests_per_minute=6000, tokens_per_minute=2_000_000)

        async def main() -> None:
            http = openai.DefaultAsyncHttpxClient(event_hooks=limiter.event_hooks())
            async with openai.AsyncOpenAI(
                base_url=provider.url, api_key="test", max_retries=0, http_client=http
            ) as client:
                node = Ask(limiter=limiter, on_error="collect")
                node.set_params({"client": client})
                await node.run_async({"sizes": sizes})  # a run of its own

        asyncio.run(main())
    answered = provider.ok()
    assert len(answered) == len(sizes)
    ((_, usage),) = totals.batches
    assert usage["tokens"] == sum(r.used for r in answered)
    assert usage["input_tokens"] + usage["output_tokens"] == usage["tokens"]
    assert usage["input_tokens"] == sum(max(1, s) for s in sizes)
    for index in range(len(sizes)):
        assert totals.items[("Ask", index)]["input_tokens"] == max(1, sizes[index])
    assert not [r for r in totals.items.values() if isinstance(r, Failed)]


# --- items run in other processes ----------------------------------------------------


class Remote(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: Any) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        pocketcore.report_usage(tokens=item)
        return item


class RemoteThreads(pocketcore.ParallelBatchNode):
    def prep(self, shared: Any) -> Any:
        return shared["items"]

    def exec(self, item: Any) -> Any:
        pocketcore.report_usage(tokens=item)
        return item


@pytest.mark.parametrize("cls", [Remote, RemoteThreads])
@pytest.mark.parametrize("cache", [False, True])
def test_usage_comes_back_with_the_results_of_a_remote_executor(
    totals: Totals, cls: type[Any], cache: bool, tmp_path: Any
) -> None:
    # Pickling runs the work and items as pickled copies (in this process, as a
    # remote executor's worker would): counted once, from what comes back.
    executor = Pickling()
    items = [3, 40, 500]
    settings: dict[str, Any] = {"executor": executor}
    if cache:
        settings["cache"] = str(tmp_path / "cache.db")
    pocketcore.run(cls(), {"items": items}, **settings)
    assert {i: u for (_, i), u in totals.items.items()} == {
        0: {"tokens": 3.0},
        1: {"tokens": 40.0},
        2: {"tokens": 500.0},
    }
    assert totals.batches == [(cls.__name__, {"tokens": 543.0})]
    assert totals.runs == [(cls.__name__, {"tokens": 543.0})]
    if cache:  # the hits ran nothing, and reported nothing
        totals.__init__()  # type: ignore[misc]
        pocketcore.run(cls(), {"items": [*items, 6]}, **settings)
        assert totals.batches == [(cls.__name__, {"tokens": 6.0})]


def test_no_observer_no_metering() -> None:
    executor = Pickling()
    pocketcore.run(Remote(), {"items": [1, 2]}, executor=executor)
    assert "Metered" not in type(executor.seen_fns[0]).__name__


class RunOnly:
    """Hears items and steps without their usage, and the run's end with it."""

    def __init__(self) -> None:
        self.runs: list[dict[str, float]] = []
        self.items = 0

    @pocketcore.hookimpl
    def pocketcore_batch_item_done(self, index: int) -> None:
        self.items += 1

    @pocketcore.hookimpl
    def pocketcore_node_end(self, node: Any) -> None:
        pass

    @pocketcore.hookimpl
    def pocketcore_run_end(self, usage: Mapping[str, float]) -> None:
        self.runs.append(dict(usage))


def test_scopes_nobody_asks_the_usage_of_are_left_out_and_nothing_is_lost() -> None:
    # Only the run keeps totals: every report, from items and plain steps, lands there.
    seen: list[object] = []

    class Look(AsyncItems):
        async def exec_async(self, item: Any) -> Any:
            seen.append(USAGE.get())
            return await super().exec_async(item)

    plugin = RunOnly()
    registry = pocketcore.get_registry()
    registry.register(plugin, name="test-run-only")
    try:
        look = Look(max_retries=RETRIES)
        look >> Plain(max_retries=2)
        items = [([1, 2, 3], 1), ([10, 20, 30], 0)]
        pocketcore.run(pocketcore.AsyncFlow(start=look), {"items": items})
    finally:
        registry.unregister(plugin)
    assert plugin.runs == [{"tokens": 1 + 2 + 10 + 14, "calls": 2 + 1}]
    assert plugin.items == 2
    assert len({id(totals) for totals in seen}) == 1  # the run's: no item or step scope
