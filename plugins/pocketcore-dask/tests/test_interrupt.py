"""Ctrl-C in a terminal during a batch on the run's own LocalCluster: see ``check_ctrl_c``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pocketcore.testing import check_ctrl_c


@pytest.mark.parametrize("flow", ["waits", "computes"])
def test_ctrl_c_ends_the_run_at_once_and_leaves_nothing_running(tmp_path: Path, flow: str) -> None:
    # The run and its two workers at least. It ends in well under a second:
    # the margin is for a busy machine, where dask may also say that its event
    # loop was slow (and nothing else).
    config = "[dask]\nn_workers = 2\n"
    noise = ["Event loop was unresponsive"]
    check_ctrl_c(tmp_path, "dask", flow, config=config, processes=3, within=20, noise=noise)
