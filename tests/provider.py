"""A fake LLM provider on 127.0.0.1 that enforces request and token limits as real ones do.

It answers OpenAI's ``POST /v1/chat/completions`` well enough for the real
``openai`` SDK, so the kernel's handling of provider limits is tested against
the same exceptions, headers and retries users meet, with no network:

- **Budgets** of requests and tokens per minute, refilled continuously. A
  bucket holds ``burst`` seconds' worth of its budget, so a batch cannot be
  served faster than the budget by a large first burst; the fastest any job
  can go is :meth:`FakeProvider.minimum_seconds`.
- **Charges** as providers make them: a request is charged its prompt tokens
  (a character count over four) plus its ``max_tokens`` when admitted, and the
  completion tokens it did not use are refunded when it answers, so the net
  charge is the ``usage.total_tokens`` the response reports.
- **Refusals**: a request over either budget gets 429 with ``retry-after``,
  ``retry-after-ms`` and the ``x-ratelimit-*`` headers, and costs nothing.
  Every response carries the ``x-ratelimit-*`` headers (limit, remaining,
  reset) of both budgets.
- **Latency** drawn from a lognormal distribution, and a share of 500, 502
  and 503 answers; both from a seeded generator.

Every request is logged (:attr:`FakeProvider.log`) so a test or a benchmark
can count what the server saw: requests, refusals, errors, and the tokens it
admitted over time.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

__all__ = ["Bucket", "FakeProvider", "Request", "serve"]


@attrs.define
class Bucket:
    """A budget of ``per_minute`` units, refilled continuously, holding ``burst`` seconds' worth."""

    per_minute: float
    burst: float
    level: float = attrs.field(init=False)
    stamp: float = attrs.field(init=False, factory=time.monotonic)

    def __attrs_post_init__(self) -> None:
        self.level = self.capacity

    @property
    def rate(self) -> float:
        """Units refilled per second."""
        return self.per_minute / 60

    @property
    def capacity(self) -> float:
        """The most the bucket holds: ``burst`` seconds of refill, and never less than one unit."""
        return max(1.0, self.rate * self.burst)

    def refill(self, now: float) -> None:
        """Add what flowed in since the last look."""
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` units are there (0 if they are; ``inf`` if they never fit)."""
        if amount > self.capacity:
            return math.inf
        return max(0.0, (amount - self.level) / self.rate)

    def until_full(self) -> float:
        """Seconds until the bucket is full again: what ``x-ratelimit-reset-*`` reports."""
        return (self.capacity - self.level) / self.rate


@attrs.frozen
class Request:
    """One request as the server saw it."""

    start: float  # monotonic time the request arrived
    end: float  # monotonic time it was answered
    status: int
    charged: int  # tokens admitted (0 for refusals and errors)
    used: int  # tokens of the answer's usage (0 when there is none)


def _duration(seconds: float) -> str:
    """A reset time the way OpenAI writes it: ``"1m2.5s"``, ``"40ms"``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.3g}s" if minutes else f"{rest:.3g}s"


@attrs.define(eq=False)
class FakeProvider:
    """The server's state: its budgets, its randomness and its log. Start it with :func:`serve`.

    ``rpm`` and ``tpm`` are the published limits; ``latency`` the median
    seconds of an answer and ``sigma`` its lognormal spread; ``error_rate``
    the share of admitted requests that fail with a 5xx; ``completion`` the
    share of ``max_tokens`` an answer uses.
    """

    rpm: float
    tpm: float
    burst: float = 1.0
    latency: float = 0.05
    sigma: float = 0.5
    error_rate: float = 0.0
    completion: float = 0.5
    seed: int = 0
    url: str = ""
    log: list[Request] = attrs.field(factory=list)
    requests: Bucket = attrs.field(init=False)
    tokens: Bucket = attrs.field(init=False)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _random: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.requests = Bucket(self.rpm, self.burst)
        self.tokens = Bucket(self.tpm, self.burst)
        self._random = random.Random(self.seed)

    @staticmethod
    def prompt_tokens(messages: list[dict[str, Any]]) -> int:
        """The prompt's token count as the server counts it: characters over four, at least one."""
        return max(1, sum(len(str(m.get("content", ""))) for m in messages) // 4)

    def minimum_seconds(self, charges: list[int]) -> float:
        """The least time any client can take to get ``charges`` (tokens per request) admitted.

        Each budget can admit its capacity at once and then its rate; the
        slower of the two bounds the job. Latency is not counted.
        """
        by_tokens = (sum(charges) - self.tokens.capacity) / self.tokens.rate
        by_requests = (len(charges) - self.requests.capacity) / self.requests.rate
        return max(0.0, by_tokens, by_requests)

    def _headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(int(self.rpm)),
            "x-ratelimit-limit-tokens": str(int(self.tpm)),
            "x-ratelimit-remaining-requests": str(int(self.requests.level)),
            "x-ratelimit-remaining-tokens": str(int(self.tokens.level)),
            "x-ratelimit-reset-requests": _duration(self.requests.until_full()),
            "x-ratelimit-reset-tokens": _duration(self.tokens.until_full()),
        }

    def admit(self, charge: int) -> tuple[int, dict[str, str], float]:
        """Charge a request, or refuse it: ``(status, headers, latency)``.

        ``status`` is 200, 429 or a 5xx; a refusal costs nothing, an error
        gives its charge back.
        """
        with self._lock:
            now = time.monotonic()
            self.requests.refill(now)
            self.tokens.refill(now)
            wait = max(self.requests.wait_for(1), self.tokens.wait_for(charge))
            if wait > 0:
                headers = self._headers()
                if math.isfinite(wait):
                    headers["retry-after"] = str(math.ceil(wait))
                    headers["retry-after-ms"] = str(math.ceil(wait * 1000))
                return 429, headers, 0.0
            self.requests.level -= 1
            self.tokens.level -= charge
            latency = self.latency * math.exp(self._random.gauss(0, self.sigma))
            failed = self._random.random() < self.error_rate
            status = self._random.choice((500, 502, 503)) if failed else 200
            if failed:
                self.tokens.level += charge
            return status, self._headers(), latency

    def refund(self, tokens: int) -> dict[str, str]:
        """Give back tokens a request was charged but did not use; the headers as they are now."""
        with self._lock:
            now = time.monotonic()
            self.requests.refill(now)
            self.tokens.refill(now)
            self.tokens.level = min(self.tokens.capacity, self.tokens.level + tokens)
            return self._headers()

    def ok(self) -> list[Request]:
        """The requests that were answered with a completion."""
        return [r for r in self.log if r.status == 200]

    def refused(self) -> int:
        """How many requests got 429."""
        return sum(r.status == 429 for r in self.log)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the provider's log is :attr:`FakeProvider.log`."""

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        """``/v1/chat/completions``; anything else is 404."""
        provider = self.server.provider
        start = time.monotonic()
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
            return
        messages = body.get("messages", [])
        prompt = provider.prompt_tokens(messages)
        most = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        status, headers, latency = provider.admit(prompt + most)
        if status == 429:
            self._send(429, _error("Rate limit reached", "rate_limit_exceeded"), headers)
            provider.log.append(Request(start, time.monotonic(), 429, 0, 0))
            return
        time.sleep(latency)
        if status != 200:
            self._send(status, _error("The server had an error", "server_error"), headers)
            provider.log.append(Request(start, time.monotonic(), status, 0, 0))
            return
        completion = max(1, round(most * provider.completion))
        headers = provider.refund(most - completion)  # the budgets as the answer leaves
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        answer = {
            "id": f"chatcmpl-{len(provider.log)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"{prompt} tokens read"},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        self._send(200, answer, headers)
        provider.log.append(
            Request(start, time.monotonic(), 200, prompt + most, prompt + completion)
        )


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": code, "code": code, "param": None}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a batch opens hundreds of connections at once

    def __init__(self, provider: FakeProvider) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.provider = provider


@contextmanager
def serve(provider: FakeProvider) -> Iterator[FakeProvider]:
    """Serve ``provider`` on a free port of 127.0.0.1 for the block, at ``provider.url``."""
    server = _Server(provider)
    thread = threading.Thread(target=server.serve_forever, name="fake-provider", daemon=True)
    thread.start()
    provider.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
