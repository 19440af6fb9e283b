"""Which attributes are pocketcore's settings, and where each setting applies.

The rule: a setting is read from pocketcore's constructor keywords (or a
flow file) and from class attributes of a type it takes, never from the
attributes a program sets on its own instances. And a setting given where
it can do nothing is refused; a ``timeout`` applies to every async ``exec``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import ConfigError

# --- PocketFlow programs run unchanged ------------------------------------------------

# A program written for PocketFlow 0.0.3, whose nodes keep attributes named
# like pocketcore's settings for their own purposes. It prints what it did;
# run once on pocketflow and once with the import switched to pocketcore.
POCKETFLOW_PROGRAM = """
import asyncio, sys, time
if sys.argv[1] == "pocketflow":
    from pocketflow import AsyncFlow, AsyncNode, AsyncParallelBatchNode
else:
    from pocketcore import AsyncFlow, AsyncNode, AsyncParallelBatchNode


class Fetch(AsyncParallelBatchNode):
    def __init__(self):
        super().__init__(max_retries=2)
        self.limiter = asyncio.Semaphore(2)   # the program's own bound
        self.timeout = (3.05, 27)             # a requests-style (connect, read) timeout
        self.on_error = self.log_error        # the program's own error hook
        self.executor = None
        self.max_per_second = "as fast as the API allows"
        self.errors = []

    def log_error(self, exc):
        self.errors.append(str(exc))

    async def prep_async(self, shared):
        return shared["urls"]

    async def exec_async(self, url):
        async with self.limiter:
            await asyncio.sleep(0.01)
            return url.upper()

    async def post_async(self, shared, prep_res, exec_res):
        shared["pages"] = exec_res


class Slow(AsyncNode):
    def __init__(self):
        super().__init__()
        self.timeout = 0.05   # meant for an HTTP client, not for this call

    async def exec_async(self, prep_res):
        await asyncio.sleep(0.3)
        return "slow but fine"

    async def post_async(self, shared, prep_res, exec_res):
        shared["slow"] = exec_res


fetch = Fetch()
fetch >> Slow()
shared = {"urls": ["a", "b", "c"]}
asyncio.run(AsyncFlow(start=fetch).run_async(shared))
print(sorted(shared.items()))
"""


def _run_program(
    tmp_path: Path, source: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(source))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("POCKETCORE_")}
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**clean, **env},
        timeout=120,
        check=False,
    )


def test_a_pocketflow_program_with_attributes_named_like_settings_runs_unchanged(
    tmp_path: Path,
) -> None:
    on_pocketflow = _run_program(tmp_path, POCKETFLOW_PROGRAM, "pocketflow")
    assert on_pocketflow.returncode == 0, on_pocketflow.stderr
    on_pocketcore = _run_program(tmp_path, POCKETFLOW_PROGRAM, "pocketcore")
    assert on_pocketcore.returncode == 0, on_pocketcore.stderr
    assert on_pocketcore.stdout == on_pocketflow.stdout
    assert "slow but fine" in on_pocketcore.stdout


class Hangs(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return [1, 2]

    async def exec_async(self, item: int) -> int:
        await anyio.sleep(5)
        return item


class Quick(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return [1, 2]

    async def exec_async(self, item: int) -> int:
        await anyio.sleep(0.1)
        if item == 2:
            raise ValueError("two")
        return item


def test_an_instance_attribute_is_never_a_setting_but_a_keyword_or_class_attribute_is() -> None:
    node = Quick()
    node.timeout = 0.01  # set on the instance: the program's, not pocketcore's
    node.on_error = "collect"
    with pytest.raises(ValueError, match="two"):  # neither timed out nor collected
        pocketcore.run(node, {})
    with pytest.raises(TimeoutError, match=r"attempt timed out after 0\.05 s"):
        pocketcore.run(Hangs(timeout=0.05), {})

    class Declared(Hangs):
        timeout = 0.05

    with pytest.raises(TimeoutError, match=r"attempt timed out after 0\.05 s"):
        pocketcore.run(Declared(), {})


# --- where a setting applies ----------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "key", "value"),
    [
        (pocketcore.Node, "timeout", 1),
        (pocketcore.BatchNode, "timeout", 1),
        (pocketcore.ParallelBatchNode, "timeout", 1),
        (pocketcore.AsyncNode, "max_per_second", 5),
        (pocketcore.AsyncNode, "on_error", "collect"),
        (pocketcore.AsyncNode, "limiter", pocketcore.Limiter(max_concurrency=1)),
        (pocketcore.Node, "on_error", "collect"),
        (pocketcore.AsyncBatchNode, "max_per_second", 5),
        (pocketcore.BatchNode, "on_error", "collect"),
    ],
)
def test_a_setting_that_would_do_nothing_is_refused_by_name(
    cls: type, key: str, value: Any
) -> None:
    name = cls.__name__
    source = rf"argument {key}= of {name}\(\)"
    with pytest.raises(ConfigError, match=rf"^{key} \(from {source}\) does nothing for {name}:"):
        cls(**{key: value})


class Slow(pocketcore.AsyncNode):
    """A plain async node whose call takes far longer than any timeout below."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.calls = 0

    async def exec_async(self, prep_res: Any) -> str:
        self.calls += 1
        await anyio.sleep(3)
        return "done"

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["result"] = exec_res


def _timed_run(target: Any, **run: Any) -> tuple[float, dict[str, Any]]:
    shared: dict[str, Any] = {}
    began = time.monotonic()
    try:
        pocketcore.run(target, shared, **run)
    except TimeoutError as exc:
        shared["raised"] = str(exc)
    return time.monotonic() - began, shared


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_plain_async_nodes_timeout_bounds_each_attempt(backend: str) -> None:
    seconds, shared = _timed_run(Slow(timeout=0.1), executor=backend)
    assert shared == {"raised": "attempt timed out after 0.1 s"}
    assert seconds < 1.5  # the call alone takes 3 s


def test_retries_and_the_fallback_apply_to_timed_out_attempts() -> None:
    class Falls(Slow):
        async def exec_fallback_async(self, prep_res: Any, exc: Exception) -> str:
            return f"fallback after {self.cur_retry + 1} attempts: {exc}"

    node = Falls(max_retries=3, timeout=0.05)
    seconds, shared = _timed_run(pocketcore.AsyncFlow(start=node))
    assert shared == {"result": "fallback after 3 attempts: attempt timed out after 0.05 s"}
    assert seconds < 2.5


@pytest.mark.parametrize(
    "where", ["run", "flow", "environment", "class attribute", "sequential batch"]
)
def test_a_timeout_from_anywhere_reaches_a_plain_async_node(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    node: Any = Slow()
    run: dict[str, Any] = {}
    if where == "run":
        target: Any = pocketcore.AsyncFlow(start=node)
        run["timeout"] = 0.05
    elif where == "flow":
        target = pocketcore.AsyncFlow(start=pocketcore.AsyncFlow(start=node, timeout=0.05))
    elif where == "environment":
        monkeypatch.setenv("POCKETCORE_TIMEOUT", "0.05")
        target = pocketcore.AsyncFlow(start=node)
    elif where == "class attribute":

        class Declared(Slow):
            timeout = 0.05

        target = pocketcore.AsyncFlow(start=Declared())
    else:

        class Each(pocketcore.AsyncBatchNode):
            async def prep_async(self, shared: Any) -> list[int]:
                return [1, 2]

            async def exec_async(self, item: int) -> int:
                await anyio.sleep(3)
                return item

        target = Each(timeout=0.05)
    seconds, shared = _timed_run(target, **run)
    assert shared == {"raised": "attempt timed out after 0.05 s"}
    assert seconds < 1.5
    # The run is over: the next one, with no timeout anywhere, is not timed.
    monkeypatch.delenv("POCKETCORE_TIMEOUT", raising=False)
    quick = Slow()
    quick.exec_async = _quick  # type: ignore[method-assign]
    assert _timed_run(pocketcore.AsyncFlow(start=quick))[1] == {"result": "quick"}


async def _quick(prep_res: Any) -> str:
    await anyio.sleep(0.2)
    return "quick"


def test_a_collected_timeout_names_the_limit() -> None:
    class Items(Hangs):
        async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> None:
            shared["failed"] = [f"{r.exception!r} ({r.attempts} attempts)" for r in exec_res]

    shared: dict[str, Any] = {}
    pocketcore.run(Items(timeout=0.05, on_error="collect", max_retries=2), shared)
    assert shared["failed"] == ["TimeoutError('attempt timed out after 0.05 s') (2 attempts)"] * 2


def test_a_timeout_error_of_the_call_itself_passes_unchanged() -> None:
    class Raises(pocketcore.AsyncNode):
        async def exec_async(self, prep_res: Any) -> None:
            raise TimeoutError("the server gave up")

    with pytest.raises(TimeoutError, match=r"^the server gave up$"):
        pocketcore.run(Raises(timeout=5))


@settings(max_examples=25, deadline=None)
@given(
    given_keyword=st.booleans(),
    declared=st.booleans(),
    instance=st.sampled_from([None, 0.01, (3.05, 27), "30s"]),
)
def test_the_rule_property(given_keyword: bool, declared: bool, instance: Any) -> None:
    """Whatever the instance holds, only the keyword, else the class attribute, is the timeout."""
    base: type[Any] = Hangs
    if declared:
        base = type("Declared", (Hangs,), {"timeout": 0.2})
    node = base(timeout=0.1) if given_keyword else base()
    if instance is not None:
        node.timeout = instance
    expected = 0.1 if given_keyword else 0.2 if declared else None
    assert pocketcore_timeout_of(node) == expected


def pocketcore_timeout_of(node: Any) -> float | None:
    from pocketcore._runtime.settings import SETTINGS

    value: float | None = SETTINGS["timeout"].own(node)
    return value


# --- a program that starts its own loop -----------------------------------------------

OWN_LOOP_PROGRAM = """
import asyncio
from pocketcore import AsyncFlow, AsyncParallelBatchNode


class Double(AsyncParallelBatchNode):
    async def prep_async(self, shared):
        return shared["items"]

    async def exec_async(self, item):
        return item * 2

    async def post_async(self, shared, prep_res, exec_res):
        shared["out"] = exec_res


shared = {"items": [1, 2, 3]}
asyncio.run(AsyncFlow(start=Double()).run_async(shared))
print(shared["out"])
"""


def test_an_executor_for_another_loop_tells_a_program_with_its_own_loop_what_to_do(
    tmp_path: Path,
) -> None:
    done = _run_program(tmp_path, OWN_LOOP_PROGRAM, POCKETCORE_EXECUTOR="trio")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("pocketcore._core.errors.ConfigError: executor 'trio' (from ")
    assert "environment variable POCKETCORE_EXECUTOR" in last
    assert "the program started the asyncio loop itself" in last
    assert "pocketcore.run(flow, shared)" in last
    assert "'pocketcore run'" in last
    # The settings that do not choose a loop apply to it as to any run.
    done = _run_program(
        tmp_path, OWN_LOOP_PROGRAM, POCKETCORE_EXECUTOR="asyncio", POCKETCORE_MAX_CONCURRENCY="1"
    )
    assert (done.returncode, done.stdout) == (0, "[2, 4, 6]\n"), done.stderr
