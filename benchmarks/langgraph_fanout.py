"""LangGraph's equivalent of an unbounded fan-out: one ``Send`` per item (optional peer).

Imported only when LangGraph is installed.
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph  # type: ignore[import-not-found, unused-ignore]
from langgraph.types import Send  # type: ignore[import-not-found, unused-ignore]

from .workloads import Body


class State(TypedDict):
    items: list[int]
    results: Annotated[list[Any], operator.add]


class ItemState(TypedDict):
    item: int


async def work(state: ItemState) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"results": [None]}


def fan(state: State) -> list[Send]:
    return [Send("work", {"item": item}) for item in state["items"]]


def send_fanout(n: int) -> Body:
    """``await graph.ainvoke(...)`` of a graph that sends each of ``n`` items to ``work``."""
    builder = StateGraph(State)
    builder.add_node("work", work)
    builder.add_conditional_edges(START, fan, ["work"])
    builder.add_edge("work", END)
    graph = builder.compile()

    async def body() -> Any:
        out = await graph.ainvoke({"items": list(range(n)), "results": []})
        assert len(out["results"]) == n
        return out

    return body
