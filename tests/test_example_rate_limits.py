"""The example of docs/controls.md: a shared limiter avoids the 429s, collect keeps results."""

from __future__ import annotations

from pathlib import Path

import pytest

import pocketcore
from examples.rate_limits import flow as example

RATE = 40  # the fake API's limit, twice the example's, so the test takes half the time


@pytest.fixture(autouse=True)
def _limiter_declared(tmp_path: Path) -> None:
    """The example's pocketcore.toml, scaled to RATE, in the working directory (tmp_path)."""
    text = (Path(example.__file__).parent / "pocketcore.toml").read_text()
    assert "max_per_second = 16\n" in text
    (tmp_path / "pocketcore.toml").write_text(
        text.replace("max_per_second = 16", f"max_per_second = {RATE * 0.8:g}")
    )


def test_without_a_limiter_the_run_fails_with_the_apis_429() -> None:
    client = example.FakeLLM(RATE, 0.01)
    _, error = example.run_once(client)
    assert isinstance(error, example.RateLimitError)
    assert str(error) == "429 Too Many Requests"
    assert client.rejected > 0


def test_collect_keeps_what_got_through() -> None:
    client = example.FakeLLM(RATE, 0.01)
    shared, error = example.run_once(client, on_error="collect")
    assert error is None
    # The first second's worth of requests got in (papers-7 among them, maybe), no more.
    assert client.accepted == RATE
    assert RATE - 1 <= len(shared["summaries"]) <= RATE
    assert len(shared["summaries"]) + len(shared["failed"]) == 60
    assert [why for why in shared["failed"].values() if "429" not in why] in (
        [],
        ["400 Bad Request: the document is longer than the context window (3 attempts)"],
    )


def test_pacing_each_batch_is_not_enough_when_batches_run_side_by_side() -> None:
    client = example.FakeLLM(RATE, 0.01)
    example.run_once(client, max_per_second=RATE * 0.8, on_error="collect")
    assert client.rejected > 0  # three batches, each at 80% of the API's rate


def test_a_shared_limiter_keeps_under_the_limit() -> None:
    client = example.FakeLLM(RATE, 0.01)
    shared, error = example.run_once(client, limiter="llm", on_error="collect")
    assert error is None
    assert len(shared["summaries"]) == 59
    assert shared["summaries"]["news-0"] == "Item 0 of news."
    (why,) = shared["failed"].values()
    assert shared["failed"] == {"papers-7": why}
    assert why.startswith("400 Bad Request")
    assert why.endswith("(3 attempts)")
    # The limiter paces items, not attempts: the retries of papers-7 were not
    # paced, and fit in the room the declared rate leaves under the API's.
    assert client.accepted == 62
    assert client.rejected == 0


def test_the_limiter_is_the_one_declared_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "pocketcore.toml").unlink()
    _, error = example.run_once(example.FakeLLM(RATE, 0.01), limiter="llm")
    assert isinstance(error, pocketcore.ConfigError)
    assert "unknown limiter 'llm'" in str(error)
