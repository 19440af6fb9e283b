"""The result cache in the dispatch seam: what is looked up, what is stored, and when.

A counting store (a dict behind the Store protocol, passed as an object) is
enough here; the built-in stores have their own conformance suite, and
killed processes are in test_cache_kill.py.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import CacheError, CacheWarning, ConfigError, Failed, StoreInfo
from pocketcore._runtime.fingerprints import fingerprint

from .helpers import configured

EXECUTORS = ("sequential", "asyncio", "trio")


class DictStore(pocketcore.BaseStore):
    """A store in a dict, counting its calls; ``fail_on`` makes a call fail."""

    location = "dict-store"

    def __init__(self) -> None:
        self.data: dict[bytes, tuple[bytes, str]] = {}
        self.gets = 0
        self.asked: list[int] = []  # how many keys each get_many asked for
        self.puts = 0
        self.fail_on: str | None = None
        self.lock = threading.Lock()

    def get_many(self, keys: Sequence[bytes]) -> Mapping[bytes, bytes]:
        if self.fail_on == "get":
            raise OSError("disk on fire")
        self.gets += 1
        self.asked.append(len(keys))
        return {k: self.data[k][0] for k in keys if k in self.data}

    def put(self, key: bytes, value: bytes, node: str) -> None:
        if self.fail_on == "put":
            raise OSError("database or disk is full")
        with self.lock:
            self.puts += 1
            self.data[key] = (value, node)

    def info(self) -> StoreInfo:
        counts = Counter(node for _, node in self.data.values())
        return StoreInfo(self.location, dict(counts), sum(len(v) for v, _ in self.data.values()))

    def clear(self, node: str | None = None) -> int:
        gone = [k for k, (_, n) in self.data.items() if node in (None, n)]
        for k in gone:
            del self.data[k]
        return len(gone)

    def close(self) -> None:
        pass


# --- the six batch classes and the plain ones, each counting its exec calls ----------


class Calls:
    """How many times each input's exec ran, and which inputs fail (raise) this run."""

    def __init__(self) -> None:
        self.count: Counter[Any] = Counter()
        self.failing: set[Any] = set()
        self.lock = threading.Lock()
        self.token = uuid.uuid4().hex

    def __getstate__(self) -> object:
        # What identifies the recorder to the result cache (a node's exec closes
        # over it): the recorder itself, not its counts, which change every run.
        return self.token

    def run(self, x: Any) -> Any:
        with self.lock:
            self.count[x] += 1
        if x in self.failing:
            raise ValueError(f"item {x} fails")
        return ("done", x)


def _batch_nodes(calls: Calls) -> dict[str, type[pocketcore.BaseNode]]:
    class Seq(pocketcore.BatchNode):
        def prep(self, shared: Any) -> Any:
            return shared["items"]

        def exec(self, x: Any) -> Any:
            return calls.run(x)

        def post(self, shared: Any, p: Any, e: Any) -> None:
            shared["out"] = e

    class Threads(pocketcore.ParallelBatchNode, Seq):
        pass

    class SeqAsync(pocketcore.AsyncBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            return shared["items"]

        async def exec_async(self, x: Any) -> Any:
            return calls.run(x)

        async def post_async(self, shared: Any, p: Any, e: Any) -> None:
            shared["out"] = e

    class Par(pocketcore.AsyncParallelBatchNode, SeqAsync):
        pass

    return {
        "BatchNode": Seq,
        "ParallelBatchNode": Threads,
        "AsyncBatchNode": SeqAsync,
        "AsyncParallelBatchNode": Par,
    }


KINDS = ("BatchNode", "ParallelBatchNode", "AsyncBatchNode", "AsyncParallelBatchNode")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    items=st.lists(st.integers(0, 50), unique=True, max_size=12),
    kind=st.sampled_from(KINDS),
    executor=st.sampled_from(EXECUTORS),
    limit=st.one_of(st.none(), st.integers(1, 4)),
    collect=st.booleans(),
    failing_per_run=st.lists(st.sets(st.integers(0, 50), max_size=4), min_size=1, max_size=4),
)
def test_each_success_is_computed_once_and_failures_again_on_the_next_run(
    items: list[int],
    kind: str,
    executor: str,
    limit: int | None,
    collect: bool,
    failing_per_run: list[set[int]],
) -> None:
    calls = Calls()
    node = _batch_nodes(calls)[kind]()
    store = DictStore()
    succeeded: set[int] = set()
    parallel = kind.startswith(("Parallel", "AsyncParallel"))
    runs = [*failing_per_run, set()]  # end with a clean run
    for failing in runs:
        calls.failing = failing
        before = Counter(calls.count)
        shared: dict[str, Any] = {"items": items}
        on_error = "collect" if collect and parallel else None
        try:
            pocketcore.run(
                node,
                shared,
                cache=store,
                executor=executor,
                max_concurrency=limit,
                on_error=on_error,
            )
        except ValueError as exc:
            raised: ValueError | None = exc
        else:
            raised = None
        if raised is not None:
            assert not (collect and parallel)
            assert int(str(raised).split()[1]) in failing
        ran = calls.count - before
        # Nothing that once succeeded runs again.
        assert not set(ran) & succeeded
        # A failure of an earlier run is computed again when the batch reaches it.
        if collect and parallel:
            assert set(ran) == set(items) - succeeded
            for i, x in enumerate(items):
                result = shared["out"][i]
                if x in failing and x not in succeeded:
                    assert type(result) is Failed
                    assert result.index == i
                else:
                    assert result == ("done", x)
        succeeded |= {x for x in ran if x not in failing}
    # The last run failed nothing: its results are those of an uncached run.
    assert shared["out"] == [("done", x) for x in items]
    assert set(succeeded) == set(items)
    assert all(n == 1 for x, n in calls.count.items() if x not in set().union(*runs))


def test_a_fallback_result_is_never_stored() -> None:
    calls = Calls()

    class Careful(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            return [1, 2, 3]

        async def exec_async(self, x: Any) -> Any:
            return calls.run(x)

        async def exec_fallback_async(self, x: Any, exc: Exception) -> Any:
            return ("fallback", x)

        async def post_async(self, shared: Any, p: Any, e: Any) -> None:
            shared["out"] = e

    store = DictStore()
    calls.failing = {2}
    shared: dict[str, Any] = {}
    pocketcore.run(Careful(), shared, cache=store)
    assert shared["out"] == [("done", 1), ("fallback", 2), ("done", 3)]
    assert store.puts == 2
    calls.failing = set()
    pocketcore.run(Careful(), shared, cache=store)
    assert shared["out"] == [("done", 1), ("done", 2), ("done", 3)]
    assert calls.count == Counter({1: 1, 2: 2, 3: 1})


# --- plain nodes, keys and opting out -------------------------------------------------


#: How many times each plain class's exec ran (a module global: a class
#: attribute counting would change the class, and so its entries' keys).
RUNS: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _no_runs_yet() -> None:
    RUNS.clear()


class Plain(pocketcore.Node):
    cache = True  # a plain node is cached only when it opts in

    def prep(self, shared: Any) -> Any:
        return shared["x"]

    def exec(self, x: Any) -> Any:
        RUNS[type(self).__name__] += 1
        return {"x": x, "params": dict(self.params)}

    def post(self, shared: Any, p: Any, e: Any) -> None:
        shared["out"] = e


class PlainAsync(pocketcore.AsyncNode):
    cache = True

    async def prep_async(self, shared: Any) -> Any:
        return shared["x"]

    async def exec_async(self, x: Any) -> Any:
        RUNS[type(self).__name__] += 1
        return [x]

    async def post_async(self, shared: Any, p: Any, e: Any) -> None:
        shared["out"] = e


def test_a_plain_nodes_input_is_its_preps_result() -> None:
    store = DictStore()
    for x in (1, 1, 2, 1):
        shared = {"x": x}
        pocketcore.run(Plain(), shared, cache=store)
        assert shared["out"]["x"] == x
    assert RUNS["Plain"] == 2
    for x in ("a", "a"):
        shared = {"x": x}
        pocketcore.run(PlainAsync(), shared, cache=store)
        assert shared["out"] == [x]
    assert RUNS["PlainAsync"] == 1


def test_params_and_cache_version_are_part_of_the_key() -> None:
    store = DictStore()
    node = Plain()
    pocketcore.run(node, {"x": 1}, cache=store)
    node.set_params({"lang": "fr"})
    pocketcore.run(node, {"x": 1}, cache=store)
    pocketcore.run(node, {"x": 1}, cache=store)
    assert RUNS["Plain"] == 2

    class Bumped(Plain):
        cache_version = 1

    pocketcore.run(Bumped(), {"x": 1}, cache=store)
    pocketcore.run(Bumped(), {"x": 1}, cache=store)
    Bumped.cache_version = 2
    pocketcore.run(Bumped(), {"x": 1}, cache=store)
    assert RUNS["Bumped"] == 2


def test_a_nodes_cache_key_replaces_params_and_input_and_none_skips() -> None:
    class ById(Plain):
        def cache_key(self, input: Any) -> Any:
            return None if input["id"] < 0 else input["id"]

    store = DictStore()
    pocketcore.run(ById(), {"x": {"id": 1, "text": "a"}}, cache=store)
    pocketcore.run(ById(), {"x": {"id": 1, "text": "b"}}, cache=store)  # same id: a hit
    assert RUNS["ById"] == 1
    pocketcore.run(ById(), {"x": {"id": -1, "text": "a"}}, cache=store)
    pocketcore.run(ById(), {"x": {"id": -1, "text": "a"}}, cache=store)
    assert RUNS["ById"] == 3
    assert store.puts == 1


def test_false_opts_a_node_or_a_flow_out() -> None:
    store = DictStore()

    class SideEffect(Plain):
        cache = False

    for _ in range(2):
        pocketcore.run(SideEffect(), {"x": 1}, cache=store)
    assert RUNS["SideEffect"] == 2
    for _ in range(2):
        pocketcore.run(pocketcore.Flow(Plain(), cache=False), {"x": 1}, cache=store)
    assert RUNS["Plain"] == 2
    for _ in range(2):  # the node's own setting wins over its flow's
        pocketcore.run(pocketcore.Flow(Plain(cache=store), cache=False), {"x": 1})
    assert RUNS["Plain"] == 3
    assert store.puts == 1


def test_the_environment_names_the_store_and_off_turns_it_off() -> None:
    with configured(env={"POCKETCORE_CACHE": "memory"}):
        for _ in range(3):
            pocketcore.run(Plain(), {"x": "env"})
        assert RUNS["Plain"] == 1
        pocketcore.run(Plain(), {"x": "env"}, cache="off")
        pocketcore.run(Plain(), {"x": "env"}, cache=False)
        assert RUNS["Plain"] == 3


def test_the_file_names_the_store() -> None:
    with configured(files={"pocketcore.toml": 'cache = "memory"\n'}):
        for _ in range(2):
            pocketcore.run(Plain(), {"x": "file"})
        assert RUNS["Plain"] == 1
    with configured(files={"pocketcore.toml": "cache = false\n"}):
        for _ in range(2):
            pocketcore.run(Plain(), {"x": "file"})
        assert RUNS["Plain"] == 3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "does not say where"),
        (3, "store specification"),
        ("nosuchstore:x", "unknown cache store 'nosuchstore'"),
    ],
)
def test_a_bad_setting_fails_before_any_item_runs(value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        pocketcore.run(pocketcore.Flow(Plain()), {"x": 1}, cache=value)
    assert RUNS["Plain"] == 0


def test_a_store_that_fails_mid_run_fails_the_run_naming_it_and_keeps_what_it_had() -> None:
    calls = Calls()
    node = _batch_nodes(calls)["AsyncParallelBatchNode"]()
    store = DictStore()
    pocketcore.run(node, {"items": [1, 2]}, cache=store)
    kept = dict(store.data)
    store.fail_on = "put"
    with pytest.raises(CacheError, match="dict-store failed while writing") as caught:
        pocketcore.run(node, {"items": [1, 2, 3]}, cache=store)
    assert "database or disk is full" in str(caught.value)
    assert store.data == kept
    store.fail_on = "get"
    with pytest.raises(CacheError, match="dict-store failed while reading"):
        pocketcore.run(node, {"items": [1, 2, 3]}, cache=store)


# --- what cannot be pickled ---------------------------------------------------------


def test_an_input_that_does_not_pickle_is_run_uncached_with_one_warning() -> None:
    calls = Calls()
    node = _batch_nodes(calls)["AsyncParallelBatchNode"]()
    store = DictStore()
    lock_a, lock_b = threading.Lock(), threading.Lock()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shared: dict[str, Any] = {"items": [1, lock_a, 2, lock_b]}
        pocketcore.run(node, shared, cache=store)
    found = [w for w in caught if issubclass(w.category, CacheWarning)]
    assert len(found) == 1
    assert "item 1 of Par cannot be fingerprinted" in str(found[0].message)
    assert shared["out"] == [("done", 1), ("done", lock_a), ("done", 2), ("done", lock_b)]
    assert store.puts == 2


#: What Locky returns: a global, since a node whose exec closes over a lock is not cached.
LOCK = threading.Lock()


def test_a_result_that_does_not_pickle_is_not_stored_and_the_run_is_unaffected() -> None:
    lock = LOCK

    class Locky(pocketcore.BatchNode):
        def prep(self, shared: Any) -> Any:
            return [1, 2, 3]

        def exec(self, x: Any) -> Any:
            return LOCK if x != 2 else x

        def post(self, shared: Any, p: Any, e: Any) -> None:
            shared["out"] = e

    store = DictStore()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shared: dict[str, Any] = {}
        pocketcore.run(Locky(), shared, cache=store)
    found = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(found) == 1
    assert "the result of item 0 of Locky cannot be pickled" in found[0]
    assert shared["out"] == [lock, 2, lock]
    assert store.puts == 1


# --- fingerprints ----------------------------------------------------------------------

VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.binary(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=3), inner, max_size=3),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=3)), max_size=4),
    ),
    max_leaves=12,
)


@given(value=VALUES, seed=st.randoms(use_true_random=False))
def test_equal_values_have_equal_fingerprints(value: Any, seed: Any) -> None:
    import pickle

    # A copy made through pickle shares no object with the original (and a
    # set rebuilt from shuffled members may iterate in another order).
    copy = pickle.loads(pickle.dumps(value))
    assert fingerprint(copy) == fingerprint(value)


def _holds_set(value: Any) -> bool:
    if isinstance(value, (set, frozenset)):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_set(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_set(k) or _holds_set(v) for k, v in value.items())
    return False


@given(value=VALUES)
def test_a_plain_value_is_said_to_hold_a_set_exactly_when_it_does(value: Any) -> None:
    from pocketcore._runtime.fingerprints import _may_hold_set

    assert _may_hold_set(value) == _holds_set(value)
    assert _may_hold_set([value, object()])  # an object's pickle may hold one


def test_text_whose_bytes_look_like_a_set_opcode_skips_the_canonical_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hashlib

    from pocketcore._runtime import fingerprints as cache

    def never(value: Any) -> Any:
        raise AssertionError("the canonical form was made for a value with no set")

    text = ["\u0451\u044f", {"\u044f": ("\u0451", 1)}]  # UTF-8: d1 91, d1 8f
    assert b"\x91" in cache._pickled(text)
    assert b"\x8f" in cache._pickled(text)
    monkeypatch.setattr(cache, "_canonical", never)
    assert fingerprint(text) == cache._pickled(text)
    cache.digest_of(text, hashlib.blake2b(digest_size=20))
    with pytest.raises(AssertionError, match="canonical form"):
        fingerprint([*text, {1}])


def test_set_order_and_object_sharing_do_not_change_a_fingerprint() -> None:
    a = "".join(["ab", "c"])
    b = "".join(["a", "bc"])
    assert a is not b
    assert fingerprint([a, a]) == fingerprint([a, b])
    # 8 and 16 share a slot of a small set's table: they iterate in insertion order.
    forward, backward = {8, 16}, {16, 8}
    assert list(forward) != list(backward)
    assert fingerprint({"k": forward}) == fingerprint({"k": backward})
    assert fingerprint([frozenset(forward)]) == fingerprint([frozenset(backward)])
    assert fingerprint(1) != fingerprint(1.0) != fingerprint(True)
    assert fingerprint({"a": 1, "b": 2}) != fingerprint({"b": 2, "a": 1})  # order is data


# --- observation and laziness -------------------------------------------------------------


class HitWatcher:
    def __init__(self) -> None:
        self.hits: list[tuple[int, Any]] = []
        self.started: list[int] = []

    @pocketcore.hookimpl
    def pocketcore_batch_item_cached(self, index: int, result: Any) -> None:
        self.hits.append((index, result))

    @pocketcore.hookimpl
    def pocketcore_batch_item_start(self, index: int) -> None:
        self.started.append(index)


@pytest.mark.parametrize("kind", KINDS)
def test_hits_are_reported_with_their_index_and_misses_run_with_theirs(kind: str) -> None:
    calls = Calls()
    node = _batch_nodes(calls)[kind]()
    store = DictStore()
    pocketcore.run(node, {"items": [10, 30]}, cache=store)
    watcher = HitWatcher()
    registry = pocketcore.get_registry()
    registry.register(watcher, name="hit-watcher")
    try:
        shared: dict[str, Any] = {"items": [10, 20, 30, 40]}
        pocketcore.run(node, shared, cache=store)
    finally:
        registry.unregister(watcher)
    assert sorted(watcher.hits) == [(0, ("done", 10)), (2, ("done", 30))]
    assert sorted(watcher.started) == [1, 3]
    assert shared["out"] == [("done", x) for x in (10, 20, 30, 40)]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_items_are_pulled_as_the_limit_allows_with_a_cache_on(executor: str) -> None:
    limit = 3
    pulled = 0
    finished = 0
    worst = 0

    def items() -> Any:
        nonlocal pulled
        for i in range(40):
            pulled += 1
            yield i

    class Slow(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            return items()

        async def exec_async(self, x: Any) -> Any:
            nonlocal finished, worst
            worst = max(worst, pulled - finished)
            import anyio

            await anyio.lowlevel.checkpoint()
            finished += 1
            return x

    pocketcore.run(Slow(), {}, cache=DictStore(), executor=executor, max_concurrency=limit)
    # Pulled ahead of what finished: the items in flight plus one lookup group.
    assert worst <= 2 * limit + 1


# --- which nodes are cached -------------------------------------------------------------


def test_a_flows_own_store_serves_its_plain_nodes_that_opt_in() -> None:
    store = DictStore()
    for _ in range(2):
        pocketcore.run(pocketcore.Flow(Plain(), cache=store), {"x": "flow"})
    assert RUNS["Plain"] == 1
    for _ in range(2):
        pocketcore.run(pocketcore.AsyncFlow(PlainAsync(), cache=store), {"x": "async flow"})
    assert RUNS["PlainAsync"] == 1


def test_a_plain_node_that_does_not_opt_in_is_never_cached() -> None:
    class Loader(pocketcore.Node):
        def prep(self, shared: Any) -> Any:
            return shared["x"]

        def exec(self, x: Any) -> Any:
            RUNS["Loader"] += 1
            return x

    store = DictStore()
    for _ in range(2):
        pocketcore.run(pocketcore.Flow(Loader()), {"x": 1}, cache=store)
    assert RUNS["Loader"] == 2
    assert store.gets == store.puts == 0


@pytest.mark.parametrize("where", ["run", "flow"])
def test_true_names_no_store_for_a_run_or_a_flow(where: str) -> None:
    flow, run_level = (
        (pocketcore.Flow(Plain()), True)
        if where == "run"
        else (pocketcore.Flow(Plain(), cache=True), "memory")
    )
    with pytest.raises(ConfigError, match="does not say where") as caught:
        pocketcore.run(flow, {"x": 1}, cache=run_level)
    assert ("pocketcore.run" if where == "run" else "of Flow") in str(caught.value)
    assert RUNS["Plain"] == 0


class HitRecorder:
    """Records each cached plain node step the run reports: (node class, result, hit)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any, bool]] = []

    @pocketcore.hookimpl
    def pocketcore_node_cache_result(self, node: Any, result: Any, hit: bool) -> None:
        self.seen.append((type(node).__name__, result, hit))


class Doubled(pocketcore.Node):
    cache = True

    def prep(self, shared: Any) -> Any:
        return shared["x"]

    def exec(self, x: int) -> int:
        if x < 0:
            raise ValueError(x)
        return 2 * x


class DoubledAsync(pocketcore.AsyncNode):
    cache = True

    async def prep_async(self, shared: Any) -> Any:
        return shared["x"]

    async def exec_async(self, x: int) -> int:
        if x < 0:
            raise ValueError(x)
        return 2 * x


@settings(max_examples=40, deadline=None)
@given(
    xs=st.lists(st.integers(min_value=-2, max_value=4), max_size=8),
    kind=st.sampled_from([Doubled, DoubledAsync]),
)
def test_a_cached_plain_node_reports_each_result_as_a_hit_or_computed(
    xs: list[int], kind: type[pocketcore.BaseNode]
) -> None:
    store = DictStore()
    plugin = HitRecorder()
    registry = pocketcore.get_registry()
    registry.register(plugin, name="test-hit-recorder")
    try:
        for x in xs:
            with contextlib.suppress(ValueError):  # a negative input fails its step
                pocketcore.run(kind(), {"x": x}, cache=store)
    finally:
        registry.unregister(plugin)
    # A step that failed reports nothing; an input stored before is a hit.
    expected, stored = [], set()
    for x in xs:
        if x >= 0:
            expected.append((kind.__name__, 2 * x, x in stored))
            stored.add(x)
    assert plugin.seen == expected
