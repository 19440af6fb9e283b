"""The store protocol: where the result cache keeps the values of ``exec``.

A store maps keys to values, both ``bytes``. The kernel makes the keys (a
digest of the node's identity, its params and the input) and the values
(the pickled result), so a store never sees a Python object of the flow and
never unpickles anything. The kernel looks keys up in groups, as a batch's
items are pulled, and writes each value as its item finishes.

Built-in stores: ``sqlite`` (a file; the default for a path) and ``memory``
(one per process). Plugins add stores with the hook
``pocketcore_register_stores``; ``pocketcore.testing.StoreConformance`` is
the suite a store runs to prove it keeps the contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["Store", "StoreInfo", "StoreOpener"]


@attrs.frozen
class StoreInfo:
    """What a store holds, for ``pocketcore cache info``.

    Attributes:
        location: Where the store keeps its entries: the file's path, or
            ``"memory"``.
        entries: The number of entries per node class (the class's
            ``module.qualname``, as given to :meth:`Store.put`).
        size: The bytes the store takes: the file's size on disk (with its
            journal) for a file, else the size of the stored values.
    """

    location: str
    entries: Mapping[str, int]
    size: int


@runtime_checkable
class Store(Protocol):
    """A place to keep cached ``exec`` results, safe to share between threads.

    The contract, which ``pocketcore.testing.StoreConformance`` checks:

    1. :meth:`get_many` returns, for the keys it was given, the value last
       :meth:`put` under each key that has one; keys never put are absent.
    2. :meth:`put` replaces the value of a key that has one.
    3. Concurrent calls from several threads (and, for a store that says
       it is shared, several processes) neither fail nor mix up values.
    4. Once :meth:`put` has returned, the value survives the process being
       killed (``SIGKILL``) for a store that keeps its entries in a file,
       and is seen by a store opened again on the same file.
    5. A value is stored whole or not at all: a process killed in the
       middle of :meth:`put` leaves the key absent or with its old value.

    A store may also have ``put_many(entries)``, optional and not part of
    this protocol's check: store each ``(key, value, node)`` of the
    sequence as :meth:`put` would, one after the other, all of them durable
    once it returns. The kernel then writes the results of items that
    finish at the same moment in one call (SQLite: one transaction).

    Methods raise what they like when the store fails (a full disk, a file
    made read-only); the kernel reports that as a
    :class:`~pocketcore.CacheError` naming the store, and fails the run.

    Attributes:
        location: Where the entries live, for messages: a file's path, or
            ``"memory"``.
    """

    location: str

    def get_many(self, keys: Sequence[bytes]) -> Mapping[bytes, bytes]:
        """The stored values of those of ``keys`` that have one."""
        ...

    def put(self, key: bytes, value: bytes, node: str) -> None:
        """Store ``value`` under ``key``, replacing any value it had.

        ``node`` is the node class's ``module.qualname``, kept with the entry
        for :meth:`info` and :meth:`clear`.
        """
        ...

    def info(self) -> StoreInfo:
        """The number of entries per node class, and the store's size."""
        ...

    def clear(self, node: str | None = None) -> int:
        """Remove every entry, or those of node class ``node``; return how many went."""
        ...

    def close(self) -> None:
        """Release the store's resources; it is not used afterwards."""
        ...


class StoreOpener(Protocol):
    """What a plugin registers under a store's name: it opens the store a spec names.

    ``pocketcore_register_stores(register)`` calls ``register(name, opener)``.
    A cache setting of ``"NAME:REST"`` opens the store with ``opener(REST)``
    (``"memory"`` alone calls it with ``""``). Raise
    :class:`~pocketcore.ConfigError` naming the location when it cannot be
    opened (a missing directory, a file that is not yours to read).
    """

    def __call__(self, rest: str) -> Store:
        """Open the store that ``rest`` (what follows ``NAME:``) names."""
        ...
