"""The store protocol: where the result cache keeps the values of ``exec``.

A store maps keys to values, both ``bytes``. The kernel makes the keys (a
digest of the node's identity, its params and the input) and the values
(the pickled result), so a store never sees a Python object of the flow and
never unpickles anything. The kernel looks keys up in groups, as a batch's
items are pulled, and writes each value as its item finishes.

A store builds on :class:`BaseStore`, which declares what a store must do
and gives what it may do better (``put_many``) a default. The kernel uses a
store only through that base: a store written against the plain
:class:`Store` protocol of earlier releases is put behind an adapter when it
is resolved (:func:`declared_store`), with a ``DeprecationWarning``.

Built-in stores: ``sqlite`` (a file; the default for a path) and ``memory``
(one per process). Plugins add stores with the hook
``pocketcore_register_stores``; ``pocketcore.testing.StoreConformance`` is
the suite a store runs to prove it keeps the contract.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, final, runtime_checkable

import attrs

from .deprecation import warn_undeclared

__all__ = ["BaseStore", "Store", "StoreInfo", "StoreOpener", "declared_store"]


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

    Build a store on :class:`BaseStore`, which adds :meth:`BaseStore.put_many`
    to these methods. An object with only the methods below is still
    accepted wherever a store is, for one release: the kernel then warns
    (``DeprecationWarning``, once per class) and writes through an adapter.

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


class BaseStore(abc.ABC):
    """What a store builds on: the :class:`Store` methods, and ``put_many``'s default.

    A subclass implements :meth:`get_many`, :meth:`put`, :meth:`info`,
    :meth:`clear` and :meth:`close`, and sets :attr:`location`, keeping the
    contract that :class:`Store` states. It overrides :meth:`put_many` when
    it can write several entries at once for less than one each (SQLite:
    one transaction).

    Attributes:
        location: Where the entries live, for messages: a file's path, or
            ``"memory"``.
        max_value: The most bytes one value may have (``None``: no limit).
            The kernel does not hand a larger one to :meth:`put`: it skips
            it with a :class:`~pocketcore.CacheWarning`, so a result the
            store cannot hold never fails a run.
    """

    location: str
    max_value: int | None = None

    @abc.abstractmethod
    def get_many(self, keys: Sequence[bytes]) -> Mapping[bytes, bytes]:
        """The stored values of those of ``keys`` that have one."""

    @abc.abstractmethod
    def put(self, key: bytes, value: bytes, node: str) -> None:
        """Store ``value`` under ``key`` (for node class ``node``), replacing any value it had."""

    def put_many(self, entries: Sequence[tuple[bytes, bytes, str]]) -> None:
        """Store each ``(key, value, node)`` as :meth:`put` would, one after the other.

        All of them are durable once it returns. The kernel writes the
        results of items that finish at the same moment in one call. The
        default calls :meth:`put` for each entry.
        """
        put = self.put
        for key, value, node in entries:
            put(key, value, node)

    @abc.abstractmethod
    def info(self) -> StoreInfo:
        """The number of entries per node class, and the store's size."""

    @abc.abstractmethod
    def clear(self, node: str | None = None) -> int:
        """Remove every entry, or those of node class ``node``; return how many went."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store's resources; it is not used afterwards."""


@final
class _Undeclared(BaseStore):
    """A store that satisfies :class:`Store` but does not build on :class:`BaseStore`.

    Whether it has a ``put_many`` of its own (optional before
    :class:`BaseStore`) is asked once, here, when the store is resolved.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.location = store.location
        own = getattr(store, "put_many", None)
        self._own_put_many: Callable[[Sequence[tuple[bytes, bytes, str]]], None] | None = (
            own if callable(own) else None
        )

    def __repr__(self) -> str:
        return repr(self.store)

    def get_many(self, keys: Sequence[bytes]) -> Mapping[bytes, bytes]:
        return self.store.get_many(keys)

    def put(self, key: bytes, value: bytes, node: str) -> None:
        self.store.put(key, value, node)

    def put_many(self, entries: Sequence[tuple[bytes, bytes, str]]) -> None:
        if self._own_put_many is None:
            super().put_many(entries)
        else:
            self._own_put_many(entries)

    def info(self) -> StoreInfo:
        return self.store.info()

    def clear(self, node: str | None = None) -> int:
        return self.store.clear(node)

    def close(self) -> None:
        self.store.close()


# The classes of undeclared stores already warned about.
def declared_store(store: Store, *, warn: bool = True) -> BaseStore:
    """``store`` as the kernel uses it: itself, when it builds on :class:`BaseStore`.

    A store of the earlier protocol (the :class:`Store` methods alone) is
    put behind an adapter whose ``put_many`` is the store's own if it has
    one, else a :meth:`~Store.put` per entry.

    Warns:
        DeprecationWarning: Once per class of such a store, the first time
            one is resolved (unless ``warn`` is false).
    """
    if isinstance(store, BaseStore):
        return store
    if warn:
        warn_undeclared(store, "cache store", "pocketcore.BaseStore")
    return _Undeclared(store)


@runtime_checkable
class StoreOpener(Protocol):
    """What a plugin registers under a store's name: it opens the store a spec names.

    ``pocketcore_register_stores(register)`` calls ``register(name, opener)``.
    A cache setting of ``"NAME:REST"`` opens the store with ``opener(REST)``
    (``"memory"`` alone calls it with ``""``). Raise
    :class:`~pocketcore.ConfigError` naming the location when it cannot be
    opened (a missing directory, a file that is not yours to read).
    """

    def __call__(self, rest: str) -> Store:
        """Open the store that ``rest`` (what follows ``NAME:``) names: a :class:`BaseStore`."""
        ...
