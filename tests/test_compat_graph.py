"""Differential tests against PocketFlow 0.0.3: successors, operators and their warnings.

``>>``, ``- "action" >>`` and ``next`` with their return values, overwriting a
successor, a flow ending because an action has no successor, a lone node
with successors run directly, ``Flow.start`` and ``get_next_node``. Same
method as the other ``test_compat_*`` files (see ``compat_programs``).
"""

from __future__ import annotations

import pytest

from .compat_programs import Program, compare, methods

# --------------------------------------------------------------------------
# Successors, operators, warnings
# --------------------------------------------------------------------------


def test_operators_and_next_return_values() -> None:
    def build(mod, rec):
        a, b, c, d = (rec.node(mod, "Node", x) for x in "abcd")
        returned = {
            "rshift": a >> b,
            "action": a - "go" >> c,
            "next": c.next(d),
            "next_action": c.next(a, "back"),
        }
        succ = {n.label: {k: v.label for k, v in n.successors.items()} for n in (a, b, c, d)}
        return Program(call=lambda: (returned, succ))

    pf = compare(build)
    returned, succ = pf.result
    assert returned["rshift"] == ("<node>", "b")
    assert succ["a"] == {"default": "b", "go": "c"}


def test_overwriting_a_successor_warns() -> None:
    def build(mod, rec):
        a, b, c = (rec.node(mod, "Node", x) for x in "abc")
        a >> b
        a >> c
        a - "x" >> b
        a.next(c, "x")
        return Program(call=lambda: {k: v.label for k, v in a.successors.items()})

    pf = compare(build)
    assert pf.warnings == [
        ("UserWarning", "Overwriting successor for action 'default'"),
        ("UserWarning", "Overwriting successor for action 'x'"),
    ]


@pytest.mark.parametrize("action", [1, None, ("a",)])
def test_minus_with_a_non_string_is_a_type_error(action) -> None:
    def build(mod, rec):
        a, b = rec.node(mod, "Node", "a"), rec.node(mod, "Node", "b")
        a - action >> b
        return Program(a)

    pf = compare(build, error=TypeError)
    assert pf.error[2] == "Action must be a string"


def test_flow_ends_when_action_has_no_successor() -> None:
    def build(mod, rec):
        a = rec.node(mod, "Node", "a", post=lambda self, shared, p, e: "nowhere")
        b, c = rec.node(mod, "Node", "b"), rec.node(mod, "Node", "c")
        a >> b
        a - "other" >> c
        return Program(mod.Flow(start=a))

    pf = compare(build)
    assert pf.result == "nowhere"
    assert len(pf.warnings) == 1
    assert "nowhere" in pf.warnings[0][1]


def test_flow_ends_quietly_on_a_node_without_successors() -> None:
    def build(mod, rec):
        a = rec.node(mod, "Node", "a", post=lambda self, shared, p, e: "anything")
        return Program(mod.Flow(a))

    pf = compare(build)
    assert pf.warnings == []


def test_lone_node_with_successors_warns() -> None:
    def build(mod, rec):
        a = rec.node(mod, "Node", "a", post=lambda self, shared, p, e: "x")
        a >> rec.node(mod, "Node", "b")
        return Program(a)

    pf = compare(build)
    assert methods(pf) == [("a", "prep"), ("a", "exec"), ("a", "post")]
    assert len(pf.warnings) == 1


def test_lone_async_node_with_successors_warns() -> None:
    def build(mod, rec):
        a = rec.node(mod, "AsyncNode", "a", post=lambda self, shared, p, e: "x")
        a >> rec.node(mod, "AsyncNode", "b")
        return Program(a)

    pf = compare(build)
    assert len(pf.warnings) == 1


def test_flow_start_and_get_next_node() -> None:
    def build(mod, rec):
        a, b, c = (rec.node(mod, "Node", x) for x in "abc")
        flow = mod.Flow()
        started = flow.start(a)
        a >> b
        a - "c" >> c

        def call():
            return {
                "start": started,
                "start_node": flow.start_node,
                "none": flow.get_next_node(a, None),
                "default": flow.get_next_node(a, "default"),
                "c": flow.get_next_node(a, "c"),
                "missing": flow.get_next_node(a, "missing"),  # warns
                "leaf": flow.get_next_node(b, "whatever"),  # no successors: quiet
            }

        return Program(call=call)

    pf = compare(build)
    assert pf.result["start"] == ("<node>", "a")
    assert pf.result["missing"] is None
    assert len(pf.warnings) == 1


# --------------------------------------------------------------------------
# Successors that are not nodes: PocketFlow stores whatever it is given.
# --------------------------------------------------------------------------


def test_successor_that_is_not_a_node() -> None:
    # PocketFlow stores whatever `next` is given; a None successor simply ends
    # the flow (get_next_node returns it, with the usual warning).
    def build(mod, rec):
        a = rec.node(mod, "AsyncNode", "a", post=lambda self, shared, p, e: "done")
        a.next(None, "done")
        return Program(rec.node(mod, "AsyncFlow", "flow", a))

    pf = compare(build)
    assert pf.result == "done"
