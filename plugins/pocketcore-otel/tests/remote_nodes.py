"""Nodes a dask worker runs: in a module of their own, so workers import them rather than
unpickle them by value (with the test module's globals)."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

import pocketcore

# The worker's tracer: a worker thread of this process, so the global provider
# the test sets is what it records with.
WORKER_PROVIDER: list[Any] = []


class Fetch(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[str]:
        return list(shared["pages"])

    async def exec_async(self, page: str) -> str:
        tracer = trace.get_tracer("on-the-worker", tracer_provider=WORKER_PROVIDER[0])
        with tracer.start_as_current_span("http get", attributes={"page": page}):
            return page.upper()


class Measure(pocketcore.AsyncParallelBatchNode):
    """Reports each page's length in tokens, on the worker."""

    async def prep_async(self, shared: dict[str, Any]) -> list[str]:
        return list(shared["pages"])

    async def exec_async(self, page: str) -> str:
        pocketcore.report_usage(input_tokens=len(page), output_tokens=1)
        return page
