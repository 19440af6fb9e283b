"""Flows: orchestration, node copies per step, params, nested flows and batch flows.

Most tests are differential (see ``compat_programs``): one program built with
``pocketflow``'s classes and with ``pocketcore``'s must have identical
outcomes, and a few facts about PocketFlow's own outcome are checked so that a
program testing nothing is noticed. The rest check the kernel's copy of a node
per step against ``copy.copy``. Warnings about successors are in
``test_compat_graph``; ``pocketcore.run`` is in ``test_run``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pocketcore
from pocketcore._nodes.flows import _copy

from .compat_programs import Program, compare, methods, ticks
from .strategies import node_attribute_dicts

# --------------------------------------------------------------------------
# Orchestration: a flow's own prep and post, its result, nested flows
# --------------------------------------------------------------------------


def test_flow_post_returns_last_action_and_flow_prep_post_run() -> None:
    def build(mod, rec):
        a = rec.node(mod, "Node", "a", post=lambda self, shared, p, e: "next")
        b = rec.node(mod, "Node", "b", post=lambda self, shared, p, e: "last")
        a - "next" >> b
        flow = rec.node(
            mod,
            "Flow",
            "flow",
            start=a,
            prep=lambda self, shared: shared.setdefault("flow_prep", 1),
        )
        return Program(flow)

    pf = compare(build)
    assert pf.result == "last"
    assert methods(pf)[0] == ("flow", "prep")
    assert pf.calls("post", "flow")[0].args[1:] == (1, "last")


def test_flow_own_post_overrides_result() -> None:
    def build(mod, rec):
        a = rec.node(mod, "Node", "a", post=lambda self, shared, p, e: "end")
        flow = rec.node(mod, "Flow", "flow", a, post=lambda self, shared, p, e: ("flow saw", e))
        return Program(flow)

    pf = compare(build)
    assert pf.result == ("flow saw", "end")


def test_nested_flows() -> None:
    def build(mod, rec):
        i1 = rec.node(mod, "Node", "i1", post=lambda self, shared, p, e: "more")
        i2 = rec.node(mod, "Node", "i2", post=lambda self, shared, p, e: "inner_done")
        i1 - "more" >> i2
        inner = rec.node(mod, "Flow", "inner", start=i1)
        o1 = rec.node(mod, "Node", "o1")
        o2 = rec.node(mod, "Node", "o2", post=lambda self, shared, p, e: "end")
        o1 >> inner
        inner - "inner_done" >> o2  # the inner flow's last action picks the next node
        outer = rec.node(mod, "Flow", "outer", start=o1)
        outer.set_params({"level": "outer"})
        return Program(outer)

    pf = compare(build)
    assert [n for n, _ in methods(pf) if _ == "prep"] == ["outer", "o1", "inner", "i1", "i2", "o2"]
    assert pf.result == "end"


def test_nested_async_and_sync_flows_in_an_async_flow() -> None:
    def build(mod, rec):
        async def aexec(self, p):
            await ticks(1)
            return dict(self.params)

        i1 = rec.node(mod, "AsyncNode", "i1", exec=aexec, post=lambda self, sh, p, e: "out")
        inner_async = rec.node(mod, "AsyncFlow", "inner_async", i1)
        s1 = rec.node(mod, "Node", "s1", post=lambda self, sh, p, e: "sync_done")
        inner_sync = rec.node(mod, "Flow", "inner_sync", s1)
        tail = rec.node(mod, "AsyncBatchNode", "tail", prep=lambda self, sh: [1, 2], exec=aexec)
        inner_async - "out" >> inner_sync
        inner_sync - "sync_done" >> tail
        outer = rec.node(mod, "AsyncFlow", "outer", inner_async)
        outer.set_params({"o": 1})
        return Program(outer)

    pf = compare(build)
    assert ("tail", "post_async") in methods(pf)


# --------------------------------------------------------------------------
# Node copies per step
# --------------------------------------------------------------------------


def counting_exec(self, p):
    """Mutates the node object it runs on."""
    self.visits = getattr(self, "visits", 0) + 1
    return self.visits


def test_node_copies_per_step_leave_the_original_alone() -> None:
    def build(mod, rec):
        a = rec.node(mod, "Node", "a", exec=counting_exec)
        a.visits = 100

        def post(self, shared, p, e):
            shared.setdefault("seen", []).append(e)
            return "again" if len(shared["seen"]) < 3 else "stop"

        a._behave["post"] = post
        a - "again" >> a  # the same node object, three steps in a row
        return Program(mod.Flow(a), after=lambda: a.visits)

    pf = compare(build)
    assert pf.shared["seen"] == [101, 101, 101]
    assert pf.extra == 100
    # three steps, three distinct node objects (none of them the original)
    assert len({c.obj for c in pf.calls("exec")}) == 3


def test_same_node_object_twice_in_a_chain() -> None:
    def build(mod, rec):
        a = rec.node(
            mod,
            "Node",
            "a",
            exec=counting_exec,
            post=lambda self, shared, p, e: shared.setdefault("a", []).append(e),
        )
        b = rec.node(mod, "Node", "b", exec=counting_exec)
        f1 = rec.node(mod, "Flow", "f1", a)
        f2 = rec.node(mod, "Flow", "f2", a)  # a is in two flows
        f1 >> b >> f2
        return Program(mod.Flow(f1), after=lambda: hasattr(a, "visits"))

    pf = compare(build)
    assert pf.shared["a"] == [1, 1]
    assert pf.extra is False


class Plain(pocketcore.Node):
    pass


class WithCopy(pocketcore.Node):
    copies = 0

    def __copy__(self) -> WithCopy:
        type(self).copies += 1
        new = WithCopy()
        new.__dict__.update(self.__dict__)
        new.marked = True
        return new


class WithSlots(pocketcore.Node):
    __slots__ = ("extra",)


class WithGetstate(pocketcore.Node):
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "from_getstate": True}


@given(node_attribute_dicts, st.sampled_from([Plain, WithCopy, WithSlots, WithGetstate]))
def test_node_copies_match_copy_copy(values: dict[str, Any], cls: type) -> None:
    node = cls()
    for key, value in values.items():
        setattr(node, key, value)
    if cls is WithSlots:
        node.extra = [1]
    ours, reference = _copy(node), copy.copy(node)
    assert type(ours) is type(reference) is cls
    assert ours is not node
    assert vars(ours) == vars(reference)
    for key in values:  # shallow: the same values, not copies of them
        assert getattr(ours, key) is getattr(node, key)
    if cls is WithSlots:
        assert ours.extra is node.extra
    assert _copy(None) is None


def test_a_custom_copy_hook_is_used_in_flows() -> None:
    WithCopy.copies = 0
    pocketcore.Flow(start=WithCopy()).run({})
    assert WithCopy.copies == 1


# --------------------------------------------------------------------------
# Params
# --------------------------------------------------------------------------


def test_set_params_on_a_lone_node() -> None:
    def build(mod, rec):
        a = rec.node(mod, "Node", "a", exec=lambda self, p: dict(self.params))
        params = {"k": 1}
        a.set_params(params)
        return Program(a, after=lambda: a.params is params)

    pf = compare(build)
    assert pf.extra is True


def test_flow_params_reach_every_node_as_one_dict() -> None:
    def build(mod, rec):
        def post(self, shared, p, e):
            self.params["touched_by_" + self.label] = True  # visible to later nodes

        a, b, c = (rec.node(mod, "Node", x, post=post) for x in "abc")
        a.set_params({"ignored": True})  # a flow replaces node params
        a >> b >> c
        flow = mod.Flow(a)
        flow_params = {"p": 1}
        flow.set_params(flow_params)
        return Program(flow, after=lambda: flow_params)

    pf = compare(build)
    assert len({c.params_obj for c in pf.trace}) == 1  # one dict for the whole pass
    assert pf.extra == {"p": 1}  # a copy of the flow's params, not the dict itself


# --------------------------------------------------------------------------
# Batch flows: one pass per params dict, merged over the flow's own params
# --------------------------------------------------------------------------


def test_batch_flow_merges_params_and_post_arguments() -> None:
    def build(mod, rec):
        a = rec.node(mod, "Node", "a", exec=lambda self, p: dict(self.params))
        b = rec.node(mod, "Node", "b")
        a >> b
        flow = rec.node(
            mod,
            "BatchFlow",
            "bf",
            a,
            prep=lambda self, shared: [{"i": 1}, {"i": 2, "p": "item"}, {}],
        )
        flow.set_params({"p": "flow", "q": 0})
        return Program(flow)

    pf = compare(build)
    assert [c.params for c in pf.calls("exec", "a")] == [
        {"p": "flow", "q": 0, "i": 1},
        {"p": "item", "q": 0, "i": 2},
        {"p": "flow", "q": 0},
    ]
    post = pf.calls("post", "bf")[0]
    assert post.args[1:] == ([{"i": 1}, {"i": 2, "p": "item"}, {}], None)
    # a and b of one pass hold the same dict; every pass has its own
    per_pass = [c.params_obj for c in pf.trace if c.node in "ab" and c.method == "exec"]
    assert per_pass[0::2] == per_pass[1::2]
    assert len(set(per_pass)) == 3


@pytest.mark.parametrize("prep_result", [None, []])
def test_batch_flow_with_no_passes(prep_result) -> None:
    def build(mod, rec):
        flow = rec.node(
            mod,
            "BatchFlow",
            "bf",
            rec.node(mod, "Node", "a"),
            prep=lambda self, shared: prep_result,
        )
        return Program(flow)

    pf = compare(build)
    assert methods(pf) == [("bf", "prep"), ("bf", "post")]


@pytest.mark.parametrize("kind", ["AsyncBatchFlow", "AsyncParallelBatchFlow"])
def test_async_batch_flows_params_and_post(kind) -> None:
    def build(mod, rec):
        async def aexec(self, p):
            await ticks(self.params["t"])
            return dict(self.params)

        a = rec.node(
            mod,
            "AsyncNode",
            "a",
            exec=aexec,
            post=lambda self, shared, p, e: shared.setdefault("seen", []).append(e),
        )
        b = rec.node(mod, "Node", "b")
        a >> b
        flow = rec.node(
            mod, kind, "f", a, prep=lambda self, shared: [{"t": 2}, {"t": 0, "x": "item"}, {"t": 1}]
        )
        flow.set_params({"x": "flow"})
        return Program(flow)

    pf = compare(build)
    post = pf.calls("post_async", "f")[0]
    assert post.args[1:] == ([{"t": 2}, {"t": 0, "x": "item"}, {"t": 1}], None)
    assert pf.result is None
