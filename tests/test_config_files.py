"""Configuration files are read when a setting is needed, each value when it is used.

Every run with a node that has an ``exec`` reads the ``cache`` setting, so
it reads the file: one that cannot be read (or names an unknown key) is a
``ConfigError`` naming it. The *values* of other settings are checked only
when they are used: a program that fans nothing out and chooses no executor
runs the same whatever the file says about executors and limits. Once an
executor must be chosen, a bad value is a ``ConfigError`` naming the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import ConfigError

from .helpers import Double, configured

# name -> (how to lay the file down, whether it is an error once read)
HOSTILE: dict[str, tuple[Callable[[Path], None], bool]] = {
    "invalid TOML": (lambda p: p.write_text("this = = is not toml\n"), True),
    "not UTF-8": (lambda p: p.write_bytes(b"# caf\xe9\n[tool.other]\nx = 1\n"), True),
    "nested too deeply": (lambda p: p.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n"), True),
    "a directory": (lambda p: p.mkdir(), True),
    "a bad executor value": (lambda p: p.write_text(_table(p, "executor = 3")), True),
    "a bad limit": (lambda p: p.write_text(_table(p, "max_concurrency = 0")), True),
    "an unknown key": (lambda p: p.write_text(_table(p, "exector = 'asyncio'")), True),
    "another tool's table": (lambda p: p.write_text("[tool.black]\nline-length = 3\n"), False),
}
#: What stops any run that reads the file at all (every run reads ``cache``).
UNREADABLE = {"invalid TOML", "not UTF-8", "nested too deeply", "a directory", "an unknown key"}


def _table(path: Path, line: str) -> str:
    header = "[tool.pocketcore]\n" if path.name == "pyproject.toml" else ""
    return f"{header}{line}\n"


class Shout(pocketcore.Node):
    def prep(self, shared: dict[str, Any]) -> Any:
        return shared["word"]

    def exec(self, word: str) -> str:
        return word.upper()

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["out"] = exec_res
        return "done"


class ShoutAsync(pocketcore.AsyncNode):
    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return shared["word"]

    async def exec_async(self, word: str) -> str:
        return word.upper()

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["out"] = exec_res
        return "done"


class ShoutEach(pocketcore.AsyncBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return list(shared["word"])

    async def exec_async(self, letter: str) -> str:
        return letter.upper()

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["out"] = "".join(exec_res)
        return "done"


def _run_sync_flow(shared: dict[str, Any]) -> Any:
    return pocketcore.run(pocketcore.Flow(start=Shout()), shared)


def _run_node_directly(shared: dict[str, Any]) -> Any:
    return Shout().run(shared)


def _run_async_flow(shared: dict[str, Any]) -> Any:
    return pocketcore.run(pocketcore.AsyncFlow(start=ShoutAsync() >> ShoutEach()), shared)


def _run_async_directly(shared: dict[str, Any]) -> Any:
    async def main() -> Any:
        return await pocketcore.AsyncFlow(start=ShoutEach()).run_async(shared)

    return anyio.run(main)


PROGRAMS = {
    "sync flow": _run_sync_flow,
    "node.run": _run_node_directly,
    "async flow": _run_async_flow,
    "run_async": _run_async_directly,
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hostile=st.sampled_from(sorted(HOSTILE)),
    file_name=st.sampled_from(["pocketcore.toml", "pyproject.toml"]),
    program=st.sampled_from(sorted(PROGRAMS)),
)
def test_a_program_that_chooses_no_executor_checks_only_what_it_uses(
    hostile: str, file_name: str, program: str
) -> None:
    with configured() as where:
        HOSTILE[hostile][0](where / file_name)
        shared = {"word": "hey"}
        if hostile in UNREADABLE:
            with pytest.raises(ConfigError, match=re.escape(file_name)):
                PROGRAMS[program](shared)
            return
        result = PROGRAMS[program](shared)
    assert (result, shared["out"]) == ("done", "HEY")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hostile=st.sampled_from(sorted(name for name, (_, bad) in HOSTILE.items() if bad)),
    file_name=st.sampled_from(["pocketcore.toml", "pyproject.toml"]),
    through_run=st.booleans(),
)
def test_once_an_executor_is_needed_a_bad_file_is_named(
    hostile: str, file_name: str, through_run: bool
) -> None:
    with configured() as where:
        HOSTILE[hostile][0](where / file_name)
        run: Callable[[], Any] = (
            (lambda: pocketcore.run(Double()))
            if through_run
            else (lambda: anyio.run(Double().run_async, {}))
        )
        with pytest.raises(ConfigError, match=re.escape(file_name)) as caught:
            run()
    assert caught.value.__cause__ is None  # one clear error, not a chain from the parser


def test_a_bad_environment_value_is_not_read_either(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POCKETCORE_MAX_CONCURRENCY", "lots")
    monkeypatch.setenv("POCKETCORE_EXECUTOR", "no-such-executor")
    shared = {"word": "hey"}
    assert _run_async_flow(shared) == "done"
    with pytest.raises(ConfigError, match="POCKETCORE_"):
        pocketcore.run(Double())


def test_a_node_with_its_own_executor_reads_the_rest_from_the_file() -> None:
    with configured(files={"pocketcore.toml": "max_concurrency = 2\n"}):
        shared: dict[str, Any] = {}
        pocketcore.run(pocketcore.AsyncFlow(start=Double(executor="sequential")), shared)
    assert shared["out"] == [2, 4, 6]
    with (
        configured(files={"pocketcore.toml": "max_concurrency = 0\n"}),
        pytest.raises(ConfigError, match=r"pocketcore\.toml"),
    ):
        pocketcore.run(pocketcore.AsyncFlow(start=Double(executor="sequential")))
