"""Helpers of the command-line tests: calling ``main`` in-process, and a file of flows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pocketcore import Registry
from pocketcore._cli import main

REPO = Path(__file__).resolve().parents[2]
EXECUTORS = ["sequential", "asyncio", "trio"]

# Written to tmp_path by the `flows` fixture and run as `flows.py:OBJECT`.
FLOWS = """
import anyio
import sniffio
import pocketcore


class Greet(pocketcore.Node):
    def post(self, shared, prep_res, exec_res):
        shared["greeting"] = "hello " + str(self.params.get("who", "world"))
        shared["params"] = dict(self.params)
        return "greeted"


class Double(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared):
        return shared.get("items", [1, 2, 3])

    async def exec_async(self, item):
        self.params.setdefault("live", [0, 0])
        live = self.params["live"]
        live[0] += 1
        live[1] = max(live)
        await anyio.sleep(0.01)
        live[0] -= 1
        return item * 2

    async def post_async(self, shared, prep_res, exec_res):
        shared["out"] = exec_res
        shared["backend"] = sniffio.current_async_library()
        shared["most_in_flight"] = self.params["live"][1] if exec_res else 0
        return "doubled"


class Boom(pocketcore.Node):
    def exec(self, prep_res):
        raise ValueError("boom")


class Odd(pocketcore.Node):
    def post(self, shared, prep_res, exec_res):
        shared["type"] = object
        shared[(1, 2)] = {3}
        shared["nan"] = float("nan")
        shared["loop"] = loop = []
        loop.append(loop)
        shared["bad"] = BadRepr()
        shared["ok"] = ["é", 1.5, None, True]


class BadRepr:
    def __repr__(self):
        raise RuntimeError("no repr")


class Huge(pocketcore.Node):
    def post(self, shared, prep_res, exec_res):
        shared["huge"] = 10**5000
        shared[10**5000] = "key"
        return 10**5000


class UnknownExecutor(pocketcore.AsyncParallelBatchNode):
    executor = "nope"


greet = Greet()
double = pocketcore.AsyncFlow(start=Double())
boom = Boom()
odd = Odd()
huge = Huge()
misconfigured = pocketcore.AsyncFlow(start=UnknownExecutor())
number = 3
holder = type("Holder", (), {"flow": double})


def build():
    return pocketcore.AsyncFlow(start=Double())


def needs_arguments(size):
    return Greet()


def not_a_node():
    return 42


def fails():
    raise KeyError("no flow today")
"""


def registrations(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The names of the plugins registered from now on, in order (they are registered)."""
    registered: list[str | None] = []
    real = Registry.register

    def spy(self: Registry, plugin: object, name: str | None = None) -> str:
        registered.append(name)
        return real(self, plugin, name)

    monkeypatch.setattr(Registry, "register", spy)
    return registered


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command in-process: its status, stdout and stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """``pocketcore run ARGS --output json``, which must succeed quietly; its JSON."""
    code, out, err = call(capsys, "run", *args, "--output", "json")
    assert (code, err) == (0, "")
    result: dict[str, Any] = json.loads(out)
    return result


def assert_bad_input(code: int, out: str, err: str) -> None:
    """Status 2, nothing on stdout, and one ``pocketcore: error:`` line without a traceback."""
    assert (code, out) == (2, ""), err
    assert err.startswith("pocketcore: error: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err


# --- the real command, in a subprocess ------------------------------------------------

SCRIPT = Path(sys.executable).parent / ("pocketcore.exe" if os.name == "nt" else "pocketcore")
COMMANDS = [
    pytest.param([sys.executable, "-m", "pocketcore"], id="python -m pocketcore"),
    pytest.param(
        [str(SCRIPT)],
        id="pocketcore script",
        marks=pytest.mark.skipif(
            not SCRIPT.exists(), reason=f"console script not installed next to {sys.executable}"
        ),
    ),
]


def shell(
    command: list[str], *args: str, cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
