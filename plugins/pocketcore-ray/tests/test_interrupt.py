"""Ctrl-C in a terminal during a batch on the run's own local Ray instance: see ``check_ctrl_c``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pocketcore.testing import check_ctrl_c


@pytest.mark.parametrize("flow", ["waits", "computes"])
def test_ctrl_c_ends_the_run_promptly_and_leaves_nothing_running(tmp_path: Path, flow: str) -> None:
    # The run, Ray's servers and its workers at least. It takes a few seconds:
    # the workers are killed once 2 s have not ended them, then Ray shuts
    # down; the margin is for a busy machine.
    check_ctrl_c(tmp_path, "ray", flow, config="[ray]\nnum_cpus = 2\n", processes=4, within=30)
