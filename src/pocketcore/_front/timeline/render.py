"""Rendering a timeline: what was recorded, laid out as one self-contained HTML page.

The page is one HTML file with the SVG, its CSS and no script: a bar's
tooltip is its SVG ``<title>``, so the file opens anywhere, offline. Spans
are packed on lanes (``measure.pack``); a group that would need more lanes
than stay legible, or more bars than a page should hold, is drawn as a
density (``measure.density``): how many were in flight over time, stacked by
outcome, with its notable spans (failed, rescued by a fallback, the slowest)
still drawn one by one. The totals and notes above the chart are
``text.py``'s.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Callable

from pocketcore._runtime.usage import amounts

from .measure import concurrency, density, pack
from .spans import Batch, Span
from .text import NOTABLE_SLOWEST, notes, plural, rounded, seconds, summed, totals

__all__ = ["MAX_BARS", "MAX_LANES", "OUTCOMES", "render_page"]

MAX_BARS = 2000
"""Above this many bars, a group (a batch class's items, or the steps) is drawn as a density.

A browser draws a few thousand SVG bars without effort; ten thousand make a
bigger file, and at 1000 pixels of time most of them would be narrower than a
pixel anyway.
"""

MAX_LANES = 60
"""Above this many lanes, a group is drawn as a density: its lanes would be too thin to read.

A group's lanes share at most 420 pixels of height; 60 lanes of 7 pixels are
still bars a reader can point at, 2,000 lanes are a fifth of a pixel each.
"""

OUTCOMES = ("ok", "fallback", "failed", "cancelled", "unfinished")
"""The outcomes a density stacks, from the bottom up."""


# --- the page -------------------------------------------------------------------------------

LABEL_W = 190  # the column of lane labels
PLOT_W = 1000  # the time axis, in pixels
LANE_H = 14
GROUP_H = 420  # a group with many lanes is squeezed into this height
DENSITY_H = 140
SLICE_W = 10  # a density's hover details: one per this many pixels of time

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
rect.item,rect.attempt.ok{fill:#3b7dd8}
rect.failed{fill:#d62728}
rect.cancelled{fill:#b9b9b9}
rect.fallback{fill:#f2a516}
rect.unfinished{fill:#dbe8f8;stroke:#3b7dd8;stroke-dasharray:2 2}
rect.step,rect.item{stroke:#fff;stroke-width:.6}
rect.attempt{stroke:none}
rect.item.fallback{stroke:#f2a516;stroke-width:1.5}
rect:hover{stroke:#000;stroke-width:1}
line.hit,path.hits{stroke:#2ca02c;stroke-width:1.5}
svg text.in{fill:#fff;font-size:10px;pointer-events:none}
path.density{stroke:none}
path.density.ok{fill:#3b7dd8}
path.density.failed{fill:#d62728}
path.density.cancelled{fill:#b9b9b9}
path.density.fallback{fill:#f2a516}
path.density.unfinished{fill:#dbe8f8}
rect.slice{fill:#000;fill-opacity:0;stroke:none}
rect.slice:hover{fill-opacity:.08;stroke:none}
svg text.sub{fill:#666}
path.bound{fill:none;stroke:#e4572e;stroke-width:1.5;stroke-dasharray:5 3}
path.bound:hover{stroke-width:3}
.legend span{display:inline-block;width:12px;height:10px;margin:0 4px 0 12px;box-sizing:border-box}
"""


def _how(batches: list[Batch]) -> str:
    """How the batches ran, when they all ran the same way: executor and limit."""
    ways = {(b.executor, b.limit) for b in batches}
    if len(ways) != 1:
        return ""
    ((executor, limit),) = ways
    if executor is None:
        return ", one at a time" if limit == 1 else ""
    return f", on {executor}" + ("" if limit is None else f", at most {limit} at once")


def _owner(span: Span, owners: list[int] | None, i: int) -> str:
    """The data attributes of an item's bar: its batch's number and its index."""
    return "" if owners is None else f' data-batch="{owners[i]}" data-index="{span.index}"'


def _area(top: list[float], below: list[float], base: float, unit: float) -> str:
    """An SVG path between two stacked lines of per-column values, scaled by ``unit``."""

    def steps(values: list[float]) -> list[tuple[str, int]]:
        heights = (f"{base - v * unit:.1f}" for v in values)
        return [(y, sum(1 for _ in run)) for y, run in itertools.groupby(heights)]

    d = [f"M{LABEL_W},{base - below[0] * unit:.1f}"]
    for y, width in steps(top):
        d.append(f"V{y}h{width}")
    for y, width in reversed(steps(below)):
        d.append(f"V{y}h-{width}")
    return "".join(d) + "Z"


def _highest(batches: list[Batch]) -> int:
    """The highest auto bound of ``batches`` (0 without one)."""
    return max((bound for b in batches for _, bound in b.bounds), default=0)


def _tick_step(wall: float) -> float:
    """A round step for about eight ticks over ``wall`` seconds."""
    raw = max(wall, 1e-6) / 8
    unit = 10 ** int(f"{raw:e}".split("e")[1])
    return float(next(unit * m for m in (1, 2, 5, 10) if unit * m >= raw))


def render_page(
    runs: list[Span],
    steps: list[Span],
    batches: list[Batch],
    max_bars: int,
    title: str | None,
    max_lanes: int = MAX_LANES,
) -> str:
    """The page of what was recorded: one self-contained HTML document.

    Args:
        runs: The runs, in the order they ended.
        steps: The steps of flows.
        batches: The batches, in the order they started, with their items.
        max_bars: Groups with more bars than this are drawn as a density.
        title: The page's heading (``None``: the names of the runs).
        max_lanes: Groups that need more lanes than this are drawn as a density.
    """
    return _Page(runs, steps, batches, max_bars, max_lanes).render(title)


class _Page:
    """Lays out the SVG, group by group, and writes the document around it."""

    def __init__(
        self,
        runs: list[Span],
        steps: list[Span],
        batches: list[Batch],
        max_bars: int,
        max_lanes: int,
    ) -> None:
        self.runs, self.steps, self.batches = runs, steps, batches
        self.max_bars, self.max_lanes = max_bars, max_lanes
        self.items = [span for batch in batches for span in batch.items]
        everything = [*runs, *steps, *self.items]
        self.t0 = min((s.start for s in everything), default=0.0)
        self.wall = max((s.end for s in everything), default=self.t0) - self.t0
        self.scale = PLOT_W / self.wall if self.wall > 0 else 0.0
        self.y = 28  # below the time axis' labels
        self.svg: list[str] = []
        self.densities: list[str] = []  # the titles of the groups drawn as densities

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
            hits = sorted(hit for n in numbers for hit in self.batches[n].hits)
            bounds = [self.batches[n] for n in numbers if self.batches[n].bounds]
            self.lanes(self._batch_title(numbers, spans), spans, "item", owners, hits, bounds)
        height = self.y + 8
        axis = self._axis(height)
        svg = (
            f'<svg width="{LABEL_W + PLOT_W + 20}" '
            f'height="{height}" role="img">{axis}{"".join(self.svg)}</svg>'
        )
        heading = title or "pocketcore timeline: " + (
            ", ".join(dict.fromkeys(r.label for r in self.runs)) or "no run"
        )
        above = totals(self.runs, self.steps, self.batches, self.wall) + notes(
            self.batches, self.densities, self.max_lanes, self.max_bars
        )
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(heading)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(heading)}</h1>{above}"
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
                f'<text x="{x:.1f}" y="12" text-anchor="middle">{seconds(n * step)}</text>'
            )
        return "".join(parts)

    def _label(self, text: str, y: float, css: str = "") -> None:
        self.svg.append(f'<text{css} x="4" y="{y + 10:.1f}">{html.escape(text)}</text>')

    def _bar(self, span: Span, kind: str, y: float, h: float, extra: str = "") -> str:
        x = self.x(span.start)
        width = max((span.end - span.start) * self.scale, 0.5)  # instant items stay visible
        where = "" if span.index is None else f" item {span.index}"
        tip = f"{span.label}{where}: {seconds(span.end - span.start)}"
        if span.cached:
            tip += ", its result from the cache"
        if len(span.attempts) > 1:
            tip += f", {len(span.attempts)} attempts"
        if span.outcome == "fallback":
            tip += f", result from the fallback, in place of {span.error}"
        elif span.outcome != "ok":
            tip += f", {span.outcome}" + (f": {span.error}" if span.error else "")
        if span.usage:
            tip += f"; used {amounts(span.usage)}"
        segments = self._segments(span, y, h)
        if segments:  # pale beneath its segments: the gaps are the waits between attempts
            extra += ' fill-opacity=".3"'
        bar = (
            f'<rect class="{kind} {span.outcome}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{h:.1f}"{extra}><title>{html.escape(tip)}</title></rect>{segments}'
        )
        # Named in the bar when it fits: steps of different nodes share lanes.
        name = span.label if span.index is None else f"{span.index}"
        if h >= 10 and width >= 6.5 * len(name) + 6:
            bar += (
                f'<text class="in" x="{x + 3:.1f}" y="{y + h - 3:.1f}">{html.escape(name)}</text>'
            )
        return bar

    def _segments(self, span: Span, y: float, h: float) -> str:
        """An item's attempts as segments of its bar, and its fallback; ``""`` for one attempt.

        Failed attempts are red, the one that succeeded blue, the fallback
        (from the last attempt's end to the item's) amber.
        """
        tried = span.attempts
        if not tried or (len(tried) == 1 and span.outcome != "fallback"):
            return ""  # the bar says it all
        where = f"{span.label} item {span.index}"
        parts = []
        for n, attempt in enumerate(tried):
            tip = (
                f"{where}, attempt {n + 1} of {len(tried)} (cur_retry {n}): "
                f"{seconds(attempt.end - attempt.start)}"
            )
            if attempt.outcome != "ok":
                tip += f", {attempt.outcome}" + (f": {attempt.error}" if attempt.error else "")
            parts.append(self._segment(attempt.start, attempt.end, attempt.outcome, y, h, tip))
        if span.outcome == "fallback":
            start = tried[-1].end
            tip = (
                f"{where}, fallback: {seconds(span.end - start)}, its result in place of "
                f"{span.error}"
            )
            # At least 3 pixels: a fallback that returns at once is still seen.
            parts.append(self._segment(start, span.end, "fallback", y, h, tip, wide=3.0))
        return "".join(parts)

    def _segment(
        self, start: float, end: float, css: str, y: float, h: float, tip: str, wide: float = 0.5
    ) -> str:
        x = self.x(start)
        width = max((end - start) * self.scale, wide)
        return (
            f'<rect class="attempt {css}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{h:.1f}"><title>{html.escape(tip)}</title></rect>'
        )

    def _ticks(self, hits: list[tuple[float, int]], label: str) -> None:
        """Cache hits: a tick each on a strip of their own, one path if there are many."""
        y0, y1 = self.y, self.y + 6
        if len(hits) > self.max_bars:
            d = "".join(f"M{self.x(t):.1f},{y0}V{y1}" for t, _ in hits)
            self.svg.append(
                f'<path class="hits" d="{d}"><title>{len(hits)} cache hits</title></path>'
            )
        else:
            for t, index in hits:
                x = self.x(t)
                tip = html.escape(f"{label} item {index}: cache hit")
                self.svg.append(
                    f'<line class="hit" x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1}" '
                    f'data-index="{index}"><title>{tip}</title></line>'
                )
        self.y += 9

    def lanes(
        self,
        title: str,
        spans: list[Span],
        kind: str,
        owners: list[int] | None = None,
        hits: list[tuple[float, int]] | None = None,
        bounds: list[Batch] | None = None,
    ) -> None:
        """One group: its title on a row, then its spans on lanes, or as a density if many.

        ``kind`` is the bars' class (``run``, ``step``, ``item``); ``owners``
        the number of each item's batch; ``hits`` the group's cache hits,
        drawn as ticks above its lanes; ``bounds`` the group's batches whose
        limiter has ``max_concurrency="auto"``, whose bound is drawn as a
        step line over the lanes (the lane it allows up to).
        """
        if not spans and owners is None:
            return
        lanes, count = pack(spans)
        dense = len(spans) > self.max_bars or count > self.max_lanes
        if dense:
            if owners is None:  # a batch's title says so itself
                title += ", drawn as a density"
            self.densities.append(title)
        self._label(title, self.y, ' class="group"')
        self.y += 16
        if hits:
            self._ticks(hits, title.split(" (", 1)[0])
        if dense:
            self.density(spans, kind, owners, bounds or [])
        else:
            self.packed(spans, lanes, count, kind, owners, bounds or [])

    def packed(
        self,
        spans: list[Span],
        lanes: list[int],
        count: int,
        kind: str,
        owners: list[int] | None,
        bounds: list[Batch] | None = None,
    ) -> None:
        """Spans as bars, each on its lane; the auto bound over them, with room to show it."""
        rows = max(count, _highest(bounds or []))
        lane_h = min(LANE_H, GROUP_H / max(rows, 1))
        bar_h = max(lane_h - (2 if lane_h > 6 else 0), 0.5)
        for i, (span, lane) in enumerate(zip(spans, lanes, strict=True)):
            extra = f' data-lane="{lane}"' + _owner(span, owners, i)
            self.svg.append(self._bar(span, kind, self.y + lane * lane_h, bar_h, extra))
        top = self.y
        self._bounds(bounds or [], lambda bound: top + bound * lane_h)
        self.y += round(rows * lane_h) + 8

    def _bounds(self, batches: list[Batch], height: Callable[[int], float]) -> None:
        """The auto bound of each of ``batches`` as a step line, at ``height(bound)``."""
        for batch in batches:
            end = batch.end if batch.end is not None else self.t0 + self.wall
            d = []
            for n, (t, bound) in enumerate(batch.bounds):
                y = f"{height(bound):.1f}"
                d.append(f"M{self.x(t):.1f},{y}" if n == 0 else f"H{self.x(t):.1f}V{y}")
            d.append(f"H{self.x(end):.1f}")
            moves = " \u2192 ".join(str(b) for _, b in batch.bounds[:12])
            if len(batch.bounds) > 12:
                moves += f" \u2192 \u2026 ({len(batch.bounds)} moves)"
            tip = (
                f"{batch.label}: auto concurrency {moves} (ceiling {batch.ceiling}): the most "
                "items its limiter let run at once, over time"
            )
            values = " ".join(str(b) for _, b in batch.bounds)
            self.svg.append(
                f'<path class="bound" d="{"".join(d)}" data-bounds="{values}">'
                f"<title>{html.escape(tip)}</title></path>"
            )

    def density(
        self,
        spans: list[Span],
        kind: str,
        owners: list[int] | None,
        bounds: list[Batch] | None = None,
    ) -> None:
        """Too many lanes or bars: how many were in flight, stacked by outcome, then the notable.

        The stack is the mean number in flight over each pixel of time, one
        band per outcome (``OUTCOMES``, from the bottom); a transparent slice
        every ``SLICE_W`` pixels holds the details of its time as a tooltip.
        Below it, on lanes, the spans worth seeing one by one: every failed
        one, every one rescued by its fallback and the slowest.
        """
        peak, mean = concurrency(spans)
        bands = {
            o: density([s for s in spans if s.outcome == o], self.t0, self.scale, PLOT_W)
            for o in OUTCOMES
        }
        counts = {o: sum(1 for s in spans if s.outcome == o) for o in OUTCOMES}
        base = self.y + DENSITY_H
        unit = DENSITY_H / max(peak, _highest(bounds or []), 1)
        below = [0.0] * PLOT_W
        for outcome, band in bands.items():
            if not any(band):
                continue
            top = [b + v for b, v in zip(below, band, strict=True)]
            self.svg.append(
                f'<path class="density {outcome} {kind}s" d="{_area(top, below, base, unit)}">'
                f"<title>{plural(counts[outcome], kind)} {outcome}</title></path>"
            )
            below = top
        self._slices(spans, kind, bands, base)
        self._bounds(bounds or [], lambda bound: base - bound * unit)
        self.svg.append(
            f'<line class="axis" x1="{LABEL_W}" y1="{base}" x2="{LABEL_W + PLOT_W}" y2="{base}"/>'
        )
        self._label(f"{peak} in flight at most", self.y)
        self._label(f"{rounded(mean)} on average", self.y + 13, ' class="sub"')
        self.y = base + 6
        self.notable(spans, kind, owners)

    def _slices(
        self, spans: list[Span], kind: str, bands: dict[str, list[float]], base: float
    ) -> None:
        """The hover details of a density: for each slice of time, what was in flight."""
        starts = [0] * (PLOT_W // SLICE_W + 1)
        ends = [0] * len(starts)
        for span in spans:
            starts[min(int((span.start - self.t0) * self.scale) // SLICE_W, len(starts) - 1)] += 1
            ends[min(int((span.end - self.t0) * self.scale) // SLICE_W, len(ends) - 1)] += 1
        per_px = 1 / self.scale if self.scale else 0.0
        for n, x in enumerate(range(0, PLOT_W, SLICE_W)):
            means = {o: sum(b[x : x + SLICE_W]) / SLICE_W for o, b in bands.items()}
            total = sum(means.values())
            split = ", ".join(f"{rounded(v)} {o}" for o, v in means.items() if v > 0.05)
            tip = (
                f"{seconds(x * per_px)} to {seconds((x + SLICE_W) * per_px)}: "
                f"{rounded(total)} {kind}s in flight on average"
                + (f" ({split})" if split else "")
                + f"; {starts[n]} started, {ends[n]} ended"
            )
            self.svg.append(
                f'<rect class="slice" x="{LABEL_W + x}" y="{base - DENSITY_H}" '
                f'width="{SLICE_W}" height="{DENSITY_H}"><title>{html.escape(tip)}</title></rect>'
            )

    def notable(self, spans: list[Span], kind: str, owners: list[int] | None) -> None:
        """A density's spans that deserve a bar: failures, fallbacks, then the slowest.

        They are packed on lanes like any group's; when even they need more
        than ``max_lanes`` lanes, those past it are left to the density (and
        the label says how many).
        """
        marked = [i for i, s in enumerate(spans) if s.outcome in ("failed", "fallback")]
        others = sorted(
            (i for i, s in enumerate(spans) if s.outcome not in ("failed", "fallback")),
            key=lambda i: spans[i].start - spans[i].end,
        )
        chosen = sorted(
            [*marked, *others[:NOTABLE_SLOWEST]], key=lambda i: (spans[i].start, spans[i].end)
        )
        if not chosen:
            return
        lanes, count = pack([spans[i] for i in chosen])
        shown = [(i, lane) for i, lane in zip(chosen, lanes, strict=True) if lane < self.max_lanes]
        count = min(count, self.max_lanes)
        failed = sum(spans[i].outcome == "failed" for i, _ in shown)
        fallback = sum(spans[i].outcome == "fallback" for i, _ in shown)
        what = [f"the {min(len(others), NOTABLE_SLOWEST)} slowest"] if others else []
        if failed:
            what.append(f"{failed} failed")
        if fallback:
            what.append(f"{fallback} rescued by their fallback")
        label = ", ".join(what) + " (a bar each)"
        left = len(chosen) - len(shown)
        if left:
            label += f", {left} more in the density only"
        self._label(label, self.y, ' class="sub"')
        self.y += 14
        lane_h = min(LANE_H, GROUP_H / max(count, 1))
        bar_h = max(lane_h - 2, 0.5)
        for i, lane in shown:
            extra = f' data-lane="{lane}"' + _owner(spans[i], owners, i)
            self.svg.append(self._bar(spans[i], kind, self.y + lane * lane_h, bar_h, extra))
        self.y += round(count * lane_h) + 8

    def _batch_title(self, numbers: list[int], spans: list[Span]) -> str:
        batches = [self.batches[n] for n in numbers]
        unseen = sum(b.unstarted for b in batches)
        lanes = pack(spans)[1]
        dense = len(spans) > self.max_bars or lanes > self.max_lanes
        lanes_text = ", drawn as a density" if dense else f", {plural(lanes, 'lane')}"
        unseen_text = f", {unseen} not observed" if unseen else ""
        hits = sum(len(b.hits) for b in batches)
        hits_text = f", {plural(hits, 'cache hit')}" if hits else ""
        if len(batches) == 1:
            size = "unknown size" if batches[0].size is None else plural(batches[0].size, "item")
            head = f"{batches[0].label} ({size})"
        else:
            head = f"{batches[0].label} ({plural(len(batches), 'batch')})"
        title = f"{head}: {len(spans)} recorded{hits_text}{unseen_text}{lanes_text}{_how(batches)}"
        moved = [bound for b in batches for _, bound in b.bounds]
        if moved:
            ceiling = max(b.ceiling or 0 for b in batches)
            title += f", auto concurrency {min(moved)} to {max(moved)} (ceiling {ceiling})"
        usage = summed(b.usage for b in batches)
        return title + (f"; used {amounts(usage)}" if usage else "")
