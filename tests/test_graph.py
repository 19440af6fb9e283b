"""Mermaid rendering of flows: shapes, labels, nesting, loops, and a property over random graphs."""

from __future__ import annotations

import copy
import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import BaseNode
from pocketcore._front.graph import to_mermaid


class Load(pocketcore.Node):
    pass


class Decide(pocketcore.Node):
    pass


class Answer(pocketcore.Node):
    pass


class Items(pocketcore.BatchNode):
    pass


class Fan(pocketcore.AsyncParallelBatchNode):
    pass


class Passes(pocketcore.BatchFlow):
    pass


class ParallelPasses(pocketcore.AsyncParallelBatchFlow):
    pass


def test_a_chain() -> None:
    a, b, c = Load(), Decide(), Answer()
    a >> b >> c
    assert to_mermaid(pocketcore.Flow(start=a)) == (
        "flowchart TD\n"
        '    subgraph n0["Flow"]\n'
        '        n1["Load"]\n'
        '        n2["Decide"]\n'
        '        n3["Answer"]\n'
        "    end\n"
        "    n1 --> n2\n"
        "    n2 --> n3\n"
        "    classDef start stroke-width:3px\n"
        "    class n1 start\n"
    )


def test_actions_label_their_edges() -> None:
    decide, yes, no = Decide(), Answer(), Load()
    decide - "yes" >> yes
    decide - "no" >> no
    out = to_mermaid(pocketcore.Flow(start=decide))
    assert '    n1 -->|"yes"| n2\n    n1 -->|"no"| n3\n' in out


def test_loops_draw_each_node_once_and_the_edge_back() -> None:
    load, decide = Load(), Decide()
    load >> decide
    decide - "again" >> load
    decide - "retry" >> decide
    out = to_mermaid(pocketcore.Flow(start=load))
    assert out.count('["Load"]') == out.count('["Decide"]') == 1
    assert '    n2 -->|"again"| n1\n' in out
    assert '    n2 -->|"retry"| n2\n' in out


def test_a_lone_node() -> None:
    assert to_mermaid(Load()) == 'flowchart TD\n    n0["Load"]\n'


def test_an_empty_flow() -> None:
    assert to_mermaid(pocketcore.Flow()) == 'flowchart TD\n    subgraph n0["Flow"]\n    end\n'


def test_nested_flows_are_subgraphs() -> None:
    inner_a, inner_b = Load(), Decide()
    inner_a >> inner_b
    inner = pocketcore.AsyncFlow(start=inner_a)
    head, tail = Load(), Answer()
    head >> inner
    inner - "done" >> tail
    out = to_mermaid(pocketcore.Flow(start=head))
    assert out == (
        "flowchart TD\n"
        '    subgraph n0["Flow"]\n'
        '        n1["Load"]\n'
        '        subgraph n2["AsyncFlow"]\n'
        '            n3["Load"]\n'
        '            n4["Decide"]\n'
        "        end\n"
        '        n5["Answer"]\n'
        "    end\n"
        "    n1 --> n2\n"
        '    n2 -->|"done"| n5\n'
        "    n3 --> n4\n"
        "    classDef start stroke-width:3px\n"
        "    class n1,n3 start\n"
    )


def test_batch_nodes_and_flows_are_marked() -> None:
    items, fan = Items(), Fan()
    items >> fan
    passes = Passes(start=items)
    parallel = ParallelPasses(start=pocketcore.AsyncBatchFlow(start=Load()))
    passes >> parallel
    out = to_mermaid(passes)
    assert 'subgraph n0["Passes [batch flow]"]' in out
    assert 'n1[["Items [batch]"]]' in out
    assert 'n2[["Fan [parallel batch]"]]' in out
    assert 'subgraph n3["ParallelPasses [parallel batch flow]"]' in out
    assert 'subgraph n4["AsyncBatchFlow [batch flow]"]' in out
    assert 'n5["Load"]' in out


def test_names_label_nodes() -> None:
    load, decide = Load(), Decide()
    load >> decide
    flow = pocketcore.Flow(start=load)
    out = to_mermaid(flow, names={"load": load, "sub.decide": decide})
    assert '["load: Load"]' in out
    assert '["sub.decide: Decide"]' in out
    assert '["Flow"]' in out


def test_labels_are_escaped() -> None:
    a, b = Load(), Decide()
    a - 'say "hi" <b> #1 `x`\nnow' >> b
    out = to_mermaid(pocketcore.Flow(start=a))
    assert '-->|"say #quot;hi#quot; #lt;b#gt; #35;1 #96;x#96; now"|' in out


def test_successors_that_are_not_nodes_are_left_out() -> None:
    a = Load()
    a.successors["odd"] = "not a node"  # type: ignore[assignment]
    assert to_mermaid(a) == 'flowchart TD\n    n0["Load"]\n'


def test_a_flow_that_starts_with_itself_terminates() -> None:
    flow = pocketcore.Flow()
    flow.start_node = flow
    flow.successors["again"] = flow
    out = to_mermaid(flow)
    assert out.count("subgraph") == 1
    assert '    n0 -->|"again"| n0\n' in out


def test_long_chains_and_deep_nesting_do_not_recurse() -> None:
    head = node = Load()
    for _ in range(5000):
        node = node.next(Load())
    assert to_mermaid(pocketcore.Flow(start=head)).count('["Load"]') == 5001
    flow: BaseNode = Load()
    for _ in range(2000):
        flow = pocketcore.Flow(start=flow)
    assert to_mermaid(flow).count("subgraph") == 2000


def test_not_a_node() -> None:
    with pytest.raises(TypeError, match="needs a node or flow, got int"):
        to_mermaid(3)  # type: ignore[arg-type]


# --- random graphs ---------------------------------------------------------------------------

KINDS = {"node": Load, "batch": Items, "parallel": Fan, "flow": pocketcore.Flow, "batches": Passes}
ACTIONS = ["default", "yes", "no", "try again", 'say "x"', "a#b<c>"]


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[BaseNode], list[tuple[int, str, int]]]:
    """Random nodes and flows, random successor edges, random flow starts (cycles welcome)."""
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=12))
    nodes: list[BaseNode] = [KINDS[k]() for k in kinds]
    n = len(nodes)
    for node in nodes:
        if isinstance(node, pocketcore.Flow):
            start = draw(st.one_of(st.none(), st.integers(0, n - 1)))
            node.start_node = None if start is None else nodes[start]
    edges = draw(
        st.lists(
            st.tuples(st.integers(0, n - 1), st.sampled_from(ACTIONS), st.integers(0, n - 1)),
            max_size=3 * n,
            unique_by=lambda e: (e[0], e[1]),  # an action names one successor
        )
    )
    for src, action, dst in edges:
        nodes[src].successors[action] = nodes[dst]
    return nodes, edges


DECLARED = re.compile(r'^\s*(?:subgraph )?(n\d+)\[\[?"k(\d+): ')
EDGE = re.compile(r'^    (n\d+) -->(?:\|"(.*)"\|)? (n\d+)$')


def unescape(text: str) -> str:
    for char, code in (("`", "#96;"), (">", "#gt;"), ("<", "#lt;"), ('"', "#quot;"), ("#", "#35;")):
        text = text.replace(code, char)
    return text


def reachable(root: BaseNode) -> list[BaseNode]:
    seen = {id(root): root}
    stack = [root]
    while stack:
        node = stack.pop()
        inner = getattr(node, "start_node", None)
        for nxt in (*node.successors.values(), inner):
            if isinstance(nxt, BaseNode) and id(nxt) not in seen:
                seen[id(nxt)] = nxt
                stack.append(nxt)
    return list(seen.values())


@settings(max_examples=300, deadline=None)
@given(graph=graphs(), root=st.integers(0, 100))
def test_random_graphs(graph: tuple[list[BaseNode], list[tuple[int, str, int]]], root: int) -> None:
    nodes, edges = graph
    top = nodes[root % len(nodes)]
    names = {f"k{i}": node for i, node in enumerate(nodes)}
    out = to_mermaid(top, names=names)
    lines = out.splitlines()
    assert lines[0] == "flowchart TD"

    # Every reachable node is drawn exactly once, and nothing else is.
    index = {id(node): i for i, node in enumerate(nodes)}
    declared = [m.groups() for m in map(DECLARED.match, lines) if m]
    ids = {ident: int(k) for ident, k in declared}
    assert len(ids) == len(declared)
    assert Counter(ids.values()) == Counter(index[id(n)] for n in reachable(top))

    # Every edge from a reachable node is drawn exactly once, with its action.
    drawn = [m.groups() for m in map(EDGE.match, lines) if m]
    got = Counter(
        (ids[src], "default" if label is None else unescape(label), ids[dst])
        for src, label, dst in drawn
    )
    assert got == Counter(e for e in edges if e[0] in ids.values())

    # Subgraphs are the reachable flows, properly closed.
    depth = 0
    for line in lines:
        depth += line.lstrip().startswith("subgraph ") - (line.strip() == "end")
        assert depth >= 0
    assert depth == 0
    flows = [n for n in reachable(top) if isinstance(n, pocketcore.Flow)]
    assert sum(line.lstrip().startswith("subgraph ") for line in lines) == len(flows)

    # Same input, same text: again, and for an identical copy of the graph.
    assert to_mermaid(top, names=names) == out
    twin_nodes = copy.deepcopy(nodes)
    twin_names = {f"k{i}": node for i, node in enumerate(twin_nodes)}
    assert to_mermaid(twin_nodes[root % len(nodes)], names=twin_names) == out
