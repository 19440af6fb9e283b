"""Per-item controls of parallel batches: pacing, shared limiters, collecting failures.

Each is enforced in dispatch, once, for every executor: ``max_per_second``
spaces the starts of a batch, a ``Limiter`` bounds items across every batch
that names it, and ``on_error="collect"`` keeps every item's outcome.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import ConfigError, Failed, Limiter
from pocketcore.testing import RecordingExecutor
from pocketcore_asyncio import AsyncioExecutor

from .helpers import configured
from .test_remote import Pickling

executors = ["sequential", "asyncio", "trio"]
# An executor that gates items (pocketcore.GatingExecutor) enters the batch's
# limiters itself; one that does not gets each item wrapped instead, which
# must hold the same bounds.
wrapped = pytest.param(RecordingExecutor(inner=AsyncioExecutor()), id="wrapped-asyncio")
paced_executors = [*executors, wrapped]
slow_settings = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


class Starts:
    """Records when each item starts and how many are in flight, from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: list[float] = []
        self.in_flight = self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.times.append(time.monotonic())
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1


class AsyncItems(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return range(shared["n"])

    async def exec_async(self, item: int) -> int:
        probe: Starts = self.params["probe"]
        probe.enter()
        try:
            await anyio.sleep(self.params.get("hold", 0.0))
        finally:
            probe.leave()
        if item in self.params.get("fail", ()):
            raise ValueError(item)
        return item

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared.setdefault("out", []).append(exec_res)


class ThreadItems(pocketcore.ParallelBatchNode):
    def prep(self, shared: dict[str, Any]) -> Any:
        return range(shared["n"])

    def exec(self, item: int) -> int:
        probe: Starts = self.params["probe"]
        probe.enter()
        try:
            time.sleep(self.params.get("hold", 0.0))
        finally:
            probe.leave()
        if item in self.params.get("fail", ()):
            raise ValueError(item)
        return item

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared.setdefault("out", []).append(exec_res)


KINDS = {"async": AsyncItems, "threads": ThreadItems}

# Starts are spaced by sleeping until each one's reserved time, so an item
# can only start late, never early. How late varies (a wake-up of the loop, a
# worker thread picked up, on a shared two-core machine), so two recorded
# starts may come closer than their reserved times; this is the slack the
# pacing checks allow a pair of starts. 20 ms was too little on a machine
# running other test suites at once (a wake-up came about 30 ms late); an
# unpaced batch still fails the checks by far (nine starts at 20 per second
# are reserved 0.45 s apart).
JITTER = 0.05


@pytest.mark.parametrize("executor", paced_executors)
@slow_settings
@given(
    kind=st.sampled_from(sorted(KINDS)),
    n=st.integers(2, 10),
    rate=st.sampled_from([20.0, 50.0, 100.0]),
    limit=st.one_of(st.none(), st.integers(1, 4)),
)
def test_starts_are_paced_evenly(
    executor: Any, kind: str, n: int, rate: float, limit: int | None
) -> None:
    probe = Starts()
    node = KINDS[kind](max_per_second=rate, max_concurrency=limit)
    node.set_params({"probe": probe})
    pocketcore.run(node, {"n": n}, executor=executor)
    starts = sorted(probe.times)
    assert len(starts) == n
    # Never faster than the rate, but for the lateness of the first start ...
    assert starts[-1] - starts[0] >= (n - 1) / rate - JITTER
    # ... and in any window of T seconds at most floor(rate * T) + 1 starts.
    for i in range(n):
        for j in range(i + 1, n):
            window = starts[j] - starts[i]
            assert j - i + 1 <= math.floor(rate * (window + JITTER)) + 1


@pytest.mark.parametrize("executor", paced_executors)
@slow_settings
@given(bound=st.integers(1, 3), per_node=st.integers(1, 6))
def test_a_shared_limiter_bounds_every_batch_naming_it(
    executor: Any, bound: int, per_node: int
) -> None:
    probe = Starts()
    shared_limiter = Limiter(max_concurrency=bound, name="llm")

    class Pass(pocketcore.AsyncParallelBatchFlow):
        async def prep_async(self, shared: dict[str, Any]) -> Any:
            return [{"pass": 0}, {"pass": 1}]

    first = AsyncItems(limiter=shared_limiter)
    second = ThreadItems(limiter=shared_limiter)
    first >> second
    flow = Pass(start=first)  # the passes run side by side, as do their items
    flow.set_params({"probe": probe, "hold": 0.003})
    shared: dict[str, Any] = {"n": per_node}
    pocketcore.run(flow, shared, executor=executor)
    assert len(probe.times) == 4 * per_node
    assert probe.peak <= bound


def test_a_declared_limiter_is_one_budget_per_run_and_an_unknown_one_is_named() -> None:
    files = {"pocketcore.toml": "[limiters.llm]\nmax_concurrency = 1\n"}
    probe = Starts()
    flow = pocketcore.AsyncFlow(start=AsyncItems(limiter="llm") >> ThreadItems(limiter="llm"))
    flow.set_params({"probe": probe, "hold": 0.002})
    with configured(files=files):
        pocketcore.run(flow, {"n": 5}, executor="asyncio")
        assert probe.peak == 1
        with pytest.raises(ConfigError, match=r"unknown limiter 'openai'.*declared limiters: llm"):
            pocketcore.run(AsyncItems(limiter="openai"), {"n": 1})


@pytest.mark.parametrize("executor", paced_executors)
@slow_settings
@given(
    kind=st.sampled_from(sorted(KINDS)),
    n=st.integers(0, 8),
    data=st.data(),
    limit=st.one_of(st.none(), st.integers(1, 3)),
    retries=st.integers(1, 3),
)
def test_collect_keeps_every_outcome_in_its_slot(
    executor: str, kind: str, n: int, data: st.DataObject, limit: int | None, retries: int
) -> None:
    failing = data.draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=n)) if n else set()
    probe = Starts()
    node = KINDS[kind](max_retries=retries, on_error="collect", max_concurrency=limit)
    node.set_params({"probe": probe, "fail": failing})
    shared: dict[str, Any] = {"n": n}
    pocketcore.run(node, shared, executor=executor)  # item failures do not raise
    (out,) = shared["out"]
    assert len(out) == n
    for index, value in enumerate(out):
        if index in failing:
            assert isinstance(value, Failed)
            assert (value.index, value.item, value.attempts) == (index, index, retries)
            assert isinstance(value.exception, ValueError)
        else:
            assert value == index
    assert len(probe.times) == n - len(failing) + len(failing) * retries
    assert probe.in_flight == 0  # nothing still running


def test_collect_lets_base_exceptions_through() -> None:
    class Exits(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            return [0, 1]

        async def exec_async(self, item: int) -> None:
            raise SystemExit(item)

    with pytest.raises(SystemExit):
        pocketcore.run(Exits(on_error="collect"))


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_per_second", 0),
        ("max_per_second", -1.5),
        ("max_per_second", math.nan),
        ("max_per_second", math.inf),
        ("max_per_second", True),
        ("max_per_second", "fast"),
        ("on_error", "ignore"),
        ("limiter", 3),
    ],
)
def test_bad_values_name_their_source(setting: str, value: Any) -> None:
    node_source = f"argument {setting}= of AsyncItems()"
    with pytest.raises(ConfigError, match=re.escape(node_source)):
        AsyncItems(**{setting: value})
    run_source = f"argument {setting}= of pocketcore.run()"
    with pytest.raises(ConfigError, match=re.escape(run_source)):
        pocketcore.run(AsyncItems(), {"n": 1}, **{setting: value})


@pytest.mark.parametrize(
    ("env", "files", "source"),
    [
        ({"POCKETCORE_MAX_PER_SECOND": "0"}, {}, "environment variable POCKETCORE_MAX_PER_SECOND"),
        ({"POCKETCORE_MAX_PER_SECOND": "nan"}, {}, "POCKETCORE_MAX_PER_SECOND"),
        ({"POCKETCORE_ON_ERROR": "skip"}, {}, "environment variable POCKETCORE_ON_ERROR"),
        (
            {},
            {"pocketcore.toml": "max_per_second = -2\n"},
            "key 'max_per_second' in pocketcore.toml",
        ),
        (
            {},
            {"pocketcore.toml": "[limiters.llm]\nrate = 3\n"},
            "[limiters.llm] in pocketcore.toml",
        ),
        (
            {},
            {"pocketcore.toml": "[limiters.llm]\nmax_per_second = 0\n"},
            "[limiters.llm] in pocketcore.toml",
        ),
    ],
)
def test_bad_values_from_the_environment_and_files(
    env: dict[str, str], files: dict[str, str], source: str
) -> None:
    with configured(env, files), pytest.raises(ConfigError, match=re.escape(source)):
        pocketcore.run(AsyncItems(), {"n": 1})


class OwnBlocking(RecordingExecutor):
    """A local executor that runs blocking items itself, and does not gate them."""

    async def map_blocking(self, fn: Any, items: Any, *, limit: int | None) -> list[Any]:
        return [fn(item) for item in items]


@pytest.mark.parametrize(
    ("kind", "executor"),
    [("async", Pickling()), ("threads", Pickling()), ("threads", OwnBlocking())],
    ids=["remote", "remote-blocking", "own-map-blocking"],
)
def test_an_executor_that_runs_the_items_itself_without_a_gate_refuses_pacing(
    kind: str, executor: Any
) -> None:
    probe = Starts()
    node = KINDS[kind](limiter=Limiter(max_per_second=10))
    node.set_params({"probe": probe})
    with pytest.raises(ConfigError, match=r"does not declare gates_items.*cannot pace"):
        pocketcore.run(node, {"n": 2}, executor=executor)
    assert probe.times == []  # refused before any item started


# --- timeouts per attempt -------------------------------------------------------


class Hangs(pocketcore.AsyncParallelBatchNode):
    """Item i hangs on its first ``hangs[i]`` attempts, then answers at once."""

    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return range(len(self.params["hangs"]))

    async def exec_async(self, item: int) -> tuple[int, int]:
        probe: Starts | None = self.params.get("probe")  # none when sent to other processes
        if probe is not None:
            probe.enter()
        try:
            if self.cur_retry < self.params["hangs"][item]:
                await anyio.sleep(30)  # only the timeout ends this
            return item, self.cur_retry
        finally:
            if probe is not None:
                probe.leave()

    async def exec_fallback_async(self, item: int, exc: Exception) -> Any:
        return ("fallback", item, self.cur_retry, type(exc).__name__)

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


@pytest.mark.parametrize("executor", executors)
@slow_settings
@given(
    hangs=st.lists(st.integers(0, 3), min_size=1, max_size=5),
    retries=st.integers(1, 3),
    limit=st.one_of(st.none(), st.integers(1, 3)),
)
def test_a_timeout_fails_the_attempt_and_retries_apply(
    executor: str, hangs: list[int], retries: int, limit: int | None
) -> None:
    probe = Starts()
    node = Hangs(max_retries=retries, timeout=0.02, max_concurrency=limit)
    node.set_params({"probe": probe, "hangs": hangs})
    shared: dict[str, Any] = {}
    pocketcore.run(node, shared, executor=executor)
    expected = [
        (i, h) if h < retries else ("fallback", i, retries - 1, "TimeoutError")
        for i, h in enumerate(hangs)
    ]
    assert shared["out"] == expected  # each item's own cur_retry, attempt by attempt
    assert len(probe.times) == sum(min(h + 1, retries) for h in hangs)
    assert probe.in_flight == 0  # every timed-out attempt was cancelled, not left running


def test_a_timeout_travels_with_the_work_to_a_remote_executor() -> None:
    node = Hangs(max_retries=2, timeout=0.02)
    node.set_params({"hangs": [1, 0, 2]})
    shared: dict[str, Any] = {}
    pocketcore.run(node, shared, executor=Pickling())
    assert shared["out"] == [(0, 1), (1, 0), ("fallback", 2, 1, "TimeoutError")]


def test_a_timeout_on_blocking_items_is_refused_when_the_run_starts() -> None:
    probe = Starts()
    with pytest.raises(ConfigError, match=r"timeout .* does nothing for ThreadItems.*can stop it"):
        ThreadItems(timeout=1)
    node = ThreadItems()
    node.set_params({"probe": probe})
    with pytest.raises(ConfigError, match="ThreadItems has a timeout"):
        pocketcore.run(node, {"n": 2}, timeout=1)
    assert probe.times == []  # refused before anything ran


def test_a_pocketflow_nodes_own_timeout_attribute_is_left_alone() -> None:
    class Fetch(pocketcore.Node):
        def __init__(self) -> None:
            super().__init__()
            self.timeout = "30s"  # the program's own, for its HTTP client

        def exec(self, prep_res: Any) -> str:
            return "fetched"

        def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
            return str(exec_res)

    assert pocketcore.run(pocketcore.Flow(start=Fetch())) == "fetched"


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, True, "soon"])
def test_a_bad_timeout_names_its_source(value: Any) -> None:
    with pytest.raises(ConfigError, match=re.escape("argument timeout= of Hangs()")):
        Hangs(timeout=value)
    with (
        configured({"POCKETCORE_TIMEOUT": str(value)}),
        pytest.raises(ConfigError, match="POCKETCORE_TIMEOUT"),
    ):
        pocketcore.run(AsyncItems(), {"n": 1})


# --- regressions found in review --------------------------------------------------


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_one_limiter_serves_two_runs_on_two_threads(executor: str) -> None:
    # Each run has its own event loop on its own thread; a slot released on
    # one loop wakes a waiter on the other without waiting for it.
    shared_limiter = Limiter(max_concurrency=2)
    outcomes: dict[str, Any] = {}

    def run(name: str) -> None:
        probe = Starts()
        node = AsyncItems(limiter=shared_limiter)
        node.set_params({"probe": probe, "hold": 0.001})
        shared: dict[str, Any] = {"n": 200}
        try:
            pocketcore.run(node, shared, executor=executor)
            outcomes[name] = shared["out"][0]
        except BaseException as exc:  # reported below, not lost in the thread
            outcomes[name] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in "AB"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not any(thread.is_alive() for thread in threads), "a run hung"
    assert outcomes == {"A": list(range(200)), "B": list(range(200))}


def test_a_batch_waiting_for_a_shared_slot_still_spaces_its_starts() -> None:
    class Uneven(AsyncItems):
        async def exec_async(self, item: int) -> int:
            self.params["probe"].enter()
            await anyio.sleep([0.3, 0.25, 0.0, 0.0, 0.0][item])
            self.params["probe"].leave()
            return item

    probe = Starts()
    node = Uneven(max_per_second=10, limiter=Limiter(max_concurrency=2))
    node.set_params({"probe": probe})
    pocketcore.run(node, {"n": 5}, executor="asyncio")
    starts = sorted(probe.times)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Items 2-4 waited for a slot; their turns are taken after it, so they
    # start 0.1 s apart rather than together.
    assert min(gaps) >= 0.1 - JITTER


def test_a_flows_timeout_applies_to_the_batches_inside_it() -> None:
    flow = pocketcore.AsyncFlow(start=Hangs(), timeout=0.05)
    flow.set_params({"hangs": [1, 0]})  # a flow hands its params to its nodes
    shared: dict[str, Any] = {}
    started = time.monotonic()
    pocketcore.run(flow, shared)
    assert time.monotonic() - started < 5
    # Item 0's first attempt hung: the flow's timeout ended it, and its
    # fallback got the TimeoutError.
    assert shared["out"] == [("fallback", 0, 0, "TimeoutError"), (1, 0)]


@pytest.mark.parametrize("setting", [{"on_error": "collect"}, {"max_per_second": 3}])
def test_settings_other_than_the_executor_do_not_read_it(
    setting: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POCKETCORE_EXECUTOR", "no-such-executor")

    class Plain(pocketcore.AsyncNode):
        async def exec_async(self, prep_res: Any) -> str:
            return "ran"

        async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> str:
            return str(exec_res)

    assert pocketcore.run(pocketcore.AsyncFlow(start=Plain(), **setting)) == "ran"


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
@pytest.mark.parametrize("kind", ["async", "threads"])
@pytest.mark.parametrize("passes", [3, 5])
def test_a_limiter_over_a_parallel_batch_flow_bounds_its_items_not_its_passes(
    executor: str, kind: str, passes: int
) -> None:
    # Passes that took the limiter's slots left none for the items inside
    # them, which waited forever; the passes hold none, and the bound holds.
    probe = Starts()
    shared_limiter = Limiter(max_concurrency=2, name="llm")

    class Pass(pocketcore.AsyncParallelBatchFlow):
        async def prep_async(self, shared: dict[str, Any]) -> Any:
            return [{"pass": n} for n in range(passes)]

    flow = Pass(start=KINDS[kind]())
    flow.set_params({"probe": probe, "hold": 0.002})
    shared: dict[str, Any] = {"n": 3}
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            pocketcore.run(flow, shared, executor=executor, limiter=shared_limiter)
        except BaseException as exc:  # handed to the test below
            outcome.append(exc)
        else:
            outcome.append(None)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=60)
    assert outcome == [None], outcome or "the run hung"
    assert len(probe.times) == passes * 3
    assert probe.peak <= 2
