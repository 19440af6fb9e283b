"""Ctrl-C in a terminal during a batch on the run's own local Ray instance.

The terminal sends SIGINT to its whole foreground process group: the run and
the processes of the Ray instance it started. The run must end promptly with
status 130 and its one line, and leave none of those processes behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest


def session_members(sid: int) -> set[int]:
    """The live processes of session ``sid``: the run and every process it started.

    By session rather than process group: a process may make itself a group
    of its own (Ray's helpers can), but stays in the session it was born in.
    """
    members = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        # After "pid (comm)": state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z":
            members.add(int(entry.name))
    return members


def left_after(sid: int, seconds: float) -> set[int]:
    """What is left of session ``sid`` once it is empty, or after ``seconds`` at the most."""
    deadline = time.monotonic() + seconds
    while session_members(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return session_members(sid)


def kill_session(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL whatever of ``proc``'s session still runs (a failed test's), and reap ``proc``."""
    for pid in session_members(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


FLOW = """
import asyncio
import time
from pathlib import Path
from typing import Any

import pocketcore


def start(folder, i):
    Path(folder, f"started-{i}").touch()


class Waits(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared):
        return [(shared["marks"], i) for i in range(2)]

    async def exec_async(self, item):
        start(*item)
        await asyncio.sleep(120)


class Computes(pocketcore.ParallelBatchNode):
    def prep(self, shared):
        return [(shared["marks"], i) for i in range(2)]

    def exec(self, item):
        start(*item)
        time.sleep(120)  # no interrupt ends it: only killing its process does


waits = pocketcore.AsyncFlow(start=Waits())
computes = pocketcore.Flow(start=Computes())
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOW)
    (tmp_path / "pocketcore.toml").write_text("[ray]\nnum_cpus = 2\n")
    (tmp_path / "marks").mkdir()
    return tmp_path


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table in /proc")
@pytest.mark.parametrize("flow", ["waits", "computes"])
def test_ctrl_c_ends_the_run_promptly_and_leaves_nothing_running(folder: Path, flow: str) -> None:
    marks = folder / "marks"
    command = [sys.executable, "-m", "pocketcore", "run", f"flows.py:{flow}", "--executor", "ray"]
    command += ["--shared", json.dumps({"marks": str(marks)})]
    env = {k: v for k, v in os.environ.items() if not k.startswith("POCKETCORE_RAY_")}
    with (folder / "err").open("w+") as err, (folder / "out").open("w+") as out:
        proc = subprocess.Popen(
            command,
            cwd=folder,
            stdout=out,
            stderr=err,
            env=env,
            start_new_session=True,  # its own process group, as a terminal's job
        )
        try:
            deadline = time.monotonic() + 180  # Ray starts first, on a busy machine
            while len(list(marks.iterdir())) < 2:
                assert proc.poll() is None, err.seek(0) or err.read()
                assert time.monotonic() < deadline, "the items did not start"
                time.sleep(0.1)
            members = session_members(proc.pid)
            assert len(members) >= 4  # the run, Ray's servers, its workers (at least)
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
            start = time.monotonic()
            status = proc.wait(timeout=90)
            elapsed = time.monotonic() - start
            left = left_after(proc.pid, 30)
        finally:
            kill_session(proc)
        err.seek(0)
        lines = err.read().splitlines()
        out.seek(0)
        output = out.read()
    assert status == 130, lines
    # The items sleep for 2 minutes: the run did not wait for them. (A few
    # seconds: its workers are killed once 2 s have not ended them, then Ray
    # shuts down; the margin is for a busy machine.)
    assert elapsed < 30, elapsed
    assert lines == ["pocketcore: interrupted"]
    assert output == ""
    assert not left, f"still running: {left} of {members}"
