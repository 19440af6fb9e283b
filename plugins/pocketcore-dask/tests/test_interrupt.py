"""Ctrl-C in a terminal during a batch on the run's own LocalCluster.

The terminal sends SIGINT to its whole foreground process group: the run and
the worker processes of the cluster it started. The run must end at once
with status 130 and its one line, and leave no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from process_groups import alive_in_group, kill_group, left_after

FLOW = """
import asyncio
import time
from pathlib import Path

import pocketcore


def start(folder, i):
    Path(folder, f"started-{i}").touch()


class Waits(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared):
        return [(shared["marks"], i) for i in range(4)]

    async def exec_async(self, item):
        start(*item)
        await asyncio.sleep(120)


class Computes(pocketcore.ParallelBatchNode):
    def prep(self, shared):
        return [(shared["marks"], i) for i in range(4)]

    def exec(self, item):
        start(*item)
        time.sleep(120)  # cannot be interrupted: only killing its process stops it


waits = pocketcore.AsyncFlow(start=Waits())
computes = pocketcore.Flow(start=Computes())
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "flows.py").write_text(FLOW)
    (tmp_path / "pocketcore.toml").write_text("[dask]\nn_workers = 2\n")
    (tmp_path / "marks").mkdir()
    monkeypatch.delenv("POCKETCORE_DASK_ADDRESS", raising=False)
    return tmp_path


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table in /proc")
@pytest.mark.parametrize("flow", ["waits", "computes"])
def test_ctrl_c_ends_the_run_at_once_and_leaves_nothing_running(folder: Path, flow: str) -> None:
    marks = folder / "marks"
    command = [sys.executable, "-m", "pocketcore", "run", f"flows.py:{flow}", "--executor", "dask"]
    command += ["--shared", json.dumps({"marks": str(marks)})]
    with (folder / "err").open("w+") as err:
        proc = subprocess.Popen(
            command,
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # its own process group, as a terminal's job
        )
        try:
            deadline = time.monotonic() + 120  # the cluster starts first, on a busy machine
            while not any(marks.iterdir()):
                assert proc.poll() is None, err.seek(0) or err.read()
                assert time.monotonic() < deadline, "no item started"
                time.sleep(0.1)
            members = alive_in_group(proc.pid)
            assert len(members) >= 3  # the run and its workers (at least)
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
            start = time.monotonic()
            status = proc.wait(timeout=60)
            elapsed = time.monotonic() - start
            left = left_after(proc, 30)
        finally:
            kill_group(proc)
        err.seek(0)
        lines = err.read().splitlines()
    assert status == 130, lines
    # The items run for 2 minutes: the run did not wait for them. (It takes
    # well under a second; the margin is for a busy machine.)
    assert elapsed < 20
    # dask may say its event loop was slow, on a busy machine; nothing else.
    lines = [line for line in lines if "Event loop was unresponsive" not in line]
    assert lines == ["pocketcore: interrupted"]
    assert not left, f"still running: {left} of {members}"
