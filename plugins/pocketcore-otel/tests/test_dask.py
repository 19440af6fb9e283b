"""With dask (worker threads of a LocalCluster), spans opened on a worker join the item's trace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Recorded
from remote_nodes import WORKER_PROVIDER, Fetch, Measure
from tree import Tree

import pocketcore
from pocketcore_otel import GEN_AI_INPUT_TOKENS, GEN_AI_OUTPUT_TOKENS, ITEM_DEFERRED, ITEM_INDEX

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


def test_what_items_report_on_a_dask_worker_is_on_their_spans(
    spans: Recorded, dask_threads: Any
) -> None:
    # The worker threads do not run in the caller's context: the usage can
    # only come back with the results.
    pages = ["home", "faq", "about us"]
    pocketcore.run(Measure(), {"pages": pages}, executor=dask_threads)
    tree = Tree(spans.spans())
    assert tree.root.attributes[GEN_AI_INPUT_TOKENS] == 15  # type: ignore[index]
    assert tree.root.attributes[GEN_AI_OUTPUT_TOKENS] == 3  # type: ignore[index]
    for item in tree.children(tree.root):
        attributes = item.attributes or {}
        assert attributes[GEN_AI_INPUT_TOKENS] == len(pages[attributes[ITEM_INDEX]])  # type: ignore[index]
