"""The words of a timeline's page: numbers as they read, the totals and the notes.

What stands above the chart: the table of totals (wall time, items and how
they ended, cache hits, concurrency, usage, the slowest items) and the notes
(the legend, how to read the lanes and densities, the items not observed).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping

from pocketcore._runtime.usage import amounts

from .measure import concurrency
from .spans import Batch, Span

__all__ = ["NOTABLE_SLOWEST", "notes", "plural", "rounded", "seconds", "summed", "totals"]

NOTABLE_SLOWEST = 10
"""A density still draws this many of its slowest spans as bars (and every failure)."""


def plural(count: int, word: str) -> str:
    """``count`` and ``word``, in the plural unless ``count`` is 1."""
    return f"{count} {word}" + ("" if count == 1 else "es" if word.endswith("h") else "s")


def rounded(value: float) -> str:
    """A mean number in flight, as it reads: whole from 10 up, else to one decimal."""
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def seconds(value: float) -> str:
    """A duration: in milliseconds below a second, else in seconds."""
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.3f} s"


def summed(usages: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The usages added up, unit by unit, in the order the units were first seen."""
    total: dict[str, float] = {}
    for usage in usages:
        for unit, amount in usage.items():
            total[unit] = total.get(unit, 0.0) + amount
    return total


def totals(runs: list[Span], steps: list[Span], batches: list[Batch], wall: float) -> str:
    """The table of totals: wall time, runs, steps, items, cache hits, concurrency, usage."""
    items = [span for batch in batches for span in batch.items]
    peak, mean = concurrency(items)
    by = {o: sum(1 for s in items if s.outcome == o) for o in ("failed", "cancelled", "fallback")}
    retried = sum(1 for s in items if len(s.attempts) > 1)
    hits = sum(len(b.hits) for b in batches)
    step_hits = sum(1 for s in steps if s.cached)
    slowest = sorted(items, key=lambda s: s.start - s.end)[:5]
    ran = f"{len(items)} ran in {plural(len(batches), 'batch')}"
    if items:
        ran += (
            f" ({by['failed']} failed, {by['cancelled']} cancelled, {retried} retried, "
            f"{by['fallback']} given their result by the fallback)"
        )
    if hits:
        ran += f", {hits} more found in the cache"
    rows = [
        ("wall time", seconds(wall)),
        ("runs", f"{len(runs)}"),
        ("steps", f"{len(steps)}"),
        ("items", ran),
        (
            "cache hits",
            f"{hits + step_hits}"
            + (f" ({step_hits} of them steps of plain nodes)" if step_hits else ""),
        ),
        (
            "peak concurrency",
            f"{plural(peak, 'item')} in flight" if items else "none: no item ran",
        ),
        (
            "mean concurrency",
            f"{mean:.2f} items in flight, while any was" if items else "none: no item ran",
        ),
        (
            "slowest items",
            ", ".join(f"{s.label} item {s.index}: {seconds(s.end - s.start)}" for s in slowest)
            or "none",
        ),
    ]
    usage = summed(r.usage for r in runs) or summed(b.usage for b in batches)
    if usage:
        rows.insert(4, ("usage", amounts(usage) + _usage_by_node(batches, steps)))
    body = "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _usage_by_node(batches: list[Batch], steps: list[Span]) -> str:
    """`` (Summarize: 1,234 tokens; Decide: 56 tokens)``: the usage of each node class."""
    by_node: dict[str, list[Mapping[str, float]]] = {}
    for batch in batches:
        by_node.setdefault(batch.label, []).append(batch.usage)
    batched = set(by_node)
    for step in steps:  # a batch node's step has its batch's; a flow's step has none
        if step.label not in batched:
            by_node.setdefault(step.label, []).append(step.usage)
    parts = [
        f"{label}: {amounts(total)}"
        for label, usages in by_node.items()
        if (total := summed(usages))
    ]
    return f" ({'; '.join(parts)})" if parts else ""


def notes(batches: list[Batch], densities: list[str], max_lanes: int, max_bars: int) -> str:
    """The legend and how to read the chart; ``densities``: the groups drawn as densities."""
    legend = "".join(
        f'<span style="{style}"></span>{name}'
        for name, style in (
            ("ok", "background:#3b7dd8"),
            ("failed", "background:#d62728"),
            ("cancelled", "background:#b9b9b9"),
            ("fallback", "background:#f2a516"),
            ("unfinished", "background:#dbe8f8;border:1px dashed #3b7dd8"),
            ("step", "background:#8e6bbf"),
            ("cache hit", "border-left:2px solid #2ca02c;width:2px"),
            *(
                [("auto concurrency bound", "border-top:2px dashed #e4572e;height:0")]
                if any(b.bounds for b in batches)
                else []
            ),
        )
    )
    notes = [
        f'<p class="legend">{legend}</p>',
        '<p class="note">Each batch\'s items are packed on lanes: a lane holds one item '
        "at a time, so the number of busy lanes is the number of items in flight, and a "
        "concurrency limit shows as a ceiling. An item that made more than one attempt, or "
        "whose fallback gave its result, is drawn pale with a segment for each attempt (red "
        "when it failed, blue for the one that succeeded) and, in amber, the fallback; the "
        "pale gaps between them are the waits. Cache hits are green ticks above their "
        "group. Hover over a bar or a segment for its node, item, attempt, duration and "
        "error.</p>",
    ]
    if densities:
        notes.append(
            f'<p class="note">Groups that need more than {max_lanes} lanes, or hold '
            f"more than {max_bars} bars, are drawn as a density: how many were in flight "
            "over time (the mean over each pixel of time), stacked by outcome, and beneath "
            "it a bar each for the failed items, those rescued by their fallback and the "
            f"{NOTABLE_SLOWEST} slowest. Hover over the density for what was in flight "
            "when: " + html.escape("; ".join(densities)) + ".</p>"
        )
    unstarted = sum(b.unstarted for b in batches)
    if unstarted:
        notes.append(
            f'<p class="note">{unstarted} items ran where they cannot be observed (an '
            "executor that runs the calls itself reports them when the results are back): "
            "they are counted in their batch's title, not drawn.</p>"
        )
    return "".join(notes)
