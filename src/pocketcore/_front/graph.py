"""Render a flow as a Mermaid flowchart (what ``pocketcore graph`` prints)."""

from __future__ import annotations

from collections.abc import Mapping

from pocketcore._nodes.flows import Flow
from pocketcore._nodes.nodes import BaseNode

__all__ = ["to_mermaid"]

_INDENT = "    "
_KERNEL_MODULES = frozenset({BaseNode.__module__, Flow.__module__})

# Mermaid reads ``#name;`` / ``#123;`` as entity codes inside quoted labels,
# and ``<``/``>`` as HTML; ``#`` goes first so the codes added for the other
# characters are not escaped again.
_ESCAPES = (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("`", "#96;"))


def _quote(text: str) -> str:
    for char, code in _ESCAPES:
        text = text.replace(char, code)
    return '"' + " ".join(text.split()) + '"'  # a newline would end the statement


def _kind(node: BaseNode) -> str | None:
    """The batch marker of ``node``'s label, or ``None`` for a plain node or flow."""
    # Named after the kernel class the node's class derives from, so every
    # batch class (sync, async, parallel) is marked without a list to keep
    # in step with the kernel's classes.
    base = next(c.__name__ for c in type(node).__mro__ if c.__module__ in _KERNEL_MODULES)
    if "Batch" not in base:
        return None
    kind = "batch flow" if isinstance(node, Flow) else "batch"
    return f"parallel {kind}" if "Parallel" in base else kind


def _labels_by_id(names: Mapping[str, BaseNode]) -> dict[int, str]:
    """Each named node's name, by node id; the first name wins for a node named twice."""
    labels: dict[int, str] = {}
    for name, named in names.items():
        labels.setdefault(id(named), name)
    return labels


def _label(node: BaseNode, name: str | None, kind: str | None) -> str:
    """``node``'s label text: its class name, after its name and before its batch kind."""
    text = type(node).__name__
    if name is not None:
        text = f"{name}: {text}"
    if kind is not None:
        text += f" [{kind}]"
    return text


def _edge_lines(edges: list[tuple[str, str, BaseNode]], ids: Mapping[int, str]) -> list[str]:
    """One arrow per edge, labelled with its action unless that is ``"default"``."""
    lines = []
    for src, action, nxt in edges:
        arrow = " --> " if action == "default" else f" -->|{_quote(action)}| "
        lines.append(f"{_INDENT}{src}{arrow}{ids[id(nxt)]}")
    return lines


def _start_lines(starts: list[BaseNode], ids: Mapping[int, str]) -> list[str]:
    """The class that gives the flows' start nodes a thick border, if there are any."""
    if not starts:
        return []
    marked = sorted({ids[id(s)] for s in starts}, key=lambda ident: int(ident[1:]))
    return [f"{_INDENT}classDef start stroke-width:3px", f"{_INDENT}class {','.join(marked)} start"]


def to_mermaid(flow: BaseNode, *, names: Mapping[str, BaseNode] | None = None) -> str:
    """Render ``flow`` and everything reachable from it as a Mermaid flowchart.

    Every node is drawn once, labelled with its class name (and its name in
    ``names``, when it has one). Flows become subgraphs holding the nodes they
    start from, and their start node is drawn with a thick border (class
    ``start``). Batch nodes are drawn as double-sided boxes and batch nodes
    and flows say which kind of batch they are. An edge is drawn for every
    successor, labelled with its action unless that is ``"default"``.
    Successors that are not nodes end a flow, as when it runs, and are not
    drawn. Loops are fine: each node is visited once, and edges back to it
    are drawn like any other.

    The output depends only on the graph's shape and the order successors
    were added in, so the same flow gives the same text every time.

    Args:
        flow: The flow (or lone node) to draw.
        names: Optional names for nodes (``"load"``, ``"sub.x"``, as a flow
            file's nodes have), shown in their labels.

    Returns:
        The flowchart text, starting with ``flowchart TD`` and ending with a
        newline.

    Raises:
        TypeError: ``flow`` is not a node or flow.
    """
    if not isinstance(flow, BaseNode):
        raise TypeError(f"to_mermaid() needs a node or flow, got {type(flow).__name__}")
    labels = _labels_by_id(names or {})
    ids: dict[int, str] = {}
    lines = ["flowchart TD"]
    edges: list[tuple[str, str, BaseNode]] = []
    starts: list[BaseNode] = []

    # An explicit stack, not recursion, so long chains and deep nesting cannot
    # hit the recursion limit. Each item is a node to draw at a depth, or
    # ``None`` for the end of a subgraph. A flow pushes its successors, then
    # its end, then its start node, so everything it contains is drawn before
    # its subgraph closes. A node reached again (a loop, or a node shared by
    # two flows) is not drawn again; only the edge to it is.
    stack: list[tuple[BaseNode | None, int]] = [(flow, 1)]
    while stack:
        node, depth = stack.pop()
        pad = _INDENT * depth
        if node is None:
            lines.append(pad + "end")
            continue
        if id(node) in ids:
            continue
        ident = ids[id(node)] = f"n{len(ids)}"
        kind = _kind(node)
        text = _label(node, labels.get(id(node)), kind)
        out = [
            (action, nxt) for action, nxt in node.successors.items() if isinstance(nxt, BaseNode)
        ]
        edges.extend((ident, action, nxt) for action, nxt in out)
        later = [(nxt, depth) for _, nxt in reversed(out)]  # popped in the order added
        if isinstance(node, Flow):
            lines.append(f"{pad}subgraph {ident}[{_quote(text)}]")
            stack.extend(later)
            stack.append((None, depth))
            inner = node.start_node
            if isinstance(inner, BaseNode):
                starts.append(inner)
                stack.append((inner, depth + 1))
        else:
            shape = "[{}]" if kind is None else "[[{}]]"
            lines.append(pad + ident + shape.format(_quote(text)))
            stack.extend(later)

    lines.extend(_edge_lines(edges, ids))
    lines.extend(_start_lines(starts, ids))
    return "\n".join(lines) + "\n"
