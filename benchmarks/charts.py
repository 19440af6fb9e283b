"""Charts of a benchmark run, as SVG: the ratios against each peer, and cost against batch size.

Drawn from the JSON that ``python -m benchmarks --json PATH`` writes, so they
can be redrawn from saved measurements without measuring again::

    python -m benchmarks.charts benchmarks/results.json docs

``python -m benchmarks --charts DIR`` draws them right after measuring. Two
files are written into the folder:

- ``performance-ratios.svg``: every row whose reference is a peer
  (PocketFlow, raw asyncio, raw trio, an anyio task group, hand-written
  worker tasks, LangGraph), grouped by peer, as a bar from parity (1) to the
  median ratio pocketcore / peer on a log scale, with the range over the
  repeats as a whisker;
- ``performance-growth.svg``: the time per item of the fan-out groups
  (``unbounded-*`` and ``bounded-*``) against the number of items, for the
  asyncio and trio executors, pocketcore beside its references.

The SVG has no script and nothing from outside; text is in the page's fonts.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RATIOS = "performance-ratios.svg"
GROWTH = "performance-growth.svg"

# Peers, in the order the ratio chart shows them: (name, what its references look like).
PEERS = (
    ("PocketFlow 0.0.3", re.compile(r"^PocketFlow")),
    ("raw asyncio", re.compile(r"^raw (asyncio|gather)")),
    ("raw trio", re.compile(r"^raw trio")),
    ("anyio task group", re.compile(r"^anyio")),
    ("hand-written worker tasks", re.compile(r"worker tasks$")),
    ("LangGraph", re.compile(r"^LangGraph")),
)
CHEAPER, DEARER, INK, GRID = "#2e8b57", "#d9822b", "#333", "#ddd"
FONT = "font-family:system-ui,sans-serif;font-size:11px;fill:#333"


def peer(reference: str) -> str | None:
    """The peer a reference belongs to, or ``None`` (a floor, an ideal, pocketcore itself)."""
    return next((name for name, pattern in PEERS if pattern.search(reference)), None)


def _svg(width: float, height: float, title: str, body: Iterable[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img">'
        f"<title>{html.escape(title)}</title><style>text{{{FONT}}} .head{{font-weight:600}}"
        f" .small{{font-size:10px;fill:#666}}</style>"
        f'<rect width="{width:.0f}" height="{height:.0f}" fill="#fff"/>{"".join(body)}</svg>\n'
    )


def _text(x: float, y: float, text: str, css: str = "", anchor: str = "start") -> str:
    cls = f' class="{css}"' if css else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{cls}>{html.escape(text)}</text>'


SHORTER = (  # the table's wording, shortened for a label column
    (r",? *each item await sleep\(0\)", ""),
    (r"peak traced memory per item \(tracemalloc\)", "memory"),
    (r"latency-bound: 1000 items x 50 ms sleep, unbounded", "latency, 1000 x 50 ms"),
    (r"executor (\w+)", r"\1"),
    (r" \(one item at a time\)", ""),
)


def _short(section: str, scenario: str) -> str:
    label = f"{section}: {scenario}"
    for pattern, replacement in SHORTER:
        label = re.sub(pattern, replacement, label)
    return label if len(label) <= 66 else label[:65] + "\u2026"


def ratio_rows(run: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The rows against each peer, in the order of the run."""
    by_peer: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in PEERS}
    for group in run["groups"]:
        for row in group["rows"]:
            name = peer(row["reference"])
            if name is not None and row["ratio"] > 0:
                kind = " (memory)" if group["kind"] == "memory" else ""
                by_peer[name].append(
                    {**row, "label": _short(row["section"], row["scenario"]) + kind}
                )
    for rows in by_peer.values():  # two rows of one label: say which reference each is
        labels = [row["label"] for row in rows]
        for row in rows:
            if labels.count(row["label"]) > 1:
                row["label"] += f" vs {row['reference']}"
    return {name: rows for name, rows in by_peer.items() if rows}


def ratios_svg(run: dict[str, Any]) -> str:
    """The ratio chart: a bar per row, from 1 to its median ratio, log scale, by peer."""
    rows = ratio_rows(run)
    label_w, plot_w, row_h, top = 430, 420, 16, 44
    low, high = 1 / 8, 8.0  # beyond these a bar is cut, its figure still written

    def x(ratio: float) -> float:
        clipped = min(max(ratio, low), high)
        return label_w + (math.log2(clipped) - math.log2(low)) / math.log2(high / low) * plot_w

    height = top + sum(row_h * (len(r) + 1.6) for r in rows.values()) + 30
    body = [
        _text(8, 16, "pocketcore / peer, median over repeats (lower: pocketcore cheaper)", "head"),
        _text(8, 30, "log scale; whiskers: the range over the repeats", "small"),
    ]
    for tick in (0.125, 0.25, 0.5, 1, 2, 4, 8):
        body.append(
            f'<line x1="{x(tick):.1f}" y1="{top - 4}" x2="{x(tick):.1f}" y2="{height - 26:.0f}" '
            f'stroke="{INK if tick == 1 else GRID}" stroke-width="{1.2 if tick == 1 else 1}"/>'
        )
        body.append(_text(x(tick), height - 12, f"{tick:g}\u00d7", "small", "middle"))
    y = float(top)
    for name, peer_rows in rows.items():
        body.append(_text(8, y + 11, f"against {name}", "head"))
        y += row_h * 1.2
        for row in peer_rows:
            ratio = row["ratio"]
            a, b = sorted((x(1), x(ratio)))
            colour = CHEAPER if ratio <= 1 else DEARER
            tip = (
                f"{row['label']}: pocketcore {row['subject_figure']}, {row['reference']} "
                f"{row['reference_figure']}, ratio {ratio:.2f} "
                f"({row['ratio_low']:.2f} to {row['ratio_high']:.2f} over the repeats)"
            )
            body.append(_text(label_w - 6, y + 10, row["label"], "", "end"))
            body.append(
                f'<rect x="{a:.1f}" y="{y + 2:.1f}" width="{max(b - a, 1):.1f}" '
                f'height="{row_h - 5}" fill="{colour}"><title>{html.escape(tip)}</title></rect>'
            )
            lo, hi = x(row["ratio_low"]), x(row["ratio_high"])
            mid = y + 2 + (row_h - 5) / 2
            body.append(
                f'<line x1="{lo:.1f}" y1="{mid:.1f}" x2="{hi:.1f}" y2="{mid:.1f}" '
                f'stroke="{INK}" stroke-width="1"/>'
            )
            body.append(_text(max(b, hi) + 4, y + 10, f"{ratio:.2f}", "small"))
            y += row_h
        y += row_h * 0.4
    return _svg(label_w + plot_w + 60, height, "pocketcore against its peers", body)


# --- cost against the number of items ------------------------------------------------------

SERIES = (  # (group key prefix, contender key, label, colour, dashes)
    ("unbounded", "pc", "pocketcore, unbounded", "#3b7dd8", ""),
    ("unbounded", "raw", "raw gather / nursery, unbounded", "#3b7dd8", "5 3"),
    ("unbounded", "pf", "PocketFlow, unbounded", "#888", "2 2"),
    ("bounded", "pc", "pocketcore, limit 64", "#2e8b57", ""),
    ("bounded", "pool", "64 worker tasks, limit 64", "#2e8b57", "5 3"),
)
SIZE_KEY = re.compile(r"^(unbounded|bounded)-(asyncio|trio)-1e(\d)$")


def growth_points(run: dict[str, Any]) -> dict[tuple[str, str, str], list[tuple[int, float]]]:
    """(kind, backend, contender) -> [(exponent of the item count, microseconds per item)]."""
    points: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    for group in run["groups"]:
        match = SIZE_KEY.match(group["key"])
        if not match:
            continue
        kind, backend, exponent = match[1], match[2], int(match[3])
        drawn = {contender for prefix, contender, *_ in SERIES if prefix == kind}
        for c in group["contenders"]:
            if c["key"] in drawn and c["median_per_unit"] is not None:
                key = (kind, backend, c["key"])
                points.setdefault(key, []).append((exponent, c["median_per_unit"] * 1e6))
    return {k: sorted(v) for k, v in points.items()}


def growth_svg(run: dict[str, Any]) -> str:
    """Two panels (asyncio, trio): microseconds per item against the number of items."""
    points = growth_points(run)
    exps = sorted({e for series in points.values() for e, _ in series}) or [3, 6]
    panel_w, panel_h, left, top, gap = 380, 240, 50, 52, 60
    values = [us for series in points.values() for _, us in series] or [1.0, 10.0]
    # A log scale: the bounded runs cost a few microseconds an item, the unbounded tens.
    low_decade = math.floor(math.log10(min(values)))
    steps = [m * 10**d for d in range(low_decade, low_decade + 8) for m in (1, 2, 5)]
    lo = max(t for t in steps if t <= min(values))
    hi = min(t for t in steps if t >= max(values))
    ticks = [t for t in steps if lo <= t <= hi]
    body = [_text(8, 16, "time per item (\u00b5s, log scale) against the number of items", "head")]
    for n, backend in enumerate(("asyncio", "trio")):
        x0 = left + n * (panel_w + gap)

        def x(exponent: float, x0: float = x0) -> float:
            span = max(exps[-1] - exps[0], 1)
            return x0 + (exponent - exps[0]) / span * panel_w

        def y(us: float) -> float:
            return top + panel_h - math.log10(us / lo) / math.log10(hi / lo) * panel_h

        body.append(_text(x0 + panel_w / 2, top - 8, f"executor {backend}", "head", "middle"))
        for tick in ticks:
            body.append(
                f'<line x1="{x0}" y1="{y(tick):.1f}" x2="{x0 + panel_w}" y2="{y(tick):.1f}" '
                f'stroke="{GRID}"/>'
            )
            body.append(_text(x0 - 6, y(tick) + 4, f"{tick:g}", "small", "end"))
        body.extend(
            _text(x(e), top + panel_h + 16, f"10{_superscript(e)}", "small", "middle") for e in exps
        )
        for kind, contender, label, colour, dashes in SERIES:
            series = points.get((kind, backend, contender))
            if not series:
                continue
            line = " ".join(f"{x(e):.1f},{y(us):.1f}" for e, us in series)
            dash = f' stroke-dasharray="{dashes}"' if dashes else ""
            body.append(
                f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"{dash}>'
                f"<title>{html.escape(label)}</title></polyline>"
            )
            for e, us in series:
                tip = f"{label}, {backend}, 10{_superscript(e)} items: {us:.2f} \u00b5s per item"
                body.append(
                    f'<circle cx="{x(e):.1f}" cy="{y(us):.1f}" r="3" fill="{colour}">'
                    f"<title>{html.escape(tip)}</title></circle>"
                )
    legend_y = top + panel_h + 40
    for n, (_, _, label, colour, dashes) in enumerate(SERIES):
        lx = left + (n % 3) * 260
        ly = legend_y + (n // 3) * 16
        dash = f' stroke-dasharray="{dashes}"' if dashes else ""
        body.append(
            f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 26}" y2="{ly - 4}" stroke="{colour}" '
            f'stroke-width="2"{dash}/>'
        )
        body.append(_text(lx + 32, ly, label))
    width = left + 2 * panel_w + gap + 30
    return _svg(width, legend_y + 30, "time per item against the number of items", body)


def _superscript(exponent: int) -> str:
    return str(exponent).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def write(run: dict[str, Any], folder: Path) -> list[Path]:
    """Write both charts of ``run`` (a ``--json`` payload) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, svg in ((RATIOS, ratios_svg(run)), (GROWTH, growth_svg(run))):
        path = folder / name
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.charts", description=__doc__.splitlines()[0]
    )
    parser.add_argument("json", type=Path, help="a run saved by python -m benchmarks --json")
    parser.add_argument("folder", type=Path, help="where the SVG files go")
    args = parser.parse_args(argv)
    try:
        run = json.loads(args.json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        parser.error(f"cannot read {args.json}: {exc}")
    for path in write(run, args.folder):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
