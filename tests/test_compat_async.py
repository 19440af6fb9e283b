"""Differential tests against PocketFlow 0.0.3: the async classes.

AsyncNode and AsyncFlow (with sync nodes inside), ``run()`` on an async node
raising, async flows run with ``run()``, AsyncBatchNode and
AsyncParallelBatchNode (results in input order, retries, fallbacks), and a
node attribute called ``executor``. Same method as the other
``test_compat_*`` files (see ``compat_programs``); async batch flows are in
``test_flows``.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from .compat_programs import Program, compare, methods, ticks

# --------------------------------------------------------------------------
# Async
# --------------------------------------------------------------------------


def test_async_node_and_flow_with_sync_nodes_inside() -> None:
    def build(mod, rec):
        async def aexec(self, p):
            await ticks(2)
            return p

        s1 = rec.node(mod, "Node", "s1", exec=lambda self, p: self.cur_retry)
        a1 = rec.node(
            mod,
            "AsyncNode",
            "a1",
            prep=lambda self, shared: "x",
            exec=aexec,
            post=lambda self, shared, p, e: "to_sync",
        )
        s2 = rec.node(mod, "BatchNode", "s2", prep=lambda self, shared: [1, 2])
        s1 >> a1
        a1 - "to_sync" >> s2
        flow = rec.node(mod, "AsyncFlow", "af", s1)
        flow.set_params({"f": 1})
        return Program(flow)

    pf = compare(build)
    assert ("s2", "exec") in methods(pf)


def test_run_on_an_async_node_raises() -> None:
    def build(mod, rec):
        return Program(rec.node(mod, "AsyncNode", "a"), mode="sync")

    pf = compare(build, error=RuntimeError)
    assert pf.error[2] == "Use run_async."


def test_run_on_an_async_node_with_successors_warns_then_raises() -> None:
    def build(mod, rec):
        a = rec.node(mod, "AsyncNode", "a")
        a >> rec.node(mod, "Node", "b")
        return Program(a, mode="sync")

    pf = compare(build, error=RuntimeError)
    assert len(pf.warnings) == 1


def test_async_flow_run_sync_with_only_sync_nodes() -> None:
    # PocketFlow: Flow._run comes before AsyncNode._run in AsyncFlow's MRO.
    def build(mod, rec):
        a = rec.node(mod, "Node", "a", post=lambda self, shared, p, e: "b")
        b = rec.node(mod, "Node", "b", post=lambda self, shared, p, e: "done")
        a - "b" >> b
        return Program(rec.node(mod, "AsyncFlow", "af", a), mode="sync")

    pf = compare(build)
    assert pf.result == "done"
    assert ("af", "prep") in methods(pf)


def test_async_flow_run_sync_with_an_async_node_raises() -> None:
    def build(mod, rec):
        a = rec.node(mod, "Node", "a")
        a >> rec.node(mod, "AsyncNode", "b")
        return Program(mod.AsyncFlow(a), mode="sync")

    compare(build, error=RuntimeError)


@pytest.mark.parametrize("kind", ["AsyncBatchFlow", "AsyncParallelBatchFlow"])
def test_async_batch_flows_run_sync_with_sync_nodes(kind) -> None:
    def build(mod, rec):
        a = rec.node(mod, "Node", "a", exec=lambda self, p: dict(self.params))
        # run() takes the sync path: the flow's sync prep gives the passes
        flow = rec.node(
            mod, kind, "f", a, methods={"prep": lambda self, shared: [{"i": 1}, {"i": 2}]}
        )
        return Program(flow, mode="sync")

    pf = compare(build)
    assert len(pf.calls("exec", "a")) == 2


@pytest.mark.parametrize("kind", ["AsyncBatchNode", "AsyncParallelBatchNode"])
@pytest.mark.parametrize("items", [[3, 0, 2, 1], [], [5]])
def test_async_batch_nodes_results_in_input_order(kind, items) -> None:
    def build(mod, rec):
        async def aexec(self, i):
            await ticks(i)  # bigger items finish later when run in parallel
            return i * 10

        node = rec.node(
            mod,
            kind,
            "n",
            prep=lambda self, shared: items,
            exec=aexec,
            post=lambda self, shared, p, e: shared.setdefault("res", e),
        )
        return Program(node)

    pf = compare(build)
    assert pf.shared.get("res") == [i * 10 for i in items]


@pytest.mark.parametrize("kind", ["AsyncBatchNode", "AsyncParallelBatchNode"])
def test_async_batch_nodes_retry_and_fallback(kind) -> None:
    def build(mod, rec):
        attempts: dict[int, int] = {}

        async def aexec(self, i):
            attempts[i] = attempts.get(i, 0) + 1
            await ticks(i % 3)
            if attempts[i] <= i:
                raise ValueError(f"item {i} attempt {attempts[i]}")
            return i

        node = rec.node(
            mod,
            kind,
            "n",
            3,
            0,
            prep=lambda self, shared: [0, 1, 2, 3, 4],
            exec=aexec,
            fallback=lambda self, i, exc: ("fb", i, str(exc)),
        )
        return Program(node, after=lambda: attempts)

    pf = compare(build)
    assert pf.extra == {0: 1, 1: 2, 2: 3, 3: 3, 4: 3}


def test_async_node_fallback_async() -> None:
    def build(mod, rec):
        async def fb(self, p, exc):
            await ticks(1)
            return ("fb", type(exc).__name__)

        node = rec.node(
            mod,
            "AsyncNode",
            "n",
            max_retries=2,
            wait=0.001,
            exec=lambda self, p: 1 / 0,
            fallback=fb,
            post=lambda self, shared, p, e: e,
        )
        return Program(node)

    pf = compare(build)
    assert pf.result == ("fb", "ZeroDivisionError")


def test_async_node_default_fallback_reraises() -> None:
    def build(mod, rec):
        return Program(rec.node(mod, "AsyncNode", "n", max_retries=2, exec=lambda self, p: 1 / 0))

    compare(build, error=ZeroDivisionError)


# --------------------------------------------------------------------------
# pocketcore's own node attributes: a PocketFlow program already using the
# name for something else runs the same.
# --------------------------------------------------------------------------


def test_node_attribute_named_executor() -> None:
    # A common PocketFlow pattern: an async node keeps a thread pool for blocking
    # calls in self.executor. pocketcore has an `executor` setting of its own, but
    # takes only a name or an executor object as one (docs/concepts.md), so the
    # pool is left to the program.
    pools = []

    def build(mod, rec):
        async def exec_async(self, p):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, sum, [1, 2, 3])

        node = rec.node(
            mod,
            "AsyncNode",
            "n",
            exec=exec_async,
            post=lambda self, shared, p, e: shared.setdefault("sum", e),
        )
        node.executor = ThreadPoolExecutor(max_workers=1)
        pools.append(node.executor)
        return Program(rec.node(mod, "AsyncFlow", "flow", node))

    try:
        pf = compare(build)
    finally:
        for pool in pools:
            pool.shutdown()
    assert pf.shared == {"sum": 6}
