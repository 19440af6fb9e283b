"""A damaged SQLite cache file, and results the store cannot hold, as a run meets them.

The files are real SQLite caches written by a run, then damaged on disk:
pages of their b-trees zeroed (found when the file is opened, before any
node runs), or a page of one stored value zeroed (a miss for that value,
and the run goes on). A result too large for SQLite, and params that do
not pickle, are skipped with a ``CacheWarning``; the run goes on.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import pocketcore
from pocketcore import CacheWarning, ConfigError
from pocketcore._runtime.stores import close_stores, open_store

PAGE = 4096
#: How many times each item's exec ran, by node class and item.
ran: Counter[tuple[str, Any]] = Counter()


@pytest.fixture(autouse=True)
def _fresh() -> Any:
    ran.clear()
    yield
    close_stores()


class Square(pocketcore.BatchNode):
    def prep(self, shared: Any) -> Any:
        return shared["items"]

    def exec(self, x: Any) -> Any:
        ran["Square", x] += 1
        return bytes([x % 256]) * shared_size(x)

    def post(self, shared: Any, p: Any, e: Any) -> None:
        shared["out"] = e


def shared_size(x: int) -> int:
    return SIZES.get(x, 10)


SIZES: dict[int, int] = {}


class Paid(pocketcore.Node):
    """A plain node, not cached, that must not run when the cache is refused."""

    def exec(self, prep_res: Any) -> Any:
        ran["Paid", None] += 1


def fill(path: Path, items: list[int]) -> dict[str, Any]:
    shared: dict[str, Any] = {"items": items}
    pocketcore.run(Square(), shared, cache=str(path))
    close_stores()  # the last connection: the WAL goes into the file
    ran.clear()
    return shared


def zero(path: Path, first: int, last: int) -> None:
    """Zero pages ``first`` to ``last`` (1-based, as SQLite numbers them) of the file."""
    data = bytearray(path.read_bytes())
    data[(first - 1) * PAGE : last * PAGE] = bytes((last - first + 1) * PAGE)
    path.write_bytes(bytes(data))


def test_zeroed_pages_of_the_trees_are_refused_before_any_node_runs(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    fill(path, list(range(3000)))  # many small entries: many leaf pages
    pages = path.stat().st_size // PAGE
    assert pages > 20
    zero(path, pages // 3, pages // 3 + 5)  # the header and the schema stay intact
    flow = pocketcore.Flow(start=Paid())
    flow.start_node >> Square()
    with pytest.raises(ConfigError, match=f"cache file {path} is damaged") as caught:
        pocketcore.run(flow, {"items": [1]}, cache=str(path))
    assert "delete it" in str(caught.value)
    assert ran == Counter()  # nothing ran, nothing was paid for


def test_the_open_check_reads_the_trees_not_the_values(tmp_path: Path) -> None:
    # Every page of a value's overflow chain zeroed but one leaves the trees whole.
    path = tmp_path / "cache.db"
    SIZES[7] = 40 * PAGE
    fill(path, [7])
    zero(path, 6, 20)
    open_store(str(path), "the test")  # opens: the damage is in the value's pages


def test_a_damaged_value_is_computed_again_and_the_run_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    SIZES.update({7: 40 * PAGE})
    first = fill(path, [7])
    # The file: page 1 the schema, 2 and 3 the table's and the index's roots,
    # then the value's overflow pages. One in their middle is zeroed.
    zero(path, 12, 12)
    for n in range(2):
        shared: dict[str, Any] = {"items": [7]}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pocketcore.run(Square(), shared, cache=str(path))
        assert shared["out"] == first["out"]
        said = " ".join(str(w.message) for w in caught if w.category is CacheWarning)
        assert "the stored result of item 0 of Square is damaged" in said
        # SQLite cannot replace an entry in damaged pages: not stored, and said so.
        assert "a result of Square could not be stored" in said
        assert Counter({("Square", 7): n + 1}) == ran


def test_a_result_too_large_for_sqlite_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    store = open_store(str(path), "the test")
    # SQLite's limit on a value, lowered for the test from its 1 GB (the same
    # refusal a 1 GB result meets, without making one).
    if sys.version_info >= (3, 11):
        store._con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 200_000)  # type: ignore[attr-defined]
    store.max_value = 100_000
    SIZES.update({1: 150_000, 2: 10})
    shared: dict[str, Any] = {"items": [1, 2]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pocketcore.run(Square(), shared, cache=str(path))
    said = [str(w.message) for w in caught if w.category is CacheWarning]
    assert any("item 0 of Square is too large for" in s for s in said), said
    assert len(shared["out"][0]) == 150_000
    ran.clear()
    with pytest.warns(CacheWarning, match="too large"):
        pocketcore.run(Square(), shared, cache=str(path))
    assert ran == Counter({("Square", 1): 1})  # computed again; item 2 was stored


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Connection.setlimit")
def test_sqlites_own_refusal_of_a_large_value_is_skipped_too(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    store = open_store(str(path), "the test")
    store._con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 200_000)  # type: ignore[attr-defined]
    store.max_value = None  # the kernel does not know the limit: SQLite refuses the put
    SIZES.update({1: 300_000})
    shared: dict[str, Any] = {"items": [1, 2]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pocketcore.run(Square(), shared, cache=str(path))
    said = [str(w.message) for w in caught if w.category is CacheWarning]
    assert any("could not be stored" in s and "too large" in s for s in said), said
    assert len(shared["out"][0]) == 300_000


def test_params_that_do_not_pickle_skip_the_cache_not_the_run(tmp_path: Path) -> None:
    class Client:
        """Stands for an API client: it holds a lock, so it does not pickle."""

        def __init__(self) -> None:
            self.lock = threading.Lock()

    class Each(pocketcore.BatchFlow):
        def prep(self, shared: Any) -> Any:
            return [{"client": Client(), "n": n} for n in (1, 2)]

    path = tmp_path / "cache.db"
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            shared: dict[str, Any] = {"items": [3]}
            pocketcore.run(Each(start=Square()), shared, cache=str(path))
        said = [str(w.message) for w in caught if w.category is CacheWarning]
        assert len(said) == 1, said
        assert said[0].startswith("Square is not cached: its params cannot be pickled")
    assert ran == Counter({("Square", 3): 4})  # two passes, two runs: never cached
