"""A timeline of runs as one self-contained HTML file: the :class:`Timeline` observer.

Recording and rendering are apart. ``record.py`` has the observer: its hooks
only note a ``time.perf_counter()`` reading and a few fields per event, into
the values of ``spans.py`` (attempts, spans, batches). ``render.py`` makes the
page from a copy of them, after the run: one HTML file with the SVG, its CSS
and no script, so it opens anywhere, offline. It lays the spans out with
``measure.py`` (lanes, what was in flight when, densities) and writes the
totals and notes above the chart with ``text.py``.
"""

from .measure import concurrency, density, in_flight, pack
from .record import Timeline
from .render import MAX_BARS, MAX_LANES
from .spans import Attempt, Batch, Span

__all__ = [
    "MAX_BARS",
    "MAX_LANES",
    "Attempt",
    "Batch",
    "Span",
    "Timeline",
    "concurrency",
    "density",
    "in_flight",
    "pack",
]
