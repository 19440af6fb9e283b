"""Installed, the plugin is active while an SDK is configured, and costs nothing while none is.

These run fresh interpreters (and a pytest session): whether a run is
traced is decided when it starts, whatever happened earlier in the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

import pocketcore
import pocketcore_otel

# The node every program here runs: a parallel batch of two items.
DOUBLE = """
import json
import pocketcore


class Double(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared):
        return [1, 2]

    async def exec_async(self, x):
        return 2 * x

    async def post_async(self, shared, prep_res, exec_res):
        shared["out"] = exec_res
"""

FLOW = (
    DOUBLE
    + """
first = pocketcore.Node()
first >> Double()
flow = pocketcore.AsyncFlow(start=first)
"""
)

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
    # Importing the plugin's module before configuring the SDK is fine: the
    # plugin asks whether a provider is set when each run starts.
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
state = registry.pm.get_plugin("otel").plugin_state()
print(json.dumps({
    "plugin": type(registry.pm.get_plugin("otel")).__name__,
    "distribution": registry.distributions["otel"],
    "observer": repr(registry.observer),
    "state": [state.active, state.reason],
}))
"""
    )
    assert json.loads(out) == {
        "plugin": "Spans",
        "distribution": f"pocketcore-otel {pocketcore_otel.__version__}",
        "observer": "None",
        "state": [False, pocketcore_otel.NO_SDK],
    }


def test_an_idle_plugin_is_left_out_of_the_observer() -> None:
    # No provider is ever set in this process: the global Spans is idle.
    registry = pocketcore.Registry(pocketcore.make_plugin_manager())
    idle = pocketcore_otel.Spans()
    registry.register(idle, name="otel")
    assert registry.observer is None
    own = pocketcore_otel.Spans(TracerProvider())
    registry.register(own, name="otel-spans")
    observer = registry.observer
    assert observer is not None
    impls = observer.pocketcore_run_start.get_hookimpls()
    assert [impl.plugin for impl in impls] == [own]


# A pytest session as a user has one: earlier tests run flows before any
# tracing is configured, a later one configures it and expects spans.
SESSION = (
    DOUBLE
    + """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def test_a_flow_before_tracing_is_configured():
    shared = {}
    pocketcore.run(pocketcore.AsyncFlow(start=Double()), shared)
    assert shared["out"] == [2, 4]


def test_a_flow_after_tracing_is_configured():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    pocketcore.run(pocketcore.AsyncFlow(start=Double()), {})
    names = sorted(span.name for span in exporter.get_finished_spans())
    assert names == [
        "pocketcore.item Double",
        "pocketcore.item Double",
        "pocketcore.node Double",
        "pocketcore.run AsyncFlow",
    ]
"""
)


def test_tracing_configured_after_earlier_runs_in_a_pytest_session(tmp_path: Path) -> None:
    (tmp_path / "test_session.py").write_text(SESSION)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_session.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_pocketcore_plugins_says_whether_the_plugin_is_active_and_why_not() -> None:
    def listing(env: dict[str, str]) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "pocketcore", "plugins", "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        (otel,) = [p for p in json.loads(done.stdout)["plugins"] if p["name"] == "otel"]
        state: dict[str, Any] = otel["state"]
        return state

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "POCKETCORE_"))}
    assert listing(clean) == {"active": False, "reason": pocketcore_otel.NO_SDK}
    configured = {**clean, "OTEL_PYTHON_TRACER_PROVIDER": "sdk_tracer_provider"}
    assert listing(configured) == {"active": True, "reason": ""}
    text = subprocess.run(
        [sys.executable, "-m", "pocketcore", "plugins"],
        capture_output=True,
        text=True,
        env=clean,
        check=True,
        timeout=60,
    ).stdout
    assert f"  state:     inactive: {pocketcore_otel.NO_SDK}\n" in text


def test_sdk_configured_sees_only_a_real_provider() -> None:
    # This process never sets one: the API's placeholder is in place.
    assert not pocketcore_otel.sdk_configured()
    out = python(WITH_SDK + "import pocketcore_otel\nprint(pocketcore_otel.sdk_configured())")
    assert out.strip() == "True"
