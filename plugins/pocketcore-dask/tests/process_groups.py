"""The process group of a script a test starts in a session of its own: who is left in it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any


def alive_in_group(pgid: int) -> set[int]:
    """The live (not zombie) processes of the process group ``pgid``."""
    alive = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        state, _ppid, pgrp = stat.rpartition(")")[2].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            alive.add(int(entry.name))
    return alive


def left_after(proc: subprocess.Popen[Any], seconds: float) -> set[int]:
    """What is left of ``proc``'s group once it is empty, or after ``seconds`` at the most."""
    deadline = time.monotonic() + seconds
    while alive_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive_in_group(proc.pid)


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL whatever of ``proc``'s group still runs (a failed test's), and reap ``proc``."""
    if proc.poll() is None or alive_in_group(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
