"""Ctrl-C in a terminal during a parallel batch: the run ends at once and leaves nothing running.

A terminal sends SIGINT to its whole foreground process group: the run and
every process its executor started (a cluster's workers, its servers). The
check plays that out on a real ``pocketcore run`` in a session of its own,
and reads the process table in ``/proc`` to see what is left of the session.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import pytest

__all__ = ["check_ctrl_c"]

#: Two items that each wait two minutes, unless they are stopped; each marks its start.
FLOW = """
import asyncio
import time
from pathlib import Path

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
#: Seconds the items may take to start (a cluster starts first, on a busy machine).
START = 180.0
#: Seconds the processes of the run may take to end once it has exited.
LINGER = 30.0


def check_ctrl_c(
    folder: Path,
    executor: str,
    flow: str,
    *,
    config: str = "",
    processes: int = 1,
    within: float = 20.0,
    noise: Iterable[str] = (),
) -> None:
    """Check that Ctrl-C during a batch of ``executor`` ends the run at once, leaving nothing.

    In ``folder`` (an empty one) it writes ``flows.py``, whose flows
    ``waits`` (async items awaiting ``asyncio.sleep(120)``) and ``computes``
    (sync items in ``time.sleep(120)``, which only killing their process
    stops) each run a parallel batch of two items, and ``pocketcore.toml``
    holding ``config``. It runs ``python -m pocketcore run flows.py:<flow>
    --executor <executor>`` there in a session of its own, as a terminal
    runs a job, without the caller's ``POCKETCORE_*`` variables (the
    settings are ``config``'s). Once both items have started, and the
    session holds at least ``processes`` processes (the run, and those its
    executor started), it sends SIGINT to the process group, as a terminal
    does.

    The run must then exit with status 130 within ``within`` seconds, having
    written nothing to stdout and the one line ``pocketcore: interrupted`` to
    stderr (lines holding one of the ``noise`` strings aside: an executor's
    warnings on a busy machine); and no process of its session may be left
    30 seconds later. Whatever is left is killed before the check returns or
    fails. It reads the process table in ``/proc``: where there is none (not
    on Linux), it skips the test.

    Raises:
        AssertionError: The items did not start, the run did not end in time
            or as it should, or a process was left running; the message says which.
    """
    if not Path("/proc").is_dir():
        pytest.skip("check_ctrl_c reads the process table in /proc")
    marks = folder / "marks"
    marks.mkdir()
    (folder / "flows.py").write_text(FLOW)
    (folder / "pocketcore.toml").write_text(config)
    command = [sys.executable, "-m", "pocketcore", "run", f"flows.py:{flow}"]
    command += ["--executor", executor, "--shared", json.dumps({"marks": str(marks)})]
    env = {k: v for k, v in os.environ.items() if not k.startswith("POCKETCORE_")}
    with (folder / "err").open("w+") as err, (folder / "out").open("w+") as out:
        proc = subprocess.Popen(
            command, cwd=folder, stdout=out, stderr=err, env=env, start_new_session=True
        )
        try:
            members = _started(proc, marks, err)
            assert len(members) >= processes, f"only {len(members)} processes: {members}"
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
            start = time.monotonic()
            try:
                status = proc.wait(timeout=3 * within)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"the run did not end within {3 * within:g} s") from None
            elapsed = time.monotonic() - start
            left = _left_after(proc.pid, LINGER)
        finally:
            _kill_session(proc)
        lines = [line for line in _read(err).splitlines() if not any(n in line for n in noise)]
        output = _read(out)
    assert status == 130, (status, lines)
    # The items wait for two minutes: the run did not wait for them.
    assert elapsed < within, f"the run took {elapsed:.1f} s to end"
    assert lines == ["pocketcore: interrupted"]
    assert output == ""
    assert not left, f"still running: {left} of {members}"


def _started(proc: subprocess.Popen[Any], marks: Path, err: TextIO) -> set[int]:
    """Wait until both items have started; the processes of the session then."""
    deadline = time.monotonic() + START
    while len(list(marks.iterdir())) < 2:
        assert proc.poll() is None, _read(err)
        assert time.monotonic() < deadline, "the items did not start"
        time.sleep(0.1)
    return _session_members(proc.pid)


def _read(stream: TextIO) -> str:
    stream.seek(0)
    return stream.read()


def _session_members(sid: int) -> set[int]:
    """The live (not zombie) processes of session ``sid``: the run and every process it started.

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
        # After "pid (comm)", which may hold spaces and parentheses: state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z":
            members.add(int(entry.name))
    return members


def _left_after(sid: int, seconds: float) -> set[int]:
    """What is left of session ``sid`` once it is empty, or after ``seconds`` at the most."""
    deadline = time.monotonic() + seconds
    while _session_members(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _session_members(sid)


def _kill_session(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL whatever of ``proc``'s session still runs (a failed check's), and reap ``proc``."""
    for pid in _session_members(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
