"""Spans recorded in memory by the SDK, from a Spans observer registered for the test.

No test sets the global tracer provider: the entry point's own object stays
``Off`` in this process, and every span comes from the observer registered
here, with a provider of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

import pocketcore
import pocketcore_otel


class Recorded:
    """The finished spans of the runs of one test, and a tracer for user code's own spans."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.user: Tracer = self.provider.get_tracer("user-code")

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def clear(self) -> None:
        self.exporter.clear()


@pytest.fixture(scope="module")
def recorded() -> Iterator[Recorded]:
    """A Spans observer in the process-wide registry, for the tests of one module.

    Module scope, so Hypothesis examples share it; each example clears it.
    """
    rec = Recorded()
    plugin = pocketcore_otel.Spans(rec.provider)
    registry = pocketcore.get_registry()
    registry.register(plugin, name="otel-test")
    yield rec
    registry.unregister(plugin)
    rec.provider.shutdown()


@pytest.fixture
def spans(recorded: Recorded) -> Recorded:
    """:func:`recorded`, emptied for this test."""
    recorded.clear()
    return recorded
