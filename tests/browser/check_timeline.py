"""Open timelines in headless Chromium: they load without console errors and draw their bars.

Run by ``nox -s browser`` (not by pytest: it needs a Chromium binary, found on
PATH as ``chromium``, ``chromium-browser`` or ``google-chrome``, or named by
the ``CHROMIUM`` environment variable). Five pages are made: a parallel
batch, a failing batch, a retried batch (items that fail before they succeed,
and fallbacks), a wide batch and the image-filter demo on trio. Each is loaded, its DOM as
the browser parsed it must hold one item bar per recorded item and one
segment per attempt of the items that made several (and one per fallback),
every bar at least 5 pixels high (the lane limit: a group that would need
more lanes is drawn as a density, as the fifth page, 2,000 items at once
with some failing, must be: its bands by outcome, its hover slices, and a bar
each for its failed and slowest items only),
and its screenshot must show the item colour (the failure colour when an
attempt or item failed, the fallback colour when a fallback gave a result)
on a page that is not blank. (The pictures in the docs are made by
``pictures.py``, beside this script, from the commands shown next to them.)
"""

from __future__ import annotations

import argparse
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from chromium import browse, chromium
from PIL import Image

import pocketcore
from pocketcore._cli.demos import images

ITEM_RGB = (0x3B, 0x7D, 0xD8)
FAILED_RGB = (0xD6, 0x27, 0x28)
FALLBACK_RGB = (0xF2, 0xA5, 0x16)
LEGEND_PX = 12 * 10


class Check(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> range:
        return range(shared["n"])

    async def exec_async(self, i: int) -> int:
        await anyio.sleep(0.002 * (i % 7 + 1))
        if i == self.params.get("bad"):
            raise ValueError(f"item {i} is bad")
        return i


class Wide(pocketcore.AsyncParallelBatchNode):
    """2,000 items at once: every 97th fails, every 401st is slow."""

    async def prep_async(self, shared: dict[str, Any]) -> range:
        return range(shared["n"])

    async def exec_async(self, i: int) -> int:
        await anyio.sleep(0.05 + 0.0001 * (i * 7919 % 1000) + (0.3 if i % 401 == 17 else 0))
        if i % 97 == 5:
            raise ValueError(f"item {i}: upstream said 503")
        return i


class Retried(pocketcore.AsyncParallelBatchNode):
    """Item ``i`` fails ``i % 3`` attempts before it succeeds; with 2 attempts, every third
    falls back."""

    async def prep_async(self, shared: dict[str, Any]) -> range:
        return range(shared["n"])

    async def exec_async(self, i: int) -> int:
        await anyio.sleep(0.01)
        if self.cur_retry < i % 3:
            raise ValueError(f"item {i} attempt {self.cur_retry}")
        return i

    async def exec_fallback_async(self, i: int, exc: Exception) -> int:
        return -i


def record(path: Path, run: Callable[[], None]) -> pocketcore.Timeline:
    timeline = pocketcore.Timeline(path)
    try:
        with timeline:
            run()
    except ValueError:
        pass
    return timeline


def check_page(browser: str, path: Path, timeline: pocketcore.Timeline, shot: Path) -> str:
    items = [span for batch in timeline.batches for span in batch.items]
    failed = sum(span.outcome == "failed" for span in items)
    fallbacks = sum(span.outcome == "fallback" for span in items)
    segments = sum(
        len(s.attempts) + (s.outcome == "fallback")
        for s in items
        if len(s.attempts) > 1 or s.outcome == "fallback"
    )
    red_attempts = sum(a.outcome == "failed" for s in items for a in s.attempts)
    dom, console = browse(browser, path, "--dump-dom")
    assert not console, f"{path.name}: console messages:\n{console}"
    assert "<svg" in dom, f"{path.name}: no SVG in the DOM"
    bars = len(re.findall(r'<rect class="item ', dom))
    heights = [float(h) for h in re.findall(r'<rect class="item [^>]*height="([\d.]+)"', dom)]
    assert len(heights) == bars, f"{path.name}: bars without a height"
    assert min(heights, default=5) >= 5, f"{path.name}: bars {min(heights)} pixels high"
    if 'class="density ' in dom:
        # A bar each for the failures and fallbacks, and the ten slowest of the rest.
        expected = failed + fallbacks + min(10, len(items) - failed - fallbacks)
        assert bars == expected, f"{path.name}: {bars} item bars, {expected} notable items"
        slices = re.findall(r'<rect class="slice"[^>]*><title>([^<]*)</title>', dom)
        assert len(slices) == 100, f"{path.name}: {len(slices)} hover slices"
        assert any("failed" in tip for tip in slices), f"{path.name}: no failure in the slices"
        for outcome in {s.outcome for s in items}:
            assert f'class="density {outcome} items"' in dom, f"{path.name}: no {outcome} band"
        segments = sum(  # only the notable items are bars, with their segments
            len(s.attempts) + (s.outcome == "fallback")
            for s in items
            if s.outcome in ("failed", "fallback")
            and (len(s.attempts) > 1 or s.outcome == "fallback")
        )
    else:
        assert bars == len(items), f"{path.name}: {bars} item bars, {len(items)} items"
    assert len(re.findall(r'<rect class="item failed"', dom)) == failed
    drawn = len(re.findall(r'<rect class="attempt ', dom))
    assert drawn == segments, f"{path.name}: {drawn} attempt segments, {segments} expected"
    svg = re.search(r'<svg width="\d+" height="(\d+)"', dom)
    assert svg, f"{path.name}: the SVG has no height"
    height = int(svg.group(1)) + 280  # the header and notes above it
    browse(browser, path, f"--screenshot={shot}", f"--window-size=1260,{height}")
    with Image.open(shot) as image:
        pixels = {rgb: n for n, rgb in image.convert("RGB").getcolors(1 << 24) or []}
    assert len(pixels) > 20, f"{path.name}: the screenshot is blank"
    # The legend has a swatch of each colour (12 x 10 pixels): bars are more.
    assert pixels.get(ITEM_RGB, 0) > LEGEND_PX, f"{path.name}: no item bar on the screenshot"
    red = pixels.get(FAILED_RGB, 0)
    reds = failed + red_attempts
    assert (red > LEGEND_PX) == bool(reds), f"{path.name}: {red} red pixels, {reds} failures"
    amber = pixels.get(FALLBACK_RGB, 0)
    assert (amber > LEGEND_PX) == bool(fallbacks), f"{path.name}: {amber} amber pixels"
    return (
        f"{path.name}: {bars} item bars ({failed} failed, {fallbacks} by fallback), "
        f"{drawn} attempt segments, no console messages, {shot.name} ok"
    )


def self_test(browser: str, folder: Path) -> None:
    """The console check sees an error when there is one (else it proves nothing)."""
    page = folder / "noisy.html"
    page.write_text("<!DOCTYPE html><script>console.error('noisy')</script>", encoding="utf-8")
    assert "noisy" in browse(browser, page, "--dump-dom")[1], "console messages are not seen"


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    browser = chromium()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        self_test(browser, folder)
        failing = Check()
        failing.set_params({"bad": 5})
        pages = {
            "parallel": lambda: pocketcore.run(
                Check(), {"n": 40}, executor="trio", max_concurrency=5
            ),
            "failing": lambda: pocketcore.run(
                failing, {"n": 12}, executor="asyncio", max_concurrency=3
            ),
            "retried": lambda: pocketcore.run(
                Retried(max_retries=2, wait=0.01), {"n": 12}, executor="trio", max_concurrency=4
            ),
            "wide": lambda: pocketcore.run(
                Wide(on_error="collect"), {"n": 2000}, executor="asyncio"
            ),
            "image-filter": lambda: pocketcore.run(
                images.build(True), images.DEMO.start(0.25), executor="trio", max_concurrency=4
            ),
        }
        for name, run in pages.items():
            path = folder / f"{name}.html"
            timeline = record(path, run)
            shot = folder / f"{name}.png"
            print(check_page(browser, path, timeline, shot))


if __name__ == "__main__":
    main()
