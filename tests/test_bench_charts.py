"""The charts of docs/performance.md: drawn by ``nox -s bench`` from the measurements it saved.

``benchmarks/results.json`` is the run the page's charts and figures come
from; redrawing the charts from it must give the committed SVG files, so a
chart cannot drift from its measurements (or be edited by hand).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks import charts

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.json"


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RESULTS.read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("name", [charts.RATIOS, charts.GROWTH])
def test_the_committed_charts_are_drawn_from_the_saved_measurements(
    run: dict[str, Any], name: str
) -> None:
    drawn = {charts.RATIOS: charts.ratios_svg, charts.GROWTH: charts.growth_svg}[name](run)
    assert (ROOT / "docs" / name).read_text(encoding="utf-8") == drawn
    assert f"]({name})" in (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")


def test_cost_growth_has_every_size_for_both_executors_bounded_and_not(
    run: dict[str, Any],
) -> None:
    svg = charts.growth_svg(run)
    points = set(re.findall(r"<title>(pocketcore, [^,<]+), (\w+), 10(\S+) items", svg))
    sizes = {"³", "⁴", "⁵", "⁶"}
    for label in ("pocketcore, unbounded", "pocketcore, limit 64"):
        for backend in ("asyncio", "trio"):
            assert {e for lab, b, e in points if lab == label and b == backend} == sizes


def test_every_row_against_a_peer_is_a_bar(run: dict[str, Any]) -> None:
    rows = [
        row
        for group in run["groups"]
        for row in group["rows"]
        if charts.peer(row["reference"]) is not None
    ]
    svg = charts.ratios_svg(run)
    bars = re.findall(
        r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="[^"]+" fill="([^"]+)">', svg
    )
    assert len(bars) == len(rows) > 0
    assert [colour == charts.CHEAPER for colour in bars] == [
        row["ratio"] <= 1 for rows_ in charts.ratio_rows(run).values() for row in rows_
    ]
    for name in charts.ratio_rows(run):
        assert f">against {name}<" in svg


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("PocketFlow AsyncBatchNode", "PocketFlow 0.0.3"),
        ("raw asyncio.gather", "raw asyncio"),
        ("raw gather, uvloop", "raw asyncio"),
        ("raw trio nursery", "raw trio"),
        ("anyio task group", "anyio task group"),
        ("64 trio worker tasks", "hand-written worker tasks"),
        ("LangGraph Send", "LangGraph"),
        ("bare await loop", None),
        ("ideal (50 ms)", None),
        ("pocketcore unbounded", None),
    ],
)
def test_which_references_are_peers(reference: str, expected: str | None) -> None:
    assert charts.peer(reference) == expected
