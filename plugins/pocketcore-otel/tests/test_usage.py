"""What nodes report using, on their spans: GenAI's token attributes, ours for other units."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Recorded
from hypothesis import given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore_otel import GEN_AI_INPUT_TOKENS, GEN_AI_OUTPUT_TOKENS, ITEM_INDEX, USAGE_PREFIX


class Ask(pocketcore.AsyncParallelBatchNode):
    """Each item is ``(input tokens, output tokens, failures)``: every attempt reports them."""

    async def prep_async(self, shared: dict[str, Any]) -> list[Any]:
        return list(shared["items"])

    async def exec_async(self, item: Any) -> Any:
        given_in, given_out, failures = item
        pocketcore.report_usage(input_tokens=given_in, output_tokens=given_out, requests=1)
        if self.cur_retry < failures:
            raise ValueError("billed, and failed")
        return given_in


class Pick(pocketcore.Node):
    def exec(self, prep_res: Any) -> Any:
        pocketcore.report_usage(tokens=2.5)


def by_name(spans: Recorded, name: str) -> list[Any]:
    return [s for s in spans.spans() if s.name == name]


@settings(max_examples=25, deadline=None)
@given(
    items=st.lists(
        st.tuples(st.integers(0, 5000), st.integers(0, 800), st.integers(0, 2)), max_size=8
    ),
    executor=st.sampled_from(["asyncio", "trio"]),
)
def test_each_span_carries_the_sum_of_what_was_reported_inside_it(
    recorded: Recorded, items: list[Any], executor: str
) -> None:
    recorded.clear()
    ask = Ask(max_retries=3)
    ask >> Pick()
    pocketcore.run(pocketcore.AsyncFlow(start=ask), {"items": items}, executor=executor)

    for span in by_name(recorded, "pocketcore.item Ask"):
        given_in, given_out, failures = items[span.attributes[ITEM_INDEX]]
        attempts = failures + 1  # every attempt counts: the provider billed the failed ones
        assert span.attributes[GEN_AI_INPUT_TOKENS] == given_in * attempts
        assert span.attributes[GEN_AI_OUTPUT_TOKENS] == given_out * attempts
        assert span.attributes[USAGE_PREFIX + "requests"] == attempts
    (step,) = by_name(recorded, "pocketcore.node Ask")
    if items:
        assert step.attributes[GEN_AI_INPUT_TOKENS] == sum(i * (f + 1) for i, _, f in items)
        assert step.attributes[GEN_AI_OUTPUT_TOKENS] == sum(o * (f + 1) for _, o, f in items)
    else:
        assert GEN_AI_INPUT_TOKENS not in step.attributes
    (pick,) = by_name(recorded, "pocketcore.node Pick")
    assert pick.attributes[USAGE_PREFIX + "tokens"] == 2.5
    # A flow's span would hold a sum of its nodes': left out, so nothing counts twice.
    (run,) = by_name(recorded, "pocketcore.run AsyncFlow")
    assert not [key for key in run.attributes if "usage" in key]


@pytest.mark.parametrize("target", ["batch", "plain"])
def test_a_node_run_on_its_own_has_its_usage_on_the_runs_span(spans: Recorded, target: str) -> None:
    node = Ask() if target == "batch" else Pick()
    pocketcore.run(node, {"items": [(3, 4, 0), (5, 6, 0)]})
    (run,) = by_name(spans, f"pocketcore.run {type(node).__name__}")
    if target == "batch":
        assert (run.attributes[GEN_AI_INPUT_TOKENS], run.attributes[GEN_AI_OUTPUT_TOKENS]) == (
            8,
            10,
        )
    else:
        assert run.attributes[USAGE_PREFIX + "tokens"] == 2.5


def test_nothing_reported_adds_no_attribute(spans: Recorded) -> None:
    class Quiet(pocketcore.Node):
        pass

    pocketcore.run(pocketcore.Flow(start=Quiet()), {})
    assert not [k for s in spans.spans() for k in (s.attributes or {}) if "usage" in k]
