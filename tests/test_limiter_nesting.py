"""Shared limiters in every shape a user nests them: runs finish, bounds hold, turns come back.

A node in a flow in a parallel batch flow, with a limiter and
``max_concurrency`` at any level, with and without a failing item, on
asyncio and trio: every run finishes, no more items hold the limiter than it
admits, and the limiter is idle again after each run. And the case of issue
20: a module-level paced limiter whose batch failed while items waited for
their turns does not make the next run wait for them.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pocketcore

LEVELS = ("run", "passes", "flow", "node")


class Items(pocketcore.AsyncParallelBatchNode):
    """The batch inside each pass; counts the items in flight in ``shared``."""

    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return list(range(self.params["size"]))

    async def exec_async(self, item: int) -> int:
        probe = self.params["probe"]
        probe["now"] += 1
        probe["peak"] = max(probe["peak"], probe["now"])
        try:
            await anyio.sleep(0.001 * (item % 3))
            if (self.params["pass"], item) == probe["fail"]:
                raise ValueError("the failing item")
            return item
        finally:
            probe["now"] -= 1

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["done"].append(self.params["pass"])


class Passes(pocketcore.AsyncParallelBatchFlow):
    async def prep_async(self, shared: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"pass": i, "size": size, "probe": shared["probe"]}
            for i, size in enumerate(shared["passes"])
        ]


@settings(max_examples=40, deadline=None)
@given(
    backend=st.sampled_from(["asyncio", "trio"]),
    passes=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    bound=st.integers(1, 3),
    rate=st.one_of(st.none(), st.just(500.0)),
    where=st.sampled_from(LEVELS),
    limits=st.fixed_dictionaries(
        {level: st.one_of(st.none(), st.integers(1, 3)) for level in LEVELS}
    ),
    fail=st.one_of(st.none(), st.integers(0, 4)),
)
def test_nested_limiters_finish_hold_their_bound_and_end_idle(
    backend: str,
    passes: list[int],
    bound: int,
    rate: float | None,
    where: str,
    limits: dict[str, int | None],
    fail: int | None,
) -> None:
    limiter = pocketcore.Limiter(bound, rate)
    failing = (0, fail) if fail is not None and passes[0] > fail else None

    def level(name: str) -> dict[str, Any]:
        given: dict[str, Any] = {"max_concurrency": limits[name]}
        if where == name:
            given["limiter"] = limiter
        return given

    node = Items(**level("node"))
    flow = pocketcore.AsyncFlow(start=node, **level("flow"))
    outer = Passes(start=flow, **level("passes"))
    run = level("run")
    shared: dict[str, Any] = {
        "passes": passes,
        "done": [],
        "probe": {"now": 0, "peak": 0, "fail": failing},
    }

    async def main() -> None:
        with anyio.fail_after(20):  # a hang fails the example instead of the whole session
            await outer.run_async(shared)

    if where == "run" or limits["run"] is not None:
        # Run-level settings go through pocketcore.run, which starts the loop.
        call = lambda: pocketcore.run(outer, shared, executor=backend, **run)  # noqa: E731
    else:
        call = lambda: anyio.run(main, backend=backend)  # noqa: E731
    if failing is None:
        call()
        assert sorted(shared["done"]) == list(range(len(passes)))
    else:
        with pytest.raises(ValueError, match="the failing item"):
            call()
    assert shared["probe"]["now"] == 0
    assert shared["probe"]["peak"] <= bound
    assert limiter.idle


@pytest.mark.parametrize("executor", ["asyncio", "trio"])  # uvloop: its conformance suite
def test_a_failed_batch_gives_its_turns_back_to_a_module_level_limiter(executor: str) -> None:
    llm = pocketcore.Limiter(max_per_second=5)  # as a module would hold it
    started: list[int] = []

    class Summarise(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: dict[str, Any]) -> list[int]:
            return list(range(shared["n"]))

        async def exec_async(self, item: int) -> int:
            started.append(item)
            if shared_fails and len(started) == 1:
                await anyio.sleep(0.05)
                raise ValueError("the API is down")
            return item

    shared_fails = True
    with pytest.raises(ValueError, match="the API is down"):
        pocketcore.run(Summarise(limiter=llm), {"n": 200}, executor=executor)
    assert llm.idle
    shared_fails = False
    began = time.monotonic()
    pocketcore.run(Summarise(limiter=llm), {"n": 2}, executor=executor)
    # Two starts at 5/s: 0.2 s. The 199 turns kept would have been 40 s.
    assert time.monotonic() - began < 5


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
@pytest.mark.parametrize("how", ["declared name", "Limiter object", "environment"])
def test_a_run_limiter_over_a_parallel_batch_flow_finishes(
    executor: str, how: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # docs/controls.md's call: pocketcore.run(Collections(start=Summarise()), {}, limiter="llm"),
    # three passes and a limiter of two slots.
    (tmp_path / "pocketcore.toml").write_text("[limiters.llm]\nmax_concurrency = 2\n")
    limiter: Any = "llm" if how == "declared name" else pocketcore.Limiter(max_concurrency=2)
    run: dict[str, Any] = {"executor": executor}
    if how == "environment":
        monkeypatch.setenv("POCKETCORE_LIMITER", "llm")
    else:
        run["limiter"] = limiter
    shared: dict[str, Any] = {
        "passes": [4, 4, 4],
        "done": [],
        "probe": {"now": 0, "peak": 0, "fail": None},
    }
    began = time.monotonic()
    pocketcore.run(Passes(start=Items()), shared, **run)
    assert time.monotonic() - began < 15  # it hung forever before
    assert sorted(shared["done"]) == [0, 1, 2]
    assert shared["probe"]["peak"] <= 2
