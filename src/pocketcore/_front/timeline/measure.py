"""Packing and measuring a timeline's spans: lanes, what is in flight when, a density.

Plain numbers, no drawing: :func:`pack` gives each span a lane so that the
spans of a lane never overlap, :func:`in_flight` and :func:`concurrency` say
how many were in flight over time, and :func:`density` spreads them over
columns of pixels for a group too large for lanes.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence

from .spans import Span

__all__ = ["concurrency", "density", "in_flight", "pack"]


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


def density(spans: Sequence[Span], t0: float, scale: float, width: int) -> list[float]:
    """The mean number of ``spans`` in flight over each of ``width`` columns of pixels.

    Column ``c`` covers the times from ``t0 + c / scale`` to ``t0 + (c + 1) /
    scale``. A span adds the share of each column it covers, so the sum over
    the columns is the spans' total time in pixels: nothing is lost between
    columns, however short the spans.
    """
    cover = [0.0] * (width + 1)
    whole = [0] * (width + 2)  # differences: columns a span covers from edge to edge
    for span in spans:
        a = min(max((span.start - t0) * scale, 0.0), float(width))
        b = min(max((span.end - t0) * scale, a), float(width))
        first, last = int(a), int(b)
        if first == last:
            cover[first] += b - a
            continue
        cover[first] += first + 1 - a
        whole[first + 1] += 1
        whole[last] -= 1
        cover[last] += b - last
    running = 0
    for col in range(width):
        running += whole[col]
        cover[col] += running
    return cover[:width]


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
