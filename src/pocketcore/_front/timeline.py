"""A timeline of runs as one self-contained HTML file: the :class:`Timeline` observer.

The observer only records (a ``time.perf_counter()`` reading and a few fields
per event, under a lock); everything else happens when the page is made, after
the run. The page is one HTML file with the SVG, its CSS and no script: a
bar's tooltip is its SVG ``<title>``, so the file opens anywhere, offline.
"""

from __future__ import annotations

import heapq
import html
import itertools
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from pocketcore._plugins.registry import Registry, get_registry
from pocketcore.hookspecs import hookimpl

__all__ = ["MAX_BARS", "Timeline"]

MAX_BARS = 2000
"""Above this many bars, a group (a batch class's items, or the steps) is drawn as a profile.

The profile is the number in flight over time. A browser draws a few thousand
SVG bars without effort; ten thousand make a bigger file, and at 1000 pixels
of time most of them would be narrower than a pixel anyway. Failures are
still drawn one by one.
"""


@attrs.frozen
class Span:
    """One bar: a run, a step of a flow or a batch item, from start to end.

    Attributes:
        label: The class name of the node (or of the run's target).
        start: ``time.perf_counter()`` when it started.
        end: ``time.perf_counter()`` when it ended.
        outcome: ``"ok"``, ``"failed"``, ``"cancelled"`` (stopped because a
            sibling failed, or the run was interrupted) or ``"unfinished"``
            (no end was reported before the page was made).
        error: ``"Type: message"`` of what it raised, or ``""``.
        index: The item's position in its batch (``None`` for runs and steps).
    """

    # Retries and fallbacks: the kernel reports one start and one end per
    # item, not each attempt. When it reports attempts, they belong here (a
    # tuple of (start, end, error) inside the span) and are drawn as segments
    # of the item's bar.
    label: str
    start: float
    end: float
    outcome: str
    error: str = ""
    index: int | None = None


@attrs.define
class Batch:
    """The record of one batch: its node's class, its size and its items.

    Attributes:
        label: The class name of the batch node or batch flow.
        size: The number of items, or ``None`` when unknown.
        start: When the batch started.
        items: The items that reported a start and an end.
        unstarted: Items reported done without a start (an executor that
            runs the calls itself reports them only when the results are
            back): counted, not drawn.
    """

    label: str
    size: int | None
    start: float
    items: list[Span] = attrs.field(factory=list)
    unstarted: int = 0


def _outcome(exception: BaseException | None) -> tuple[str, str]:
    if exception is None:
        return "ok", ""
    error = f"{type(exception).__name__}: {exception}"
    error = error if len(error) <= 200 else error[:199] + "\u2026"
    # Cancellations (asyncio.CancelledError, trio.Cancelled) and interrupts
    # are BaseExceptions only: the item did not fail, it was stopped.
    return ("failed" if isinstance(exception, Exception) else "cancelled"), error


class Timeline:
    """An observer that records runs and writes them as a timeline in one HTML file.

    Time runs left to right. The page shows each run, the steps of its flows
    (packed into as few lanes as overlap needs) and, for each batch node
    class, its batches' items on lanes packed by concurrency: the number of
    busy lanes is the number of items in flight, so a concurrency limit shows
    as a ceiling. Failed items are red, cancelled ones grey; hovering a bar
    shows its node, item index, duration and error. The header has the
    totals: wall time, items, peak and mean concurrency and the slowest
    items. A group of more than ``max_bars`` bars is drawn as a profile of
    how many were in flight over time, its failures one by one; the page
    says so. Retries and fallbacks are not shown: the kernel does not report
    attempts yet.

    Use it as a context manager, which registers it with the registry for the
    body and writes ``path`` at the end, also when the body raises::

        with pocketcore.Timeline("run.html"):
            pocketcore.run(flow, shared)

    or register it yourself and write when you like::

        timeline = pocketcore.Timeline()
        pocketcore.get_registry().register(timeline, name="timeline")
        pocketcore.run(flow, shared)
        timeline.write("run.html")

    Everything observed while registered is on one page, several runs included.

    Args:
        path: Where the context manager writes the page (``None``: it does not).
        registry: The registry the context manager registers with (default:
            :func:`pocketcore.get_registry`).
        max_bars: Groups with more bars than this are drawn as a profile.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        registry: Registry | None = None,
        max_bars: int = MAX_BARS,
    ) -> None:
        self.path = path
        self.max_bars = max_bars
        self.runs: list[Span] = []
        """The runs, in the order they ended."""
        self.steps: list[Span] = []
        """The steps of flows, in the order they ended."""
        self.batches: list[Batch] = []
        """The batches, in the order they started."""
        self._registry = registry
        # Hooks come from worker threads too (the steps inside the passes of a
        # ParallelBatchFlow): every record is kept under this lock.
        self._lock = threading.Lock()
        self._runs: dict[int, float] = {}  # id(target) -> start, while it runs
        self._steps: dict[int, tuple[str, float]] = {}  # id(node copy) -> (label, start)
        self._items: dict[tuple[int, int], tuple[Batch, float]] = {}  # (id(node), index)
        self._batch_of: dict[int, Batch] = {}  # id(batch node) -> its latest batch

    # --- registering -------------------------------------------------------

    def __enter__(self) -> Timeline:
        """Register with the registry; the page is written when the block ends.

        Raises:
            PluginError: This timeline is registered already.
        """
        (self._registry or get_registry()).register(self, name=f"pocketcore-timeline-{id(self)}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Unregister, and write the page to ``path`` (when given).

        Raises:
            OSError: The page cannot be written.
        """
        (self._registry or get_registry()).unregister(self)
        if self.path is not None:
            self.write(self.path)

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the page (see :meth:`html`) to ``path``, in UTF-8.

        Raises:
            OSError: The file cannot be written.
        """
        Path(path).write_text(self.html(), encoding="utf-8")

    def html(self, title: str | None = None) -> str:
        """The page: one self-contained HTML document of what was recorded so far."""
        with self._lock:
            now = time.perf_counter()
            runs = list(self.runs)
            # An interrupted run, or a page made mid-run: show how far things got.
            steps = [
                *self.steps,
                *(Span(label, start, now, "unfinished") for label, start in self._steps.values()),
            ]
            copies = {id(b): attrs.evolve(b, items=list(b.items)) for b in self.batches}
            for (_, index), (batch, start) in self._items.items():
                copies[id(batch)].items.append(
                    Span(batch.label, start, now, "unfinished", index=index)
                )
        batches = list(copies.values())
        return _Page(runs, steps, batches, self.max_bars).render(title)

    # --- the lifecycle hooks -----------------------------------------------

    @hookimpl
    def pocketcore_run_start(self, target: Any) -> None:
        """Note when the run started."""
        with self._lock:
            self._runs[id(target)] = time.perf_counter()

    @hookimpl
    def pocketcore_run_end(self, target: Any, exception: BaseException | None) -> None:
        """Record the run."""
        end = time.perf_counter()
        with self._lock:
            start = self._runs.pop(id(target), end)
            self.runs.append(Span(type(target).__name__, start, end, *_outcome(exception)))

    @hookimpl
    def pocketcore_node_start(self, node: Any) -> None:
        """Note when the step started (keyed by its node copy, unique to the step)."""
        with self._lock:
            self._steps[id(node)] = (type(node).__name__, time.perf_counter())

    @hookimpl
    def pocketcore_node_end(self, node: Any, exception: BaseException | None) -> None:
        """Record the step."""
        end = time.perf_counter()
        with self._lock:
            _, start = self._steps.pop(id(node), ("", end))
            self.steps.append(Span(type(node).__name__, start, end, *_outcome(exception)))

    @hookimpl
    def pocketcore_batch_start(self, node: Any, size: int | None) -> None:
        """Start the record of a batch."""
        batch = Batch(type(node).__name__, size, time.perf_counter())
        with self._lock:
            self.batches.append(batch)
            self._batch_of[id(node)] = batch

    @hookimpl
    def pocketcore_batch_item_start(self, node: Any, index: int) -> None:
        """Note when the item started."""
        with self._lock:
            # None: registered after the batch started (while another observer
            # kept the run's hooks live); its items are not recorded.
            batch = self._batch_of.get(id(node))
            if batch is not None:
                self._items[(id(node), index)] = (batch, time.perf_counter())

    @hookimpl
    def pocketcore_batch_item_done(
        self, node: Any, index: int, exception: BaseException | None
    ) -> None:
        """Record the item in its batch."""
        end = time.perf_counter()
        with self._lock:
            started = self._items.pop((id(node), index), None)
            if started is None:
                batch = self._batch_of.get(id(node))
                if batch is not None:  # run by the executor itself: reported afterwards
                    batch.unstarted += 1
                return
            batch, start = started
            batch.items.append(Span(batch.label, start, end, *_outcome(exception), index))


# --- packing and measuring ------------------------------------------------------------------


def pack(spans: Sequence[Span]) -> tuple[list[int], int]:
    """Lanes for ``spans`` so that spans on one lane never overlap: ``(lane of each, lanes)``.

    Greedy interval packing: in order of start, each span takes the lowest
    lane free by then (a lane is free once its last span has ended, at that
    instant included). For intervals this needs exactly as many lanes as the
    most spans in flight at once.
    """
    order = sorted(range(len(spans)), key=lambda i: (spans[i].start, spans[i].end))
    lanes = [0] * len(spans)
    free: list[int] = []
    busy: list[tuple[float, int]] = []  # (end, lane) of the spans in flight
    count = 0
    for i in order:
        span = spans[i]
        while busy and busy[0][0] <= span.start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane = heapq.heappop(free)
        else:
            lane, count = count, count + 1
        lanes[i] = lane
        heapq.heappush(busy, (span.end, lane))
    return lanes, count


def in_flight(spans: Sequence[Span]) -> list[tuple[float, int]]:
    """How many spans are in flight from each instant on: ``[(time, count), ...]``, by time.

    A span that ends at the instant another starts does not overlap it.
    """
    # At one instant, ends (-1) sort before starts (+1).
    events = sorted([(s.start, 1) for s in spans] + [(s.end, -1) for s in spans])
    steps: list[tuple[float, int]] = []
    count = 0
    for t, change in events:
        count += change
        if steps and steps[-1][0] == t:
            steps[-1] = (t, count)
        else:
            steps.append((t, count))
    return steps


def concurrency(spans: Sequence[Span]) -> tuple[int, float]:
    """The peak and the mean number of spans in flight (mean over the time any is)."""
    return _peak_and_mean(in_flight(spans))


def _peak_and_mean(steps: list[tuple[float, int]]) -> tuple[int, float]:
    busy = total = 0.0
    for (t, count), (t_next, _) in itertools.pairwise(steps):
        if count:
            busy += t_next - t
            total += count * (t_next - t)
    peak = max((count for _, count in steps), default=0)
    return peak, (total / busy if busy else float(peak))


# --- the page -------------------------------------------------------------------------------

LABEL_W = 190  # the column of lane labels
PLOT_W = 1000  # the time axis, in pixels
LANE_H = 14
GROUP_H = 420  # a group with many lanes is squeezed into this height
PROFILE_H = 120

CSS = """
body{font:13px system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:18px;margin:0 0 8px}
table{border-collapse:collapse;margin:4px 0 8px}
td,th{padding:1px 10px 1px 0;text-align:left;font-weight:normal}
th{color:#666}
.note{color:#555;max-width:1190px;margin:4px 0}
svg text{font:11px system-ui,sans-serif;fill:#333}
svg .group{font-weight:600}
svg .axis{stroke:#ccc}
rect.run{fill:#7a7a7a}
rect.step{fill:#8e6bbf}
rect.item{fill:#3b7dd8}
rect.failed{fill:#d62728}
rect.cancelled{fill:#b9b9b9}
rect.unfinished{fill:#f0ad4e}
rect.step,rect.item{stroke:#fff;stroke-width:.6}
rect:hover{stroke:#000;stroke-width:1}
svg text.in{fill:#fff;font-size:10px;pointer-events:none}
path.profile{fill:#3b7dd8;fill-opacity:.75;stroke:#1f4f99;stroke-width:.5}
.legend span{display:inline-block;width:12px;height:10px;margin:0 4px 0 12px}
"""


def _owner(span: Span, owners: list[int] | None, i: int) -> str:
    """The data attributes of an item's bar: its batch's number and its index."""
    return "" if owners is None else f' data-batch="{owners[i]}" data-index="{span.index}"'


def _seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.3f} s"


def _tick_step(wall: float) -> float:
    """A round step for about eight ticks over ``wall`` seconds."""
    raw = max(wall, 1e-6) / 8
    unit = 10 ** int(f"{raw:e}".split("e")[1])
    return float(next(unit * m for m in (1, 2, 5, 10) if unit * m >= raw))


class _Page:
    """Lays out the SVG, group by group, and writes the document around it."""

    def __init__(
        self, runs: list[Span], steps: list[Span], batches: list[Batch], max_bars: int
    ) -> None:
        self.runs, self.steps, self.batches, self.max_bars = runs, steps, batches, max_bars
        self.items = [span for batch in batches for span in batch.items]
        everything = [*runs, *steps, *self.items]
        self.t0 = min((s.start for s in everything), default=0.0)
        self.wall = max((s.end for s in everything), default=self.t0) - self.t0
        self.scale = PLOT_W / self.wall if self.wall > 0 else 0.0
        self.y = 28  # below the time axis' labels
        self.svg: list[str] = []
        self.profiles: list[str] = []  # the titles of the groups drawn as profiles

    def x(self, t: float) -> float:
        return LABEL_W + (t - self.t0) * self.scale

    def render(self, title: str | None) -> str:
        self.lanes("runs", self.runs, "run")
        self.lanes("steps", self.steps, "step")
        # One group per batch node class: a class whose batch runs many times (a
        # batch node in each pass of a batch flow) stays one group, not thousands.
        by_class: dict[str, list[int]] = {}
        for number, batch in enumerate(self.batches):
            by_class.setdefault(batch.label, []).append(number)
        for numbers in by_class.values():
            owned = [(span, n) for n in numbers for span in self.batches[n].items]
            spans, owners = [s for s, _ in owned], [n for _, n in owned]
            self.lanes(self._batch_title(numbers, spans), spans, "item", owners)
        height = self.y + 8
        axis = self._axis(height)
        svg = (
            f'<svg width="{LABEL_W + PLOT_W + 20}" '
            f'height="{height}" role="img">{axis}{"".join(self.svg)}</svg>'
        )
        heading = title or "pocketcore timeline: " + (
            ", ".join(dict.fromkeys(r.label for r in self.runs)) or "no run"
        )
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(heading)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(heading)}</h1>{self._totals()}{self._notes()}"
            f"{svg}</body></html>\n"
        )

    # --- parts of the SVG ---

    def _axis(self, height: int) -> str:
        if self.wall <= 0:
            return ""
        step = _tick_step(self.wall)
        parts = []
        for n in range(int(self.wall / step) + 1):
            x = self.x(self.t0 + n * step)
            parts.append(
                f'<line class="axis" x1="{x:.1f}" y1="16" x2="{x:.1f}" y2="{height}"/>'
                f'<text x="{x:.1f}" y="12" text-anchor="middle">{_seconds(n * step)}</text>'
            )
        return "".join(parts)

    def _label(self, text: str, y: float, css: str = "") -> None:
        self.svg.append(f'<text{css} x="4" y="{y + 10:.1f}">{html.escape(text)}</text>')

    def _bar(self, span: Span, kind: str, y: float, h: float, extra: str = "") -> str:
        x = self.x(span.start)
        width = max((span.end - span.start) * self.scale, 0.5)  # instant items stay visible
        where = "" if span.index is None else f" item {span.index}"
        tip = f"{span.label}{where}: {_seconds(span.end - span.start)}"
        if span.outcome != "ok":
            tip += f", {span.outcome}" + (f": {span.error}" if span.error else "")
        bar = (
            f'<rect class="{kind} {span.outcome}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{h:.1f}"{extra}><title>{html.escape(tip)}</title></rect>'
        )
        # Named in the bar when it fits: steps of different nodes share lanes.
        name = span.label if span.index is None else f"{span.index}"
        if h >= 10 and width >= 6.5 * len(name) + 6:
            bar += (
                f'<text class="in" x="{x + 3:.1f}" y="{y + h - 3:.1f}">{html.escape(name)}</text>'
            )
        return bar

    def lanes(
        self, title: str, spans: list[Span], kind: str, owners: list[int] | None = None
    ) -> None:
        """One group: its title on a row, then its spans on lanes, or as a profile if many.

        ``kind`` is the bars' class (``run``, ``step``, ``item``); ``owners``
        the number of each item's batch.
        """
        if not spans and owners is None:
            return
        self._label(title, self.y, ' class="group"')
        self.y += 16
        if len(spans) > self.max_bars:
            self.profiles.append(title)
            self.profile(spans, kind, owners)
            return
        lanes, count = pack(spans)
        lane_h = min(LANE_H, GROUP_H / max(count, 1))
        bar_h = max(lane_h - (2 if lane_h > 6 else 0), 0.5)
        for i, (span, lane) in enumerate(zip(spans, lanes, strict=True)):
            extra = f' data-lane="{lane}"' + _owner(span, owners, i)
            self.svg.append(self._bar(span, kind, self.y + lane * lane_h, bar_h, extra))
        self.y += round(count * lane_h) + 8

    def profile(self, spans: list[Span], kind: str, owners: list[int] | None) -> None:
        """Too many spans for bars: how many were in flight, the most in each pixel of time."""
        steps = in_flight(spans)
        peak, mean = _peak_and_mean(steps)
        columns = [0] * (PLOT_W + 1)
        for (t, count), (t_next, _) in itertools.pairwise(steps):
            first = int((t - self.t0) * self.scale)
            last = max(first, int((t_next - self.t0) * self.scale) - 1)
            for col in range(first, min(last, PLOT_W) + 1):
                columns[col] = max(columns[col], count)
        base = self.y + PROFILE_H
        unit = PROFILE_H / max(peak, 1)
        points = [f"M{LABEL_W},{base}"]
        for count, run in itertools.groupby(columns):
            points.append(f"V{base - count * unit:.1f}h{sum(1 for _ in run)}")
        points.append(f"V{base}Z")
        self.svg.append(
            f'<path class="profile {kind}s" d="{"".join(points)}"><title>'
            f"at most {peak} {kind}s in flight, {mean:.1f} on average</title></path>"
        )
        self._label(f"{peak} in flight", self.y)
        for i, span in enumerate(spans):  # failures stay visible one by one
            if span.outcome == "failed":
                self.svg.append(self._bar(span, kind, self.y, PROFILE_H, _owner(span, owners, i)))
        self.y = base + 8

    def _batch_title(self, numbers: list[int], spans: list[Span]) -> str:
        batches = [self.batches[n] for n in numbers]
        unseen = sum(b.unstarted for b in batches)
        lanes = f", {pack(spans)[1]} lanes" if len(spans) <= self.max_bars else " (profile)"
        unseen_text = f", {unseen} not observed" if unseen else ""
        if len(batches) == 1:
            size = "unknown size" if batches[0].size is None else f"{batches[0].size} items"
            head = f"{batches[0].label} ({size})"
        else:
            head = f"{batches[0].label} ({len(batches)} batches)"
        return f"{head}: {len(spans)} recorded{unseen_text}{lanes}"

    # --- the HTML around it ---

    def _totals(self) -> str:
        items = self.items
        peak, mean = concurrency(items)
        by = {o: sum(1 for s in items if s.outcome == o) for o in ("failed", "cancelled")}
        slowest = sorted(items, key=lambda s: s.start - s.end)[:5]
        rows = [
            ("wall time", _seconds(self.wall)),
            ("runs", f"{len(self.runs)}"),
            ("steps", f"{len(self.steps)}"),
            (
                "items",
                f"{len(items)} in {len(self.batches)} batches "
                f"({by['failed']} failed, {by['cancelled']} cancelled)",
            ),
            ("peak concurrency", f"{peak} items in flight"),
            ("mean concurrency", f"{mean:.2f} items in flight, while any was"),
            (
                "slowest items",
                ", ".join(f"{s.label} item {s.index}: {_seconds(s.end - s.start)}" for s in slowest)
                or "none",
            ),
        ]
        body = "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
        return f"<table>{body}</table>"

    def _notes(self) -> str:
        legend = "".join(
            f'<span style="background:{c}"></span>{name}'
            for name, c in (
                ("ok", "#3b7dd8"),
                ("failed", "#d62728"),
                ("cancelled", "#b9b9b9"),
                ("unfinished", "#f0ad4e"),
                ("step", "#8e6bbf"),
            )
        )
        notes = [
            f'<p class="legend">{legend}</p>',
            '<p class="note">Each batch\'s items are packed on lanes: a lane holds one item '
            "at a time, so the number of busy lanes is the number of items in flight, and a "
            "concurrency limit shows as a ceiling. Hover over a bar for its node, item, "
            "duration and error. Retries and fallbacks are not shown: the kernel reports one "
            "start and one end per item, not each attempt.</p>",
        ]
        if self.profiles:
            notes.append(
                f'<p class="note">Groups of more than {self.max_bars} bars are drawn as a '
                "profile of how many were in flight (the most in each pixel of time), with "
                "their failures as red bars: " + html.escape("; ".join(self.profiles)) + ".</p>"
            )
        unstarted = sum(b.unstarted for b in self.batches)
        if unstarted:
            notes.append(
                f'<p class="note">{unstarted} items ran where they cannot be observed (an '
                "executor that runs the calls itself reports them when the results are back): "
                "they are counted in their batch's title, not drawn.</p>"
            )
        return "".join(notes)
