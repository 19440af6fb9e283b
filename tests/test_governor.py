"""The provider governor: every attempt pays its turn, usage corrects charges, 429s pause all."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import Failed, Limiter
from pocketcore._runtime.governor import request_tokens
from tests.provider import FakeProvider, serve

SLACK = 0.03  # seconds: a wake-up on a busy machine comes late, never early


class RateLimited(Exception):
    """A provider's 429, in the shape clients raise it (status and headers on a response)."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__("429 too many requests")
        headers = {} if retry_after is None else {"retry-after-ms": str(int(retry_after * 1000))}
        self.response = type("Response", (), {"status_code": 429, "headers": headers})()


class Script(pocketcore.AsyncParallelBatchNode):
    """Items are ``(name, outcomes)``: each attempt takes the next outcome ("ok", "429", "boom").

    Every attempt's start is logged with the item's name.
    """

    def __init__(self, log: list[tuple[float, str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log = log
        self.lock = threading.Lock()
        self.turns: dict[str, int] = {}

    async def prep_async(self, shared: Any) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        name, outcomes = item
        with self.lock:
            turn = self.turns.get(name, 0)
            self.turns[name] = turn + 1
            self.log.append((time.monotonic(), name))
        outcome = outcomes[min(turn, len(outcomes) - 1)]
        await anyio.sleep(0.01)
        if outcome == "429":
            with self.lock:
                self.log.append((time.monotonic(), f"{name} refused"))
            raise RateLimited(self.params.get("retry_after"))
        if outcome == "boom":
            raise ValueError(name)
        return name

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["out"] = exec_res


class SyncScript(pocketcore.ParallelBatchNode):
    """:class:`Script` with a blocking ``exec``: its items run on worker threads."""

    def __init__(self, log: list[tuple[float, str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log = log
        self.lock = threading.Lock()
        self.turns: dict[str, int] = {}

    def prep(self, shared: Any) -> Any:
        return shared["items"]

    def exec(self, item: Any) -> Any:
        name, outcomes = item
        with self.lock:
            turn = self.turns.get(name, 0)
            self.turns[name] = turn + 1
            self.log.append((time.monotonic(), name))
        outcome = outcomes[min(turn, len(outcomes) - 1)]
        time.sleep(0.3 if outcome == "slow boom" else 0.01)
        if outcome == "429":
            with self.lock:
                self.log.append((time.monotonic(), f"{name} refused"))
            raise RateLimited(self.params.get("retry_after"))
        if outcome in ("boom", "slow boom"):
            raise ValueError(name)
        return name

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["out"] = exec_res


#: The same script, its items async or blocking (on worker threads).
KINDS = {"async": Script, "blocking": SyncScript}


def starts_of(log: list[tuple[float, str]], name: str) -> list[float]:
    return [t for t, n in log if n == name]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_a_rate_limit_pauses_every_start_and_costs_no_retry(executor: str, kind: str) -> None:
    log: list[tuple[float, str]] = []
    node = KINDS[kind](log, limiter=Limiter(max_concurrency=4))  # max_retries=1: no retry
    node.set_params({"retry_after": 0.3})
    items = [("a", ["429", "ok"]), *((f"b{i}", ["ok"]) for i in range(6))]
    shared: dict[str, Any] = {"items": items}
    pocketcore.run(node, shared, executor=executor)
    assert shared["out"] == [name for name, _ in items]
    (refused_at,) = starts_of(log, "a refused")
    again = starts_of(log, "a")[1]
    assert again >= refused_at + 0.3 - SLACK
    # Nothing else started during the pause either (but for a start that
    # came between the refusal and its signal, on a busy machine).
    during = [t for t, n in log if n[0] == "b" and refused_at + 0.05 < t < refused_at + 0.3 - SLACK]
    assert during == []


def test_patience_ends_the_retries_of_a_rate_limited_item() -> None:
    log: list[tuple[float, str]] = []
    node = Script(log, limiter=Limiter(patience=0.25), on_error="collect")
    node.set_params({"retry_after": 0.05})
    shared: dict[str, Any] = {"items": [("a", ["429"])]}
    started = time.monotonic()
    pocketcore.run(node, shared)
    (failed,) = shared["out"]
    assert isinstance(failed, Failed)
    assert isinstance(failed.exception, RateLimited)
    assert 0.25 <= time.monotonic() - started < 3
    assert len(starts_of(log, "a")) >= 3


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_retry_waits_its_turn_like_a_first_attempt(kind: str) -> None:
    log: list[tuple[float, str]] = []
    node = KINDS[kind](log, limiter=Limiter(max_per_second=10), max_retries=4)
    shared: dict[str, Any] = {"items": [("a", ["boom", "boom", "boom", "ok"])]}
    pocketcore.run(node, shared)
    starts = starts_of(log, "a")
    assert len(starts) == 4
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.1 - SLACK


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_item_waiting_to_retry_holds_no_slot(kind: str) -> None:
    log: list[tuple[float, str]] = []
    node = KINDS[kind](log, limiter=Limiter(max_concurrency=1), max_retries=2, wait=0.3)
    shared: dict[str, Any] = {"items": [("a", ["boom", "ok"]), ("b", ["ok"])]}
    pocketcore.run(node, shared)
    first, second = starts_of(log, "a")
    (b,) = starts_of(log, "b")
    assert first < b < second  # b ran while a waited to retry


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_a_blocking_retry_waiting_its_turn_gives_up_when_the_batch_fails(executor: str) -> None:
    # "a" is refused and its retry waits out a 30 s pause on its worker
    # thread; "c", started before, fails meanwhile. The batch must end with
    # c's failure, not after the pause.
    log: list[tuple[float, str]] = []
    limiter = Limiter(max_concurrency=2)
    node = SyncScript(log, limiter=limiter, max_concurrency=2)
    node.set_params({"retry_after": 30})
    items = [("c", ["slow boom"]), ("a", ["429", "ok"])]
    started = time.monotonic()
    with pytest.raises(ValueError, match="c"):
        pocketcore.run(node, {"items": items}, executor=executor)
    assert time.monotonic() - started < 10
    assert len(starts_of(log, "a")) == 1  # its retry never started
    assert limiter.idle


def test_a_failed_batch_leaves_its_limiter_idle() -> None:
    limiter = Limiter(max_concurrency=2, tokens_per_minute=60_000)  # 1,000 tokens held

    class Costly(Script):
        def cost(self, item: Any) -> float:
            return 300

    log: list[tuple[float, str]] = []
    node = Costly(log, limiter=limiter)
    items = [("a", ["boom"]), *((f"b{i}", ["ok"]) for i in range(20))]
    with pytest.raises(ValueError, match="a"):
        pocketcore.run(node, {"items": items})
    # No slot held, nobody queued: the items that never started took nothing,
    # so two more start at the budget's pace (300 tokens at 1,000 a second).
    assert limiter.idle
    started = time.monotonic()
    shared: dict[str, Any] = {"items": [("c", ["ok"]), ("d", ["ok"])]}
    pocketcore.run(node, shared)
    assert shared["out"] == ["c", "d"]
    assert time.monotonic() - started < 2


def test_cost_is_charged_and_reported_usage_corrects_it() -> None:
    # Next to no refill: the bucket shows exactly what was charged.
    limiter = Limiter(tokens_per_minute=1e-6)
    seen: list[float] = []

    class Reports(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            return [5]

        def cost(self, item: int) -> float:
            return item

        async def exec_async(self, item: int) -> int:
            seen.append(limiter.account.levels()["tokens"])
            pocketcore.report_usage(tokens=1)
            pocketcore.report_usage(tokens=1)  # reports add up
            return item

    pocketcore.run(Reports(limiter=limiter), {})
    assert seen == [pytest.approx(1 - 5)]  # a full bucket of one, charged five
    assert limiter.account.levels()["tokens"] == pytest.approx(1 - 2)
    assert limiter.estimate("tokens") == 2  # what the next call is charged without a cost


def test_without_a_cost_the_estimate_is_the_mean_reported() -> None:
    limiter = Limiter(tokens_per_minute=6_000)  # 100 held
    assert limiter.estimate("tokens") == 100  # nothing reported yet: a full bucket
    limiter.learn({"tokens": 10})
    limiter.learn({"tokens": 30})
    assert limiter.estimate("tokens") == 20


@pytest.mark.parametrize(
    ("value", "error"), [("many", TypeError), (-1, ValueError), (float("nan"), ValueError)]
)
def test_bad_usage_and_costs_are_refused(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="tokens"):
        pocketcore.report_usage(tokens=value)

    class Bad(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            return [1]

        def cost(self, item: Any) -> Any:
            return value

    with pytest.raises(error, match=r"Bad\.cost"):
        pocketcore.run(Bad(limiter=Limiter(tokens_per_minute=600)), {})


def test_report_usage_outside_a_governed_item_does_nothing() -> None:
    pocketcore.report_usage(tokens=5)  # no error, nothing to correct


@settings(max_examples=10, deadline=None)
@given(
    plan=st.lists(
        st.tuples(st.integers(1, 60), st.integers(0, 2)),  # (cost, failures before success)
        min_size=1,
        max_size=12,
    ),
    limit=st.one_of(st.none(), st.integers(1, 3)),
)
def test_no_window_spends_more_than_the_budget_counting_retries(
    plan: list[tuple[int, int]], limit: int | None
) -> None:
    # 3,000 tokens a minute (50 a second, 50 held) and 600 requests a minute.
    limiter = Limiter(limit, requests_per_minute=600, tokens_per_minute=3_000)
    spent: list[tuple[float, int]] = []
    lock = threading.Lock()

    class Spends(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            return list(enumerate(plan))

        def cost(self, item: Any) -> float:
            return item[1][0]

        async def exec_async(self, item: Any) -> Any:
            index, (cost, failures) = item
            with lock:
                spent.append((time.monotonic(), cost))
                tries = sum(1 for t, c in spent if c == cost)
            if self.cur_retry < failures:
                raise ValueError(index)
            return tries

    pocketcore.run(Spends(limiter=limiter, max_retries=3), {})
    assert len(spent) == sum(failures + 1 for _, failures in plan)
    spent.sort()
    for a, (start, _) in enumerate(spent):
        for b in range(a, len(spent)):
            window = spent[b][0] - start + SLACK
            tokens = sum(c for _, c in spent[a : b + 1])
            assert tokens <= 50 + 50 * window + 10  # one call's excess over capacity: none here
            assert b - a + 1 <= 1 + 10 * window  # requests: one held, 10 a second
    assert limiter.idle


# --- against a provider -------------------------------------------------------------


class Ask(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: Any) -> Any:
        return shared["sizes"]

    async def exec_async(self, size: int) -> int:
        reply = await self.params["client"].chat.completions.create(
            model="fake",
            messages=[{"role": "user", "content": "x" * (size * 4)}],
            max_tokens=50,
        )
        return int(reply.usage.total_tokens)

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["out"] = exec_res


def test_a_batch_under_the_providers_published_limits_loses_no_item() -> None:
    # 40 calls of 100 to 3,000 tokens against 600,000 tokens a minute: the
    # limiter declares just the published limits and watches the responses.
    sizes = [100, 3000, 400, 1500, 2500, 700, 200, 1000] * 5
    rpm, tpm = 3000, 600_000
    with serve(FakeProvider(rpm=rpm, tpm=tpm, latency=0.05, seed=3)) as provider:
        limiter = Limiter(requests_per_minute=rpm, tokens_per_minute=tpm)

        async def main() -> dict[str, Any]:
            http = openai.DefaultAsyncHttpxClient(event_hooks=limiter.event_hooks())
            async with openai.AsyncOpenAI(
                base_url=provider.url, api_key="test", max_retries=0, http_client=http
            ) as client:
                node = Ask(limiter=limiter, on_error="collect")
                node.set_params({"client": client})
                shared: dict[str, Any] = {"sizes": sizes}
                await node.run_async(shared)
                return shared

        shared = asyncio.run(main())
    assert not [r for r in shared["out"] if isinstance(r, Failed)]
    assert len(provider.ok()) == len(sizes)
    assert limiter.idle
    # The usage the hook reported taught the limiter what calls cost.
    assert 500 < limiter.estimate("tokens") < 2000


def test_the_tokens_a_request_asks_for() -> None:
    body = b'{"messages": [{"role": "user", "content": "abcdefgh"}], "max_tokens": 10}'
    assert request_tokens(body) == 2 + 10
    parts = b'{"messages": [{"content": [{"type": "text", "text": "abcd"}]}]}'
    assert request_tokens(parts) == 1
    assert request_tokens(b"not json") is None
    assert request_tokens(b'{"input": "embeddings"}') is None


def test_the_docs_example_runs_against_a_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    # docs/calling-llm-providers.md, its first Python block, as written; the
    # SDK finds the provider through its environment variables.
    page = (Path(__file__).parent.parent / "docs" / "calling-llm-providers.md").read_text()
    code = page.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "calling-llm-providers.md", "exec"), namespace)
    with serve(FakeProvider(rpm=1500, tpm=1_000_000, latency=0.01)) as provider:
        monkeypatch.setenv("OPENAI_BASE_URL", provider.url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        summaries = asyncio.run(namespace["main"](["bees dance", "ants march", "owls hoot"]))
    assert len(summaries) == 3
    assert all(isinstance(s, str) and "tokens read" in s for s in summaries)
    assert namespace["llm"].idle


def test_auto_concurrency_doubles_while_calls_succeed_up_to_its_ceiling() -> None:
    limiter = Limiter(max_concurrency="auto", ceiling=12)
    assert limiter.concurrency == 2
    peaks: list[tuple[int, int]] = []  # (in flight, bound) as each call starts
    flying = [0]

    class Quick(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            return range(80)

        async def exec_async(self, item: int) -> int:
            flying[0] += 1
            peaks.append((flying[0], limiter.concurrency or 0))
            await anyio.sleep(0.005)
            flying[0] -= 1
            return item

    pocketcore.run(Quick(limiter=limiter), {})
    assert limiter.concurrency == 12
    assert all(n <= bound for n, bound in peaks)
    assert max(n for n, _ in peaks) > 2  # it did grow while running
    assert limiter.idle


def test_auto_concurrency_halves_on_a_rate_limit_grows_by_one_then_doubles_again() -> None:
    limiter = Limiter(max_concurrency="auto", ceiling=64)
    for _ in range(2 + 4 + 8):  # three rounds: 2 -> 4 -> 8 -> 16
        limiter.calm()
    assert limiter.concurrency == 16
    limiter.signal(0.0)
    assert limiter.concurrency == 8
    limiter.signal(0.0)  # within a second of the last cut: the same burst of refusals
    assert limiter.concurrency == 8
    for _ in range(8):
        limiter.calm()
    assert limiter.concurrency == 9  # after the first signal, one more a round
    assert "auto concurrency, now 9, at most 64" in limiter.describe()
    for _ in range(9):
        limiter.calm()
    assert limiter.concurrency == 10
    for _ in range(10):  # a third round without a signal: the provider has room, double
        limiter.calm()
    assert limiter.concurrency == 20
    for _ in range(20):
        limiter.calm()
    assert limiter.concurrency == 40


@pytest.mark.parametrize("value", ["fast", 0, -2, 1.5])
def test_bad_concurrency_is_named(value: Any) -> None:
    with pytest.raises(pocketcore.ConfigError, match="max_concurrency"):
        Limiter(max_concurrency=value)
    with pytest.raises(pocketcore.ConfigError, match="ceiling"):
        Limiter(max_concurrency="auto", ceiling=0)


class Throttled(Exception):
    """What a client pocketcore does not read by shape raises when the provider says slow down."""

    def __init__(self, wait: float) -> None:
        super().__init__("throttled")
        self.wait = wait


class Teaches:
    """A plugin that teaches pocketcore that client's exception."""

    @pocketcore.hookimpl
    def pocketcore_classify_error(self, exception: BaseException) -> Any:
        if isinstance(exception, Throttled):
            return pocketcore.ProviderSignal(rate_limited=True, retry_after=exception.wait)
        return None


def test_a_plugin_teaches_a_rate_limit_from_another_client() -> None:
    calls: list[float] = []

    class Calls(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            return [1]

        async def exec_async(self, item: int) -> int:
            calls.append(time.monotonic())
            if len(calls) == 1:
                raise Throttled(0.2)
            return item

    registry = pocketcore.get_registry()
    plugin = Teaches()
    registry.register(plugin, name="teaches")
    try:
        pocketcore.run(Calls(limiter=Limiter()), {})  # one attempt: no retry of its own
    finally:
        registry.unregister(plugin)
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.2 - SLACK
    # Without the plugin the same exception is an ordinary failure.
    calls.clear()
    with pytest.raises(Throttled):
        pocketcore.run(Calls(limiter=Limiter()), {})


def test_thread_backed_items_are_charged_once_and_corrected_by_what_they_report() -> None:
    limiter = Limiter(tokens_per_minute=60_000)

    class OnThreads(pocketcore.ParallelBatchNode):
        def prep(self, shared: Any) -> Any:
            return [3, 4]

        def cost(self, item: int) -> float:
            return 10

        def exec(self, item: int) -> int:
            pocketcore.report_usage(tokens=item)  # on the worker thread
            return item

    pocketcore.run(OnThreads(limiter=limiter, max_concurrency=1), {})
    # Each item was charged its cost of 10, and corrected (and the estimate
    # taught) by what its exec reported on the worker thread.
    assert limiter.estimate("tokens") == 3.5
    assert limiter.idle


class ItemStarts:
    """A plugin that hears each batch item start."""

    def __init__(self) -> None:
        self.started: list[int] = []

    @pocketcore.hookimpl
    def pocketcore_batch_item_start(self, index: int) -> None:
        self.started.append(index)


@settings(max_examples=14, deadline=None)
@given(
    scripts=st.lists(
        st.lists(st.sampled_from(["ok", "429", "boom"]), min_size=1, max_size=3),
        min_size=1,
        max_size=6,
    ),
    kind=st.sampled_from(list(KINDS)),
    limit=st.one_of(st.none(), st.integers(1, 3)),
    collect=st.booleans(),
    paced=st.booleans(),
    heard=st.booleans(),
    retries=st.sampled_from([1, 2]),
)
def test_a_refusal_stops_every_start_until_its_reset_and_nothing_stays_reserved(
    scripts: list[list[str]],
    kind: str,
    limit: int | None,
    collect: bool,
    paced: bool,
    heard: bool,
    retries: int,
) -> None:
    # Each refusal asks for 0.2 s: no attempt of the batch may start in that
    # time (bar one already on its way when the refusal came, within 50 ms);
    # and once the batch has ended, however it ended, the limiter is idle.
    # Whether a budget prices each attempt and whether someone hears items
    # start decide how the limiter is entered (with a ticket, by each
    # attempt alone, or, with one attempt per item, by the executor's loop):
    # the same holds every way.
    log: list[tuple[float, str]] = []
    # An item refused at every attempt gives up after a second of patience.
    limiter = Limiter(limit, max_per_second=50 if paced else None, patience=1.0)
    node = KINDS[kind](
        log, limiter=limiter, max_retries=retries, on_error="collect" if collect else "raise"
    )
    node.set_params({"retry_after": 0.2})
    items = [(f"i{n}", outcomes) for n, outcomes in enumerate(scripts)]
    listener = ItemStarts()
    registry = pocketcore.get_registry()
    if heard:
        registry.register(listener, name="item-starts")
    try:
        pocketcore.run(node, {"items": items})
    except (ValueError, RateLimited):
        assert not collect
    finally:
        if heard:
            registry.unregister(listener)
    if heard and collect:  # the listener was in force: every item was heard start
        assert sorted(listener.started) == list(range(len(items)))
    refusals = [t for t, name in log if name.endswith(" refused")]
    starts = [t for t, name in log if not name.endswith(" refused")]
    for refused in refusals:
        inside = [t for t in starts if refused + 0.05 < t < refused + 0.2 - SLACK]
        assert inside == [], f"{len(inside)} attempts started during a pause"
    assert limiter.idle
    assert limiter.account.paused_for() <= 0.2
