"""What the result cache's built-in stores cost per call: ``put`` and ``get_many``.

``python -m benchmarks.store_speed`` (from the repository root) prints, for the
``sqlite`` and ``memory`` stores, the time of one ``put``, of one entry of a
``put_many`` (in chunks of ``--chunk``, as the kernel hands over results that
finish together) and of one key of a ``get_many`` (hits and misses), in chunks
of keys as the kernel looks them up.
Each figure is the median (and the best) over ``--repeats`` rounds, each
round on a fresh store in a new temporary directory (``--dir`` chooses where: the file system
matters, since every sqlite ``put`` is a committed write). Keys are 32-byte
digests, as the kernel makes them; values are random bytes of ``--sizes``.

Not part of ``python -m benchmarks``: it measures the stores alone, not a flow.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pocketcore._core.store import Store
from pocketcore._stores import MemoryStore, SqliteStore

STORES: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda directory: SqliteStore(directory / "cache.db"),
    "memory": lambda directory: MemoryStore(),
}


def keys(prefix: bytes, count: int) -> list[bytes]:
    return [hashlib.sha256(prefix + i.to_bytes(8, "big")).digest() for i in range(count)]


def one_round(
    open_store: Callable[[Path], Store], directory: str | None, entries: int, size: int, chunk: int
) -> tuple[float, float, float, float]:
    """µs per put, per entry of a put_many, per key of a get_many that hits / that misses."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        store = open_store(Path(tmp))
        try:
            stored = keys(b"stored", entries)
            value = os.urandom(size)
            start = time.perf_counter()
            for key in stored:
                store.put(key, value, "bench.Node")
            put = (time.perf_counter() - start) / entries
            grouped = [(key, value, "bench.Node") for key in keys(b"grouped", entries)]
            start = time.perf_counter()
            for i in range(0, entries, chunk):
                store.put_many(grouped[i : i + chunk])  # type: ignore[attr-defined]
            put_many = (time.perf_counter() - start) / entries
            start = time.perf_counter()
            for i in range(0, entries, chunk):
                found = store.get_many(stored[i : i + chunk])
                assert len(found) == len(stored[i : i + chunk])
            hit = (time.perf_counter() - start) / entries
            absent = keys(b"absent", entries)
            start = time.perf_counter()
            for i in range(0, entries, chunk):
                assert not store.get_many(absent[i : i + chunk])
            miss = (time.perf_counter() - start) / entries
        finally:
            store.close()
    return put * 1e6, put_many * 1e6, hit * 1e6, miss * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000, help="keys put per round")
    parser.add_argument("--sizes", default="200,2000", help="value sizes in bytes, comma-separated")
    parser.add_argument("--chunk", type=int, default=100, help="keys per get_many and put_many")
    parser.add_argument("--repeats", type=int, default=5, help="rounds per figure")
    parser.add_argument("--dir", default=None, help="where the temporary directories go")
    parser.add_argument("--stores", default="sqlite,memory", help="stores, comma-separated")
    args = parser.parse_args()
    print(
        f"{args.entries} entries, put_many and get_many in chunks of {args.chunk}; "
        f"µs, median (best) of {args.repeats} rounds"
    )
    columns = ("put", "put_many/entry", "get hit/key", "get miss/key")
    print(f"{'store':8} {'value':>7}", *(f"{column:>16}" for column in columns))
    for name in args.stores.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            rounds = [
                one_round(STORES[name], args.dir, args.entries, size, args.chunk)
                for _ in range(args.repeats)
            ]
            figures = [
                f"{statistics.median(column):8.2f} ({min(column):5.2f})"
                for column in zip(*rounds, strict=True)
            ]
            print(f"{name:8} {size:>6}B", *figures)


if __name__ == "__main__":
    main()
