"""The ``memory`` store: the result cache in a dictionary, for the life of the process."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import final

from pocketcore._core.errors import ConfigError
from pocketcore._core.store import BaseStore, StoreInfo

from ._fork import on_fork

__all__ = ["MemoryStore", "open_memory"]


@final
class MemoryStore(BaseStore):
    """A result cache in this process's memory, safe to share between threads.

    Its entries go with the process (or with :meth:`close`). A process
    forked from one that holds it starts with a copy of its entries.
    """

    location = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[bytes, tuple[bytes, str]] = {}
        on_fork(after_in_child=self._new_lock)

    def __repr__(self) -> str:
        return "MemoryStore()"

    def get_many(self, keys: Sequence[bytes]) -> Mapping[bytes, bytes]:
        """The stored values of those of ``keys`` that have one."""
        with self._lock:
            entries = self._entries
            return {key: entry[0] for key in keys if (entry := entries.get(key)) is not None}

    def put(self, key: bytes, value: bytes, node: str) -> None:
        """Store ``value`` under ``key`` (for node class ``node``), replacing any value it had."""
        with self._lock:
            self._entries[key] = (value, node)

    def put_many(self, entries: Sequence[tuple[bytes, bytes, str]]) -> None:
        """Store each ``(key, value, node)`` as :meth:`put` would."""
        with self._lock:
            for key, value, node in entries:
                self._entries[key] = (value, node)

    def info(self) -> StoreInfo:
        """The entries per node class, and the total size of the values."""
        with self._lock:
            entries = list(self._entries.values())
        return StoreInfo(
            location=self.location,
            entries=dict(Counter(node for _, node in entries)),
            size=sum(len(value) for value, _ in entries),
        )

    def clear(self, node: str | None = None) -> int:
        """Remove every entry, or those of node class ``node``; return how many went."""
        with self._lock:
            before = len(self._entries)
            if node is None:
                self._entries = {}
            else:
                self._entries = {k: e for k, e in self._entries.items() if e[1] != node}
            return before - len(self._entries)

    def close(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries = {}

    def _new_lock(self) -> None:
        # In a forked child: the parent's lock may have been held by a thread
        # the child does not have.
        self._lock = threading.Lock()


def open_memory(rest: str) -> MemoryStore:
    """Open the ``memory`` store: the specification is ``memory`` alone.

    Raises:
        ConfigError: When something follows ``memory:``.
    """
    if rest:
        raise ConfigError(
            f"the memory cache takes no location: write 'memory', not 'memory:{rest}'"
        )
    return MemoryStore()
