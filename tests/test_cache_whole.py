"""Whole-batch entries: an unchanged batch is read back in one lookup, and never wrongly.

A node's batch already in memory (a list, tuple or range) is also checked
against the node's whole-batch entry, which holds the last complete batch
(a digest of its inputs, and all its results), written once every item's
result is stored. These tests check that it is read when it should be (one
lookup, no ``exec``), that it never hides an item that must run again (one
whose result fell back, failed or was not cached), that a batch changing
from run to run keeps one entry, and that the entry is never a reason for
a run to fail.
"""

from __future__ import annotations

import pickle
import warnings
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import CacheWarning, Failed
from pocketcore._dispatch import cached as dispatch
from pocketcore._runtime.cache import WHOLE_BATCH_SUFFIX, frame, unframe
from pocketcore._runtime.fingerprints import VALUE_PROTOCOL

from .test_cache import EXECUTORS, KINDS, Calls, DictStore, HitWatcher, _batch_nodes


def whole_entries(store: DictStore) -> list[bytes]:
    """The keys of the store's whole-batch entries."""
    return [k for k, (_, label) in store.data.items() if label.endswith(WHOLE_BATCH_SUFFIX)]


def run(node: Any, items: Any, store: DictStore, executor: str = "asyncio") -> list[Any]:
    shared: dict[str, Any] = {"items": items}
    pocketcore.run(node, shared, cache=store, executor=executor)
    out: list[Any] = shared["out"]
    return out


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", [list, tuple, lambda xs: range(len(xs))])
def test_an_unchanged_batch_is_one_lookup_and_a_changed_one_reads_each_item(
    kind: str, executor: str, form: Any
) -> None:
    calls = Calls()
    node = _batch_nodes(calls)[kind]()
    store = DictStore()
    items = form([0, 1, 2, 3, 4])
    expected = [("done", x) for x in items]
    assert run(node, items, store, executor) == expected
    assert len(whole_entries(store)) == 1
    store.asked.clear()
    assert run(node, form([0, 1, 2, 3, 4]), store, executor) == expected
    assert store.asked == [1]  # the whole batch's key, and nothing else
    assert calls.count == Counter(items)
    # One more item: a new batch, read item by item; only the new item runs.
    if isinstance(items, range):
        longer: Any = range(6)
    else:
        longer = form([*items, 5])
    store.asked.clear()
    assert run(node, longer, store, executor) == [("done", x) for x in longer]
    assert calls.count == Counter(longer)
    assert len(store.asked) > 1
    # Its entry replaced the shorter batch's: the node keeps one.
    assert len(whole_entries(store)) == 1
    store.asked.clear()
    assert run(node, items, store, executor) == expected
    assert len(store.asked) > 1  # read item by item again
    assert calls.count == Counter(longer)  # and nothing computed


class Chooser:
    """Which items a node skips (its cache_key gives None) and which fall back."""

    skipped: frozenset[int] = frozenset()
    falling: frozenset[int] = frozenset()


def _choosy_nodes(calls: Calls, choose: Chooser, custom: bool) -> dict[str, Any]:
    made = {}
    for kind, cls in _batch_nodes(calls).items():
        blocking = kind in ("BatchNode", "ParallelBatchNode")

        def exec_fallback(self: Any, x: Any, exc: Exception) -> Any:
            return ("fallback", x)

        async def exec_fallback_async(self: Any, x: Any, exc: Exception) -> Any:
            return ("fallback", x)

        body: dict[str, Any] = {
            "exec_fallback" if blocking else "exec_fallback_async": (
                exec_fallback if blocking else exec_fallback_async
            )
        }
        if custom:
            body["cache_key"] = lambda self, x: None if x in choose.skipped else ("key", x)
        made[kind] = type(f"Choosy{kind}", (cls,), body)
    return made


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    items=st.lists(st.integers(0, 20), unique=True, max_size=8),
    skipped=st.frozensets(st.integers(0, 20), max_size=3),
    falling=st.frozensets(st.integers(0, 20), max_size=3),
    custom=st.booleans(),
    kind=st.sampled_from(KINDS),
    executor=st.sampled_from(EXECUTORS),
    runs=st.integers(2, 4),
    as_tuple=st.booleans(),
)
def test_what_must_run_again_always_does_and_the_rest_never(
    items: list[int],
    skipped: frozenset[int],
    falling: frozenset[int],
    custom: bool,
    kind: str,
    executor: str,
    runs: int,
    as_tuple: bool,
) -> None:
    calls = Calls()
    choose = Chooser()
    choose.skipped = skipped if custom else frozenset()
    choose.falling = falling
    calls.failing = set(falling)
    node = _choosy_nodes(calls, choose, custom)[kind]()
    store = DictStore()
    batch = tuple(items) if as_tuple else items
    again = (choose.skipped | falling) & set(items)
    expected = [("fallback", x) if x in falling else ("done", x) for x in items]
    for n in range(runs):
        before = Counter(calls.count)
        store.asked.clear()
        assert run(node, batch, store, executor) == expected
        ran = set(calls.count - before)
        # Each run computes what was never stored, and nothing else.
        assert ran == (set(items) if n == 0 else again)
        if n and not again and len(items) >= 2 and not custom:
            assert store.asked == [1]
    # A whole-batch entry exists exactly when every result was stored (and
    # never with the node's own cache_key, whose keys are made as items are pulled).
    whole = len(items) >= 2 and not again and not custom
    assert len(whole_entries(store)) == (1 if whole else 0)


@pytest.mark.parametrize(
    "garbage", ["not a pickle", "not a list", "wrong length", "short", "damaged"]
)
def test_a_whole_batch_entry_that_is_wrong_is_passed_over_quietly(garbage: str) -> None:
    calls = Calls()
    node = _batch_nodes(calls)["AsyncParallelBatchNode"]()
    store = DictStore()
    run(node, [1, 2, 3], store)
    [key] = whole_entries(store)
    digest = unframe(store.data[key][0])[:20]  # type: ignore[index]
    data = {
        "not a pickle": frame(digest + b"not a pickle"),
        "not a list": frame(digest + pickle.dumps(7)),
        "wrong length": frame(digest + pickle.dumps([("done", 1)])),
        "short": frame(digest[:5]),
        "damaged": store.data[key][0][:-1] + b"\0",
    }[garbage]
    store.data[key] = (data, store.data[key][1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert run(node, [1, 2, 3], store) == [("done", 1), ("done", 2), ("done", 3)]
    assert calls.count == Counter([1, 2, 3])  # the items' own entries answered
    stored = unframe(store.data[key][0])
    assert stored is not None
    assert pickle.loads(stored[20:]) == [("done", 1), ("done", 2), ("done", 3)]


def test_a_batch_that_grows_or_changes_while_it_runs_gets_no_whole_entry() -> None:
    class Queue(pocketcore.BatchNode):
        """A work queue: exec appends follow-up work to its own batch."""

        def prep(self, shared: Any) -> Any:
            return shared["items"]

        def exec(self, x: Any) -> Any:
            if x == 1:
                self.batch.append(10)
            return x * 2

        def post(self, shared: Any, p: Any, e: Any) -> None:
            shared["out"] = e

    node = Queue()
    node.batch = grown = [1, 2, 3]
    shared: dict[str, Any] = {"items": grown}
    store = DictStore()
    pocketcore.run(node, shared, cache=store)
    assert shared["out"] == [2, 4, 6, 20]
    assert grown == [1, 2, 3, 10]
    assert whole_entries(store) == []
    # The batch it began as: read item by item (each hits), not from a whole entry.
    node.batch = [1, 2, 3]
    store.asked.clear()
    again: dict[str, Any] = {"items": node.batch}
    pocketcore.run(node, again, cache=store)
    assert again["out"] == [2, 4, 6]
    assert store.asked == [1, 1, 1, 1]  # the node's whole-batch entry (none), then each item


def test_a_batch_whose_later_input_changes_while_it_runs_gets_no_whole_entry() -> None:
    class Meddles(pocketcore.BatchNode):
        """Item 1's exec changes item 3 before it is pulled: [1, 2, 3] runs as [1, 2, 7]."""

        def prep(self, shared: Any) -> Any:
            return shared["items"]

        def exec(self, x: Any) -> Any:
            if x == 1:
                self.batch[2] = 7
            return x * 2

        def post(self, shared: Any, p: Any, e: Any) -> None:
            shared["out"] = e

    store = DictStore()
    node = Meddles()
    node.batch = [1, 2, 3]
    shared: dict[str, Any] = {"items": node.batch}
    pocketcore.run(node, shared, cache=store)
    assert shared["out"] == [2, 4, 14]
    assert whole_entries(store) == []
    # [1, 2, 3] again: 1 and 2 hit (so nothing meddles), 3 was never computed.
    node.batch = [1, 2, 3]
    shared = {"items": node.batch}
    pocketcore.run(node, shared, cache=store)
    assert shared["out"] == [2, 4, 6]


def test_a_store_that_cannot_write_the_whole_batch_warns_and_the_run_goes_on() -> None:
    calls = Calls()
    node = _batch_nodes(calls)["AsyncParallelBatchNode"]()
    store = DictStore()
    run(node, [0, 1, 2, 3], store)
    store.fail_on = "put"  # read-only, say: every item hits, only the whole entry is new
    with pytest.warns(CacheWarning, match="could not write the whole-batch entry of Par"):
        assert run(node, [3, 2, 1, 0], store) == [("done", x) for x in (3, 2, 1, 0)]
    assert calls.count == Counter(range(4))


def test_a_range_too_long_to_measure_runs_as_any_batch() -> None:
    calls = Calls()
    calls.failing = {0}
    node = _batch_nodes(calls)["AsyncBatchNode"]()
    with pytest.raises(ValueError, match="item 0 fails"):
        run(node, range(2**64), DictStore())


def test_a_lazy_batch_a_single_item_and_a_large_one_get_no_whole_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = Calls()
    node = _batch_nodes(calls)["AsyncParallelBatchNode"]()
    store = DictStore()
    run(node, iter([1, 2, 3]), store)
    run(node, [4], store)
    assert whole_entries(store) == []
    # The cap is on the results' stored bytes: two results fit, three do not.
    one = len(frame(pickle.dumps(("done", 5), VALUE_PROTOCOL)))
    monkeypatch.setattr(dispatch, "WHOLE_BATCH_MAX_BYTES", 2 * one)
    run(node, [5, 6], store)
    assert len(whole_entries(store)) == 1
    run(node, [5, 6, 7], store)
    assert len(whole_entries(store)) == 1


def test_a_collected_failure_leaves_no_whole_entry_and_runs_again() -> None:
    calls = Calls()
    node = _batch_nodes(calls)["AsyncParallelBatchNode"]()
    store = DictStore()
    calls.failing = {2}
    shared: dict[str, Any] = {"items": [1, 2, 3]}
    pocketcore.run(node, shared, cache=store, on_error="collect")
    assert type(shared["out"][1]) is Failed
    assert whole_entries(store) == []
    calls.failing = set()
    assert run(node, [1, 2, 3], store) == [("done", 1), ("done", 2), ("done", 3)]
    assert calls.count == Counter({1: 1, 2: 2, 3: 1})
    assert len(whole_entries(store)) == 1


def test_sets_in_the_items_in_another_order_still_find_the_whole_batch() -> None:
    calls = Calls()
    node = _batch_nodes(calls)["AsyncParallelBatchNode"]()
    store = DictStore()
    forward, backward = frozenset({8, 16}), frozenset({16, 8})
    assert list(forward) != list(backward)
    run(node, [forward, 1], store)
    store.asked.clear()
    assert run(node, [backward, 1], store) == [("done", forward), ("done", 1)]
    assert store.asked == [1]
    assert sum(calls.count.values()) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_a_whole_batch_hit_reports_every_item_as_cached(kind: str) -> None:
    calls = Calls()
    node = _batch_nodes(calls)[kind]()
    store = DictStore()
    run(node, [10, 20, 30], store, "trio")
    watcher = HitWatcher()
    registry = pocketcore.get_registry()
    registry.register(watcher, name="hit-watcher")
    try:
        assert run(node, [10, 20, 30], store, "trio") == [("done", x) for x in (10, 20, 30)]
    finally:
        registry.unregister(watcher)
    assert sorted(watcher.hits) == [(0, ("done", 10)), (1, ("done", 20)), (2, ("done", 30))]
    assert watcher.started == []
    assert store.asked[-1:] == [1]
