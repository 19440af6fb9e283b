"""The built-in stores: the store conformance suite, what opening a cache file refuses, the specs.

The suite's own tests (it rejects stores that break the contract) are at the
end. Their broken stores and suite classes are at module level, not named
``Test*``: the suite's child processes import a suite class by name, and
pytest must not collect a suite that is meant to fail.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import pocketcore
from pocketcore import ConfigError
from pocketcore._core.store import Store, StoreInfo, declared_store
from pocketcore._stores import (
    MemoryStore,
    SqliteStore,
    open_memory,
    open_sqlite,
    pocketcore_register_stores,
)
from pocketcore._stores.sqlite import APPLICATION_ID, CHECKPOINT_BYTES, SCHEMA_VERSION
from pocketcore.testing import StoreConformance

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


class TestSqliteStore(StoreConformance):
    persistent = True
    shared = True

    def open_store(self, directory: Path) -> Store:
        return SqliteStore(directory / "cache.db")


class TestMemoryStore(StoreConformance):
    persistent = False
    shared = False

    def open_store(self, directory: Path) -> Store:
        return MemoryStore()


# --- opening a cache file ---------------------------------------------------------


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "cache.db")
    yield store
    store.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_files_are_the_owners_alone(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, which would make them readable by all
    try:
        store = SqliteStore(tmp_path / "cache.db")
        store.put(b"k", b"v", "n")
        files = sorted(p.name for p in tmp_path.iterdir())
        assert files == ["cache.db", "cache.db-shm", "cache.db-wal"]
        for name in files:
            assert mode(tmp_path / name) == 0o600, name
        store.close()
    finally:
        os.umask(old)


def test_an_existing_files_mode_is_left_alone(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "cache.db").close()
    (tmp_path / "cache.db").chmod(0o640)
    SqliteStore(tmp_path / "cache.db").close()
    assert mode(tmp_path / "cache.db") == 0o640


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"cache file {tmp_path} is a directory"):
        SqliteStore(tmp_path)


def test_a_missing_directory_is_refused_not_made(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "cache.db"
    with pytest.raises(ConfigError, match=f"{path}.*directory {path.parent} does not exist"):
        SqliteStore(path)
    assert not path.parent.exists()


def test_a_file_that_is_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    text = b"not a database, just text\n" * 200
    path.write_bytes(text)
    with pytest.raises(ConfigError, match=f"cache file {path}: file is not a database"):
        SqliteStore(path)
    assert path.read_bytes() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("damage", ["schema page", "header", "cut short"])
def test_a_damaged_cache_is_refused_at_open(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "cache.db"
    store = SqliteStore(path)
    for i in range(50):
        store.put(b"%d" % i, b"x" * 500, "n")
    store.close()  # the last connection: the WAL goes into the file
    data = bytearray(path.read_bytes())
    if damage == "schema page":  # the schema lives in page 1, after the 100-byte header
        data[100:4096] = b"\xa5" * (4096 - 100)
    elif damage == "header":
        data[:16] = b"no longer SQLite"
    else:
        data = data[:1500]
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=f"cannot open the cache file {path}"):
        SqliteStore(path)


def test_another_programs_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE users (name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match=f"{path} is an SQLite database but not a pocketcore"):
        SqliteStore(path)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert con.execute("SELECT name FROM sqlite_master").fetchall() == [("users",)]
    con.close()


@pytest.mark.parametrize("application", [APPLICATION_ID, 0])
def test_a_cache_of_a_newer_schema_is_refused(tmp_path: Path, application: int) -> None:
    path = tmp_path / "cache.db"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA application_id = {application}")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(ConfigError, match=f"{path} was written by a newer pocketcore"):
        SqliteStore(path)


def test_a_cache_records_its_schema(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "cache.db").close()
    con = sqlite3.connect(tmp_path / "cache.db")
    assert con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert con.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    con.close()


def test_a_file_that_is_not_readable_and_writable_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    SqliteStore(tmp_path / "cache.db").close()
    # Root reads any file, so the check itself is what is tested here.
    monkeypatch.setattr(os, "access", lambda path, how: False)
    with pytest.raises(ConfigError, match=r"cache\.db: it is not readable and writable"):
        SqliteStore(tmp_path / "cache.db")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "cache.db").close()
    (tmp_path / "cache.db").chmod(0)
    with pytest.raises(ConfigError, match=r"cache\.db"):
        SqliteStore(tmp_path / "cache.db")


def test_processes_opening_a_new_file_together_make_one_cache(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    code = (
        "import sys; from pocketcore._stores import SqliteStore; "
        "s = SqliteStore(sys.argv[1]); s.put(sys.argv[2].encode(), b'v', 'n'); s.close()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path), str(i)], stderr=subprocess.PIPE)
        for i in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    store = SqliteStore(path)
    assert store.info().entries == {"n": 4}
    store.close()


def _open_together(path: Path, openers: int) -> list[Exception]:
    """Open a store on ``path`` from ``openers`` threads at once; what they raised."""
    barrier = threading.Barrier(openers)
    errors: list[Exception] = []

    def open_it() -> None:
        barrier.wait(timeout=60)
        try:
            SqliteStore(path).close()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def test_openers_of_a_new_file_at_the_same_instant_all_open_it(tmp_path: Path) -> None:
    # Regression: an opener could read the file's header before another made
    # it a cache and its tables after ("not a pocketcore cache"), or have its
    # change to WAL refused at once ("database is locked"); about every other
    # round of four openers failed. Threads meet at a barrier, closer than
    # processes starting can.
    for round_ in range(50):
        errors = _open_together(tmp_path / f"cache-{round_}.db", 4)
        assert not errors, f"round {round_}: {errors}"


def test_info_counts_the_file_and_its_wal(cache: SqliteStore, tmp_path: Path) -> None:
    cache.put(b"k", b"v" * 10_000, "a.B")
    info = cache.info()
    files = (tmp_path / "cache.db", tmp_path / "cache.db-wal")
    assert info == StoreInfo(
        location=str(tmp_path / "cache.db"),
        entries={"a.B": 1},
        size=sum(f.stat().st_size for f in files),
    )
    assert info.size > 10_000


def test_a_closed_store_refuses_calls_and_closes_twice(cache: SqliteStore) -> None:
    cache.close()
    cache.close()
    with pytest.raises(sqlite3.ProgrammingError):
        cache.put(b"k", b"v", "n")


def checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("pocketcore checkpoints")]


def test_checkpoints_run_on_a_thread_of_their_own(cache: SqliteStore) -> None:
    assert not checkpoint_threads()  # none until there is something to copy
    value = b"x" * 100_000
    for i in range(2 * CHECKPOINT_BYTES // len(value) + 1):
        cache.put(b"%d" % i, value, "n")
    (thread,) = checkpoint_threads()
    deadline = time.monotonic() + 10
    while cache._checkpointer is not None and cache._checkpointer.runs < 1:
        assert time.monotonic() < deadline, "no checkpoint ran"
        time.sleep(0.01)
    cache.close()
    assert not thread.is_alive()


def wait_for_child(pid: int, timeout: float = 30.0) -> int:
    """The exit code of forked child ``pid``; a child still running at the timeout is killed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError(f"the forked child hung for {timeout} s (a lock held across the fork?)")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_uses_a_connection_of_its_own(cache: SqliteStore) -> None:
    big = b"x" * CHECKPOINT_BYTES  # so that the parent's checkpoint thread has started
    cache.put(b"parent", big, "n")
    inherited, checkpointer = cache._con, cache._checkpointer
    assert checkpointer is not None
    pid = os.fork()
    if pid == 0:  # the child: exit at once, whatever happens
        code = 1
        try:
            cache.put(b"child", big, "n")
            found = cache.get_many([b"parent", b"child"])
            code = 0 if found == {b"parent": big, b"child": big} else 2
            code = code or (3 if cache._con is inherited else 0)
            code = code or (4 if cache._checkpointer in (None, checkpointer) else 0)
        finally:
            os._exit(code)
    assert wait_for_child(pid) == 0
    assert cache._con is inherited
    assert cache.get_many([b"parent", b"child"]) == {b"parent": big, b"child": big}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_forks_while_threads_are_in_sqlite(cache: SqliteStore) -> None:
    # A writer thread keeps the store and its checkpoint thread busy while
    # the process forks again and again: no child may inherit a lock held.
    stop = threading.Event()
    value = b"x" * 200_000

    def write() -> None:
        i = 0
        while not stop.is_set():
            cache.put(b"w%d" % (i % 50), value, "n")
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for n in range(15):
            time.sleep(0.005)
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    cache.put(b"child", b"%d" % n, "n")
                    code = 0 if cache.get_many([b"child"]) == {b"child": b"%d" % n} else 2
                finally:
                    os._exit(code)
            assert wait_for_child(pid, timeout=20) == 0
    finally:
        stop.set()
        writer.join()


# --- specifications ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rest", "path"),
    [
        ("cache.db", "cache.db"),
        ("///cache.db", "cache.db"),
        ("///sub/cache.db", "sub/cache.db"),
        ("///{tmp}/cache.db", "{tmp}/cache.db"),  # sqlite:////abs/cache.db
        ("{tmp}/cache.db", "{tmp}/cache.db"),
        ("~/cache.db", "{home}/cache.db"),
        ("///~/cache.db", "{home}/cache.db"),
    ],
)
def test_sqlite_spec_forms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rest: str, path: str
) -> None:
    # The working directory is tmp_path (conftest).
    (tmp_path / "sub").mkdir()
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    places = {"tmp": str(tmp_path), "home": str(tmp_path / "home")}
    store = open_sqlite(rest.format(**places))
    assert store.location == path.format(**places)
    assert (tmp_path / store.location).exists()
    store.close()


@pytest.mark.parametrize(
    ("rest", "message"),
    [
        ("//host/cache.db", "sqlite://host/cache.db names a host; write it as sqlite:///"),
        ("//", "names a host"),
        ("", "needs a file: sqlite:///relative/path.db, sqlite:////absolute/path.db"),
        ("///", "needs a file"),
        (":memory:", "the 'memory' cache"),
        ("///:memory:", "the 'memory' cache"),
    ],
)
def test_bad_sqlite_specs(rest: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_sqlite(rest)


def test_memory_spec() -> None:
    store = open_memory("")
    assert isinstance(store, MemoryStore)
    assert store.location == "memory"
    with pytest.raises(ConfigError, match="write 'memory', not 'memory:x'"):
        open_memory("x")


def test_the_plugin_registers_both_stores() -> None:
    registered: list[tuple[str, object]] = []
    pocketcore_register_stores(lambda name, opener: registered.append((name, opener)))
    assert registered == [("sqlite", open_sqlite), ("memory", open_memory)]
    assert hasattr(pocketcore_register_stores, "pocketcore_impl")


def test_memory_store_info_sizes_the_values() -> None:
    store = MemoryStore()
    store.put(b"a", b"12345", "x.A")
    store.put(b"b", b"123", "x.B")
    store.put(b"a", b"12", "x.A")
    assert store.info() == StoreInfo("memory", {"x.A": 1, "x.B": 1}, 5)
    store.close()
    assert store.info().entries == {}


# --- the suite rejects broken stores ------------------------------------------------


class DictStore:
    """A correct store in a dictionary, which the broken ones below bend."""

    location = "dict"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[bytes, tuple[bytes, str]] = {}

    def get_many(self, keys: Sequence[bytes]) -> Mapping[bytes, bytes]:
        with self.lock:
            return {k: self.entries[k][0] for k in keys if k in self.entries}

    def put(self, key: bytes, value: bytes, node: str) -> None:
        with self.lock:
            self.entries[key] = (value, node)

    def info(self) -> StoreInfo:
        with self.lock:
            nodes = Counter(node for _, node in self.entries.values())
        return StoreInfo(self.location, dict(nodes), 0)

    def clear(self, node: str | None = None) -> int:
        with self.lock:
            gone = [k for k, (_, n) in self.entries.items() if node in (None, n)]
            for key in gone:
                del self.entries[key]
        return len(gone)

    def close(self) -> None:
        pass


class DropsEveryOtherPut(DictStore):
    def __init__(self) -> None:
        super().__init__()
        self.puts = 0

    def put(self, key: bytes, value: bytes, node: str) -> None:
        self.puts += 1
        if self.puts % 2:
            super().put(key, value, node)


class KeepsTheFirstValue(DictStore):
    def put(self, key: bytes, value: bytes, node: str) -> None:
        with self.lock:
            self.entries.setdefault(key, (value, node))


class AnswersTheFirst999Keys(DictStore):
    """Chunks a lookup by SQLite's old parameter limit, and forgets the rest."""

    def get_many(self, keys: Sequence[bytes]) -> Mapping[bytes, bytes]:
        return super().get_many(keys[:999])


class ClearsEveryNode(DictStore):
    def clear(self, node: str | None = None) -> int:
        return super().clear(None)


class PutsManyBackwards(DictStore):
    """Writes a put_many's entries last to first: of two values for one key, the first wins."""

    def put_many(self, entries: Sequence[tuple[bytes, bytes, str]]) -> None:
        for entry in reversed(entries):
            self.put(*entry)


class WritesInTwoSteps(DictStore):
    """Stores half a value, then the whole: a reader in between sees half."""

    def put(self, key: bytes, value: bytes, node: str) -> None:
        super().put(key, value[: len(value) // 2], node)
        time.sleep(0.0002)
        super().put(key, value, node)


class FileStore:
    """A file per key in the directory, each written whole (temporary file, then rename).

    The node class of key K is in the file K.node.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.location = str(directory)

    def path(self, key: bytes) -> Path:
        return self.directory / key.hex()

    def get_many(self, keys: Sequence[bytes]) -> Mapping[bytes, bytes]:
        return {k: self.path(k).read_bytes() for k in keys if self.path(k).exists()}

    def put(self, key: bytes, value: bytes, node: str) -> None:
        self.path(key).with_suffix(".node").write_text(node)
        temporary = self.path(key).with_suffix(".tmp")
        temporary.write_bytes(value)
        temporary.replace(self.path(key))

    def info(self) -> StoreInfo:
        nodes = Counter(p.read_text() for p in self.directory.glob("*.node"))
        return StoreInfo(self.location, dict(nodes), 0)

    def clear(self, node: str | None = None) -> int:
        gone = 0
        for path in self.directory.glob("*.node"):
            if node in (None, path.read_text()):
                path.unlink()
                path.with_suffix("").unlink()
                gone += 1
        return gone

    def close(self) -> None:
        pass


class WritesFilesInPlace(FileStore):
    """Truncates the file and writes the value into it in pieces: a kill leaves a piece."""

    def put(self, key: bytes, value: bytes, node: str) -> None:
        self.path(key).with_suffix(".node").write_text(node)
        with self.path(key).open("wb") as f:
            for start in range(0, len(value), 65536):
                time.sleep(0.0002)  # a slow disk
                f.write(value[start : start + 65536])
                f.flush()


class WritesFilesLater(FileStore):
    """Keeps puts in memory and writes them eight at a time: a kill loses the last ones."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.pending: dict[bytes, tuple[bytes, str]] = {}

    def get_many(self, keys: Sequence[bytes]) -> Mapping[bytes, bytes]:
        found = dict(super().get_many(keys))
        found.update((k, self.pending[k][0]) for k in keys if k in self.pending)
        return found

    def put(self, key: bytes, value: bytes, node: str) -> None:
        self.pending[key] = (value, node)
        if len(self.pending) >= 8:
            self.close()

    def close(self) -> None:
        for key, (value, node) in self.pending.items():
            super().put(key, value, node)
        self.pending.clear()


def _suite(
    name: str, store: type, persistent: bool = False, shared: bool = False, kills: int = 3
) -> type:
    """The suite class ``name`` for ``store``: assigned to that name at module level,
    so that the suite's children can import it."""

    def open_store(self: object, directory: Path) -> Store:
        made: Store = store(directory) if issubclass(store, FileStore) else store()
        return made

    return type(
        name,
        (StoreConformance,),
        {
            "persistent": persistent,
            "shared": shared,
            "process_examples": kills,
            "open_store": open_store,
        },
    )


DropsEveryOtherPutSuite = _suite("DropsEveryOtherPutSuite", DropsEveryOtherPut)
KeepsTheFirstValueSuite = _suite("KeepsTheFirstValueSuite", KeepsTheFirstValue)
AnswersTheFirst999KeysSuite = _suite("AnswersTheFirst999KeysSuite", AnswersTheFirst999Keys)
ClearsEveryNodeSuite = _suite("ClearsEveryNodeSuite", ClearsEveryNode)
WritesInTwoStepsSuite = _suite("WritesInTwoStepsSuite", WritesInTwoSteps)
PutsManyBackwardsSuite = _suite("PutsManyBackwardsSuite", PutsManyBackwards)
# A store private to its process, claiming to keep its entries or to share them.
ForgetfulSuite = _suite("ForgetfulSuite", DictStore, persistent=True)
UnsharedSuite = _suite("UnsharedSuite", DictStore, persistent=True, shared=True)
# A kill misses a put now and then: more of them, so that one hits.
WritesFilesInPlaceSuite = _suite(
    "WritesFilesInPlaceSuite", WritesFilesInPlace, persistent=True, kills=8
)
WritesFilesLaterSuite = _suite("WritesFilesLaterSuite", WritesFilesLater, persistent=True, kills=8)

CASES = [
    (DropsEveryOtherPutSuite, "test_get_many_returns_the_last_value_put"),
    (KeepsTheFirstValueSuite, "test_put_replaces_the_value"),
    (AnswersTheFirst999KeysSuite, "test_get_many_of_thousands_of_keys"),
    (ClearsEveryNodeSuite, "test_info_counts_and_clear_removes"),
    (WritesInTwoStepsSuite, "test_threads_leave_whole_values"),
    (PutsManyBackwardsSuite, "test_put_many_is_each_put_in_turn"),
    (ForgetfulSuite, "test_reopened_store_has_every_value"),
    (UnsharedSuite, "test_processes_leave_whole_values"),
    (WritesFilesInPlaceSuite, "test_killed_writer_leaves_whole_values"),
    (WritesFilesLaterSuite, "test_killed_writer_leaves_whole_values"),
]


@pytest.mark.parametrize(("suite", "test_name"), CASES, ids=[s.__name__ for s, _ in CASES])
def test_the_suite_rejects_a_broken_store(suite: type, test_name: str) -> None:
    with pytest.raises((AssertionError, BaseExceptionGroup)):
        getattr(suite(), test_name)()


@pytest.mark.parametrize("suite", [WritesFilesInPlaceSuite, WritesFilesLaterSuite])
def test_the_broken_file_stores_pass_what_they_do_not_break(suite: type) -> None:
    # So each fails its property for the breakage, not for the way it is built.
    suite().test_get_many_returns_the_last_value_put()
    suite().test_reopened_store_has_every_value()


def test_a_suite_declares_what_its_store_claims() -> None:
    with pytest.raises(TypeError, match="must set persistent = True or False"):
        type("Undeclared", (StoreConformance,), {})
    with pytest.raises(TypeError, match="a shared store must be persistent"):
        type("Odd", (StoreConformance,), {"persistent": False, "shared": True})


def test_a_suite_class_made_in_a_function_cannot_run_children() -> None:
    class Local(StoreConformance):
        persistent = True
        shared = False

        def open_store(self, directory: Path) -> Store:
            return SqliteStore(directory / "cache.db")

    with pytest.raises(TypeError, match="define it at module level"):
        Local().test_killed_writer_leaves_whole_values()


# --- stores built on BaseStore, and stores of the earlier protocol -------------------


class Tenfold(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: Any) -> Any:
        return shared["items"]

    async def exec_async(self, item: int) -> int:
        return item * 10

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


def test_the_built_in_stores_build_on_the_base() -> None:
    assert issubclass(SqliteStore, pocketcore.BaseStore)
    assert issubclass(MemoryStore, pocketcore.BaseStore)
    store = MemoryStore()
    assert declared_store(store) is store


def test_the_bases_put_many_puts_each_entry_in_turn() -> None:
    class Counting(DictStore, pocketcore.BaseStore):
        puts: list[bytes]

        def put(self, key: bytes, value: bytes, node: str) -> None:
            self.puts.append(key)
            super().put(key, value, node)

    store = Counting()
    store.puts = []
    store.put_many([(b"a", b"1", "n"), (b"b", b"2", "n"), (b"a", b"3", "n")])
    assert store.puts == [b"a", b"b", b"a"]
    assert store.get_many([b"a", b"b"]) == {b"a": b"3", b"b": b"2"}


def test_a_store_of_the_earlier_protocol_works_and_is_warned_about_once() -> None:
    class Undeclared(DictStore):
        pass

    store = Undeclared()
    shared: dict[str, Any] = {"items": list(range(8))}
    with pytest.warns(DeprecationWarning, match=r"Undeclared does not build on pocketcore\.Base"):
        pocketcore.run(Tenfold(), shared, cache=store, executor="asyncio")
    assert shared["out"] == [x * 10 for x in range(8)]
    assert len(store.entries) == 8 + 1  # each item's, and the whole batch's
    # Once per class: a second run, and another store of the class, are not warned about.
    shared = {"items": list(range(10))}
    pocketcore.run(Tenfold(), shared, cache=Undeclared(), executor="trio")
    assert shared["out"] == [x * 10 for x in range(10)]


def test_a_store_of_the_earlier_protocol_keeps_its_own_put_many() -> None:
    class UndeclaredMany(DictStore):
        sizes: list[int]

        def put_many(self, entries: Sequence[tuple[bytes, bytes, str]]) -> None:
            self.sizes.append(len(entries))
            for entry in entries:
                self.put(*entry)

    store = UndeclaredMany()
    store.sizes = []
    adapted = declared_store(store, warn=False)
    assert isinstance(adapted, pocketcore.BaseStore)
    assert adapted.location == store.location
    adapted.put_many([(b"a", b"1", "n"), (b"b", b"2", "n")])
    assert store.sizes == [2]
    assert adapted.get_many([b"a", b"b", b"c"]) == {b"a": b"1", b"b": b"2"}


class UndeclaredSuite(StoreConformance):
    persistent = False
    shared = False

    def open_store(self, directory: Path) -> Store:
        return DictStore()


def test_the_suite_passes_a_store_of_the_earlier_protocol_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="does not build on pocketcore.BaseStore"):
        UndeclaredSuite().test_is_a_store()
    UndeclaredSuite().test_put_many_is_each_put_in_turn()
