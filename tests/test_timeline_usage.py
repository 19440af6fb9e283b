"""The timeline shows what nodes reported using, and how an auto concurrency bound moved."""

from __future__ import annotations

import re
from typing import Any

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import Limiter
from pocketcore._runtime.limits import CLEAN_ROUNDS
from tests.timeline_page import Page


class RateLimited(Exception):
    """A provider's 429, in the shape clients raise it (a status on a response)."""

    def __init__(self) -> None:
        super().__init__("429 too many requests")
        headers = {"retry-after-ms": "20"}
        self.response = type("Response", (), {"status_code": 429, "headers": headers})()


class Ask(pocketcore.AsyncParallelBatchNode):
    """Items are ``(tokens, refusals)``: each attempt reports its tokens; the first are 429s."""

    async def prep_async(self, shared: Any) -> Any:
        self.tries: dict[int, int] = {}
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        tokens, refusals = item
        await anyio.sleep(0.002)
        pocketcore.report_usage(tokens=tokens)
        tried = self.tries[id(item)] = self.tries.get(id(item), 0) + 1
        if tried <= refusals:
            raise RateLimited()
        return tokens


class Decide(pocketcore.Node):
    def exec(self, prep_res: Any) -> Any:
        pocketcore.report_usage(tokens=5)


def page_of(items: list[Any], limiter: Limiter | None = None) -> tuple[str, Page]:
    ask = Ask() if limiter is None else Ask(limiter=limiter)
    ask >> Decide()
    with pocketcore.Timeline() as timeline:
        pocketcore.run(pocketcore.AsyncFlow(start=ask), {"items": items})
    text = timeline.html()
    return text, Page(text)


def totals_row(text: str, name: str) -> str:
    found = re.search(rf"<th>{name}</th><td>(.*?)</td>", text)
    assert found, name
    return found[1]


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(0, 100_000), min_size=1, max_size=15))
def test_each_item_its_group_and_the_header_show_what_was_reported(tokens: list[int]) -> None:
    text, page = page_of([(t, 0) for t in tokens])
    bars = page.items()
    assert len(bars) == len(tokens)
    for bar in bars:
        used = tokens[int(bar["data-index"])]
        assert bar["title"].endswith(f"; used {used:,} tokens")
    group = [t for css, t in page.texts if css == "group" and t.startswith("Ask")]
    assert group[0].endswith(f"; used {sum(tokens):,} tokens")
    assert "<h1>pocketcore timeline: AsyncFlow</h1>" in text
    whole = sum(tokens) + 5
    assert totals_row(text, "usage") == (
        f"{whole:,} tokens (Ask: {sum(tokens):,} tokens; Decide: 5 tokens)"
    )


def test_a_page_without_usage_has_no_usage_row() -> None:
    class Quiet(pocketcore.Node):
        pass

    with pocketcore.Timeline() as timeline:
        pocketcore.run(pocketcore.Flow(start=Quiet()), {})
    assert "<th>usage</th>" not in timeline.html()
    assert "used" not in timeline.html()


def test_the_auto_bound_is_a_step_line_that_grows_then_halves_on_a_refusal() -> None:
    # 2, then doubling each round of successes up to the ceiling of 8; a 429
    # halves it, and it grows by one a round again, then doubles.
    items = [(1, 0)] * 20 + [(1, 1)] + [(1, 0)] * 30
    limiter = Limiter(max_concurrency="auto", ceiling=8)
    text, page = page_of(items, limiter)
    assert "auto concurrency bound" in text  # in the legend
    (line,) = page.of_class("bound")
    bounds = [int(b) for b in line["data-bounds"].split()]
    assert bounds[:3] == [2, 4, 8]
    cut = bounds.index(4, 2)  # after the ceiling: the refusal's halving
    # Then one more a round, and from the third round without a refusal,
    # doubling again (up to the ceiling).
    expected, bound = [], 4
    for clean in range(1, len(bounds) - cut):
        bound = min(8, bound * 2 if clean > CLEAN_ROUNDS else bound + 1)
        expected.append(bound)
    assert bounds[cut + 1 :] == expected
    assert "auto concurrency 2 \u2192 4 \u2192 8 \u2192 4" in line["title"]
    assert "(ceiling 8)" in line["title"]
    group = [t for css, t in page.texts if css == "group" and t.startswith("Ask")]
    assert ", auto concurrency 2 to 8 (ceiling 8)" in group[0]
    # The line runs over the group's lanes: each bound's height is that many lanes down.
    heights = [float(y) for y in re.findall(r"[,V]([\d.]+)", line["d"])]
    assert len(heights) == len(bounds)
    lane = (heights[1] - heights[0]) / (bounds[1] - bounds[0])
    assert lane > 0
    for bound, height in zip(bounds, heights, strict=True):
        assert abs(height - (heights[0] + (bound - bounds[0]) * lane)) < 0.2


def test_a_fixed_bound_draws_no_line() -> None:
    text, page = page_of([(1, 0)] * 6, Limiter(max_concurrency=3))
    assert page.of_class("bound") == []
    assert "auto concurrency" not in text


def test_a_dense_group_draws_the_bound_over_its_density() -> None:
    limiter = Limiter(max_concurrency="auto", ceiling=4)
    ask = Ask(limiter=limiter)
    with pocketcore.Timeline(max_bars=5) as timeline:
        pocketcore.run(ask, {"items": [(1, 0)] * 20})
    page = Page(timeline.html())
    assert page.of_class("density")
    (line,) = page.of_class("bound")
    assert line["data-bounds"].split()[:2] == ["2", "4"]
