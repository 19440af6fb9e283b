"""The dask executor against pocketcore's executor contract, on a real LocalCluster of processes."""

from __future__ import annotations

import pytest

from pocketcore.testing import ExecutorConformance
from pocketcore_dask import DaskExecutor


@pytest.mark.usefixtures("address")
class TestDaskExecutor(ExecutorConformance):
    executor = DaskExecutor()
    # As many examples as the local executors get (the remote default is 8):
    # about 40 s for the eight properties on a 2-core machine.
    max_examples = 20
