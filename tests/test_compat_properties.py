"""Differential properties against PocketFlow 0.0.3: random programs behave the same.

Hypothesis draws graphs of sync nodes (run in a Flow, a BatchFlow or a nested
flow) and async flows of batch and parallel-batch nodes, with retries,
failures, fallbacks, loops and params; every drawn program must have the same
outcome on both libraries (see ``compat_programs``). The strategies are
``sync_graphs`` and ``async_graphs`` in ``strategies``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings

from .compat_programs import Program, observe, ticks
from .strategies import async_graphs, sync_graphs

# --------------------------------------------------------------------------
# Hypothesis: random graphs of sync nodes
# --------------------------------------------------------------------------


def _next_action(self, shared, ns, budget):
    # The action is a function of this node's visit counter; once the
    # step budget is spent every node says "stop", so loops end.
    shared["steps"] += 1
    visits = shared["visits"][self.label] = shared["visits"].get(self.label, 0) + 1
    if shared["steps"] >= budget:
        return "stop"
    return ns["actions"][(visits - 1) % len(ns["actions"])]


def _fallback(ns):
    return (lambda self, p, exc: ("fb", str(exc))) if ns["fallback"] else None


def _sync_node(mod, rec, index, ns, budget):
    def prep(self, shared):
        return ns["items"] if ns["kind"] == "BatchNode" else shared["steps"]

    def exec(self, p):
        if self.cur_retry < ns["fails"]:
            raise ValueError(f"{self.label} attempt {self.cur_retry}")
        return (self.label, p, dict(self.params))

    def post(self, shared, p, e):
        return _next_action(self, shared, ns, budget)

    node = rec.node(
        mod,
        ns["kind"],
        f"n{index}",
        ns["retries"],
        0,
        prep=prep,
        exec=exec,
        post=post,
        fallback=_fallback(ns),
    )
    if ns["params"] is not None:
        node.set_params(ns["params"])
    return node


def _link_sync(nodes, edges):
    for src, action, dst, style in edges:
        if style == "next":
            nodes[src].next(nodes[dst], action)
        elif action == "default":
            nodes[src] >> nodes[dst]
        else:
            nodes[src] - action >> nodes[dst]


def _sync_flow(mod, rec, spec, start):
    if spec["flow"] == "BatchFlow":
        return rec.node(mod, "BatchFlow", "flow", start, prep=lambda self, shared: spec["passes"])
    if spec["flow"] == "nested":
        inner = rec.node(mod, "Flow", "inner", start)
        return rec.node(mod, "Flow", "flow", inner)
    return rec.node(mod, "Flow", "flow", start)


def build_sync_graph(spec):
    def build(mod, rec):
        nodes = [
            _sync_node(mod, rec, index, ns, spec["budget"])
            for index, ns in enumerate(spec["nodes"])
        ]
        _link_sync(nodes, spec["edges"])
        flow = _sync_flow(mod, rec, spec, nodes[spec["start"]])
        flow.set_params(dict(spec["flow_params"]))
        return Program(flow, {"steps": 0, "visits": {}})

    return build


@settings(deadline=None, max_examples=150)
@given(sync_graphs())
def test_random_sync_graphs(spec) -> None:
    build = build_sync_graph(spec)
    assert observe("pocketcore", build) == observe("pocketflow", build)


# --------------------------------------------------------------------------
# Hypothesis: async flows with batch and parallel-batch nodes
# --------------------------------------------------------------------------


def _async_node(mod, rec, index, ns, budget):
    attempts: dict[Any, int] = {}

    def prep(self, shared):
        return ns["items"]

    def count(self, item):
        # attempts per node object (a fresh copy every step) and item
        key = (self._rec.ref(self), item[0])
        attempts[key] = attempts.get(key, 0) + 1
        return attempts[key]

    async def aexec(self, item):
        n = count(self, item)
        await ticks(item[1])
        if n <= item[2]:
            raise ValueError(f"{self.label} item {item[0]} attempt {n}")
        return (self.label, item[0], dict(self.params))

    def sexec(self, item):
        n = count(self, item)
        if n <= item[2]:
            raise ValueError(f"{self.label} attempt {n}")
        return (self.label, self.cur_retry)

    def post(self, shared, p, e):
        return _next_action(self, shared, ns, budget)

    return rec.node(
        mod,
        ns["kind"],
        f"n{index}",
        ns["retries"],
        0,
        prep=prep,
        exec=sexec if ns["kind"] == "Node" else aexec,
        post=post,
        fallback=_fallback(ns),
    )


def build_async_graph(spec):
    def build(mod, rec):
        nodes = [
            _async_node(mod, rec, index, ns, spec["budget"])
            for index, ns in enumerate(spec["nodes"])
        ]
        for src, action, dst in spec["edges"]:
            nodes[src] - action >> nodes[dst]
        start = nodes[spec["start"]]
        prep = (lambda self, shared: spec["passes"]) if spec["flow"] != "AsyncFlow" else None
        flow = rec.node(mod, spec["flow"], "flow", start, prep=prep)
        flow.set_params({"flow": 1})
        return Program(flow, {"steps": 0, "visits": {}})

    return build


@settings(deadline=None, max_examples=150)
@given(async_graphs())
def test_random_async_graphs(spec) -> None:
    build = build_async_graph(spec)
    assert observe("pocketcore", build) == observe("pocketflow", build)
