"""The ``sqlite`` store: the result cache in one SQLite file, with the standard ``sqlite3``.

Durability. The file is in ``journal_mode=WAL`` with ``synchronous=NORMAL``.
Every ``put`` (and every ``put_many``, which the kernel uses for results
that finish together) is a committed transaction, so once it returns the
values are in the WAL file in the OS page cache and survive SIGKILL of the
process; power loss / OS crash may lose the transactions since the last
checkpoint fsync but never corrupts the database. (``synchronous=FULL``
would fsync the WAL on every commit, a disk flush per finished item, to
keep the last moments through a power cut; for a cache, whose worst loss is
to compute those items again, NORMAL is the right trade.)

Checkpoints. SQLite copies the WAL into the database file now and then (a
checkpoint), with an fsync before and after. Left to itself it does so in
the ``put`` that fills the WAL past 1000 pages, which then takes
milliseconds instead of microseconds, on the event loop's thread. A store
runs its checkpoints on a thread of its own instead, with a connection of
its own (started at the first one), each after about
:data:`CHECKPOINT_BYTES` were put: a ``PASSIVE`` checkpoint, which never
makes a writer wait. The connection that puts checkpoints itself only past
ten times that, should the thread fall behind.

Concurrency. Several processes may use one file at once: WAL lets readers
go on while one process writes, and a busy timeout of
:data:`BUSY_TIMEOUT` seconds makes a writer wait for another's transaction
(each lasts microseconds) instead of failing. Within a process a store has
one connection, used under a lock (``sqlite3`` lets other threads run
while SQLite works). A connection per thread would still write one at a
time, through the file's write lock, and each would drop its page cache
whenever another wrote; measured, with four to eight threads putting at
once, it was no faster, and slower with one. A fork waits until none of
a store's threads is inside SQLite (a child would inherit SQLite's mutexes
held, for good); the child opens a connection of its own on its first
use, and never touches the inherited one, as SQLite requires.

The file. A table ``entries (key BLOB PRIMARY KEY, value BLOB, node TEXT)``,
the ``application_id`` :data:`APPLICATION_ID` and the ``user_version``
:data:`SCHEMA_VERSION`. It is a rowid table, not a ``WITHOUT ROWID`` one:
such a table keeps whole rows in its b-tree's inner pages, so values of a
few kilobytes (a pickled summary) made each lookup several times slower.
There is no index on ``node``: it would cost every ``put`` one more page
written, to speed up ``info`` and ``clear``, which the command line runs
rarely and which scan the table in well under a second for a hundred
thousand entries. A new file is created readable and writable by its
owner only (SQLite gives the ``-wal`` and ``-shm`` files the same mode).

Damage. Opening a file reads its header and schema, then walks both of its
b-trees (the table's and its key's index), every page of them, so that a
damaged page there is a :class:`~pocketcore.ConfigError` before any node
runs. The walk does not read the values' overflow pages: its cost follows
the number of entries, not their size (about 40 ms for a 1 GB file of
10,700 values of 100 kB, read cold; ``PRAGMA quick_check``, which reads
every page, took 1.5 to 2 s). A value damaged in its own pages is caught by
the kernel's checksum of each value, as a miss.
"""

from __future__ import annotations

import functools
import os
import pathlib
import sqlite3
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Final, final

from pocketcore._core.errors import ConfigError, EntryNotStored
from pocketcore._core.store import BaseStore, StoreInfo

from ._fork import on_fork

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT",
    "CHECKPOINT_BYTES",
    "SCHEMA_VERSION",
    "SqliteStore",
    "open_sqlite",
]

#: The version of the file's layout, kept in ``PRAGMA user_version``. A file
#: with a greater one was written by a newer pocketcore and is not opened.
SCHEMA_VERSION: Final = 1
#: ``PRAGMA application_id`` of a pocketcore cache (the bytes ``pcrc``): a
#: database of another program is never written to, nor made a cache.
APPLICATION_ID: Final = 0x70637263
#: Seconds a connection waits for another process's write to finish.
BUSY_TIMEOUT: Final = 30.0
#: Bytes put between two background checkpoints: about SQLite's own 1000 pages.
CHECKPOINT_BYTES: Final = 4 << 20
#: Pages of WAL past which the putting connection checkpoints itself.
_FALLBACK_CHECKPOINT_PAGES: Final = 10 * CHECKPOINT_BYTES // 4096
#: What a row holds besides its value, at most: the key, the node class, headers.
_ROW_MARGIN: Final = 64 << 10
#: The walk of both b-trees (see "Damage" above): ``count(*)`` visits every
#: page of the tree it scans, and reads no value.
_WALK: Final = (
    "SELECT count(*) FROM entries NOT INDEXED",
    "SELECT count(*) FROM entries INDEXED BY sqlite_autoindex_entries_1",
)
#: Keys per ``SELECT``: below SQLite's limit on a statement's parameters,
#: which is 999 in versions before 3.32.
_CHUNK: Final = 500
#: What a file holds, as :func:`_read_state` sees it.
_State = tuple[int, int, frozenset[str]]
_EMPTY: Final[_State] = (0, 0, frozenset())
_SCHEMA: Final = (
    "CREATE TABLE entries (key BLOB PRIMARY KEY, value BLOB NOT NULL, node TEXT NOT NULL)",
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_PUT: Final = "INSERT OR REPLACE INTO entries (key, value, node) VALUES (?, ?, ?)"
_FORMS: Final = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, or a bare path such as cache.db"
)
#: Connections a forked child inherited: kept, never closed or used, since
#: closing one in the child could undo the parent's locks or files.
_INHERITED: list[sqlite3.Connection] = []


@final
class SqliteStore(BaseStore):
    """A result cache in the SQLite file at ``path``, created if it is missing.

    Safe to share between threads, and between processes that open the
    same file (see the module's docstring for the guarantees and why).

    Raises:
        ConfigError: When the file cannot be opened as a cache, at once and
            naming it: its directory is missing, it is a directory, it is
            not readable and writable, it is not an SQLite database (or it
            is damaged: its header, schema or b-trees), it is another
            program's database, or it was written by a newer pocketcore.
    """

    location: str

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.location = os.fspath(path)
        # Every later connection opens this, wherever the working directory went.
        self._file = os.path.abspath(self.location)
        _create(self.location)
        self._lock = threading.Lock()
        self._closed = False
        self._con: sqlite3.Connection | None = _connect(self._file, self.location)
        # SQLite refuses a longer string or blob ("string or blob too big").
        self.max_value = _length_limit(self._con) - _ROW_MARGIN
        self._checkpointer: _Checkpointer | None = None
        self._unchecked = 0  # bytes put since the last checkpoint was asked for
        self._held_for_fork: _Checkpointer | None = None
        on_fork(
            before=self._hold_for_fork,
            after_in_parent=self._release_after_fork,
            after_in_child=self._forget_connection,
        )

    def __repr__(self) -> str:
        return f"SqliteStore({self.location!r})"

    def get_many(self, keys: Sequence[bytes]) -> Mapping[bytes, bytes]:
        """The stored values of those of ``keys`` that have one, a ``SELECT`` per 500 keys.

        A value whose pages SQLite finds damaged is given as ``b""``, which
        the kernel's checksum refuses: a miss, not a failed run.
        """
        if not keys:
            return {}
        with self._lock:
            con = self._con or self._reconnect()
            found: dict[bytes, bytes] = {}
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                try:
                    found.update(con.execute(_select(len(chunk)), chunk).fetchall())
                except sqlite3.DatabaseError as exc:
                    if not _damaged(exc):
                        raise
                    found.update(_one_by_one(con, chunk))
            return found

    def put(self, key: bytes, value: bytes, node: str) -> None:
        """Store ``value`` under ``key`` (for node class ``node``), committed when this returns.

        Raises:
            EntryNotStored: The value is too large for SQLite, or the entry it
                replaces lies in damaged pages.
        """
        with self._lock:
            con = self._con or self._reconnect()
            try:
                con.execute(_PUT, (key, value, node))
            except sqlite3.DatabaseError as exc:
                raise _not_stored(exc, self.location) from exc
            self._written(len(key) + len(value))

    def put_many(self, entries: Sequence[tuple[bytes, bytes, str]]) -> None:
        """Store each ``(key, value, node)`` as :meth:`put` would, in one committed transaction.

        A commit costs about 20 µs, most of it system calls, whatever it
        holds: results that finish together are cheaper written together.
        """
        with self._lock:
            con = self._con or self._reconnect()
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany(_PUT, entries)
                con.execute("COMMIT")
            except BaseException as exc:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                if isinstance(exc, sqlite3.DatabaseError):
                    raise _not_stored(exc, self.location) from exc
                raise
            self._written(sum(len(key) + len(value) for key, value, _ in entries))

    def _written(self, size: int) -> None:
        # Called with the lock held, after a commit of ``size`` bytes.
        self._unchecked += size
        if self._unchecked >= CHECKPOINT_BYTES:
            self._unchecked = 0
            if self._checkpointer is None:
                self._checkpointer = _Checkpointer(self._file)
            self._checkpointer.wake()

    def info(self) -> StoreInfo:
        """The entries per node class, and the size of the file and its WAL file."""
        with self._lock:
            con = self._con or self._reconnect()
            rows = con.execute("SELECT node, count(*) FROM entries GROUP BY node").fetchall()
        size = sum(_file_size(p) for p in (self._file, self._file + "-wal"))
        return StoreInfo(location=self.location, entries=dict(rows), size=size)

    def clear(self, node: str | None = None) -> int:
        """Remove every entry, or those of node class ``node``; return how many went."""
        with self._lock:
            con = self._con or self._reconnect()
            if node is None:
                return con.execute("DELETE FROM entries").rowcount
            return con.execute("DELETE FROM entries WHERE node = ?", (node,)).rowcount

    def close(self) -> None:
        """Close the connections (and stop the checkpoints); calling it again does nothing."""
        with self._lock:
            self._closed = True
            con, self._con = self._con, None
            checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        if con is not None:
            con.close()

    def _reconnect(self) -> sqlite3.Connection:
        # Called with the lock held, in a forked child (or after close).
        if self._closed:
            raise sqlite3.ProgrammingError(f"the cache {self.location} is closed")
        self._con = _connect(self._file, self.location)
        return self._con

    def _hold_for_fork(self) -> None:
        # No thread of this store is in SQLite while the process forks: the
        # child would inherit the mutexes it holds, held for good.
        self._lock.acquire()
        self._held_for_fork = self._checkpointer
        if self._held_for_fork is not None:
            self._held_for_fork.busy.acquire()

    def _release_after_fork(self) -> None:
        if self._held_for_fork is not None:
            self._held_for_fork.busy.release()
            self._held_for_fork = None
        self._lock.release()

    def _forget_connection(self) -> None:
        # In a forked child, before anything else runs. The locks held for
        # the fork stay held here: new ones replace them.
        self._lock = threading.Lock()
        self._held_for_fork = None
        if self._con is not None:
            _INHERITED.append(self._con)
            self._con = None
        # Its thread is the parent's; its connection is left with the thread's frame.
        self._checkpointer = None


class _Checkpointer:
    """A thread that checkpoints the WAL of the cache file at ``path`` each time it is woken."""

    def __init__(self, path: str) -> None:
        self._uri = _uri(path)
        self._wake = threading.Event()
        self._stopping = False
        #: Held while the thread is in SQLite (so that a fork can wait for it).
        self.busy = threading.Lock()
        self.runs = 0  # checkpoints made, for tests
        self._thread = threading.Thread(
            target=self._run, name=f"pocketcore checkpoints of {path}", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        """Ask for a checkpoint (one runs, however often it is asked for while it waits)."""
        self._wake.set()

    def stop(self) -> None:
        """Let a running checkpoint finish, and end the thread."""
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        # Every call into SQLite holds `busy`, so a fork can wait for it.
        with self.busy:
            con = self._connect()
        if con is None:
            return  # the putting connection's own checkpoints take over
        try:
            while self._woken():
                with self.busy:
                    # PASSIVE never waits for a reader or writer; what it
                    # could not copy this time, it copies the next.
                    con.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self.runs += 1
        except sqlite3.Error:
            pass  # likewise: the file went away, say; puts will say so
        finally:
            with self.busy:
                con.close()

    def _connect(self) -> sqlite3.Connection | None:
        try:
            con = sqlite3.connect(self._uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)
        except sqlite3.Error:
            return None
        # The checkpointing connection decides the fsyncs of a checkpoint.
        con.execute("PRAGMA synchronous = NORMAL")
        return con

    def _woken(self) -> bool:
        """Wait to be woken; whether to checkpoint (rather than stop)."""
        self._wake.wait()
        self._wake.clear()
        return not self._stopping


def open_sqlite(rest: str) -> SqliteStore:
    """Open the ``sqlite`` store that a cache specification names.

    ``rest`` is a bare path (``cache.db``, ``~/caches/x.db``) or what follows
    ``sqlite:`` in a URL, as SQLAlchemy writes them: ``///relative.db`` for
    ``sqlite:///relative.db`` and ``////abs/x.db`` for ``sqlite:////abs/x.db``.
    A leading ``~`` is expanded.

    Raises:
        ConfigError: For an empty path, a URL with a host (``sqlite://host/x.db``),
            ``:memory:`` (that is the ``memory`` store), or a file that
            :class:`SqliteStore` cannot open.
    """
    if rest.startswith("///"):
        path = rest[3:]
    elif rest.startswith("//"):
        raise ConfigError(f"the cache sqlite:{rest} names a host; write it as {_FORMS}")
    else:
        path = rest
    if not path:
        raise ConfigError(f"the sqlite cache needs a file: {_FORMS}")
    if path == ":memory:":
        raise ConfigError("an SQLite cache in memory is the 'memory' cache: write cache='memory'")
    return SqliteStore(os.path.expanduser(path))


def _create(path: str) -> None:
    """Create the file at ``path``, readable and writable by its owner only, unless it exists."""
    if os.path.isdir(path):
        raise ConfigError(f"the cache file {path} is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigError(
            f"cannot create the cache file {path}: the directory {directory} does not exist"
        )
    try:
        # Made here rather than by SQLite, which would give it the umask's
        # mode (readable by everyone, usually). A cache holds pickles, and
        # loading one runs code: only its owner may write it, and what the
        # program computed is no one else's to read.
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot create the cache file {path}: {exc.strerror}") from None
    os.close(fd)


def _connect(path: str, name: str) -> sqlite3.Connection:
    """A connection to the cache file ``path`` (which exists), checked and ready for use.

    ``name`` is the file as messages name it (the path as it was given).
    """
    if not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(f"cannot open the cache file {name}: it is not readable and writable")
    try:
        con = sqlite3.connect(
            _uri(path),
            uri=True,
            timeout=BUSY_TIMEOUT,
            isolation_level=None,  # autocommit: each put is a transaction
            check_same_thread=False,  # the store's lock serialises its use
        )
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open the cache file {name}: {exc}") from None
    try:
        _prepare(con, name)
    except BaseException:
        con.close()
        raise
    return con


def _prepare(con: sqlite3.Connection, path: str) -> None:
    """Read the file (so a file that is not a cache fails here), make it one if it is empty."""
    try:
        state = _read_state(con)
        if state == _EMPTY:
            _initialise(con)
            state = _read_state(con)
        _check(state, path)
        _walk(con, path)
        # Both after the check: another program's database is left as it was.
        # journal_mode is kept in the file; synchronous is the connection's.
        _to_wal(con)
        con.execute("PRAGMA synchronous = NORMAL")
        con.execute(f"PRAGMA wal_autocheckpoint = {_FALLBACK_CHECKPOINT_PAGES}")
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open the cache file {path}: {exc}") from None


def _not_stored(exc: sqlite3.DatabaseError, location: str) -> Exception:
    """What a failed write raises: :class:`EntryNotStored` for one entry's fault, else ``exc``."""
    if isinstance(exc, sqlite3.DataError) or "too big" in str(exc):
        return EntryNotStored(f"{location}: the value is too large for SQLite ({exc})")
    if _damaged(exc):
        return EntryNotStored(f"{location}: the entry lies in damaged pages ({exc})")
    return exc


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    """Whether ``exc`` says the file is damaged (not busy, not an I/O error)."""
    return not isinstance(exc, sqlite3.OperationalError) and "malformed" in str(exc)


def _one_by_one(con: sqlite3.Connection, keys: Sequence[bytes]) -> dict[bytes, bytes]:
    """The values of ``keys`` read one at a time, ``b""`` for those whose pages are damaged."""
    found = {}
    for key in keys:
        try:
            row = con.execute(_select(1), (key,)).fetchone()
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):
                raise
            found[key] = b""
            continue
        if row is not None:
            found[key] = row[1]
    return found


def _length_limit(con: sqlite3.Connection) -> int:
    """The most bytes of a string or blob the connection accepts."""
    if sys.version_info >= (3, 11):
        return con.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
    return 1_000_000_000  # SQLite's default, which Python's builds keep


def _walk(con: sqlite3.Connection, path: str) -> None:
    """Read every page of the file's b-trees; raise if one is damaged."""
    try:
        for statement in _WALK:
            con.execute(statement).fetchone()
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise  # not damage: another process holds the file
        raise ConfigError(
            f"the cache file {path} is damaged ({exc}): delete it (and its -wal and -shm "
            "files); its results are computed again"
        ) from None


def _uri(path: str) -> str:
    """The URI that opens the existing file ``path`` for reading and writing.

    ``mode=rw``: if the file went away since :func:`_create`, fail rather
    than let SQLite make one with the umask's mode.
    """
    return pathlib.Path(os.path.abspath(path)).as_uri() + "?mode=rw"


def _read_state(con: sqlite3.Connection) -> _State:
    """The file's application id, schema version and tables (reading its header and schema).

    Read in one transaction: three reads of their own could straddle another
    process making a new file a cache, and see its table but not its id.
    """
    own = not con.in_transaction  # _initialise reads inside its own
    if own:
        con.execute("BEGIN")
    try:
        (application,) = con.execute("PRAGMA application_id").fetchone()
        (version,) = con.execute("PRAGMA user_version").fetchone()
        # SQLite's own objects (the primary key's index) are not the file's content.
        rows = con.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite%'")
        names = frozenset(row[0] for row in rows)
    finally:
        if own:
            con.execute("COMMIT")
    return application, version, names


def _to_wal(con: sqlite3.Connection) -> None:
    """Put the file in WAL mode, waiting up to the busy timeout for others to let it.

    SQLite refuses a change of journal mode that another connection's lock
    holds up at once ("database is locked"), without calling its busy
    handler: two processes opening a new file together would see one fail.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        refused = _try_wal(con)
        if refused is None:
            return
        if "locked" not in str(refused) or time.monotonic() >= deadline:
            raise refused
        time.sleep(0.005)


def _try_wal(con: sqlite3.Connection) -> sqlite3.OperationalError | None:
    """Ask for WAL mode once; what SQLite answered, if it refused."""
    try:
        con.execute("PRAGMA journal_mode = WAL")
    except sqlite3.OperationalError as exc:
        return exc
    return None


def _initialise(con: sqlite3.Connection) -> None:
    """Make an empty database a cache, unless another process did it first."""
    # IMMEDIATE takes the write lock at once, so two processes opening a new
    # file together make its table once.
    con.execute("BEGIN IMMEDIATE")
    try:
        if _read_state(con) == _EMPTY:
            for statement in _SCHEMA:
                con.execute(statement)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _check(state: _State, path: str) -> None:
    """Raise unless ``state`` is that of a cache this version can use."""
    application, version, names = state
    if application == APPLICATION_ID and version == SCHEMA_VERSION and "entries" in names:
        return
    if application in (0, APPLICATION_ID) and version > SCHEMA_VERSION:
        raise ConfigError(
            f"the cache file {path} was written by a newer pocketcore (cache schema {version}; "
            f"this version reads schema {SCHEMA_VERSION}): upgrade pocketcore, or name another file"
        )
    raise ConfigError(
        f"the file {path} is an SQLite database but not a pocketcore cache: name another file"
    )


@functools.cache
def _select(count: int) -> str:
    """The statement that looks up ``count`` keys (one per count: sqlite3 caches it prepared)."""
    return f"SELECT key, value FROM entries WHERE key IN ({', '.join('?' * count)})"


def _file_size(path: str) -> int:
    """The size of the file at ``path``, or 0 if there is none."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
