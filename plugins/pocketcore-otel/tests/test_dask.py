"""With dask (worker threads of a LocalCluster), spans opened on a worker join the item's trace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Recorded
from remote_nodes import WORKER_PROVIDER, Fetch
from tree import Tree

import pocketcore
from pocketcore_otel import ITEM_DEFERRED, ITEM_INDEX

pocketcore_dask = pytest.importorskip("pocketcore_dask")


@pytest.fixture
def dask_threads(spans: Recorded) -> Iterator[Any]:
    WORKER_PROVIDER[:] = [spans.provider]
    # Worker threads, not processes: fast to start, and what they record lands
    # here. The items still travel through dask's own pickling, and its worker
    # threads do not run in the caller's context: only the traceparent links them.
    yield pocketcore_dask.DaskExecutor(n_workers=1, threads_per_worker=2, processes=False)
    pocketcore_dask.shutdown()


def test_spans_on_a_dask_worker_are_children_of_their_items(
    spans: Recorded, dask_threads: Any
) -> None:
    shared: dict[str, Any] = {"pages": ["home", "faq", "about"]}
    pocketcore.run(Fetch(), shared, executor=dask_threads)
    tree = Tree(spans.spans())  # one root: no worker span started a trace of its own
    assert tree.root.name == "pocketcore.run Fetch"
    items = sorted(tree.children(tree.root), key=lambda s: (s.attributes or {})[ITEM_INDEX])
    assert len(items) == 3
    for item, page in zip(items, shared["pages"], strict=True):
        assert (item.attributes or {})[ITEM_DEFERRED] is True
        (worker,) = tree.children(item)
        assert (worker.name, (worker.attributes or {})["page"]) == ("http get", page)
