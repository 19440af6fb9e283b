"""The progress bars of ``pocketcore run``: shown only on a terminal, one per batch class."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from rich.console import Console

import pocketcore
from pocketcore._cli import ProgressObserver, main
from pocketcore._cli.progress import PROGRESS_PLUGIN
from pocketcore._cli.usage_totals import USAGE_PLUGIN

from .support import EXECUTORS, call, registrations

# --- progress -------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_progress_output_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str], flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered = registrations(monkeypatch)
    code, _, err = call(capsys, "run", f"{flows}:double")
    assert (code, err) == (0, "")
    assert registered == [USAGE_PLUGIN]  # no progress observer: only the usage counter


def test_a_terminal_gets_a_progress_bar(
    flows: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["run", f"{flows}:double", "--shared", '{"items": [1, 2, 3, 4]}']) == 0
    assert "Double" in terminal.getvalue()
    assert "4/4" in terminal.getvalue()
    assert not pocketcore.get_registry().pm.has_plugin(PROGRESS_PLUGIN)  # gone after the run
    assert json.loads(capsys.readouterr().out.split("\n\naction")[0][8:])["out"] == [2, 4, 6, 8]


def test_quiet_means_no_bar_even_on_a_terminal(
    flows: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["run", f"{flows}:double", "--quiet"]) == 0
    assert terminal.getvalue() == ""


def test_no_bar_without_batches(
    flows: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["run", f"{flows}:greet"]) == 0
    assert terminal.getvalue() == ""


class Pass(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return list(range(self.params["n"]))

    async def exec_async(self, item: int) -> int:
        await anyio.lowlevel.checkpoint()
        return item


class Passes(pocketcore.AsyncParallelBatchFlow):
    async def prep_async(self, shared: dict[str, Any]) -> list[dict[str, int]]:
        return [{"n": n} for n in (1, 2, 3)]


class Endless(pocketcore.AsyncBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return iter([1, 2])  # no len(): the batch's size is unknown


@pytest.fixture
def observer() -> Iterator[ProgressObserver]:
    sink = io.StringIO()
    progress = ProgressObserver(Console(file=sink, force_terminal=True, width=100))
    registry = pocketcore.get_registry()
    registry.register(progress, name="test-progress")
    yield progress
    registry.unregister(progress)
    progress.close()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_the_observer_counts_items_per_batch_class(
    observer: ProgressObserver, executor: str
) -> None:
    assert observer.counts() == {}
    pocketcore.run(Passes(start=Pass()), {}, executor=executor)
    # One bar per class: Pass's three batches (1 + 2 + 3 items) add up on one.
    assert observer.counts() == {"Passes": (3, 3), "Pass": (6, 6)}


def test_the_observer_handles_unknown_sizes(observer: ProgressObserver) -> None:
    pocketcore.run(pocketcore.AsyncFlow(start=Endless()), {})
    assert observer.counts() == {"Endless": (2, None)}
    pocketcore.run(pocketcore.AsyncFlow(start=Endless()), {})
    assert observer.counts() == {"Endless": (4, None)}


def test_the_observer_counts_failed_items(observer: ProgressObserver) -> None:
    class Fails(Pass):
        async def exec_async(self, item: int) -> int:
            raise ValueError(item)

    node = Fails()
    node.set_params({"n": 1})
    with pytest.raises(ValueError, match="0"):
        pocketcore.run(node, {})
    assert observer.counts() == {"Fails": (1, 1)}


def test_a_bar_shows_where_an_auto_bound_stands() -> None:
    # Twelve quick successes: the bound doubles from 2 to the ceiling of 8.
    sink = io.StringIO()
    progress = ProgressObserver(Console(file=sink, force_terminal=True, width=100))
    registry = pocketcore.get_registry()
    registry.register(progress, name="test-progress")
    limiter = pocketcore.Limiter(max_concurrency="auto", ceiling=8)
    try:
        node = Pass(limiter=limiter)
        node.set_params({"n": 12})
        pocketcore.run(node, {})
        fixed = type("Fixed", (Pass,), {})(limiter=pocketcore.Limiter(max_concurrency=3))
        flow = pocketcore.AsyncFlow(start=fixed)
        flow.set_params({"n": 2})  # a fixed bound: nothing shown
        pocketcore.run(flow, {})
    finally:
        registry.unregister(progress)
        progress.close()
    assert limiter.concurrency == 8
    assert progress.bounds() == {"Pass": "auto 8/8", "Fixed": ""}
    assert "auto 8/8" in sink.getvalue()
