"""The runnable examples run, give the same answer on every executor, and parallelise."""

from __future__ import annotations

from typing import Any

import pytest

import pocketcore
from examples.parallel_summaries import flow as summaries

EXECUTORS = ["sequential", "asyncio", "trio"]


@pytest.fixture
def fast_llm(monkeypatch: pytest.MonkeyPatch) -> float:
    delay = 0.05
    monkeypatch.setattr(summaries, "DELAY", delay)
    return delay


def _summaries(executor: str, *, parallel: bool = True) -> tuple[float, dict[str, Any]]:
    seconds, shared = summaries.timed(summaries.build_flow(parallel=parallel), executor)
    return seconds, shared["summaries"]


def test_every_file_is_summarised_alike_on_every_executor(fast_llm: float) -> None:
    expected = {
        p.stem: p.read_text().split(". ")[0].strip() + "."
        for p in sorted(summaries.TEXTS.glob("*.txt"))
    }
    assert len(expected) >= 5
    for executor in EXECUTORS:
        assert _summaries(executor)[1] == expected
    assert _summaries("asyncio", parallel=False)[1] == expected


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_parallel_executors_beat_sequential_by_a_wide_margin(
    fast_llm: float, executor: str
) -> None:
    # Compared with the sequential run measured here, not with a clock budget:
    # 8 files x 50 ms is ~0.4 s one by one and ~0.05 s in parallel; requiring
    # only half the sequential time leaves a wide margin for a busy machine.
    sequential, _ = _summaries("sequential")
    parallel, _ = _summaries(executor)
    assert parallel < sequential / 2


def test_the_demo_prints_a_row_per_executor(
    fast_llm: float, capsys: pytest.CaptureFixture[str]
) -> None:
    assert summaries.main([]) == 0
    out = capsys.readouterr().out
    for name, entry in pocketcore.get_registry().executors.items():
        if not getattr(entry.executor, "remote", False):  # remote ones only on request
            assert f"AsyncParallelBatchNode   {name}" in out
    assert "AsyncBatchNode" in out


def test_the_demo_rejects_an_unknown_executor(capsys: pytest.CaptureFixture[str]) -> None:
    assert summaries.main(["nope"]) == 2
    assert "unknown executor(s): nope" in capsys.readouterr().out
