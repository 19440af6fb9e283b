"""The fake provider of ``tests/provider.py``, driven by the real ``openai`` SDK.

The governor's tests and benchmark trust this server to behave like a
provider: these tests hold it to that.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.provider import Bucket, FakeProvider, serve


def client(provider: FakeProvider) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=provider.url, api_key="test", max_retries=0)


def ask(chars: int, max_tokens: int = 10) -> dict[str, object]:
    return {
        "model": "fake",
        "messages": [{"role": "user", "content": "x" * chars}],
        "max_tokens": max_tokens,
    }


def test_a_completion_reports_its_usage_and_the_budgets() -> None:
    async def main(provider: FakeProvider) -> None:
        async with client(provider) as c:
            raw = await c.chat.completions.with_raw_response.create(**ask(400, 20))  # type: ignore[call-overload]
            reply = raw.parse()
            assert reply.usage is not None
            assert reply.usage.prompt_tokens == 100
            assert reply.usage.completion_tokens == 10  # half of max_tokens
            assert raw.headers["x-ratelimit-limit-tokens"] == "60000"
            assert raw.headers["x-ratelimit-limit-requests"] == "600"
            assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 60000 / 60
            assert raw.headers["x-ratelimit-reset-tokens"].endswith("ms")

    with serve(FakeProvider(rpm=600, tpm=60_000, latency=0.001)) as provider:
        asyncio.run(main(provider))
    assert [r.status for r in provider.log] == [200]
    assert provider.log[0].used == 110


def test_over_budget_is_a_rate_limit_error_that_says_when_to_come_back() -> None:
    async def main(provider: FakeProvider) -> float:
        async with client(provider) as c:
            await c.chat.completions.create(**ask(3000, 100))  # type: ignore[call-overload]
            with pytest.raises(openai.RateLimitError) as caught:
                await c.chat.completions.create(**ask(3000, 100))  # type: ignore[call-overload]
            headers = caught.value.response.headers
            wait = int(headers["retry-after-ms"]) / 1000
            assert int(headers["retry-after"]) >= wait > 0
            assert int(headers["x-ratelimit-remaining-tokens"]) < 850
            await asyncio.sleep(wait)
            await c.chat.completions.create(**ask(3000, 100))  # type: ignore[call-overload]
            return wait

    # 60,000 tokens a minute: 1,000 a second, and 1,000 in the bucket.
    with serve(FakeProvider(rpm=6000, tpm=60_000, latency=0.001)) as provider:
        asyncio.run(main(provider))
    assert [r.status for r in provider.log] == [200, 429, 200]


def test_a_request_larger_than_the_bucket_is_refused_without_a_retry_time() -> None:
    provider = FakeProvider(rpm=60, tpm=600)  # a bucket of 10 tokens
    status, headers, _ = provider.admit(11)
    assert status == 429
    assert "retry-after" not in headers


def test_server_errors_come_as_the_sdk_raises_them() -> None:
    async def main(provider: FakeProvider) -> None:
        async with client(provider) as c:
            with pytest.raises(openai.InternalServerError):
                await c.chat.completions.create(**ask(40))  # type: ignore[call-overload]

    with serve(FakeProvider(rpm=600, tpm=60_000, latency=0.001, error_rate=1.0)) as provider:
        asyncio.run(main(provider))
    assert provider.log[0].status in (500, 502, 503)
    assert provider.tokens.level > provider.tokens.capacity - 1  # an error gives its charge back


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(1, 300), min_size=1, max_size=40))
def test_admitted_tokens_never_exceed_the_budget_over_any_window(sizes: list[int]) -> None:
    # 60,000 tokens a minute and a bucket of 500: whatever is asked, and however
    # fast, what is admitted over any stretch of time fits the budget.
    provider = FakeProvider(rpm=60_000, tpm=60_000, burst=0.5, latency=0.0)
    admitted: list[tuple[float, int]] = []
    deadline = time.monotonic() + 0.15
    i = 0
    while time.monotonic() < deadline:
        size = sizes[i % len(sizes)]
        if provider.admit(size)[0] == 200:
            admitted.append((time.monotonic(), size))
        i += 1
    rate, capacity = provider.tokens.rate, provider.tokens.capacity
    totals = list(itertools.accumulate((size for _, size in admitted), initial=0))
    for a, (start, _) in enumerate(admitted):
        for b in range(a, len(admitted)):
            got = totals[b + 1] - totals[a]
            # 50 ms for clock reads that land late after the charge (a busy machine).
            assert got <= capacity + rate * (admitted[b][0] - start + 0.05) + 1


def test_the_minimum_is_the_slower_budget() -> None:
    provider = FakeProvider(rpm=60, tpm=6000, burst=1)  # 1 request and 100 tokens a second
    assert provider.minimum_seconds([50] * 10) == pytest.approx(9.0)  # requests bound
    assert provider.minimum_seconds([1000] * 2) == pytest.approx(19.0)  # tokens bound


def test_a_bucket_refills_continuously_up_to_its_capacity() -> None:
    bucket = Bucket(per_minute=600, burst=2)  # 10 a second, 20 held
    bucket.level = 0
    bucket.refill(bucket.stamp + 0.5)
    assert bucket.level == pytest.approx(5)
    bucket.refill(bucket.stamp + 10)
    assert bucket.level == pytest.approx(20)
    assert bucket.wait_for(21) == float("inf")
