"""Reading a trace back: parents, children, and a printable tree."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode


class Tree:
    """The finished spans of one trace, by parent."""

    def __init__(self, spans: Sequence[ReadableSpan]) -> None:
        self.spans = list(spans)
        self.by_id = {s.context.span_id: s for s in self.spans}
        roots = [s for s in self.spans if s.parent is None]
        assert len(roots) == 1, f"one root span, got {[s.name for s in roots]}"
        (self.root,) = roots
        assert {s.context.trace_id for s in self.spans} == {self.root.context.trace_id}

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        if span.parent is None:
            return None
        return self.by_id[span.parent.span_id]

    def children(self, span: ReadableSpan) -> list[ReadableSpan]:
        return [
            s
            for s in self.spans
            if s.parent is not None and s.parent.span_id == span.context.span_id
        ]

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"one span {name!r}, got {len(found)}"
        return found[0]

    def render(self) -> str:
        lines: list[str] = []

        def walk(span: ReadableSpan, depth: int) -> None:
            attrs = ", ".join(f"{k}={v!r}" for k, v in (span.attributes or {}).items())
            status = (
                ""
                if span.status.status_code is StatusCode.UNSET
                else f" [{span.status.status_code.name}]"
            )
            lines.append(f"{'  ' * depth}{span.name}{status}  {attrs}".rstrip())
            kids = self.children(span)
            kids.sort(
                key=lambda s: (
                    (s.attributes or {}).get("pocketcore.item.index", -1),
                    s.start_time or 0,
                )
            )
            for kid in kids:
                walk(kid, depth + 1)

        walk(self.root, 0)
        return "\n".join(lines)


def recorded_exceptions(span: ReadableSpan) -> list[tuple[str, str]]:
    """The (type, message) of each exception recorded on ``span``."""
    return [
        (str(e.attributes["exception.type"]), str(e.attributes["exception.message"]))
        for e in span.events
        if e.name == "exception" and e.attributes is not None
    ]
