"""Summaries from a rate-limited model API: what a shared limiter and ``on_error="collect"`` change.

The documents come in three collections, summarised side by side: an
``AsyncParallelBatchFlow`` runs one pass per collection, and in each pass a
``Summarise`` node (an ``AsyncParallelBatchNode``) sends one request per
document to :class:`FakeLLM`, a stand-in for a model API that answers
``429 Too Many Requests`` beyond its rate limit. One document is too long
for the model, and always fails with ``400 Bad Request``.

Run it from the repository's root (or from this folder)::

    python examples/rate_limits/flow.py

The ``pocketcore.toml`` beside it declares the limiter ``llm`` (a little
under the API's limit). The configuration file is looked for from the
working directory upward, and, when none is found there, from the program's
folder upward: from the root, which declares no ``[tool.pocketcore]``, the
run finds this one.

It runs the batch four ways and prints one line for each.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import anyio

import pocketcore

RATE = 20  # requests per second the API allows, in any one-second window
LATENCY = 0.1  # seconds each request takes
COLLECTIONS = {"news": 20, "papers": 20, "mail": 20}  # documents per collection
TOO_LONG = "papers-7"  # the document the model always rejects


class RateLimitError(Exception):
    """The API's ``429 Too Many Requests``."""


class FakeLLM:
    """A model API that allows ``rate`` requests in any window of one second.

    A request over the limit is rejected at once with :class:`RateLimitError`;
    one that is let in takes ``latency`` seconds. It counts both.
    """

    def __init__(self, rate: float = RATE, latency: float = LATENCY) -> None:
        self.rate, self.latency = rate, latency
        self.accepted = self.rejected = 0
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()

    async def summarise(self, doc: dict[str, str]) -> str:
        now = time.monotonic()
        with self._lock:
            while self._recent and self._recent[0] <= now - 1:
                self._recent.popleft()
            if len(self._recent) >= self.rate:
                self.rejected += 1
                raise RateLimitError("429 Too Many Requests")
            self._recent.append(now)
            self.accepted += 1
        await anyio.sleep(self.latency)
        if doc["id"] == TOO_LONG:
            raise ValueError("400 Bad Request: the document is longer than the context window")
        return doc["text"].split(". ")[0] + "."


class Summarise(pocketcore.AsyncParallelBatchNode):
    """Summarises the documents of ``shared["documents"][params["collection"]]``."""

    def __init__(self, client: FakeLLM, **settings: Any) -> None:
        super().__init__(max_retries=3, wait=0.25, **settings)
        self.client = client

    async def prep_async(self, shared: dict[str, Any]) -> list[dict[str, str]]:
        docs: list[dict[str, str]] = shared["documents"][self.params["collection"]]
        return docs

    async def exec_async(self, doc: dict[str, str]) -> str:
        return await self.client.summarise(doc)

    async def post_async(
        self, shared: dict[str, Any], docs: list[dict[str, str]], results: list[Any]
    ) -> None:
        # With on_error="collect", a failed document is a pocketcore.Failed in
        # its slot: keep the good results, and say which ones failed and why.
        for doc, result in zip(docs, results, strict=True):
            if isinstance(result, pocketcore.Failed):
                shared["failed"][doc["id"]] = f"{result.exception} ({result.attempts} attempts)"
            else:
                shared["summaries"][doc["id"]] = result


class Collections(pocketcore.AsyncParallelBatchFlow):
    """One pass per collection, all at once."""

    async def prep_async(self, shared: dict[str, Any]) -> list[dict[str, str]]:
        return [{"collection": name} for name in shared["documents"]]


def documents() -> dict[str, list[dict[str, str]]]:
    return {
        name: [
            {"id": f"{name}-{i}", "text": f"Item {i} of {name}. More text that no one reads."}
            for i in range(count)
        ]
        for name, count in COLLECTIONS.items()
    }


def run_once(client: FakeLLM, **settings: Any) -> tuple[dict[str, Any], Exception | None]:
    """Run the batch with ``settings`` on the node: the shared store, and what the run raised."""
    on_error = settings.pop("on_error", None)
    flow = Collections(start=Summarise(client, **settings))
    shared: dict[str, Any] = {"documents": documents(), "summaries": {}, "failed": {}}
    try:
        pocketcore.run(flow, shared, on_error=on_error)
    except Exception as exc:
        return shared, exc
    return shared, None


def attempt(label: str, client: FakeLLM, **settings: Any) -> str:
    """Run the batch with ``settings``; one line saying what happened."""
    start = time.perf_counter()
    shared, error = run_once(client, **settings)
    took = time.perf_counter() - start
    if error is not None:
        outcome = f"the run failed: {type(error).__name__}: {error}"
    else:
        failed = shared["failed"]
        outcome = f"{len(shared['summaries'])} summaries, {len(failed)} failed"
        if 0 < len(failed) <= 2:
            outcome += "".join(f"; {doc}: {why}" for doc, why in failed.items())
    return (
        f"{label:<28} {took:5.2f}s  requests {client.accepted:>2} ok, "
        f"{client.rejected:>3} x 429  ->  {outcome}"
    )


def main(rate: float = RATE, latency: float = LATENCY) -> list[str]:
    lines = [
        attempt("no limiter", FakeLLM(rate, latency)),
        attempt("no limiter, collect", FakeLLM(rate, latency), on_error="collect"),
        attempt(
            f"max_per_second={rate * 0.8:g}, collect",
            FakeLLM(rate, latency),
            max_per_second=rate * 0.8,
            on_error="collect",
        ),
        attempt(
            "limiter='llm', collect", FakeLLM(rate, latency), limiter="llm", on_error="collect"
        ),
    ]
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    main()
