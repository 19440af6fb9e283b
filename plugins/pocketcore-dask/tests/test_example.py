"""The measured CPU-bound example of docs/choosing-an-executor.md runs, shrunk to a few items."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def test_the_cpu_bound_example_agrees_on_every_executor() -> None:
    if not (REPO / "examples" / "cpu_bound" / "flow.py").exists():
        pytest.skip("not in a pocketcore checkout")
    env = {**os.environ, "CPU_ITEMS": "4", "CPU_SPAN": "200", "CPU_REPEAT": "1"}
    env.pop("POCKETCORE_DASK_ADDRESS", None)
    done = subprocess.run(
        [sys.executable, "-m", "examples.cpu_bound.flow"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for label in ("sequential", "asyncio", "started by the run", "already running"):
        assert any(label in line for line in lines), done.stdout
    assert "different results" not in done.stdout
