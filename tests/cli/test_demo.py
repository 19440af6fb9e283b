"""``pocketcore demo``: the shipped demo flows with every installed executor, remote ones too.

The demo runs from any folder (its flows ship in the package); an executor
declared remote runs the demos it can and is reported as skipped, with the
reason, for the others.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import pocketcore
from pocketcore._cli.demo import skip_reason
from pocketcore._cli.demos import DEMOS, images, summaries

from .support import COMMANDS, EXECUTORS, REPO, call, shell

FAST = {"SUMMARY_DELAY": "0.01", "FILTER_DELAY": "0.01"}
TITLES = ("parallel", "image")


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)


def rows(out: str) -> list[list[str]]:
    """The table's rows, split on blanks: title (2 words), class, executor, time, ratio."""
    return [line.split() for line in out.splitlines() if line.startswith(TITLES)]


class FarAway:
    """A fake remote executor: declared remote; it runs the (pickled) items here."""

    name = "faraway"
    backend = None
    remote = True

    def __init__(self) -> None:
        self.items = 0

    def run(self, fn: Any) -> Any:
        return anyio.run(fn)

    async def map(self, fn: Any, items: Any, *, limit: int | None) -> list[Any]:
        results = []
        for item in items:
            self.items += 1
            results.append(await fn(item))
        return results


class ExecutorPlugin:
    """A plugin that registers one executor."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor

    @pocketcore.hookimpl
    def pocketcore_register_executors(self, register: Any) -> None:
        register(self.executor)


@contextlib.contextmanager
def installed(executor: Any, name: str) -> Iterator[Any]:
    """``executor`` registered (as the plugin ``name``) for the body."""
    plugin = ExecutorPlugin(executor)
    registry = pocketcore.get_registry()
    registry.register(plugin, name=name)
    try:
        yield executor
    finally:
        registry.unregister(plugin)


@pytest.fixture
def remote() -> Iterator[FarAway]:
    with installed(FarAway(), "remote-test") as executor:
        yield executor


def test_the_table_has_a_row_per_demo_class_and_executor(
    capsys: pytest.CaptureFixture[str], fast: None
) -> None:
    code, out, err = call(capsys, "demo")
    assert (code, err) == (0, "")
    installed = sorted(pocketcore.get_registry().executors)
    assert [r[2:4] for r in rows(out)] == [
        ["AsyncBatchNode", installed[0]],
        *(["AsyncParallelBatchNode", e] for e in installed),
        ["AsyncBatchFlow", installed[0]],
        *(["AsyncParallelBatchFlow", e] for e in installed),
    ]
    ours = [r for r in rows(out) if r[3] in EXECUTORS]
    assert all(r[4].endswith("s") and r[5].endswith("x") for r in ours)
    started, blank, header = out.splitlines()[:3]
    assert started.startswith("started, not counted below: ")
    assert [part.split()[0] for part in started.partition(": ")[2].split(", ")] == installed
    assert (blank, header.split()[0]) == ("", "example")
    assert "in parallel it stays near 1" in out


def test_chosen_executors_and_unknown_ones(capsys: pytest.CaptureFixture[str], fast: None) -> None:
    code, out, _ = call(capsys, "demo", "trio")
    assert code == 0
    assert {r[3] for r in rows(out)} == {"trio"}
    code, out, err = call(capsys, "demo", "trio", "nope")
    assert (code, out) == (2, "")
    assert err.startswith("pocketcore: error: unknown executor(s) 'nope'; installed executors: ")


@pytest.mark.parametrize("value", ["x", "-1", "nan", "inf"])
def test_a_bad_delay_is_bad_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("FILTER_DELAY", value)
    code, out, err = call(capsys, "demo", "asyncio")
    assert (code, out) == (2, "")
    assert err == (
        f"pocketcore: error: FILTER_DELAY must be a number of seconds >= 0, got {value!r}\n"
    )


def test_a_remote_executor_runs_what_it_can_and_says_what_it_skipped(
    capsys: pytest.CaptureFixture[str], fast: None, remote: FarAway
) -> None:
    code, out, err = call(capsys, "demo", "asyncio", "faraway")
    assert (code, err) == (0, "")
    table = {(r[0], r[2], r[3]): r[4:] for r in rows(out)}
    # The summaries' batch node went through the remote executor, item by item.
    assert table["parallel", "AsyncParallelBatchNode", "faraway"][0].endswith("s")
    assert remote.items == 1 + len(summaries.TEXTS)  # with the one item that started it
    # The batch flow's passes share the store: skipped, with the reason on its row.
    assert table["image", "AsyncParallelBatchFlow", "faraway"][0] == "skipped"
    line = next(x for x in out.splitlines() if "faraway" in x and "BatchFlow" in x)
    assert line.endswith(
        "(a remote executor cannot fan out a batch flow: its passes read and write "
        "the shared store, which stays in this process)"
    )
    assert table["image", "AsyncParallelBatchFlow", "asyncio"][0].endswith("s")


def test_remote_executors_are_included_by_default(
    capsys: pytest.CaptureFixture[str], fast: None, remote: FarAway
) -> None:
    code, out, _ = call(capsys, "demo")
    assert code == 0
    assert [r[2] for r in rows(out) if r[3] == "faraway"] == [
        "AsyncParallelBatchNode",
        "AsyncParallelBatchFlow",
    ]


def test_skip_reason_asks_the_declared_capability(remote: FarAway) -> None:
    local = pocketcore.get_registry().executors["asyncio"].executor
    for demo, parallel in itertools.product(DEMOS, (False, True)):
        assert skip_reason(demo.build(parallel), local) is None
    assert skip_reason(images.build(True), remote) is not None
    assert skip_reason(images.build(False), remote) is None
    assert skip_reason(summaries.build(True), remote) is None


def test_help_says_what_it_runs_and_skips(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = call(capsys, "demo", "--help")
    text = " ".join(out.split())
    assert "each installed executor, remote ones included" in text
    assert "runs from any folder" in text
    assert "listed as skipped, with the reason" in text
    assert "a remote executor cannot fan out a batch flow" in text


@pytest.mark.parametrize("command", COMMANDS)
def test_the_installed_command_runs_the_demo_outside_a_checkout(
    command: list[str], tmp_path: Path
) -> None:
    assert not tmp_path.is_relative_to(REPO)
    done = shell(command, "demo", cwd=tmp_path, **FAST)
    assert (done.returncode, done.stderr) == (0, "")
    titles = {(r[0], r[2]) for r in rows(done.stdout)}
    assert titles == {
        ("parallel", "AsyncBatchNode"),
        ("parallel", "AsyncParallelBatchNode"),
        ("image", "AsyncBatchFlow"),
        ("image", "AsyncParallelBatchFlow"),
    }
    assert list(tmp_path.iterdir()) == []  # the demo writes no files


STARTUP = 2.0  # seconds the slow starter's first batch takes, as a cluster's start-up


class SlowStarter(pocketcore.BaseExecutor):
    """Runs items one by one; its first batch first waits STARTUP seconds, as a cluster starts."""

    name = "slowstart"

    def __init__(self) -> None:
        self.batches = 0

    async def map(self, fn: Any, items: Any, *, limit: int | None, **_: Any) -> list[Any]:
        self.batches += 1
        if self.batches == 1:
            await anyio.sleep(STARTUP)
        return [await fn(item) for item in items]


def test_start_up_is_timed_apart_from_the_rows(
    capsys: pytest.CaptureFixture[str], fast: None
) -> None:
    with installed(SlowStarter(), "slow-start-test"):
        code, out, err = call(capsys, "demo", "slowstart")
    assert (code, err) == (0, "")
    started = out.splitlines()[0]
    assert started.startswith("started, not counted below: slowstart ")
    assert float(started.rsplit(" ", 1)[1].removesuffix("s")) >= STARTUP
    # Every row times its batch alone: far less than the start-up it does not count.
    times = [float(r[4].removesuffix("s")) for r in rows(out)]
    assert len(times) == 4
    assert max(times) < STARTUP / 2
