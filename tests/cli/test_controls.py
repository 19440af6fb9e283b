"""``pocketcore run --max-per-second/--limiter/--on-error/--verbose``, and the failure count."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import pocketcore
from pocketcore._cli.controls import FAILURES_PLUGIN
from pocketcore._cli.usage_totals import USAGE_PLUGIN

from .support import EXECUTORS, assert_bad_input, call, registrations, run_json

CONTROLS = """
import time

import anyio
import pocketcore
from tests.test_remote import Pickling


class Items(pocketcore.AsyncParallelBatchNode):
    '''Items 0..n-1; those in shared["bad"] fail. Notes the span of starts and the overlap.'''

    async def prep_async(self, shared):
        self.shared = shared
        shared.update(starts=[], live=0, most=0)
        return range(shared.get("n", 6))

    async def exec_async(self, i):
        s = self.shared
        s["starts"].append(time.monotonic())
        s["live"] += 1
        s["most"] = max(s["most"], s["live"])
        await anyio.sleep(s.get("delay", 0.01))
        s["live"] -= 1
        if i in s.get("bad", ()):
            raise ValueError(f"bad item {i}")
        return i

    async def post_async(self, shared, prep_res, exec_res):
        starts = shared.pop("starts")
        shared["span"] = starts[-1] - starts[0] if starts else 0
        del shared["live"]
        shared["failed"] = [f.index for f in exec_res if isinstance(f, pocketcore.Failed)]
        return "done"


class Collecting(Items):
    on_error = "collect"


class Threaded(pocketcore.ParallelBatchNode):
    def prep(self, shared):
        return range(shared.get("n", 6))

    def exec(self, i):
        if i % 3 == 2:
            raise ValueError(i)
        return i

    def post(self, shared, prep_res, exec_res):
        shared["failed"] = [f.index for f in exec_res if isinstance(f, pocketcore.Failed)]


class Remote(Threaded):
    executor = Pickling()


class AsyncRemote(pocketcore.AsyncParallelBatchNode):
    executor = Pickling()

    async def prep_async(self, shared):
        return range(shared.get("n", 6))

    async def exec_async(self, i):
        if i % 3 == 2:
            raise ValueError(i)
        return i

    async def post_async(self, shared, prep_res, exec_res):
        shared["failed"] = [f.index for f in exec_res if isinstance(f, pocketcore.Failed)]


items = pocketcore.AsyncFlow(start=Items())
collecting = pocketcore.AsyncFlow(start=pocketcore.AsyncNode() >> Collecting())
threaded = Threaded()
remote = Remote()
async_remote = AsyncRemote()
"""

FLOW_FILE = """
[config]
on_error = "collect"
max_per_second = 50
limiter = "llm"

[flow]
type = "AsyncFlow"
start = "items"

[flow.nodes.items]
use = "ctl:Items"
"""

PYPROJECT = """
[tool.pocketcore]
max_concurrency = 3

[tool.pocketcore.limiters.llm]
max_concurrency = 2

[tool.pocketcore.limiters.paced]
max_per_second = 40
"""


@pytest.fixture(autouse=True)
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """In the working directory: ctl.py, flow.toml and a pyproject.toml declaring limiters."""
    for name in ("POCKETCORE_MAX_PER_SECOND", "POCKETCORE_LIMITER", "POCKETCORE_ON_ERROR"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "ctl.py").write_text(CONTROLS)
    (tmp_path / "flow.toml").write_text(FLOW_FILE)
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    return tmp_path


def shared_of(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[dict[str, Any], str]:
    """Run ``ctl.py:items`` (or what ``args`` name) quietly enough: its shared store and stderr."""
    code, out, err = call(capsys, "run", *args, "--output", "json")
    assert code == 0, err
    shared: dict[str, Any] = json.loads(out)["shared"]
    return shared, err


# --- the options reach the run ------------------------------------------------------------


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_max_per_second_paces_the_starts(capsys: pytest.CaptureFixture[str], executor: str) -> None:
    # Six starts at 25 a second: 0.2 s from the first to the last. Unpaced: all at once.
    shared = run_json(capsys, "ctl.py:items", "--executor", executor)["shared"]
    assert shared["span"] < 0.1
    args = ("ctl.py:items", "--executor", executor, "--max-per-second", "25")
    shared = run_json(capsys, *args)["shared"]
    assert shared["span"] >= 0.19


def test_limiter_names_a_declared_limiter(capsys: pytest.CaptureFixture[str]) -> None:
    shared = run_json(capsys, "ctl.py:items", "--shared", '{"n": 12}')["shared"]
    assert shared["most"] == 3  # max_concurrency of pyproject.toml
    shared = run_json(capsys, "ctl.py:items", "--shared", '{"n": 12}', "--limiter", "llm")["shared"]
    assert shared["most"] == 2


def test_on_error_collect(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, "run", "ctl.py:items", "--shared", '{"bad": [1]}')
    assert (code, err) == (1, "ValueError: bad item 1\n")
    shared, err = shared_of(
        capsys, "ctl.py:items", "--shared", '{"bad": [1, 4]}', "--on-error", "collect"
    )
    assert shared["failed"] == [1, 4]
    assert err == "pocketcore: 4 ok, 2 failed\n"


def test_a_flow_files_config_is_used_unless_an_option_is_given(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ("flow.toml", "--shared", '{"n": 12, "bad": [3], "delay": 0.1}')
    shared, err = shared_of(capsys, *base)
    assert (shared["failed"], shared["most"]) == ([3], 2)  # collect, and limiter llm
    assert shared["span"] >= 11 / 50 - 0.01  # at most 50 a second
    assert err == "pocketcore: 11 ok, 1 failed\n"
    # Each option wins over [config].
    code, _, err = call(capsys, "run", *base, "--on-error", "raise")
    assert (code, err) == (1, "ValueError: bad item 3\n")
    shared, _ = shared_of(capsys, *base, "--limiter", "paced")
    assert shared["most"] == 3  # paced has no concurrency bound: pyproject.toml's 3 applies
    assert shared["span"] >= 11 / 40 - 0.01  # paced's 40 a second
    shared, _ = shared_of(capsys, "flow.toml", "--shared", '{"n": 12, "delay": 0}')
    assert shared["span"] >= 11 / 50 - 0.01
    shared, _ = shared_of(
        capsys, "flow.toml", "--shared", '{"n": 12, "delay": 0}', "--max-per-second", "1000"
    )
    assert shared["span"] < 0.15


# --- bad values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--max-per-second", "0"],
            "argument --max-per-second: must be a positive number, got '0'",
        ),
        (["--max-per-second", "-3"], "argument --max-per-second: must be a positive number"),
        (["--max-per-second", "fast"], "argument --max-per-second: must be a positive number"),
        (["--max-per-second", "inf"], "argument --max-per-second: must be a positive number"),
        (["--max-per-second", "nan"], "argument --max-per-second: must be a positive number"),
        (["--on-error", "ignore"], "argument --on-error: invalid choice: 'ignore'"),
        (
            ["--limiter", "lm"],
            "unknown limiter 'lm' (from --limiter); "
            "[tool.pocketcore.limiters] in pyproject.toml declares: llm, paced",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_option(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = call(capsys, "run", "ctl.py:items", *args)
    assert_bad_input(code, out, err)
    assert err.startswith(f"pocketcore: error: {message}"), err


def test_a_limiter_when_none_is_declared(capsys: pytest.CaptureFixture[str], files: Path) -> None:
    (files / "pyproject.toml").unlink()
    code, out, err = call(capsys, "run", "ctl.py:items", "--limiter", "llm")
    assert_bad_input(code, out, err)
    assert "unknown limiter 'llm' (from --limiter); no limiters are declared" in err


def test_a_bad_value_from_the_environment_is_bad_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POCKETCORE_ON_ERROR", "sometimes")
    code, out, err = call(capsys, "run", "ctl.py:items")
    assert_bad_input(code, out, err)
    assert "POCKETCORE_ON_ERROR" in err


# --- --verbose -----------------------------------------------------------------------------


def test_verbose_says_where_each_setting_came_from(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POCKETCORE_MAX_PER_SECOND", "500")
    args = ("flow.toml", "--verbose", "--on-error", "raise", "--executor", "trio", "-q")
    code, _, err = call(capsys, "run", *args)
    assert code == 0
    assert err.splitlines() == [
        "pocketcore: executor: trio (from --executor)",
        "pocketcore: max_concurrency: 3 (from key 'max_concurrency' in pyproject.toml "
        "[tool.pocketcore])",
        "pocketcore: max_per_second: 50 (from [config] of flow.toml)",
        "pocketcore: limiter: llm (from [config] of flow.toml; 2 at once)",
        "pocketcore: on_error: raise (from --on-error)",
        "pocketcore: timeout: not set (none)",
        "pocketcore: cache: not set (off)",
        "pocketcore: cache_ttl: not set (no expiry)",
    ]
    code, _, err = call(capsys, "run", "ctl.py:items", "-v")
    assert code == 0
    assert err.splitlines() == [
        "pocketcore: executor: not set (the default: asyncio, or trio when the flow runs on trio)",
        "pocketcore: max_concurrency: 3 (from key 'max_concurrency' in pyproject.toml "
        "[tool.pocketcore])",
        "pocketcore: max_per_second: 500 (from environment variable POCKETCORE_MAX_PER_SECOND)",
        "pocketcore: limiter: not set (none)",
        "pocketcore: on_error: not set (the default: raise)",
        "pocketcore: timeout: not set (none)",
        "pocketcore: cache: not set (off)",
        "pocketcore: cache_ttl: not set (no expiry)",
    ]


def test_verbose_shows_an_unusable_value_then_the_run_reports_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POCKETCORE_MAX_PER_SECOND", "-1")
    code, _, err = call(capsys, "run", "ctl.py:items", "-v")
    lines = err.splitlines()
    assert code == 2
    assert lines[2].startswith("pocketcore: max_per_second: unusable: max_per_second must be ")
    assert lines[-1].startswith("pocketcore: error: max_per_second must be ")


# --- the count of collected failures -------------------------------------------------------


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_run_that_collected_failures_counts_them(
    capsys: pytest.CaptureFixture[str], executor: str
) -> None:
    shared = json.dumps({"n": 2000, "bad": [5, 500, 1999], "delay": 0})
    args = ("ctl.py:items", "--shared", shared, "--on-error", "collect", "--executor", executor)
    result, err = shared_of(capsys, *args)
    assert result["failed"] == [5, 500, 1999]
    assert err == "pocketcore: 1,997 ok, 3 failed\n"
    # Nothing failed: nothing to say.
    result, err = shared_of(capsys, *args[:2], '{"n": 20}', *args[3:])
    assert (result["failed"], err) == ([], "")


@pytest.mark.parametrize(
    "target", ["ctl.py:threaded", "ctl.py:remote", "ctl.py:async_remote", "ctl.py:collecting"]
)
def test_failures_are_counted_whoever_runs_the_items(
    capsys: pytest.CaptureFixture[str], target: str
) -> None:
    # Threads, an executor that runs the items itself (reported after), a node's own on_error.
    on_error = () if target == "ctl.py:collecting" else ("--on-error", "collect")
    result, err = shared_of(capsys, target, "--shared", '{"n": 9, "bad": [0, 1, 2]}', *on_error)
    assert err == "pocketcore: 6 ok, 3 failed\n"
    assert result["failed"] in ([2, 5, 8], [0, 1, 2])


def test_quiet_means_no_count(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("ctl.py:items", "--shared", '{"bad": [1]}', "--on-error", "collect", "-q")
    result, err = shared_of(capsys, *args)
    assert (result["failed"], err) == ([1], "")


def test_the_counter_is_registered_only_when_collect_may_apply(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    registered = registrations(monkeypatch)
    run_json(capsys, "ctl.py:items")
    run_json(capsys, "ctl.py:items", "--on-error", "raise")
    assert registered == [USAGE_PLUGIN] * 2  # no failure counter: only the usage counter
    shared_of(capsys, "ctl.py:items", "--on-error", "collect")
    shared_of(capsys, "ctl.py:collecting")  # a node's own on_error, behind another node
    monkeypatch.setenv("POCKETCORE_ON_ERROR", "collect")
    shared_of(capsys, "ctl.py:items")
    assert [name for name in registered if name != USAGE_PLUGIN] == [FAILURES_PLUGIN] * 3
    assert not pocketcore.get_registry().pm.has_plugin(FAILURES_PLUGIN)  # gone after the run
