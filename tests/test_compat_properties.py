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


def build_sync_graph(spec):
    def build(mod, rec):
        nodes = []
        for index, ns in enumerate(spec["nodes"]):
            label = f"n{index}"

            def prep(self, shared, ns=ns):
                return ns["items"] if ns["kind"] == "BatchNode" else shared["steps"]

            def exec(self, p, ns=ns):
                if self.cur_retry < ns["fails"]:
                    raise ValueError(f"{self.label} attempt {self.cur_retry}")
                return (self.label, p, dict(self.params))

            def post(self, shared, p, e, ns=ns):
                # The action is a function of this node's visit counter; once the
                # step budget is spent every node says "stop", so loops end.
                shared["steps"] += 1
                visits = shared["visits"][self.label] = shared["visits"].get(self.label, 0) + 1
                if shared["steps"] >= spec["budget"]:
                    return "stop"
                return ns["actions"][(visits - 1) % len(ns["actions"])]

            fallback = (lambda self, p, exc: ("fb", str(exc))) if ns["fallback"] else None
            node = rec.node(
                mod,
                ns["kind"],
                label,
                ns["retries"],
                0,
                prep=prep,
                exec=exec,
                post=post,
                fallback=fallback,
            )
            if ns["params"] is not None:
                node.set_params(ns["params"])
            nodes.append(node)
        for src, action, dst, style in spec["edges"]:
            if style == "next":
                nodes[src].next(nodes[dst], action)
            elif action == "default":
                nodes[src] >> nodes[dst]
            else:
                nodes[src] - action >> nodes[dst]
        start = nodes[spec["start"]]
        if spec["flow"] == "BatchFlow":
            flow = rec.node(
                mod, "BatchFlow", "flow", start, prep=lambda self, shared: spec["passes"]
            )
        elif spec["flow"] == "nested":
            inner = rec.node(mod, "Flow", "inner", start)
            flow = rec.node(mod, "Flow", "flow", inner)
        else:
            flow = rec.node(mod, "Flow", "flow", start)
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


def build_async_graph(spec):
    def build(mod, rec):
        nodes = []
        for index, ns in enumerate(spec["nodes"]):
            label = f"n{index}"
            attempts: dict[Any, int] = {}

            def prep(self, shared, ns=ns):
                return ns["items"]

            def count(self, item, attempts=attempts):
                # attempts per node object (a fresh copy every step) and item
                key = (self._rec.ref(self), item[0])
                attempts[key] = attempts.get(key, 0) + 1
                return attempts[key]

            async def aexec(self, item, count=count):
                n = count(self, item)
                await ticks(item[1])
                if n <= item[2]:
                    raise ValueError(f"{self.label} item {item[0]} attempt {n}")
                return (self.label, item[0], dict(self.params))

            def sexec(self, item, count=count):
                n = count(self, item)
                if n <= item[2]:
                    raise ValueError(f"{self.label} attempt {n}")
                return (self.label, self.cur_retry)

            def post(self, shared, p, e, ns=ns):
                shared["steps"] += 1
                visits = shared["visits"][self.label] = shared["visits"].get(self.label, 0) + 1
                if shared["steps"] >= spec["budget"]:
                    return "stop"
                return ns["actions"][(visits - 1) % len(ns["actions"])]

            fallback = (lambda self, p, exc: ("fb", str(exc))) if ns["fallback"] else None
            node = rec.node(
                mod,
                ns["kind"],
                label,
                ns["retries"],
                0,
                prep=prep,
                exec=sexec if ns["kind"] == "Node" else aexec,
                post=post,
                fallback=fallback,
            )
            nodes.append(node)
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
