"""The store conformance suite: :class:`StoreConformance`, the store contract as pytest tests.

Each property is a test body declared with :func:`_store_property` and its
Hypothesis strategies; ``StoreConformance`` makes it a test of every
subclass, with that subclass's settings, or a skipped test when the store
does not claim what the property needs (persistence, sharing between
processes). Values that prove themselves whole and the child processes are
in :mod:`._store_processes`.
"""

from __future__ import annotations

import contextlib
import functools
import random
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pocketcore._core.store import BaseStore, Store, declared_store

from ._identity import NodeSpec, node_variants, reuses
from ._store_processes import (
    KillPlan,
    WritePlan,
    await_put,
    await_ready,
    children,
    damaged,
    finish,
    reported_puts,
    stamp,
)

#: Examples per property that runs in this process, and per property that runs children.
EXAMPLES = 25
PROCESS_EXAMPLES = 3
_SETTINGS = settings(
    deadline=None,
    # No explain phase: tracing the lines a failing example ran costs more
    # than the rest of a failing property, and says little about a store.
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
    # Every subclass runs the same bodies against its own store.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors],
)
#: Children are slow to start, and a failure seen once is reported as it is.
_NO_SHRINKING = (Phase.explicit, Phase.reuse, Phase.generate)
#: Seconds the threads of a property may take before it fails as a deadlock.
_THREAD_TIMEOUT = 30.0

KEYS = st.binary(min_size=1, max_size=40)
#: Node class names: any printable text (a store must not assume identifiers).
_PRINTABLE = st.characters(blacklist_categories=("Cs", "Cc"))
NODES = st.text(_PRINTABLE, min_size=1, max_size=24)


def _noise(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


#: Mostly short values; sometimes ones larger than a page of a file.
VALUES = st.one_of(
    st.binary(max_size=64),
    st.builds(_noise, st.integers(0, 2**32), st.integers(1_000, 200_000)),
)


@attrs.frozen
class _Property:
    body: Callable[..., None]
    strategies: tuple[st.SearchStrategy[Any], ...]
    #: The class attribute that must be true for the property to apply.
    needs: str | None
    #: Whether it runs child processes (fewer examples, no shrinking).
    processes: bool
    #: At most this many examples (for a property whose every example is large).
    cap: int | None


_PROPERTIES: dict[str, _Property] = {}
_GENERATED: set[Callable[..., None]] = set()


def _store_property(
    *strategies: st.SearchStrategy[Any],
    needs: str | None = None,
    processes: bool = False,
    cap: int | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare a property of the suite (made a test per subclass by ``__init_subclass__``)."""

    def declare(body: Callable[..., None]) -> Callable[..., None]:
        _PROPERTIES[body.__name__] = _Property(body, strategies, needs, processes, cap)
        return body

    return declare


@attrs.frozen
class _History:
    """Puts and lookups over a small pool of keys, so keys are overwritten and missed."""

    pool: tuple[bytes, ...]
    #: ("put", key, value, node) or ("get", keys)
    steps: tuple[tuple[Any, ...], ...]

    def model(self) -> dict[bytes, tuple[bytes, str]]:
        """What a store holds after every put: key -> (value, node)."""
        held: dict[bytes, tuple[bytes, str]] = {}
        for step in self.steps:
            if step[0] == "put":
                held[step[1]] = (step[2], step[3])
        return held


@st.composite
def _histories(draw: st.DrawFn) -> _History:
    pool = draw(st.lists(KEYS, min_size=1, max_size=8, unique=True))
    nodes = draw(st.lists(NODES, min_size=1, max_size=3, unique=True))
    keys = st.sampled_from(pool)
    put = st.tuples(st.just("put"), keys, VALUES, st.sampled_from(nodes))
    get = st.tuples(st.just("get"), st.lists(keys, max_size=10))
    steps = draw(st.lists(st.one_of(put, get), max_size=30))
    return _History(tuple(pool), tuple(steps))


@st.composite
def _labelled_histories(draw: st.DrawFn) -> _History:
    """Puts under two node classes or more, each with an entry, and some overwrites."""
    nodes = draw(st.lists(NODES, min_size=2, max_size=4, unique=True))
    pool = draw(st.lists(KEYS, min_size=len(nodes), max_size=12, unique=True))
    more = len(pool) - len(nodes)
    labels = nodes + draw(st.lists(st.sampled_from(nodes), min_size=more, max_size=more))
    puts = [("put", key, draw(VALUES), node) for key, node in zip(pool, labels, strict=True)]
    puts = draw(st.permutations(puts))
    # Overwrites, possibly under another class (which may leave one with none).
    again = st.tuples(st.just("put"), st.sampled_from(pool), VALUES, st.sampled_from(nodes))
    return _History(tuple(pool), tuple(puts + draw(st.lists(again, max_size=4))))


def _values(held: Mapping[bytes, tuple[bytes, str]]) -> dict[bytes, bytes]:
    return {key: value for key, (value, _) in held.items()}


class StoreConformance:
    """The store contract as pytest tests; subclass it, set two attributes, write ``open_store``.

    ::

        from pocketcore.testing import StoreConformance

        class TestMyStore(StoreConformance):
            persistent = True   # its entries outlive the process that put them
            shared = True       # several processes may use it at once

            def open_store(self, directory):
                return MyStore(directory / "cache")

    The properties (Hypothesis, on random keys, values and node names):
    ``get_many`` returns the value last put under each key and nothing for a
    key never put, also for thousands of keys at once; ``put`` replaces a
    value; ``put_many`` stores its entries as ``put`` would, one after the
    other; ``info`` counts the entries per node
    class and ``clear`` removes all of them or one node's; threads writing
    overlapping keys (while another reads) leave every key with one whole
    value that was written, the last of some writer's. Through real runs
    with the store as their cache, a result is reused only by its own node:
    any difference in a generated node's class code, attribute, params,
    ``cache_version``, input or program is a miss, and the same node under
    every import spelling of its module a hit. With
    :attr:`persistent`, a store opened again on the directory has every
    value, and a process killed with ``SIGKILL`` while it writes large
    values leaves every value whole, every put that had returned kept, and
    no value that was never written. With :attr:`shared`, the same holds for
    two processes writing at once.

    Child processes. The properties about processes run children with this
    interpreter and this process's ``sys.path``. A child imports the test
    class by its module and qualified name (so define it at module level,
    in a module that imports in a fresh interpreter), makes an instance
    with no arguments, and calls :meth:`open_store` on the same directory.
    Each property makes a new temporary directory per example, and closes
    every store it opens.

    Attributes:
        persistent: Whether the store keeps its entries outside the process
            (in files under the directory, or a server), so that they
            outlive it. Required.
        shared: Whether several processes may open the store on one
            directory at once. Required; a shared store must be persistent.
        max_examples: Hypothesis examples per property run in this process
            (default 25).
        process_examples: Examples per property that runs child processes
            (default 3); these are not shrunk.

    The tests are made for each subclass when it is defined, from its own
    attributes. A test method a subclass defines itself is left alone.

    Raises:
        TypeError: At the definition of a subclass that does not set
            ``persistent`` and ``shared``, or that is shared but not
            persistent.
    """

    persistent: ClassVar[bool]
    shared: ClassVar[bool]
    max_examples: ClassVar[int] = EXAMPLES
    process_examples: ClassVar[int] = PROCESS_EXAMPLES

    def open_store(self, directory: Path) -> Store:
        """Open the store under test on ``directory`` (which exists), as a user would.

        Opening it again on the same directory, in this process or in
        another, must reach the same entries when the store is
        :attr:`persistent`.
        """
        raise NotImplementedError("a StoreConformance subclass opens its store in open_store")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_declarations(cls)
        for name, prop in _PROPERTIES.items():
            if _defines_own(cls, name):
                continue
            if prop.needs is not None and not getattr(cls, prop.needs):
                skipped = _skipped(prop)
                _GENERATED.add(skipped)
                setattr(cls, name, skipped)
                continue
            examples = cls.process_examples if prop.processes else cls.max_examples
            if prop.cap is not None:
                examples = min(examples, prop.cap)
            config = settings(_SETTINGS, max_examples=examples)
            if prop.processes:
                config = settings(config, phases=_NO_SHRINKING)
            # Hypothesis reads its settings from the function: each subclass
            # gets a function of its own.
            test = config(given(*prop.strategies)(prop.body))
            _GENERATED.add(test)
            setattr(cls, name, test)

    @contextlib.contextmanager
    def _opened(self, directory: Path) -> Iterator[Store]:
        store = self.open_store(directory)
        try:
            yield store
        finally:
            store.close()

    def test_is_a_store(self) -> None:
        """The store builds on ``BaseStore`` and names its location.

        A store with the protocol's methods that does not build on
        ``pocketcore.BaseStore`` passes, for one release, with a
        ``DeprecationWarning``.
        """
        with tempfile.TemporaryDirectory() as tmp, self._opened(Path(tmp)) as store:
            assert isinstance(store, Store), f"{store!r} lacks methods of the store protocol"
            if not isinstance(store, BaseStore):
                warnings.warn(
                    f"{store!r} does not build on pocketcore.BaseStore, as a store must "
                    "from the next release",
                    DeprecationWarning,
                    stacklevel=2,
                )
            assert isinstance(store.location, str), "location is not a str"
            assert store.location, "location is empty"
            info = store.info()
            assert info.location == store.location, "info() names another location"
            _assert_counts(store, {})

    @_store_property(_histories())
    def test_get_many_returns_the_last_value_put(self, history: _History) -> None:
        """``get_many`` returns exactly the last value put under each key it is given."""
        held: dict[bytes, bytes] = {}
        with tempfile.TemporaryDirectory() as tmp, self._opened(Path(tmp)) as store:
            for step in history.steps:
                if step[0] == "put":
                    store.put(step[1], step[2], step[3])
                    held[step[1]] = step[2]
                else:
                    _assert_found(store.get_many(step[1]), step[1], held)
            _assert_found(store.get_many(history.pool), history.pool, held)

    @_store_property(node_variants(), cap=10)
    def test_a_result_is_reused_only_by_its_node(
        self, variants: tuple[NodeSpec, list[NodeSpec]]
    ) -> None:
        """Through runs with this store as their cache, a result is reused by its node alone.

        A node runs, then another: the second is served the first's result
        exactly when nothing that can change it differs (the class's code, an
        instance attribute, ``params``, ``cache_version``, the input, the
        program), however its module was imported.
        """
        first, others = variants
        for second in others:
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "store").mkdir()
                with self._opened(Path(tmp) / "store") as store:
                    hit = reuses(first, second, store, Path(tmp) / "programs")
            assert hit == (first.identity() == second.identity()), (
                f"{second} {'was' if hit else 'was not'} served the result of {first}"
            )

    @_store_property(KEYS, st.lists(st.tuples(VALUES, NODES), min_size=2, max_size=5))
    def test_put_replaces_the_value(self, key: bytes, puts: list[tuple[bytes, str]]) -> None:
        """Each ``put`` under one key replaces the value (and node class) before it."""
        with tempfile.TemporaryDirectory() as tmp, self._opened(Path(tmp)) as store:
            for value, node in puts:
                store.put(key, value, node)
                _assert_found(store.get_many([key]), [key], {key: value})
                _assert_counts(store, {node: 1})

    @_store_property(_labelled_histories(), st.randoms())
    def test_put_many_is_each_put_in_turn(self, history: _History, rnd: random.Random) -> None:
        """``put_many`` stores its entries as ``put`` would, one after the other."""
        with tempfile.TemporaryDirectory() as tmp, self._opened(Path(tmp)) as store:
            # As the kernel writes to it; test_is_a_store warns of an undeclared store.
            put_many = declared_store(store, warn=False).put_many
            puts = [step[1:] for step in history.steps if step[0] == "put"]
            while puts:
                size = rnd.randint(1, len(puts))
                put_many(puts[:size])
                puts = puts[size:]
            held = history.model()
            _assert_found(store.get_many(history.pool), history.pool, _values(held))
            _assert_counts(store, Counter(node for _, node in held.values()))

    @_store_property(st.integers(700, 2_100), st.integers(0, 2**32), cap=5)
    def test_get_many_of_thousands_of_keys(self, count: int, seed: int) -> None:
        """One ``get_many`` of thousands of keys, present, absent and repeated, finds each."""
        rnd = random.Random(seed)
        stored = [rnd.randbytes(rnd.randint(1, 40)) for _ in range(count)]
        held = {key: rnd.randbytes(rnd.randint(0, 16)) for key in stored}
        absent = [rnd.randbytes(41) for _ in range(count // 2)]
        asked = stored + absent + rnd.sample(stored, 10)
        rnd.shuffle(asked)
        with tempfile.TemporaryDirectory() as tmp, self._opened(Path(tmp)) as store:
            for key, value in held.items():
                store.put(key, value, "n")
            _assert_found(store.get_many(asked), asked, held)

    @_store_property(_labelled_histories(), NODES, st.randoms())
    def test_info_counts_and_clear_removes(
        self, history: _History, stranger: str, rnd: random.Random
    ) -> None:
        """``info`` counts the entries per node class; ``clear`` removes one class's or all."""
        held = history.model()
        expected = Counter(node for _, node in held.values())
        with tempfile.TemporaryDirectory() as tmp, self._opened(Path(tmp)) as store:
            _replay(store, history)
            _assert_counts(store, expected)
            size = store.info().size
            assert isinstance(size, int), f"info().size is {size!r}, not an int"
            assert size >= 0, f"info().size is {size}"
            # Every node class but one, one at a time (and one that has no
            # entries), then all that is left at once.
            nodes = sorted(set(expected) | {stranger})
            for node in rnd.sample(nodes, len(nodes) - 1):
                gone = store.clear(node)
                assert gone == expected[node], f"clear({node!r}) said {gone}, not {expected[node]}"
                del expected[node]
                _assert_counts(store, expected)
                held = {k: (v, n) for k, (v, n) in held.items() if n != node}
                _assert_found(store.get_many(history.pool), history.pool, _values(held))
            gone, rest = store.clear(), sum(expected.values())
            assert gone == rest, f"clear() said {gone}, not {rest}"
            _assert_counts(store, {})
            _assert_found(store.get_many(history.pool), history.pool, {})

    @_store_property(
        st.lists(KEYS, min_size=1, max_size=6, unique=True),
        st.integers(2, 4),
        st.integers(1, 15),
        st.lists(st.integers(0, 20_000), min_size=1, max_size=4),
    )
    def test_threads_leave_whole_values(
        self, keys: list[bytes], writers: int, rounds: int, sizes: list[int]
    ) -> None:
        """Threads writing the same keys while another reads: every value whole, none mixed."""
        plan = WritePlan(tuple(keys), writers, rounds, tuple(sizes))
        with tempfile.TemporaryDirectory() as tmp, self._opened(Path(tmp)) as store:
            problems = _run_threads(store, plan)
            assert not problems, "values read back while threads wrote:\n" + "\n".join(problems)
            plan.check_final(store.get_many(plan.keys))

    @_store_property(_histories(), needs="persistent")
    def test_reopened_store_has_every_value(self, history: _History) -> None:
        """A store closed and opened again on its directory holds what was put."""
        held = history.model()
        with tempfile.TemporaryDirectory() as tmp:
            with self._opened(Path(tmp)) as store:
                _replay(store, history)
            with self._opened(Path(tmp)) as store:
                found = store.get_many(history.pool)
                _assert_found(found, history.pool, _values(held))
                _assert_counts(store, Counter(node for _, node in held.values()))

    @_store_property(
        st.lists(KEYS, min_size=1, max_size=6, unique=True),
        st.integers(5, 30),
        st.lists(st.integers(0, 30_000), min_size=1, max_size=4),
        needs="shared",
        processes=True,
    )
    def test_processes_leave_whole_values(
        self, keys: list[bytes], rounds: int, sizes: list[int]
    ) -> None:
        """Two processes writing the same keys at once: every value whole, the last of one."""
        plan = WritePlan(tuple(keys), 2, rounds, tuple(sizes))
        job = {"kind": "write", "plan": plan.to_json()}
        with tempfile.TemporaryDirectory() as tmp, children() as kids:
            directory = Path(tmp, "store")
            directory.mkdir()
            # Opened before the writers start: it must see what they write.
            with self._opened(directory) as store:
                procs = [kids.start(type(self), directory, {**job, "writer": w}) for w in (1, 2)]
                for w, proc in enumerate(procs, 1):
                    await_ready(proc, f"writer {w}")
                for proc in procs:
                    assert proc.stdin is not None
                    proc.stdin.write(b"go\n")
                    proc.stdin.flush()
                for w, proc in enumerate(procs, 1):
                    finish(proc, f"writer {w}")
                plan.check_final(store.get_many(plan.keys))
            with self._opened(directory) as store:
                plan.check_final(store.get_many(plan.keys))

    @_store_property(
        st.lists(KEYS, min_size=1, max_size=4, unique=True),
        # Large values, so that the kill lands in a put more often than not.
        st.lists(st.integers(200_000, 2_000_000), min_size=1, max_size=3),
        st.integers(1, 25),
        st.sampled_from([0.0005, 0.001, 0.002, 0.004]),
        needs="persistent",
        processes=True,
    )
    def test_killed_writer_leaves_whole_values(
        self, keys: list[bytes], sizes: list[int], reports: int, delay: float
    ) -> None:
        """A process killed while it writes: values whole, returned puts kept, no strangers."""
        plan = KillPlan(tuple(keys), tuple(sizes))
        with tempfile.TemporaryDirectory() as tmp, children() as kids:
            directory = Path(tmp, "store")
            directory.mkdir()
            report = Path(tmp, "returned")
            report.touch()
            with self._opened(directory) as store:
                for key in plan.keys:
                    store.put(key, stamp(key, 0, 0, 100), "before")
            job = {"kind": "kill", "plan": plan.to_json(), "report": str(report)}
            proc = kids.start(type(self), directory, job)
            await_put(proc, report, reports)
            time.sleep(delay)
            kids.kill_all()
            proc.wait()
            with self._opened(directory) as store:
                plan.check(store.get_many(plan.keys), reported_puts(report))


def _check_declarations(cls: type[StoreConformance]) -> None:
    for name in ("persistent", "shared"):
        if not isinstance(getattr(cls, name, None), bool):
            raise TypeError(
                f"{cls.__qualname__} must set {name} = True or False (see StoreConformance)"
            )
    if cls.shared and not cls.persistent:
        raise TypeError(f"{cls.__qualname__}: a shared store must be persistent")


def _defines_own(cls: type, name: str) -> bool:
    """Whether ``name`` is a test the class (or a base below the suite) wrote itself."""
    for klass in cls.__mro__:
        if name in vars(klass):
            value = vars(klass)[name]
            return value is not _PROPERTIES[name].body and value not in _GENERATED
    return False


def _skipped(prop: _Property) -> Callable[[StoreConformance], None]:
    def test(self: StoreConformance) -> None:
        pytest.skip(f"the store does not claim to be {prop.needs}")

    test.__name__ = prop.body.__name__
    test.__doc__ = prop.body.__doc__
    return test


def _replay(store: Store, history: _History) -> None:
    for step in history.steps:
        if step[0] == "put":
            store.put(step[1], step[2], step[3])


def _assert_counts(store: Store, expected: Mapping[str, int]) -> None:
    """``info().entries`` is ``expected`` (a node class may be listed with 0)."""
    counts = {node: count for node, count in store.info().entries.items() if count}
    assert counts == dict(expected), f"info().entries is {counts}, not {dict(expected)}"


def _assert_found(
    found: Mapping[bytes, bytes], asked: Sequence[bytes], held: Mapping[bytes, bytes]
) -> None:
    expected = {key: held[key] for key in asked if key in held}
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    assert not missing, f"get_many of {len(asked)} keys missed {len(missing)}: {missing[:3]}..."
    assert not extra, (
        f"get_many of {len(asked)} keys found {len(extra)} that hold none: {extra[:3]}..."
    )
    for key, value in expected.items():
        got = found[key]
        assert isinstance(got, bytes), f"get_many returned {type(got).__name__}, not bytes"
        assert got == value, f"key {key!r}: {len(got)} bytes, not the {len(value)} put last"


def _run_threads(store: Store, plan: WritePlan) -> list[str]:
    """Run the plan's writers on threads, with a reader; return the damage seen."""
    problems: list[str] = []
    start = threading.Barrier(plan.writers + 1)
    done = threading.Event()

    def writer(number: int) -> None:
        start.wait()
        problems.extend(plan.write(store, number))

    def reader() -> None:
        start.wait()
        while not done.is_set():
            problems.extend(damaged(store.get_many(plan.keys)))

    def guarded(body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except BaseException as exc:  # reported as the property's failure
                problems.append(f"{type(exc).__name__}: {exc}")
                start.abort()

        return run

    writers = [
        threading.Thread(target=guarded(functools.partial(writer, n)), daemon=True)
        for n in range(1, plan.writers + 1)
    ]
    watcher = threading.Thread(target=guarded(reader), daemon=True)
    for thread in (*writers, watcher):
        thread.start()
    deadline = time.monotonic() + _THREAD_TIMEOUT
    for thread in writers:
        thread.join(max(0.0, deadline - time.monotonic()))
    done.set()
    watcher.join(max(0.0, deadline - time.monotonic()))
    hung = sum(thread.is_alive() for thread in (*writers, watcher))
    assert not hung, f"{hung} threads still in the store after {_THREAD_TIMEOUT} s"
    return problems
