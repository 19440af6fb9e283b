"""Ctrl-C during a batch on the trio executor: a plain KeyboardInterrupt, and exit status 130.

trio delivers Ctrl-C to the main task, which during a batch waits in the
executor's nursery; the nursery reports it inside a ``BaseExceptionGroup``,
which the executor unwraps (as ``run`` does for one from any nursery).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import pocketcore

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")

#: A flow file whose parallel batch waits until interrupted; its first item
#: to start creates the file READY, so the test knows the batch is under way.
FLOW = """\
import pathlib

import anyio
import pocketcore


class Wait(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared):
        return list(range(4))

    async def exec_async(self, item):
        pathlib.Path({ready!r}).touch()
        await anyio.sleep(60)
        return item


flow = pocketcore.AsyncFlow(start=Wait())
"""


@contextlib.contextmanager
def sigint_not_ignored() -> Iterator[None]:
    """Let SIGINT reach Python's handler, here and in child processes.

    A shell starts background jobs with SIGINT ignored, and a child process
    inherits that; Python then installs no handler, and Ctrl-C does nothing.
    """
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous)


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the flow ended before it was interrupted: {out}{err}")
        assert time.monotonic() < deadline, "the batch never started"
        time.sleep(0.01)


@pytest.mark.parametrize("limit", [None, 2])
def test_ctrl_c_during_a_batch_exits_130(tmp_path: Path, limit: int | None) -> None:
    """``pocketcore run FILE.py:flow --executor trio``, then SIGINT: status 130, one line."""
    ready = tmp_path / "ready"
    (tmp_path / "waiting.py").write_text(FLOW.format(ready=str(ready)))
    command = [sys.executable, "-m", "pocketcore", "run", "waiting.py:flow", "--executor", "trio"]
    if limit is not None:
        command += ["--max-concurrency", str(limit)]
    with sigint_not_ignored():
        proc = subprocess.Popen(
            command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    try:
        wait_for(ready, proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (proc.returncode, err) == (130, "pocketcore: interrupted\n"), out
    assert out == ""


def interrupt_when(started: threading.Event) -> threading.Thread:
    """A thread that sends this process SIGINT once ``started`` is set."""

    def interrupt() -> None:
        if started.wait(30):
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt)
    thread.start()
    return thread


def raised_by(run: Any, started: threading.Event) -> BaseException:
    with sigint_not_ignored():
        thread = interrupt_when(started)
        try:
            run()
        except BaseException as exc:  # what is raised is what is checked
            return exc
        finally:
            started.set()  # lets the thread end if the run never started its batch
            thread.join()
    pytest.fail("the run was not interrupted")


@pytest.mark.parametrize("limit", [None, 2])
def test_except_keyboard_interrupt_catches_ctrl_c_during_a_batch(limit: int | None) -> None:
    started = threading.Event()

    class Wait(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> list[int]:
            return list(range(4))

        async def exec_async(self, item: int) -> int:
            started.set()
            await anyio.sleep(60)
            return item

    flow = pocketcore.AsyncFlow(start=Wait())
    raised = raised_by(
        lambda: pocketcore.run(flow, {}, executor="trio", max_concurrency=limit), started
    )
    assert type(raised) is KeyboardInterrupt, repr(raised)


def test_ctrl_c_in_a_nodes_own_task_group_is_unwrapped_by_run() -> None:
    """Not only the executor's nursery: ``run`` unwraps a group of nothing but Ctrl-C."""
    started = threading.Event()

    class OwnTaskGroup(pocketcore.AsyncNode):
        async def exec_async(self, prep_res: Any) -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.sleep, 60)
                started.set()

    flow = pocketcore.AsyncFlow(start=OwnTaskGroup())
    raised = raised_by(lambda: pocketcore.run(flow, {}, executor="trio"), started)
    assert type(raised) is KeyboardInterrupt, repr(raised)


def test_run_leaves_other_groups_alone() -> None:
    """A group the program raises itself is the program's business: it goes on as it is."""
    from pocketcore_trio import TrioExecutor

    group = BaseExceptionGroup("the program's own", [KeyboardInterrupt(), ValueError()])

    async def main() -> None:
        raise group

    with pytest.raises(BaseExceptionGroup) as info:
        TrioExecutor().run(main)
    assert info.value is group
