"""pocketcore.Timeline: one bar per item, lanes no more than what ran at once, one offline file."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore._cli.demos import images
from pocketcore._front.timeline import (
    MAX_BARS,
    MAX_LANES,
    Batch,
    Span,
    concurrency,
    density,
    pack,
)
from pocketcore._front.timeline.render import OUTCOMES, render_page

from .strategies import executor_names, limits
from .timeline_page import Page, assert_self_contained


class Work(pocketcore.AsyncParallelBatchNode):
    """Items wait their delay (ms) and fail when they are the bad one; records what ran at once."""

    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return list(range(len(self.params["delays"])))

    async def exec_async(self, i: int) -> int:
        seen = self.params["seen"]
        seen.enter(i)
        try:
            await anyio.sleep(self.params["delays"][i] / 1000)
            if i == self.params["bad"]:
                raise ValueError(f"item {i} is bad")
            return i
        finally:
            seen.leave()


class WorkThreads(pocketcore.ParallelBatchNode):
    """:class:`Work` on worker threads."""

    def prep(self, shared: dict[str, Any]) -> list[int]:
        return list(range(len(self.params["delays"])))

    def exec(self, i: int) -> int:
        seen = self.params["seen"]
        seen.enter(i)
        try:
            time.sleep(self.params["delays"][i] / 1000)
            if i == self.params["bad"]:
                raise ValueError(f"item {i} is bad")
            return i
        finally:
            seen.leave()


class Seen:
    """Which items started, and the most that ran at once (inside ``exec``)."""

    def __init__(self) -> None:
        self.started: set[int] = set()
        self.live = self.peak = 0
        self.lock = threading.Lock()

    def enter(self, i: int) -> None:
        with self.lock:
            self.started.add(i)
            self.live += 1
            self.peak = max(self.peak, self.live)

    def leave(self) -> None:
        with self.lock:
            self.live -= 1


def run_batch(
    tmp_path: Path,
    delays: list[int],
    bad: int | None,
    executor: str,
    limit: int | None,
    threads: bool = False,
    **options: Any,
) -> tuple[str, Seen]:
    seen = Seen()
    node = WorkThreads() if threads else Work()
    node.set_params({"delays": delays, "bad": bad, "seen": seen})
    path = tmp_path / "run.html"
    with pocketcore.Timeline(path, **options):
        try:
            pocketcore.run(node, executor=executor, max_concurrency=limit)
        except ValueError:
            assert bad is not None
    return path.read_text(encoding="utf-8"), seen


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    delays=st.lists(st.integers(0, 3), max_size=24),
    bad=st.none() | st.integers(0, 23),
    executor=executor_names,
    limit=limits,
    threads=st.booleans(),
)
def test_one_bar_per_item_on_no_more_lanes_than_ran_at_once(
    tmp_path: Path,
    delays: list[int],
    bad: int | None,
    executor: str,
    limit: int | None,
    threads: bool,
) -> None:
    text, seen = run_batch(tmp_path, delays, bad, executor, limit, threads)
    assert_self_contained(text)
    bars = Page(text).items()
    indices = [int(b["data-index"]) for b in bars]
    assert len(indices) == len(set(indices))  # each item once
    if threads:
        # A thread-backed item starts in the task that hands it to a worker
        # thread: a sibling's failure may cancel it before its exec runs.
        assert seen.started <= set(indices)
        assert all(
            "cancelled" in b["classes"] for b in bars if int(b["data-index"]) not in seen.started
        )
    else:
        assert set(indices) == seen.started
    lanes = {int(b["data-lane"]) for b in bars}
    assert lanes == set(range(len(lanes)))  # packed from lane 0, none skipped
    if limit is not None:
        assert len(lanes) <= limit
    if executor == "sequential":
        assert len(lanes) <= 1
    if not threads:
        # An item's start and end are reported in its own task with no await
        # between them and its exec: what overlaps on the page overlapped there.
        assert len(lanes) <= max(seen.peak, 0)
    for bar in bars:
        failed = bad is not None and int(bar["data-index"]) == bad
        assert ("failed" in bar["classes"]) == failed
        if failed:
            assert f"ValueError: item {bad} is bad" in bar["title"]
        else:
            assert bar["classes"] & {"ok", "cancelled"}


@given(
    st.lists(st.tuples(st.integers(0, 50), st.integers(1, 20)), max_size=40),
)
def test_packing_needs_exactly_as_many_lanes_as_were_in_flight(
    intervals: list[tuple[int, int]],
) -> None:
    spans = [Span("N", start, start + length, "ok") for start, length in intervals]
    lanes, count = pack(spans)
    for lane in range(count):
        on_lane = sorted(
            (s for s, n in zip(spans, lanes, strict=True) if n == lane), key=lambda s: s.start
        )
        assert on_lane, "an empty lane"
        assert all(a.end <= b.start for a, b in itertools.pairwise(on_lane))
    most = max((sum(1 for s in spans if s.start <= t < s.end) for t in range(71)), default=0)
    assert count == most
    assert concurrency(spans)[0] == most


def test_packing_touching_and_instant_spans() -> None:
    spans = [Span("N", 0, 1, "ok"), Span("N", 1, 2, "ok"), Span("N", 1, 1, "ok")]
    assert pack(spans)[1] == 1
    assert concurrency([Span("N", 0, 2, "ok"), Span("N", 1, 3, "ok")]) == (2, 4 / 3)


def test_the_context_manager_registers_for_the_block_and_writes_when_it_raises(
    tmp_path: Path,
) -> None:
    registry = pocketcore.get_registry()
    before = set(registry.pm.get_plugins())
    seen = Seen()
    node = Work()
    node.set_params({"delays": [5, 0, 5], "bad": 1, "seen": seen})
    path = tmp_path / "failed.html"
    registered = []

    def run() -> None:
        with pocketcore.Timeline(path) as timeline:
            registered.append(timeline in registry.pm.get_plugins())
            pocketcore.run(node, executor="trio")

    with pytest.raises(ValueError, match="item 1 is bad"):
        run()
    assert registered == [True]
    assert set(registry.pm.get_plugins()) == before
    page = Page(path.read_text(encoding="utf-8"))
    (failed,) = [b for b in page.items() if "failed" in b["classes"]]
    assert failed["data-index"] == "1"
    assert {b["data-index"] for b in page.of_class("cancelled")} == {"0", "2"}
    (run,) = page.of_class("run")
    assert run["title"].startswith("Work: ")
    assert "failed" in run["classes"]
    assert run["title"].endswith("failed: ValueError: item 1 is bad")


def test_registered_by_hand_it_writes_when_asked(tmp_path: Path) -> None:
    timeline = pocketcore.Timeline()
    registry = pocketcore.get_registry()
    registry.register(timeline, name="test-timeline")
    try:
        flow = images.build(True)
        pocketcore.run(flow, images.DEMO.start(0.0), executor="trio")
    finally:
        registry.unregister(timeline)
    timeline.write(tmp_path / "images.html")
    page = Page((tmp_path / "images.html").read_text(encoding="utf-8"))
    passes = len(images.IMAGES) * len(images.FILTERS)
    assert len(page.items()) == passes
    # The batch flow is a step of no flow (it is the run's target); each pass
    # runs three steps.
    assert len(page.of_class("step")) == 3 * passes
    assert len(page.of_class("run")) == 1


def test_items_reported_without_a_start_are_counted_not_drawn() -> None:
    timeline = pocketcore.Timeline()
    node = object()
    timeline.pocketcore_batch_start(node=node, size=2, executor=None, limit=None, limiters=())
    timeline.pocketcore_batch_item_done(node=node, index=0, result=None, exception=None, usage={})
    timeline.pocketcore_batch_item_done(node=node, index=1, result=None, exception=None, usage={})
    text = timeline.html()
    assert Page(text).items() == []
    assert "2 items ran where they cannot be observed" in text
    assert "object (2 items): 0 recorded, 2 not observed, 0 lanes" in text


def test_an_item_still_running_is_drawn_unfinished() -> None:
    timeline = pocketcore.Timeline()
    node = object()
    timeline.pocketcore_batch_start(node=node, size=1, executor=None, limit=None, limiters=())
    timeline.pocketcore_batch_item_start(node=node, index=0)
    (bar,) = Page(timeline.html()).items()
    assert "unfinished" in bar["classes"]


def test_errors_are_escaped() -> None:
    timeline = pocketcore.Timeline()
    node = object()
    timeline.pocketcore_batch_start(node=node, size=1, executor=None, limit=None, limiters=())
    timeline.pocketcore_batch_item_start(node=node, index=0)
    error = ValueError("<script>alert(1)</script>")
    timeline.pocketcore_batch_item_done(node=node, index=0, result=None, exception=error, usage={})
    text = timeline.html()
    assert "<script>" not in text
    (bar,) = Page(text).items()
    assert "ValueError: <script>alert(1)</script>" in bar["title"]


def test_above_max_bars_a_batch_is_a_density_with_its_failures(tmp_path: Path) -> None:
    text, seen = run_batch(tmp_path, [1] * 30, 20, "trio", 4, max_bars=10)
    page = Page(text)
    failed = [b for b in page.items() if "failed" in b["classes"]]
    assert [b["data-index"] for b in failed] == ["20"]
    assert all(b["classes"] & {"ok", "cancelled", "failed"} for b in page.items())
    bands = [s for s in page.shapes if s["tag"] == "path"]
    assert bands
    assert all("density" in b["classes"] and "items" in b["classes"] for b in bands)
    assert ("", "4 in flight at most") in page.texts
    assert "Groups that need more than 60 lanes, or hold more than 10 bars" in text
    recorded = len(seen.started)
    assert f"Work (30 items): {recorded} recorded, drawn as a density, on trio" in text


spans_on_a_grid = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 20), st.sampled_from(OUTCOMES)),
    max_size=80,
)


@given(spans_on_a_grid, st.integers(1, 120))
def test_a_density_keeps_every_spans_time_and_never_tops_the_peak(
    grid: list[tuple[int, int, str]], width: int
) -> None:
    spans = [Span("N", start, start + length, outcome) for start, length, outcome in grid]
    scale = width / 80  # the last span ends at 80 at most: everything fits in the width
    columns = density(spans, 0.0, scale, width)
    assert len(columns) == width
    assert sum(columns) == pytest.approx(sum(s.end - s.start for s in spans) * scale)
    peak = concurrency(spans)[0]
    assert all(-1e-9 <= c <= peak + 1e-9 for c in columns)


@settings(max_examples=60, deadline=None)
@given(spans_on_a_grid, st.integers(1, 12))
def test_past_max_lanes_a_group_is_a_density_with_its_notable_items_a_bar_each(
    grid: list[tuple[int, int, str]], max_lanes: int
) -> None:
    spans = [
        Span("N", start, start + length + 0.5, outcome, index=i)
        for i, (start, length, outcome) in enumerate(grid)
    ]
    batch = Batch("N", len(spans), 0.0, items=spans)
    page = Page(render_page([], [], [batch], MAX_BARS, None, max_lanes))
    bars = {int(b["data-index"]): b for b in page.items()}
    lanes = pack(spans)[1]
    assert all(int(b["data-lane"]) < max_lanes for b in bars.values())
    assert all(float(b["height"]) >= min(12, 420 / max_lanes - 2) for b in bars.values())
    bands = page.of_class("density")
    if lanes <= max_lanes:
        assert set(bars) == set(range(len(spans)))
        assert not bands
        return
    drawn = {o for b in bands for o in b["classes"] & set(OUTCOMES)}
    assert drawn == {s.outcome for s in spans if s.end > s.start}
    marked = [i for i, s in enumerate(spans) if s.outcome in ("failed", "fallback")]
    others = [i for i in range(len(spans)) if i not in marked]
    slowest = sorted(others, key=lambda i: spans[i].start - spans[i].end)[:10]
    chosen = {*marked, *slowest}
    assert set(bars) <= chosen
    if pack([spans[i] for i in sorted(chosen)])[1] <= max_lanes:  # they fit: a bar each
        assert set(bars) == chosen
    else:  # those past the last lane are counted, not lost
        (label,) = [t for c, t in page.texts if "(a bar each)" in t]
        assert label.endswith(f", {len(chosen) - len(bars)} more in the density only")
    for b in bars.values():
        assert b["title"].startswith(f"N item {b['data-index']}: ")
    slices = page.of_class("slice")
    assert len(slices) == 100
    assert all(" in flight on average" in s["title"] for s in slices)


def test_a_wide_unlimited_batch_is_a_density_not_two_thousand_lanes(tmp_path: Path) -> None:
    delays = [5 + (i * 37) % 11 for i in range(2000)]
    text, seen = run_batch(tmp_path, delays, None, "asyncio", None)
    assert seen.peak > MAX_LANES  # else this would prove nothing
    page = Page(text)
    assert "Work (2000 items): 2000 recorded, drawn as a density, on asyncio" in text
    assert page.of_class("density")
    bars = page.items()
    assert 0 < len(bars) <= 10
    assert all(float(b["height"]) >= 5 for b in bars)
    assert len(text.encode()) < 200_000


def test_totals_of_a_run_whose_items_all_came_from_the_cache() -> None:
    store = pocketcore.get_registry().get_store_opener("memory", source="test")("")
    pocketcore.run(Cached(), {"items": [1, 2, 3]}, cache=store)
    timeline = pocketcore.Timeline()
    with timeline:
        pocketcore.run(Cached(), {"items": [1, 2, 3]}, cache=store, executor="trio")
    text = timeline.html()
    assert "<th>items</th><td>0 ran in 1 batch, 3 more found in the cache</td>" in text
    assert "<th>peak concurrency</th><td>none: no item ran</td>" in text
    assert "<th>mean concurrency</th><td>none: no item ran</td>" in text
    assert "batches" not in text
    assert "Cached (3 items): 0 recorded, 3 cache hits, 0 lanes, on trio" in text


class Inner(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return [1, 2]

    async def exec_async(self, item: int) -> int:
        await anyio.sleep(0.001)
        return item


class Passes(pocketcore.AsyncParallelBatchFlow):
    async def prep_async(self, shared: dict[str, Any]) -> list[dict[str, int]]:
        return [{"n": n} for n in range(shared["passes"])]


@pytest.mark.parametrize(("passes", "max_bars"), [(3, MAX_BARS), (300, 100)])
def test_the_batches_of_one_class_are_one_group(passes: int, max_bars: int) -> None:
    timeline = pocketcore.Timeline(max_bars=max_bars)
    with timeline:
        pocketcore.run(Passes(start=Inner()), {"passes": passes}, executor="trio")
    text = timeline.html()
    page = Page(text)
    assert len(timeline.batches) == 1 + passes  # the batch flow's, and one per pass
    groups = [t for tag, t in page.texts if tag == "group"]
    assert groups[:2] == ["runs", "steps" if passes <= max_bars else "steps, drawn as a density"]
    assert groups[2].startswith(f"Passes ({passes} items): {passes} recorded")
    assert groups[3].startswith(f"Inner ({passes} batches): {2 * passes} recorded")
    assert len(groups) == 4
    if passes <= max_bars:  # bars, each with its own batch's number
        numbers = {b["data-batch"] for b in page.shapes if b.get("data-batch")}
        assert numbers == {str(n) for n in range(1 + passes)}
    else:  # the steps, the passes and the inner items are all densities
        kinds = [s["class"].rsplit(" ", 1)[1] for s in page.shapes if s["tag"] == "path"]
        assert kinds == ["steps", "items", "items"]
        assert len(page.of_class("item")) <= 2 * 10  # the slowest of each group
        assert len(text) < 120_000


@pytest.mark.parametrize("bad", [None, 9_000])
def test_ten_thousand_items_stay_under_two_megabytes(tmp_path: Path, bad: int | None) -> None:
    text, seen = run_batch(tmp_path, [0] * 10_000, bad, "trio", 50)
    assert len(text.encode()) < 2_000_000
    assert_self_contained(text)
    assert f"Work (10000 items): {len(seen.started)} recorded, drawn as a density" in text
    assert "50 in flight at most" in text
    failed = [b for b in Page(text).items() if "failed" in b["classes"]]
    assert [b["data-index"] for b in failed] == ([] if bad is None else [str(bad)])


def test_items_of_a_batch_it_did_not_see_start_are_ignored() -> None:
    timeline = pocketcore.Timeline()
    node = object()
    timeline.pocketcore_batch_item_start(node=node, index=0)
    timeline.pocketcore_batch_item_done(node=node, index=0, result=None, exception=None, usage={})
    timeline.pocketcore_batch_item_done(node=node, index=1, result=None, exception=None, usage={})
    assert timeline.batches == []
    assert Page(timeline.html()).items() == []


# --- attempts, fallbacks and cache hits -------------------------------------------------------


class Flaky(pocketcore.AsyncParallelBatchNode):
    """Item ``i`` fails its first ``fails[i]`` attempts; the fallback rescues the ``rescued``."""

    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return list(range(len(self.params["fails"])))

    async def exec_async(self, i: int) -> int:
        await anyio.sleep(0.001)
        if self.cur_retry < self.params["fails"][i]:
            raise ValueError(f"item {i} attempt {self.cur_retry}")
        return i

    async def exec_fallback_async(self, i: int, exc: Exception) -> int:
        if i in self.params["rescued"]:
            return -1
        raise exc


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fails=st.lists(st.integers(0, 3), max_size=10),
    rescued=st.sets(st.integers(0, 9)),
    retries=st.integers(1, 3),
    executor=executor_names,
    limit=limits,
)
def test_attempts_are_segments_of_their_items_bar(
    fails: list[int], rescued: set[int], retries: int, executor: str, limit: int | None
) -> None:
    node = Flaky(max_retries=retries, wait=0.001, on_error="collect")
    node.set_params({"fails": fails, "rescued": rescued})
    timeline = pocketcore.Timeline()
    with timeline:
        pocketcore.run(node, executor=executor, max_concurrency=limit)
    page = Page(timeline.html())
    bars = {int(b["data-index"]): b for b in page.items()}
    assert set(bars) == set(range(len(fails)))
    segments = page.of_class("attempt")
    for i, bar in bars.items():
        made = min(fails[i] + 1, retries)
        fell_back = fails[i] >= retries and i in rescued
        mine = [s for s in segments if s["title"].startswith(f"Flaky item {i},")]
        drawn = made > 1 or fell_back
        assert len(mine) == (made + fell_back if drawn else 0)
        assert ("fill-opacity" in bar) == drawn
        if not drawn:
            continue
        attempts = [s for s in mine if "fallback" not in s["classes"]]
        outcomes = ["failed" if n < fails[i] else "ok" for n in range(made)]
        assert [next(iter(s["classes"] - {"attempt"})) for s in attempts] == outcomes
        assert [f"attempt {n + 1} of {made}" in s["title"] for n, s in enumerate(attempts)] == [
            True
        ] * made
        x0, x1 = float(bar["x"]), float(bar["x"]) + float(bar["width"])
        assert all(x0 - 0.1 <= float(s["x"]) <= x1 + 0.1 for s in mine)
        if fell_back:
            assert "fallback" in bar["classes"]
            assert "fallback" in mine[-1]["classes"]
            assert f"in place of ValueError: item {i} attempt {retries - 1}" in bar["title"]
        else:  # a failure collected (on_error="collect") is a failure all the same
            assert ("failed" if fails[i] >= retries else "ok") in bar["classes"]
    fallbacks = sum(1 for i, f in enumerate(fails) if f >= retries and i in rescued)
    failed = sum(1 for i, f in enumerate(fails) if f >= retries and i not in rescued)
    if fails:  # an empty batch has no failures to count
        assert f"({failed} failed, 0 cancelled, " in timeline.html()
    assert len(page.of_class("fallback")) == 2 * fallbacks  # each bar, and its segment


class Cached(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return list(shared["items"])

    async def exec_async(self, item: int) -> int:
        return item


@pytest.mark.parametrize("max_bars", [MAX_BARS, 2])
def test_cache_hits_are_ticks_above_their_group(max_bars: int) -> None:
    store = pocketcore.get_registry().get_store_opener("memory", source="test")("")
    pocketcore.run(Cached(), {"items": [1, 3, 5]}, cache=store)
    timeline = pocketcore.Timeline(max_bars=max_bars)
    with timeline:
        pocketcore.run(Cached(), {"items": [0, 1, 2, 3, 4, 5]}, cache=store, executor="trio")
    text = timeline.html()
    page = Page(text)
    groups = [t for tag, t in page.texts if tag == "group"]
    assert groups[-1].startswith("Cached (6 items): 3 recorded, 3 cache hits")
    assert groups[-1].endswith(", on trio")
    if max_bars >= 3:
        ticks = page.of_class("hit")
        assert sorted(int(t["data-index"]) for t in ticks) == [1, 3, 5]
        assert all(t["title"].endswith("cache hit") for t in ticks)
    else:
        (ticks,) = page.of_class("hits")
        assert ticks["title"] == "3 cache hits"
    assert "<th>cache hits</th><td>3</td>" in text


def test_a_group_says_how_its_batches_ran() -> None:
    class OneByOne(pocketcore.BatchNode):
        def prep(self, shared: Any) -> list[int]:
            return [1, 2]

    timeline = pocketcore.Timeline()
    with timeline:
        pocketcore.run(OneByOne())
        node = Work()
        node.set_params({"delays": [0, 0], "bad": None, "seen": Seen()})
        pocketcore.run(node, executor="asyncio", max_concurrency=4)
    groups = [t for tag, t in Page(timeline.html()).texts if tag == "group"]
    assert groups[-2].endswith(", one at a time")
    assert groups[-1].endswith(", on asyncio, at most 4 at once")


class Loaded(pocketcore.Node):
    """A plain node that opts in to the cache."""

    cache = True

    def prep(self, shared: Any) -> Any:
        return shared["x"]

    def exec(self, x: int) -> int:
        return x + 1


def test_a_plain_nodes_step_from_the_cache_is_marked_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "run.html"
    store = tmp_path / "cache.db"
    with pocketcore.Timeline(path):
        for _ in range(2):
            pocketcore.run(pocketcore.Flow(start=Loaded()), {"x": 1}, cache=str(store))
    page = path.read_text(encoding="utf-8")
    assert page.count("its result from the cache") == 1
    assert "1 (1 of them steps of plain nodes)" in page
    pocketcore.close_stores()
