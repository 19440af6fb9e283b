"""One local Ray instance for the whole session, started the way a run starts it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ray_nodes import mark

import pocketcore
import pocketcore_ray
from pocketcore_ray import RayExecutor

HERE = Path(__file__).resolve().parent
# Ray's workers import the node classes of these tests by module name, as
# they would a program's own modules (installed, or on their path): the
# instance is started with this folder on the path it hands them.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))

#: Logical CPUs of the session's instance: enough for the conformance suite's
#: widest batch (30 items in flight at once, each a task that asks for one
#: CPU). Ray starts a worker process per task running, not per CPU, so the
#: machine is not asked for 32 processes until a batch needs them.
CPUS = 32


class Warm(pocketcore.AsyncParallelBatchNode):
    """As many items at once as the instance has CPUs: a worker process started for each.

    Each item waits until all have started (or a minute has passed), so that
    no worker takes a second item and each CPU gets a process of its own.
    """

    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return [(shared["folder"], i) for i in range(CPUS)]

    async def exec_async(self, item: tuple[str, int]) -> int:
        folder, i = item
        mark(folder, str(i))
        for _ in range(600):
            if len(os.listdir(folder)) >= CPUS:
                break
            await asyncio.sleep(0.1)
        return i


@pytest.fixture(scope="session", autouse=True)
def instance() -> Iterator[None]:
    """The session's Ray instance, started through the plugin, and shut down at the end.

    Every test that runs the ``ray`` executor with these settings (the
    ``POCKETCORE_RAY_NUM_CPUS`` of :func:`settings`) reuses it; tests of
    starting and shutting down run in processes of their own. Its worker
    processes are started here, before any test measures anything.
    """
    warm()
    yield
    pocketcore_ray.shutdown()


def warm() -> None:
    """Have a worker process ready for each CPU (tests that kill workers leave fewer)."""
    with tempfile.TemporaryDirectory() as folder:
        pocketcore.run(Warm(), {"folder": folder}, executor=executor())


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs use the session's instance: no address, and its number of CPUs."""
    for key in ("ADDRESS", "RUNTIME_ENV", "CONNECT_TIMEOUT", "LOG"):
        monkeypatch.delenv(f"POCKETCORE_RAY_{key}", raising=False)
    monkeypatch.setenv("POCKETCORE_RAY_NUM_CPUS", str(CPUS))


def executor() -> RayExecutor:
    """An executor of the session's instance."""
    return RayExecutor(num_cpus=CPUS)


def script(tmp_path: Path, code: str, **env: str) -> list[str]:
    """Run ``code`` as ``tmp_path / "main.py"`` in a process of its own; its output lines.

    The process sees this folder's modules, none of the session's
    ``POCKETCORE_RAY_*`` variables, and ``env``. It must exit with status 0
    and write nothing to stderr (no line of Ray's own logging).
    """
    (tmp_path / "main.py").write_text(code)
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    variables = {k: v for k, v in os.environ.items() if not k.startswith("POCKETCORE_RAY_")}
    done = subprocess.run(
        [sys.executable, "main.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**variables, "PYTHONPATH": path, **env},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # nothing of Ray's own
    return done.stdout.splitlines()
