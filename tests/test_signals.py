"""Rate-limit and transient-error signals read from failed calls by shape, not by client."""

from __future__ import annotations

import asyncio
import email.utils
from datetime import datetime, timedelta, timezone

import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pocketcore import ProviderSignal
from pocketcore._runtime.signals import (
    parse_duration,
    remaining,
    retry_after,
    signal_of,
)
from tests.provider import FakeProvider, serve

NOW = 1_800_000_000.0


# --- the shapes clients raise (without importing them) --------------------------


class Response:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status_code = status
        self.headers = headers


class StatusError(Exception):
    """openai / anthropic / litellm: a status_code and a response on the exception."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        super().__init__(f"error {status}")
        self.status_code = status
        self.response = Response(status, headers)


class HTTPStatusError(Exception):
    """httpx / requests: the status is the response's only."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        super().__init__(f"error {status}")
        self.response = Response(status, headers)


class ClientResponseError(Exception):
    """aiohttp: ``status`` and ``headers`` on the exception itself."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        super().__init__(f"error {status}")
        self.status = status
        self.headers = headers


SHAPES = [StatusError, HTTPStatusError, ClientResponseError]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("status", [429, 529])
def test_a_rate_limit_in_any_shape(shape: type[Exception], status: int) -> None:
    assert signal_of(shape(status, {"Retry-After": "7"})) == ProviderSignal(True, 7.0, status)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_transient_server_errors_are_not_rate_limits(shape: type[Exception], status: int) -> None:
    assert signal_of(shape(status, {})) == ProviderSignal(False, None, status)


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_statuses_say_nothing(status: int) -> None:
    assert signal_of(StatusError(status, {"retry-after": "1"})) is None


def test_exceptions_without_a_status_say_nothing() -> None:
    assert signal_of(ValueError("no")) is None
    odd = ValueError("odd")
    odd.status = True  # type: ignore[attr-defined]  # a bool is not a status
    assert signal_of(odd) is None


def test_a_wrapped_exception_is_read_through_its_cause() -> None:
    outer = RuntimeError("the call failed")
    outer.__cause__ = HTTPStatusError(429, {"retry-after-ms": "1500"})
    assert signal_of(outer) == ProviderSignal(True, 1.5, 429)


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert retry_after({"retry-after": "2", "retry-after-ms": "1250"}) == 1.25


def test_an_http_date_is_counted_from_now() -> None:
    when = email.utils.formatdate(NOW + 30, usegmt=True)
    assert retry_after({"retry-after": when}, now=NOW) == pytest.approx(30)
    past = email.utils.formatdate(NOW - 30, usegmt=True)
    assert retry_after({"retry-after": past}, now=NOW) == 0


def test_without_retry_after_the_exhausted_budget_says_when() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "12",
        "x-ratelimit-reset-requests": "2s",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert retry_after(headers) == 360
    headers["x-ratelimit-remaining-tokens"] = "300"  # none is empty: the longest reset
    assert retry_after(headers) == 360
    del headers["x-ratelimit-reset-tokens"]
    assert retry_after(headers) == 2


def test_anthropic_resets_are_times() -> None:
    reset = datetime.fromtimestamp(NOW + 12, tz=timezone.utc).isoformat()
    headers = {
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": reset,
        "anthropic-ratelimit-requests-remaining": "40",
    }
    assert retry_after(headers, now=NOW) == pytest.approx(12)
    assert remaining(headers) == {"tokens": 0, "requests": 40}


def test_nothing_to_go_by() -> None:
    assert retry_after({}) is None
    assert retry_after({"retry-after": "soon", "x-ratelimit-reset-tokens": "later"}) is None


@given(
    h=st.integers(0, 3),
    m=st.integers(0, 59),
    s=st.decimals(0, 59, places=3).map(float),
    ms=st.integers(0, 999),
)
def test_durations_as_openai_writes_them(h: int, m: int, s: float, ms: int) -> None:
    text = (f"{h}h" if h else "") + (f"{m}m" if m else "") + f"{s:g}s" + (f"{ms}ms" if ms else "")
    assert parse_duration(text) == pytest.approx(h * 3600 + m * 60 + s + ms / 1000)


@pytest.mark.parametrize("text", ["", "-1", "nan", "inf", "5x", "m", "1m1m"])
def test_what_is_not_a_duration(text: str) -> None:
    assert parse_duration(text) is None


def test_an_iso_time_in_the_past_is_zero() -> None:
    past = (datetime.now(tz=timezone.utc) - timedelta(seconds=5)).isoformat()
    assert parse_duration(past) == 0


def test_remaining_reads_both_budgets() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "1499",
        "x-ratelimit-remaining-tokens": "998000",
        "x-ratelimit-limit-tokens": "1000000",
        "x-ratelimit-remaining-images": "3",  # a unit nobody budgets in those names
    }
    assert remaining(headers) == {"requests": 1499, "tokens": 998000}


def test_the_openai_sdk_error_from_a_provider_is_read() -> None:
    async def main(provider: FakeProvider) -> BaseException:
        client = openai.AsyncOpenAI(base_url=provider.url, api_key="test", max_retries=0)
        async with client:
            ask = {"model": "fake", "messages": [{"role": "user", "content": "x" * 3000}]}
            await client.chat.completions.create(**ask, max_tokens=100)  # type: ignore[call-overload]
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(**ask, max_tokens=100)  # type: ignore[call-overload]
            return caught.value

    with serve(FakeProvider(rpm=6000, tpm=60_000, latency=0.001)) as provider:
        exc = asyncio.run(main(provider))
    signal = signal_of(exc)
    assert signal is not None
    assert signal.rate_limited
    assert signal.status == 429
    assert signal.retry_after is not None
    assert 0 < signal.retry_after <= 1
