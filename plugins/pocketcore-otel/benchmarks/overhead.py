"""What the OpenTelemetry plugin costs per batch item, side by side in one run.

Each configuration runs in a fresh interpreter (which object the entry point
registers is decided once per process), and the configurations take turns,
round after round, so a noisy neighbour slows them all alike. Reported: the
best time per item over all rounds, and its ratio to a process where the
plugin is not loaded at all.

    python plugins/pocketcore-otel/benchmarks/overhead.py [--items N] [--rounds R]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from typing import Any

CONFIGS = {
    "not loaded": "the otel entry point left out (POCKETCORE_PLUGINS)",
    "installed, no SDK": "the entry point registers Off",
    "registered, no SDK": "a Spans registered by hand: the API's no-op spans",
    "SDK, no processor": "an SDK TracerProvider with no span processor",
    "SDK, batch+memory": "BatchSpanProcessor to an in-memory exporter",
    "SDK, simple+memory": "SimpleSpanProcessor to an in-memory exporter",
}


def configure(config: str) -> Any:
    """Set up the SDK as ``config`` says; return its in-memory exporter, if any."""
    if not config.startswith("SDK"):
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    exporter = None
    if "memory" in config:
        exporter = InMemorySpanExporter()
        processor = SimpleSpanProcessor if "simple" in config else BatchSpanProcessor
        provider.add_span_processor(processor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def best_of(repeats: int, run: Any, after: Any = None) -> float:
    """The shortest of ``repeats`` calls of ``run()``, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
        if after is not None:
            after()
    return best


def bare_span(items: int, repeats: int) -> float:
    """The floor, in µs: one SDK span per item, made and ended with no pocketcore around it."""
    from opentelemetry import trace

    tracer = trace.get_tracer("bare")

    def spans() -> None:
        for i in range(items):
            tracer.start_span("pocketcore.item X", attributes={"pocketcore.item.index": i}).end()

    return best_of(repeats, spans) / items * 1e6


def measure(config: str, items: int, repeats: int) -> dict[str, float]:
    """In this process: set ``config`` up, then time each kind of batch (µs per item)."""
    exporter = configure(config)
    from opentelemetry import trace

    import pocketcore

    registry = pocketcore.get_registry()
    if config == "registered, no SDK":
        import pocketcore_otel

        registry.register(pocketcore_otel.Spans(), name="otel-by-hand")

    class Parallel(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> range:
            return range(shared["items"])

        async def exec_async(self, item: int) -> int:
            return item

    class OneByOne(pocketcore.BatchNode):
        def prep(self, shared: Any) -> range:
            return range(shared["items"])

        def exec(self, item: int) -> int:
            return item

    def forget() -> None:  # the exported spans are not kept from one run to the next
        if exporter is not None:
            trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
            exporter.clear()

    results: dict[str, float] = {"observer": registry.observer is not None}
    for kind, node in (("AsyncParallelBatchNode", Parallel()), ("BatchNode", OneByOne())):
        run = functools.partial(pocketcore.run, node, {"items": items}, executor="asyncio")
        results[kind] = best_of(repeats, run, forget) / items * 1e6
    if config == "SDK, no processor":
        results["bare span"] = bare_span(items, repeats)
    return results


def main() -> None:
    """Run every configuration in turn, in fresh interpreters, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3, help="runs per process")
    parser.add_argument("--rounds", type=int, default=3, help="processes per configuration")
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.config:
        print(json.dumps(measure(args.config, args.items, args.repeats)))
        return
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for config in CONFIGS:
            env = dict(os.environ)
            if config == "not loaded":
                env["POCKETCORE_PLUGINS"] = "sequential,asyncio,trio"
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--config",
                    config,
                    "--items",
                    str(args.items),
                    "--repeats",
                    str(args.repeats),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for key, value in json.loads(out).items():
                old = best.setdefault(config, {}).get(key)
                best[config][key] = value if old is None or key == "observer" else min(old, value)
    base = best["not loaded"]
    kinds = ("AsyncParallelBatchNode", "BatchNode")
    print(f"{args.items} items per batch, best of {args.rounds} x {args.repeats} runs, asyncio")
    print(f"{'configuration':<20} {'observer':>8}" + "".join(f" {k:>30}" for k in kinds))
    for config, found in best.items():
        cells = "".join(
            f" {found[k]:>10.2f} µs/item ({found[k] / base[k]:>5.2f}x)".rjust(31) for k in kinds
        )
        print(f"{config:<20} {bool(found['observer'])!s:>8}{cells}")
    bare = best["SDK, no processor"]["bare span"]
    print(f"one SDK span alone (start + end, no processor, no pocketcore): {bare:.2f} µs")


if __name__ == "__main__":
    main()
