"""The kernel's own result-cache stores (placeholder until the sqlite store lands)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pocketcore._core.store import Store, StoreInfo
from pocketcore.hookspecs import hookimpl


class MemoryStore:
    """A store in this process's memory."""

    location = "memory"

    def __init__(self) -> None:
        self._data: dict[bytes, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[bytes]) -> Mapping[bytes, bytes]:
        """The values of those of ``keys`` that have one."""
        data = self._data
        return {k: data[k][0] for k in keys if k in data}

    def put(self, key: bytes, value: bytes, node: str) -> None:
        """Store ``value`` under ``key``."""
        with self._lock:
            self._data[key] = (value, node)

    def info(self) -> StoreInfo:
        """Entries per node and the size of the values."""
        counts: dict[str, int] = {}
        for _, node in self._data.values():
            counts[node] = counts.get(node, 0) + 1
        return StoreInfo("memory", counts, sum(len(v) for v, _ in self._data.values()))

    def clear(self, node: str | None = None) -> int:
        """Remove all entries, or one node's."""
        with self._lock:
            gone = [k for k, (_, n) in self._data.items() if node is None or n == node]
            for k in gone:
                del self._data[k]
        return len(gone)

    def close(self) -> None:
        """Nothing to release."""


def open_memory(rest: str) -> Store:
    """Open a memory store."""
    return MemoryStore()


@hookimpl
def pocketcore_register_stores(register: Callable[[str, Callable[[str], Any]], None]) -> None:
    """Register the built-in stores."""
    register("memory", open_memory)
