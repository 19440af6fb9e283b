"""One LocalCluster of worker processes for the whole session, and ways to point runs at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from distributed import Client, LocalCluster

import pocketcore_dask

#: Enough threads for the conformance suite's widest batch (30 items at once)
#: on either worker, however the scheduler spreads them.
THREADS = 32


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        n_workers=2, threads_per_worker=THREADS, processes=True, dashboard_address="127.0.0.1:0"
    ) as cluster:
        yield cluster


@pytest.fixture
def address(cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs with the default ``dask`` executor use the session's cluster."""
    monkeypatch.setenv("POCKETCORE_DASK_ADDRESS", cluster.scheduler_address)
    return str(cluster.scheduler_address)


@pytest.fixture(scope="session")
def client(cluster: LocalCluster) -> Iterator[Client]:
    """A client of the session's cluster, to look at what it is doing."""
    with Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="session", autouse=True)
def no_local_cluster_left() -> Iterator[None]:
    """The process's LocalCluster, if a test started one, closed while pytest still listens.

    (At interpreter exit, its closing would log to streams pytest has closed.)
    """
    yield
    pocketcore_dask.shutdown()
