"""Parallel summaries: summarise a few texts with a slow (simulated) LLM call.

``AsyncBatchNode`` summarises them one after another; ``AsyncParallelBatchNode``
hands them to the run's executor, so with a parallel one the whole batch
takes about one call's delay.
"""

from __future__ import annotations

from typing import Any

import anyio

from pocketcore._nodes.flows import AsyncFlow
from pocketcore._nodes.nodes import AsyncBatchNode, AsyncParallelBatchNode, BaseNode

from .spec import Demo

TEXTS = {
    "bees": "Honeybees dance to tell their hive where flowers are. The angle points the way.",
    "bridges": "Suspension bridges hang their deck from cables. Towers carry the load down.",
    "clouds": "Clouds are droplets of water too small to fall. They form as moist air cools.",
    "compass": "A compass needle lines up with the earth's magnetic field. It points north.",
    "moss": "Moss has no roots and drinks through its leaves. It grows where it stays damp.",
    "rivers": "Rivers carve valleys over thousands of years. Floods move the most rock.",
    "tides": "Tides follow the moon's pull on the oceans. Most coasts see two a day.",
    "yeast": "Yeast turns sugar into gas and alcohol. The gas is what makes bread rise.",
}
"""The texts to summarise, by name."""


async def call_llm(prompt: str, delay: float) -> str:
    """Pretend to be an LLM: wait ``delay`` seconds, then answer with the first sentence."""
    await anyio.sleep(delay)
    return prompt.split(". ")[0].strip().rstrip(".") + "."


class _Summarize:
    """The summary step, shared by the one-by-one and the parallel node."""

    async def prep_async(self, shared: dict[str, Any]) -> list[tuple[str, str, float]]:
        # The delay travels with each item, so the step works in another process too.
        return [(name, text, shared["delay"]) for name, text in sorted(shared["texts"].items())]

    async def exec_async(self, item: tuple[str, str, float]) -> tuple[str, str]:
        name, text, delay = item
        return name, await call_llm(text, delay)

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["summaries"] = dict(exec_res)


class SummarizeOneByOne(_Summarize, AsyncBatchNode):
    """Summarise the texts one after another."""


class SummarizeAll(_Summarize, AsyncParallelBatchNode):
    """Summarise the texts concurrently, through the run's executor."""


def build(parallel: bool) -> BaseNode:
    """The flow: one summary step, parallel or one by one."""
    return AsyncFlow(start=SummarizeAll() if parallel else SummarizeOneByOne())


DEMO = Demo(
    title="parallel summaries",
    kinds=("AsyncBatchNode", "AsyncParallelBatchNode"),
    delay_variable="SUMMARY_DELAY",
    default_delay=0.5,
    build=build,
    inputs=("texts", TEXTS),
    output="summaries",
)
