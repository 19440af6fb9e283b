"""The kernel's guarantees on the ray executor: limits, pacing, timeouts, retries, fallback,
collect, the result cache, the trace context, fail-fast."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import executor
from hypothesis import given, settings
from hypothesis import strategies as st
from ray_nodes import Counted, Flaky, Spans, TwoFailures, marks, spans

import pocketcore
from pocketcore import Limiter


def overlap(found: list[tuple[float, float]]) -> int:
    """The most spans running at one moment."""
    events = sorted([(s, 1) for s, _ in found] + [(e, -1) for _, e in found])
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


@settings(max_examples=4, deadline=None)
@given(st.integers(min_value=1, max_value=3), st.integers(min_value=4, max_value=8))
def test_max_concurrency_bounds_the_items_on_the_cluster(
    tmp_path_factory: pytest.TempPathFactory, limit: int, count: int
) -> None:
    folder = tmp_path_factory.mktemp("spans")
    node = Spans(max_concurrency=limit)
    node.set_params({"folder": str(folder), "seconds": 0.3})
    shared: dict[str, Any] = {"items": list(range(count))}
    pocketcore.run(node, shared, executor=executor())
    assert shared["results"] == list(range(count))
    found = spans(folder)
    assert len(found) == count
    assert overlap(found) <= limit


def test_without_a_limit_the_items_overlap(tmp_path: Path) -> None:
    node = Spans()
    node.set_params({"folder": str(tmp_path), "seconds": 2.0})
    pocketcore.run(node, {"items": list(range(6))}, executor=executor())
    # Every item at once; a busy machine may start some late. One at a time
    # would be 1. (The conformance suite checks the exact overlap.)
    assert overlap(spans(tmp_path)) >= 3


def test_max_per_second_spaces_the_starts(tmp_path: Path) -> None:
    node = Spans(max_per_second=4)  # a start every 250 ms at most
    node.set_params({"folder": str(tmp_path), "seconds": 0.01})
    pocketcore.run(node, {"items": list(range(5))}, executor=executor())
    starts = [s for s, _ in spans(tmp_path)]
    # 4 gaps of 250 ms where they are submitted; the hop to a worker varies by
    # up to a tenth of a second on a loaded machine. Unpaced, all five start
    # within a few milliseconds.
    assert starts[-1] - starts[0] >= 4 * 0.25 - 0.1


def test_a_limiter_shared_by_two_batches_bounds_both(tmp_path: Path) -> None:
    limiter = Limiter(max_concurrency=2)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()

    class Both(pocketcore.AsyncFlow):
        pass

    one = Spans(limiter=limiter)
    one.set_params({"folder": str(first), "seconds": 0.3})
    two = Spans(limiter=limiter)
    two.set_params({"folder": str(second), "seconds": 0.3})

    async def both() -> None:
        import asyncio

        await asyncio.gather(
            one.run_async({"items": list(range(4))}), two.run_async({"items": list(range(4))})
        )

    executor().run(both)
    assert overlap(spans(first) + spans(second)) <= 2


def test_timeouts_retries_and_collect_run_on_the_worker() -> None:
    node = Flaky(max_retries=2, timeout=0.5, on_error="collect")
    node.set_params({"fails": 1})
    shared: dict[str, Any] = {"items": ["a", "hang", "bad"]}
    pocketcore.run(node, shared, executor=executor())
    first, hung, bad = shared["results"]
    assert first[:2] == ("a", 1)  # failed once, answered at its second attempt
    assert hung[:2] == ("hang", 1)  # timed out once, then answered
    assert isinstance(bad, pocketcore.Failed)
    assert (bad.index, bad.item, bad.attempts) == (2, "bad", 2)
    assert str(bad.exception) == "bad attempt 1"


def test_the_fallback_runs_on_the_worker() -> None:
    node = Flaky(max_retries=2)
    node.set_params({"fails": 5, "fallback": True})
    shared: dict[str, Any] = {"items": ["x"]}
    pocketcore.run(node, shared, executor=executor())
    assert shared["results"] == [("fallback", "x attempt 1")]


def test_a_failure_stops_the_batch_and_is_raised_as_itself() -> None:
    node = Flaky(max_concurrency=1)
    shared: dict[str, Any] = {"items": ["a", "bad", "c", "d"]}
    with pytest.raises(ValueError, match="bad attempt 0") as info:
        pocketcore.run(node, shared, executor=executor())
    # Its traceback on the worker comes along, as its cause.
    assert 'in exec_async\n    raise ValueError(f"{item} attempt {self.cur_retry}")' in str(
        info.value.__cause__
    )


def test_a_failure_ray_reports_as_cancelled_is_still_named() -> None:
    # Item 1 fails first, but its failure is still being pickled when item
    # 0's reaches the driver, which cancels the rest of the batch.
    node = TwoFailures()
    with pytest.raises(ValueError, match="the first failure") as info:
        pocketcore.run(node, {"items": [0, 1]}, executor=executor())
    notes = getattr(info.value, "__notes__", [])
    assert any("SlowToSend: the second failure" in note for note in notes), notes


def test_the_cache_is_read_and_written_here(tmp_path: Path) -> None:
    store = tmp_path / "cache.sqlite"
    folder = tmp_path / "ran"
    folder.mkdir()
    node = Counted()
    node.set_params({"folder": str(folder)})
    shared: dict[str, Any] = {"items": [1, 2, 3]}
    pocketcore.run(node, shared, executor=executor(), cache=str(store))
    assert shared["results"] == [10, 20, 30]
    assert len(marks(folder, "ran-")) == 3
    shared = {"items": [1, 2, 3, 4]}
    pocketcore.run(node, shared, executor=executor(), cache=str(store))
    assert shared["results"] == [10, 20, 30, 40]
    ran = marks(folder, "ran-")
    assert len(ran) == 4  # only item 4 was sent
    assert sum(name.startswith("ran-4-") for name in ran) == 1


def test_the_trace_context_reaches_the_worker() -> None:
    pytest.importorskip("pocketcore_otel")
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    export = pytest.importorskip("opentelemetry.sdk.trace.export")
    memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    from ray_nodes import TraceIds

    import pocketcore_otel

    exporter = memory.InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    plugin = pocketcore_otel.Spans(provider)
    registry = pocketcore.get_registry()
    registry.register(plugin, name="otel-ray-test")
    try:
        shared: dict[str, Any] = {"items": [0, 1, 2]}
        pocketcore.run(TraceIds(), shared, executor=executor())
    finally:
        registry.unregister(plugin)
        provider.shutdown()
    items = {
        span.context.span_id: span
        for span in exporter.get_finished_spans()
        if span.context is not None
    }
    for _, trace_id, span_id in shared["results"]:
        assert trace_id != 0, "no trace context in the worker"
        assert span_id in items, "the worker's current span is not one recorded here"
        assert items[span_id].context.trace_id == trace_id  # type: ignore[union-attr]
    assert len({span_id for _, _, span_id in shared["results"]}) == 3  # one span per item


def test_the_next_run_reuses_the_instance() -> None:
    start = time.monotonic()
    shared: dict[str, Any] = {"items": [1]}
    pocketcore.run(Flaky(), shared, executor=executor())
    # Starting Ray takes seconds; reusing it, a task's round trip.
    assert time.monotonic() - start < 5
