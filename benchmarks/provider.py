"""A batch of LLM calls against a provider's request and token limits, side by side.

``python -m benchmarks.provider`` serves the fake provider of
``tests/provider.py`` on 127.0.0.1 with a provider's published limits
(1,500 requests and 1,000,000 tokens a minute by default), and sends it the
same job several ways through the real ``openai`` SDK: calls whose prompts
vary from 80 to 6,000 tokens (asking for up to 200 more), in random order
and longest first. For each
it reports the time against the theoretical minimum (what the provider
kept of the job, net of its refunds, at its budgets' rates, plus one
answer's median latency for the last call), the items that
failed, the 429s and the requests the server saw. Medians over
``--repeats`` rounds, the contenders interleaved within each round.

Contenders:

- ``pocketcore``: a ``Limiter`` declaring only the published limits, and its
  ``event_hooks()`` on the SDK's HTTP client; the SDK's own retries off;
- ``pocketcore+sdk``: the same with the SDK's two retries left on;
- ``pocketcore, no hooks``: the limits declared, and ``report_usage`` in ``exec``;
- ``pocketcore auto``: no limits declared, ``max_concurrency="auto"`` and the
  event hooks (the provider's 429s and headers are all it goes by); and
  ``pocketcore auto+sdk``, the same with the SDK's two retries left on;
- ``aiometer+tenacity``: ``aiometer.run_all`` at ``max_per_second`` from the
  request limit, each call retried by tenacity on 429 and 5xx with random
  exponential waits (up to 6 attempts), the SDK's retries off.

Every contender gets four attempts per item for transient server errors.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import openai

import pocketcore
from tests.provider import FakeProvider, serve

MAX_TOKENS = 200


def job(calls: int, order: str, seed: int) -> list[int]:
    """Prompt sizes in tokens: lognormal around 600, from 80 to 6,000 (a 75-fold spread)."""
    rng = random.Random(seed)
    sizes = [min(6000, max(80, round(rng.lognormvariate(6.4, 0.9)))) for _ in range(calls)]
    if order == "longest":
        sizes.sort(reverse=True)
    return sizes


def messages(size: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": "x" * (size * 4)}]


class Ask(pocketcore.AsyncParallelBatchNode):
    """One chat completion per item; reports its usage unless the hooks do."""

    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return shared["sizes"]

    async def exec_async(self, size: int) -> int:
        reply = await self.params["client"].chat.completions.create(
            model="fake", messages=messages(size), max_tokens=MAX_TOKENS
        )
        if self.params["report"]:
            pocketcore.report_usage(tokens=reply.usage.total_tokens)
        return int(reply.usage.total_tokens)

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


async def pocketcore_job(
    url: str,
    sizes: list[int],
    rpm: int,
    tpm: int,
    *,
    hooks: bool,
    sdk_retries: int,
    auto: bool = False,
) -> list[Any]:
    if auto:
        limiter = pocketcore.Limiter(max_concurrency="auto")
    else:
        limiter = pocketcore.Limiter(requests_per_minute=rpm, tokens_per_minute=tpm)
    http = openai.DefaultAsyncHttpxClient(event_hooks=limiter.event_hooks()) if hooks else None
    async with openai.AsyncOpenAI(
        base_url=url, api_key="bench", max_retries=sdk_retries, http_client=http
    ) as client:
        node = Ask(limiter=limiter, on_error="collect", max_retries=4, wait=0.5)
        node.set_params({"client": client, "report": not hooks})
        shared: dict[str, Any] = {"sizes": sizes}
        await node.run_async(shared)
        return list(shared["out"])


async def aiometer_job(url: str, sizes: list[int], rpm: int, tpm: int) -> list[Any]:
    import aiometer
    import tenacity

    async with openai.AsyncOpenAI(base_url=url, api_key="bench", max_retries=0) as client:
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(
                (openai.RateLimitError, openai.InternalServerError)
            ),
            wait=tenacity.wait_random_exponential(multiplier=1, max=20),
            stop=tenacity.stop_after_attempt(6),
            reraise=True,
        )

        async def one(size: int) -> Any:
            try:
                async for attempt in retrying.copy():
                    with attempt:
                        reply = await client.chat.completions.create(
                            model="fake", messages=messages(size), max_tokens=MAX_TOKENS
                        )
                        return int(reply.usage.total_tokens)
            except Exception as exc:  # a failed item, as collect would keep it
                return exc
            return None

        jobs = [functools.partial(one, size) for size in sizes]
        return list(await aiometer.run_all(jobs, max_per_second=rpm / 60))


Contender = Callable[[str, list[int], int, int], Awaitable[list[Any]]]

CONTENDERS: dict[str, Contender] = {
    "pocketcore": functools.partial(pocketcore_job, hooks=True, sdk_retries=0),
    "pocketcore+sdk": functools.partial(pocketcore_job, hooks=True, sdk_retries=2),
    "pocketcore, no hooks": functools.partial(pocketcore_job, hooks=False, sdk_retries=0),
    "pocketcore auto": functools.partial(pocketcore_job, hooks=True, sdk_retries=0, auto=True),
    "pocketcore auto+sdk": functools.partial(pocketcore_job, hooks=True, sdk_retries=2, auto=True),
    "aiometer+tenacity": aiometer_job,
}


def measure(name: str, sizes: list[int], args: argparse.Namespace, seed: int) -> dict[str, float]:
    provider = FakeProvider(
        rpm=args.rpm,
        tpm=args.tpm,
        latency=args.latency,
        sigma=0.6,
        error_rate=args.errors,
        seed=seed,
    )
    with serve(provider):
        started = time.monotonic()
        results = asyncio.run(CONTENDERS[name](provider.url, sizes, args.rpm, args.tpm))
        elapsed = time.monotonic() - started
    # The budgets' time for what the provider kept, plus the one answer the
    # last call must wait for: no client can finish sooner.
    kept = [r.used for r in provider.ok()]
    minimum = provider.minimum_seconds(kept) + args.latency
    failed = sum(not isinstance(r, int) for r in results)
    return {
        "ratio": elapsed / minimum if minimum > 0 else float("nan"),
        "seconds": elapsed,
        "minimum": minimum,
        "failed": failed,
        "refused": provider.refused(),
        "requests": len(provider.log),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.provider", description=__doc__)
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--rpm", type=int, default=1500)
    parser.add_argument("--tpm", type=int, default=1_000_000)
    parser.add_argument("--latency", type=float, default=0.8, help="median seconds of an answer")
    parser.add_argument("--errors", type=float, default=0.01, help="share of 5xx answers")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--orders", default="random,longest")
    parser.add_argument("--only", help="comma-separated contender names")
    args = parser.parse_args(argv)
    names = list(CONTENDERS) if not args.only else [n.strip() for n in args.only.split(",")]
    orders = [o.strip() for o in args.orders.split(",")]
    print(
        f"{args.calls} calls, {args.rpm:,} requests/min, {args.tpm:,} tokens/min, "
        f"median latency {args.latency} s, {args.errors:.0%} 5xx; medians of {args.repeats}"
    )
    print("| order | contender | x minimum | failed items | 429s | requests | seconds |")
    print("|---|---|---|---|---|---|---|")
    for order in orders:
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for repeat in range(args.repeats):
            sizes = job(args.calls, order, seed=repeat)
            rotated = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in rotated:
                samples[name].append(measure(name, sizes, args, seed=repeat))
        for name in names:
            rows = samples[name]

            def med(key: str, rows: list[dict[str, float]] = rows) -> float:
                return statistics.median(r[key] for r in rows)

            print(
                f"| {order} | {name} | {med('ratio'):.2f} | {med('failed'):.0f} | "
                f"{med('refused'):.0f} | {med('requests'):.0f} | {med('seconds'):.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
