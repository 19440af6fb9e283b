"""Results that finish together are written together, and each is written before its item ends.

A store with ``put_many`` (SQLite's: one transaction) is handed the results
of the items that finish at the same moment in one call. These tests hold
the kernel to what that must not change: every result that ``exec``
returned is stored, also when the batch fails or is cancelled around it,
and a failed write fails the batch, naming the store.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import CacheError, CacheWarning

from .test_cache import DictStore

ASYNC_EXECUTORS = ("asyncio", "trio")


class GroupStore(DictStore):
    """The counting store, with ``put_many``; it notes the size of each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []

    def put(self, key: bytes, value: bytes, node: str) -> None:
        super().put(key, value, node)
        self.writes.append(1)

    def put_many(self, entries: Sequence[tuple[bytes, bytes, str]]) -> None:
        if self.fail_on == "put":
            raise OSError("database or disk is full")
        with self.lock:
            for key, value, node in entries:
                self.data[key] = (value, node)
        self.writes.append(len(entries))


class Quick(pocketcore.AsyncParallelBatchNode):
    """Items that end after one scheduling turn; ``fails`` names one that raises."""

    fails: Any = None
    returned: list[Any]

    async def prep_async(self, shared: Any) -> Any:
        return shared["items"]

    async def exec_async(self, x: Any) -> Any:
        await anyio.lowlevel.checkpoint()
        if x == self.fails:
            raise ValueError(f"item {x} fails")
        self.returned.append(x)
        return x * 10

    async def post_async(self, shared: Any, p: Any, e: Any) -> None:
        shared["out"] = e


def stored_items(store: DictStore) -> set[int]:
    """The items whose result the store holds (read back through a run that computes none)."""
    import pickle

    from pocketcore._runtime.cache import unframe

    return {
        pickle.loads(unframe(value)) // 10  # type: ignore[arg-type]
        for value, label in store.data.values()
        if "[" not in label
    }


@pytest.mark.parametrize("executor", ASYNC_EXECUTORS)
@pytest.mark.parametrize("limit", [4, 16, None])
def test_results_that_finish_together_are_written_together(
    executor: str, limit: int | None
) -> None:
    store = GroupStore()
    node = Quick()
    node.returned = []
    shared: dict[str, Any] = {"items": list(range(64))}
    pocketcore.run(node, shared, cache=store, executor=executor, max_concurrency=limit)
    assert shared["out"] == [x * 10 for x in range(64)]
    assert stored_items(store) == set(range(64))
    item_writes = store.writes[:-1]  # the last is the whole batch's entry
    assert sum(item_writes) == 64
    assert max(item_writes) > 1, item_writes
    assert len(item_writes) < 64


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    size=st.integers(2, 30),
    data=st.data(),
    executor=st.sampled_from(ASYNC_EXECUTORS),
    limit=st.one_of(st.none(), st.integers(1, 8)),
)
def test_every_result_exec_returned_is_stored_when_a_sibling_fails(
    size: int, data: st.DataObject, executor: str, limit: int | None
) -> None:
    store = GroupStore()
    node = Quick()
    node.returned = []
    node.fails = data.draw(st.integers(0, size - 1), label="fails")
    with pytest.raises(ValueError, match="fails"):
        pocketcore.run(
            node,
            {"items": list(range(size))},
            cache=store,
            executor=executor,
            max_concurrency=limit,
        )
    # The failure cancelled the items waiting for their write: the write still happened.
    assert stored_items(store) == set(node.returned)


@pytest.mark.parametrize("executor", ASYNC_EXECUTORS)
def test_a_failed_write_fails_the_batch_naming_the_store(executor: str) -> None:
    store = GroupStore()
    node = Quick()
    node.returned = []
    pocketcore.run(node, {"items": [1, 2]}, cache=store, executor=executor)
    kept = dict(store.data)
    store.fail_on = "put"
    with pytest.raises(CacheError, match="dict-store failed while writing") as caught:
        pocketcore.run(node, {"items": list(range(3, 40))}, cache=store, executor=executor)
    assert "database or disk is full" in str(caught.value)
    assert store.data == kept


@pytest.mark.parametrize("executor", ASYNC_EXECUTORS)
@pytest.mark.parametrize("size", [2, 10, 40])
def test_a_failed_write_is_never_silent_when_a_sibling_fails_too(executor: str, size: int) -> None:
    store = GroupStore()
    store.fail_on = "put"
    node = Quick()
    node.returned = []
    node.fails = size - 1  # fails in the turn the others' results are written
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises((ValueError, CacheError)) as raised:
            pocketcore.run(node, {"items": list(range(size))}, cache=store, executor=executor)
    said = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    said += getattr(raised.value, "__notes__", [])
    if raised.type is ValueError and not node.returned:
        assert not said  # cancelled before any exec returned: no write was tried
    elif raised.type is ValueError:
        # The sibling's failure won. The write's failure is a note on it (the
        # executor names other failures so), or, when the write waited in a
        # cancelled task that had nobody to raise to, a warning.
        assert said, "the store's failure went unsaid"
        assert "dict-store failed while writing" in said[0]
        assert "database or disk is full" in said[0]
    else:
        assert "dict-store failed while writing" in str(raised.value)
