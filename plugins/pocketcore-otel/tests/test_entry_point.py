"""Installed, the plugin is active when an SDK is configured, and absent when none is.

These run fresh interpreters: which object the entry point registers is
decided when pocketcore loads its plugins, once per process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib import metadata

import pocketcore
import pocketcore_otel

FLOW = """
import json
import pocketcore

class Double(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared):
        return [1, 2]

    async def exec_async(self, x):
        return 2 * x

first = pocketcore.Node()
first >> Double()
flow = pocketcore.AsyncFlow(start=first)
"""

WITH_SDK = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
"""


def python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_entry_point_names_the_plugin_object() -> None:
    (entry,) = [e for e in metadata.entry_points(group="pocketcore") if e.name == "otel"]
    assert entry.value == "pocketcore_otel:plugin"
    assert entry.load() is pocketcore_otel.plugin


def test_with_an_sdk_configured_runs_are_traced() -> None:
    # Importing the plugin's module before configuring the SDK is fine: what
    # the entry point registers is decided when pocketcore loads it.
    out = python(
        "import pocketcore_otel\n"
        + WITH_SDK
        + FLOW
        + """
registry = pocketcore.get_registry()
pocketcore.run(flow, {})
print(json.dumps({
    "plugin": type(registry.pm.get_plugin("otel")).__name__,
    "spans": sorted(s.name for s in exporter.get_finished_spans()),
}))
"""
    )
    assert json.loads(out) == {
        "plugin": "Spans",
        "spans": [
            "pocketcore.item Double",
            "pocketcore.item Double",
            "pocketcore.node Double",
            "pocketcore.node Node",
            "pocketcore.run AsyncFlow",
        ],
    }


def test_without_an_sdk_nobody_listens() -> None:
    out = python(
        FLOW
        + """
registry = pocketcore.get_registry()
pocketcore.run(flow, {})
print(json.dumps({
    "plugin": type(registry.pm.get_plugin("otel")).__name__,
    "distribution": registry.distributions["otel"],
    "observer": repr(registry.observer),
}))
"""
    )
    assert json.loads(out) == {
        "plugin": "Off",
        "distribution": f"pocketcore-otel {pocketcore_otel.__version__}",
        "observer": "None",
    }


def test_off_implements_no_hook() -> None:
    registry = pocketcore.Registry(pocketcore.make_plugin_manager())
    registry.register(pocketcore_otel.Off(), name="otel")
    assert registry.observer is None
    registry.register(pocketcore_otel.Spans(), name="otel-spans")
    assert registry.observer is not None


def test_sdk_configured_sees_only_a_real_provider() -> None:
    # This process never sets one: the API's placeholder is in place.
    assert not pocketcore_otel.sdk_configured()
    out = python(WITH_SDK + "import pocketcore_otel\nprint(pocketcore_otel.sdk_configured())")
    assert out.strip() == "True"
