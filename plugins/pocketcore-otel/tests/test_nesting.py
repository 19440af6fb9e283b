"""Flows in flows, runs in user spans, failures outside items, cancelled runs."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from conftest import Recorded
from opentelemetry.trace import StatusCode
from tree import Tree, recorded_exceptions

import pocketcore
from pocketcore_otel import ATTEMPT_EVENT, BATCH_SIZE, CANCELLED, ITEM_INDEX, NODE_CLASS


class Step(pocketcore.Node):
    pass


class Double(pocketcore.BatchNode):
    def prep(self, shared: Any) -> list[int]:
        return [1, 2]

    def exec(self, x: int) -> int:
        return 2 * x


def test_a_nested_flow_is_a_flow_span_holding_its_steps(spans: Recorded) -> None:
    inner = pocketcore.Flow(start=Step())
    outer_first = Step()
    outer_first >> inner
    pocketcore.run(pocketcore.Flow(start=outer_first), {})
    tree = Tree(spans.spans())
    assert tree.root.name == "pocketcore.run Flow"
    flow = tree.one("pocketcore.flow Flow")
    assert tree.parent(flow) is tree.root
    assert flow.attributes == {NODE_CLASS: "pocketcore._nodes.flows.Flow"}
    steps = tree.named("pocketcore.node Step")
    assert sorted(tree.parent(s) is flow for s in steps) == [False, True]  # type: ignore[comparison-overlap]


def test_a_run_inside_a_user_span_joins_its_trace(spans: Recorded) -> None:
    with spans.user.start_as_current_span("request"):
        pocketcore.run(Double(), {})
    tree = Tree(spans.spans())
    assert tree.root.name == "request"
    (run,) = tree.children(tree.root)
    assert run.name == "pocketcore.run Double"
    assert run.attributes[BATCH_SIZE] == 2  # type: ignore[index]
    assert [s.attributes[ITEM_INDEX] for s in tree.children(run)] == [0, 1]  # type: ignore[index]


class BadPrep(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: Any) -> list[int]:
        raise LookupError("no input")


def test_a_failure_outside_the_items_is_recorded_on_the_step(spans: Recorded) -> None:
    first = Step()
    first >> BadPrep()
    with pytest.raises(LookupError):
        pocketcore.run(pocketcore.AsyncFlow(start=first), {})
    tree = Tree(spans.spans())
    step = tree.one("pocketcore.node BadPrep")
    assert recorded_exceptions(step) == [("LookupError", "no input")]
    assert step.status.status_code is StatusCode.ERROR
    assert tree.root.status.status_code is StatusCode.ERROR
    assert tree.root.status.description == "LookupError: no input"
    assert not recorded_exceptions(tree.root)
    assert tree.one("pocketcore.node Step").status.status_code is StatusCode.UNSET


class Outer(pocketcore.BatchNode):
    def prep(self, shared: Any) -> list[int]:
        return [0]

    def exec(self, x: int) -> None:
        Double().run({})  # inside a run: neither a step nor a run of its own


def test_a_batch_node_run_by_hand_inside_a_run_nests_under_the_current_span(
    spans: Recorded,
) -> None:
    pocketcore.run(Outer(), {})
    tree = Tree(spans.spans())
    (outer_item,) = tree.named("pocketcore.item Outer")
    inner_items = tree.named("pocketcore.item Double")
    assert len(inner_items) == 2
    assert all(tree.parent(s) is outer_item for s in inner_items)


class Sleepy(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: Any) -> list[int]:
        return [1, 2]

    async def exec_async(self, x: int) -> None:
        await trio.sleep(10)


def test_a_cancelled_run_is_marked_cancelled_not_failed(spans: Recorded) -> None:
    async def main() -> None:
        with trio.move_on_after(0.05):
            await Sleepy().run_async({})

    trio.run(main)
    tree = Tree(spans.spans())
    assert tree.root.name == "pocketcore.run Sleepy"
    for span in tree.spans:
        assert span.attributes[CANCELLED] is True  # type: ignore[index]
        assert span.status.status_code is StatusCode.UNSET
        assert not recorded_exceptions(span)
    items = tree.named("pocketcore.item Sleepy")
    assert len(items) == 2
    for item in items:  # its one attempt, cancelled
        (attempt,) = item.events
        assert attempt.name == ATTEMPT_EVENT
        assert attempt.attributes is not None
        assert attempt.attributes[CANCELLED] is True
        assert attempt.attributes["exception.type"] == "Cancelled"
