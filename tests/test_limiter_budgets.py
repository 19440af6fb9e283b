"""Limiters on budgets: the provider's request and token limits, and nothing booked ahead."""

from __future__ import annotations

import itertools
import pickle
import time
from typing import Any

import anyio
import pytest

import pocketcore
from pocketcore import ConfigError, Limiter
from pocketcore._runtime.limits import as_limiter_table


class Echo(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: Any) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        if item == "boom":
            await anyio.sleep(0.05)
            raise ValueError("boom")
        return item

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["out"] = exec_res


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_a_failed_batch_leaves_no_turn_booked(executor: str) -> None:
    # 200 items at 5 a second on a limiter that outlives the run; the batch
    # fails 50 ms in. The items that were waiting took nothing, so the next
    # run's two items start at the limiter's pace, not 40 s later.
    limiter = Limiter(max_per_second=5)
    node = Echo(limiter=limiter)
    with pytest.raises(ValueError, match="boom"):
        pocketcore.run(node, {"items": ["boom", *range(199)]}, executor=executor)
    assert limiter.idle
    started = time.monotonic()
    shared: dict[str, Any] = {"items": [1, 2]}
    pocketcore.run(node, shared, executor=executor)
    assert shared["out"] == [1, 2]
    assert time.monotonic() - started < 2  # about 0.4 s at 5 a second; 40 s if booked


def test_requests_per_minute_paces_like_max_per_second() -> None:
    limiter = Limiter(requests_per_minute=600)  # 10 a second
    starts: list[float] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(6):

                async def one() -> None:
                    await limiter.take_turn()
                    starts.append(time.monotonic())

                tg.start_soon(one)

    anyio.run(main)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.1 - 0.02


def test_tokens_are_charged_and_wait_for_their_budget() -> None:
    limiter = Limiter(tokens_per_minute=6000)  # 100 a second, 100 held

    async def main() -> float:
        await limiter.take_turn({"requests": 1, "tokens": 100})
        started = time.monotonic()
        await limiter.take_turn({"requests": 1, "tokens": 50})  # about 0.5 s of refill
        return time.monotonic() - started

    assert 0.4 <= anyio.run(main) < 2


def test_a_limiter_travels_with_its_bounds_and_a_budget_of_its_own() -> None:
    limiter = Limiter(3, name="llm", requests_per_minute=60, tokens_per_minute=1000)
    limiter.try_take_turn({"requests": 1, "tokens": 10})
    copy = pickle.loads(pickle.dumps(limiter))
    assert copy.describe() == limiter.describe()
    assert copy.describe() == "limiter 'llm' (3 at once, 60 requests/min, 1,000 tokens/min)"
    assert copy.account is not None
    assert copy.account.levels()["tokens"] > limiter.account.levels()["tokens"]  # type: ignore[union-attr]


def test_fresh_copies_every_bound() -> None:
    limiter = Limiter(2, name="x", tokens_per_minute=600, budgets={"images": 30}, overtake=0.5)
    fresh = limiter.fresh()
    assert (fresh.overtake, fresh.account.overtake) == (0.5, 0.5)
    assert fresh is not limiter
    assert (
        fresh.describe()
        == limiter.describe()
        == "limiter 'x' (2 at once, 600 tokens/min, 30 images/min)"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"max_per_second": 1, "requests_per_minute": 60},
            "both max_per_second and requests_per_minute",
        ),
        ({"tokens_per_minute": 0}, "tokens_per_minute must be a positive"),
        ({"tokens_per_minute": "lots"}, "tokens_per_minute must be a positive number"),
        ({"budgets": {"images": -1}}, "budgets.images must be a positive"),
        ({"budgets": {"tokens": 10}}, "give it as tokens_per_minute"),
        ({"budgets": [1]}, "budgets must be a table"),
        ({"overtake": -1}, "overtake must be a finite number of seconds >= 0"),
        ({"overtake": True}, "overtake must be a number of seconds >= 0"),
        ({"overtake": float("inf")}, "overtake must be a finite number"),
    ],
)
def test_bad_budgets_name_their_source(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Limiter(name="llm", **kwargs)
    assert "limiter 'llm'" in str(caught.value)


def test_a_declared_table_takes_the_new_keys() -> None:
    table = {"requests_per_minute": 1500, "tokens_per_minute": 1_000_000, "max_concurrency": 32}
    limiter = as_limiter_table(table, "pyproject.toml", "llm")
    assert limiter.describe() == (
        "limiter 'llm' (32 at once, 1,500 requests/min, 1,000,000 tokens/min)"
    )
    assert as_limiter_table({"overtake": 0}, "pyproject.toml", "llm").account.overtake == 0.0
    with pytest.raises(ConfigError, match=r"unknown key 'rpm'.*known keys: max_concurrency, "):
        as_limiter_table({"rpm": 5}, "pyproject.toml", "llm")
    with pytest.raises(ConfigError, match=r"\[limiters.llm\] in pyproject.toml"):
        as_limiter_table({"tokens_per_minute": -5}, "pyproject.toml", "llm")
