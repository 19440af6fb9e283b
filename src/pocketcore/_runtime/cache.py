"""The result cache: which store a node uses, the keys of its inputs, reading and writing.

The lookup and the write happen in one place, the dispatch layer
(:mod:`pocketcore._dispatch.cached`); this module supplies what they use:

* :func:`node_cache` decides whether a node's ``exec`` is cached in the run
  in progress, and returns a :class:`NodeCache` for it (or ``None``);
* :class:`NodeCache` makes each input's key, looks keys up in groups,
  unpickles hits and pickles and writes results;
* the store itself comes from :func:`~pocketcore._runtime.stores.open_store`,
  one per specification per process.

A key is a BLAKE2b digest of the node's identity
(:func:`~pocketcore._runtime.identity.node_identity`: its class as its
program defines it, the code that computes its result, its instance
attributes), its ``cache_version``, its ``params`` and the input's
fingerprint (:func:`~pocketcore._runtime.fingerprints.fingerprint`: its
pickle without memo, its sets in a canonical order), so that two equal
inputs that still pickle differently make two keys: a miss, never a wrong
hit.

A node's batch already in memory also has a digest, over every input in
order (:meth:`NodeCache.batch_digest`); the node's whole-batch entry holds
the last complete batch's digest and every result, so that re-running an
unchanged batch is one lookup.

Which nodes are cached: the items of batch nodes, unless the node opts out
(``cache = False``); a plain node only when it opts in (``cache = True``, or
a store of its own), since plain nodes are where loaders read files and
clocks, whose results must not be reused.

A stored value is framed (:func:`frame`): the time it was written, for
``cache_ttl``, and a CRC-32 of the pickle, checked on every read, so that a
value damaged on disk is a miss, never a wrong hit.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
import time
import warnings
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from pocketcore._core.errors import CacheError, EntryNotStored
from pocketcore._core.store import BaseStore
from pocketcore._runtime.config import Setting, check_cache_value
from pocketcore._runtime.context import current_config, node_source, own_cache
from pocketcore._runtime.fingerprints import SCALARS, VALUE_PROTOCOL, digest_of, fingerprint
from pocketcore._runtime.identity import Unfingerprintable, node_identity, stable_bytes
from pocketcore._runtime.settings import SETTINGS
from pocketcore._runtime.stores import open_store

__all__ = [
    "MISS",
    "WHOLE_BATCH_SUFFIX",
    "CacheWarning",
    "NodeCache",
    "default_cache_key",
    "frame",
    "node_cache",
    "unframe",
]

#: Bumped when the way keys (or values) are made changes: every old entry then misses.
#: 1: class by import path, no instance attributes nor code, unframed values.
KEY_FORMAT = b"pocketcore-cache-key-2\0"
#: Fingerprints up to this many bytes are part of the key as they are; longer ones are hashed.
SHORT_FINGERPRINT = 64
#: The kinds of batch that also get a whole-batch entry: already in memory,
#: and with a length (a generator's items are pulled lazily, and are not).
WHOLE_BATCH_KINDS = frozenset({list, tuple, range})
#: Batches of fewer items get no whole-batch entry (it would repeat the item's).
WHOLE_BATCH_MIN = 2
#: A batch whose results pickle to more than this gets no whole-batch entry.
WHOLE_BATCH_MAX_BYTES = 64 << 20
#: What a whole-batch entry's node class label ends with (``module.Qualname [whole batches]``).
WHOLE_BATCH_SUFFIX = " [whole batches]"
#: A stored value's frame: a format byte, the time it was written, the CRC-32 of the pickle.
_FRAME = struct.Struct("<BdI")
_FRAMED = 1
_TTL = SETTINGS["cache_ttl"]


class CacheWarning(UserWarning):
    """The result cache skipped an input or a result, and the run went on.

    Emitted once per node per run for a node whose identity cannot be
    fingerprinted (an attribute, its params or its ``cache_version`` does
    not pickle: the node is not cached), an input that cannot be
    fingerprinted, a result that cannot be pickled or is too large for the
    store, and a stored value that is damaged or can no longer be unpickled
    (its class moved, say), or an entry the store could not hold
    (:class:`~pocketcore.EntryNotStored`); each is simply not cached. Also
    for a whole-batch entry the store failed to write (the items' own
    entries are kept), and for results the store failed to write while
    their batch was stopping for another failure.
    """


MISS: Any = object()
"""What :meth:`NodeCache.get` returns for a key with no usable value."""


# --- stored values ----------------------------------------------------------------


def frame(data: bytes, written: float | None = None) -> bytes:
    """``data`` (a pickle) as it is stored: with the time it was written and its CRC-32."""
    when = time.time() if written is None else written
    return _FRAME.pack(_FRAMED, when, zlib.crc32(data)) + data


def unframe(raw: bytes, ttl: float | None = None) -> bytes | None:
    """The pickle in a stored value; ``None`` when damaged, of another format, or past ``ttl``."""
    size = _FRAME.size
    if len(raw) < size:
        return None
    kind, written, crc = _FRAME.unpack_from(raw)
    if kind != _FRAMED or (ttl is not None and time.time() - written > ttl):
        return None
    data = raw[size:]
    return data if zlib.crc32(data) == crc else None


# --- one node's cache -------------------------------------------------------------


def default_cache_key(self: Any, input: Any) -> Any:
    """What identifies ``input`` for the result cache; ``None`` skips the cache for it.

    By default the node's params and the input itself. Override it to key
    on part of the input (an id rather than a whole record), or to return
    ``None`` for inputs whose results must not be kept. What it returns
    must pickle; it replaces the params, the instance attributes and the
    input in the key, and the node's class, code and :attr:`cache_version`
    are added to it.
    """
    return (self.params, input)


def node_cache(node: Any, *, batch: bool) -> NodeCache | None:
    """The cache of ``node``'s ``exec`` in the run in progress, or ``None`` when it has none.

    The rule: the items of a batch node (``batch``) are cached unless it
    opts out (``cache = False``); a plain node only when it opts in
    (``cache = True``, or a store of its own). The store is the node's own,
    else the run's (a flow's, the arguments, ``POCKETCORE_CACHE``, the
    file). A node whose identity cannot be fingerprinted is not cached: a
    :class:`CacheWarning` says why, once per class per run.

    Raises:
        ConfigError: The setting is unusable or its store cannot be opened.
    """
    cfg = current_config()
    own = own_cache(node)
    if own is False or (own is None and not batch):
        return None
    if own is None or own is True:
        chosen = cfg.cache_setting
    else:
        source = node_source(node, "cache")
        chosen = Setting(check_cache_value(own, source), source)
    if chosen is None or chosen.value is False:
        return None
    store = open_store(chosen.value, chosen.source)
    try:
        return NodeCache(node, store, cfg.cache_warned, _ttl(node, cfg))
    except Unfingerprintable as exc:
        mark = (id(type(node)), "identity")
        if mark not in cfg.cache_warned:
            cfg.cache_warned.add(mark)
            warnings.warn(
                f"{type(node).__name__} is not cached: its {exc}; give it a cache_key method "
                "(which replaces its attributes and params in the key), or cache=False",
                CacheWarning,
                stacklevel=2,
            )
        return None


def _ttl(node: Any, cfg: Any) -> float | None:
    """The node's ``cache_ttl``, else the run's: the age in seconds past which an entry misses."""
    own = _TTL.own(node)
    if own is not None:
        return _TTL.check(own, node_source(node, "cache_ttl"))  # type: ignore[no-any-return]
    found = cfg.setting("cache_ttl")
    return None if found is None else found.value


class _Group:
    """Results gathered to be written in one ``put_many``, and who waits for it."""

    __slots__ = ("done", "entries", "error")

    def __init__(self, entries: list[tuple[bytes, bytes, str]]) -> None:
        self.entries = entries
        self.done = anyio.Event()
        self.error: CacheError | None = None


class NodeCache:
    """One node's view of its store, for one node step or one batch.

    Args:
        node: The node whose ``exec`` is cached.
        store: Where its results live.
        warned: The run's record of what was warned about, so that each
            warning is given once per node per run.
        ttl: Seconds after which a stored result is no longer used
            (``None``: never).

    Raises:
        Unfingerprintable: The node's identity cannot be fingerprinted.
    """

    def __init__(
        self, node: Any, store: BaseStore, warned: set[tuple[int, str]], ttl: float | None = None
    ) -> None:
        self.node, self.store, self.warned, self.ttl = node, store, warned, ttl
        cls = type(node)
        self.label = f"{cls.__module__}.{cls.__qualname__}"
        # An override of BaseNode.cache_key (which is default_cache_key) is the node's own key.
        self.custom = cls.cache_key is not default_cache_key
        base = hashlib.blake2b(KEY_FORMAT, digest_size=20)
        base.update(node_identity(node, instance=not self.custom))
        version = getattr(node, "cache_version", None)
        base.update(stable_bytes(version, "cache_version") + b"\0")
        self.prefix = base
        if not self.custom:
            self.prefix = base.copy()
            self.prefix.update(stable_bytes(node.params, "params") + b"\0")
        self.max_value = store.max_value
        # A short fingerprint is part of its key as it is (hashing it would
        # cost more than the rest of a hit); a longer one is hashed. The
        # first byte keeps the two forms apart.
        self.head = b"\x01" + self.prefix.digest()
        # What this batch stored: whether every miss was, and how many bytes.
        self.saved = 0
        self.saved_bytes = 0
        # The write gathering results now, for one put_many.
        self._group: _Group | None = None

    def key(self, item: Any, index: int | None) -> bytes | None:
        """The key of ``item``, or ``None`` when it is not cached.

        An input is not cached when the node's ``cache_key`` returns ``None``
        for it, or when it does not pickle (a :class:`CacheWarning` then says
        so, once per node per run).
        """
        what: Any = item
        if self.custom:
            what = self.node.cache_key(item)
            if what is None:
                return None
        try:
            data = fingerprint(what)
        except Exception as exc:
            self._warn("key", f"{self._which(index)} cannot be fingerprinted", exc)
            return None
        return self._key_of(data)

    def _key_of(self, data: bytes) -> bytes:
        if len(data) <= SHORT_FINGERPRINT:
            return self.head + data
        digest = self.prefix.copy()
        digest.update(data)
        return b"\x00" + digest.digest()

    def keys(self, group: list[Any], first: int) -> list[bytes | None]:
        """The keys of a group of items, the first of which is item ``first`` of the batch."""
        if self.custom:
            return [self.key(item, first + n) for n, item in enumerate(group)]
        # The usual case, once per item of every cached batch: key() inlined.
        head, scalars, dumps = self.head, SCALARS, pickle.dumps
        found: list[bytes | None] = []
        for n, item in enumerate(group):
            try:
                data = dumps(item, VALUE_PROTOCOL) if type(item) in scalars else fingerprint(item)
            except Exception as exc:
                self._warn("key", f"{self._which(first + n)} cannot be fingerprinted", exc)
                found.append(None)
                continue
            found.append(head + data if len(data) <= SHORT_FINGERPRINT else self._key_of(data))
        return found

    def get_many(self, keys: Sequence[bytes]) -> Mapping[bytes, bytes]:
        """The stored values of ``keys`` (those that have one), still pickled.

        Raises:
            CacheError: The store failed.
        """
        try:
            return self.store.get_many(keys)
        except Exception as exc:
            raise self._failed("reading", exc) from exc

    def load(self, raw: bytes, index: int | None) -> Any:
        """Unpickle a stored value; :data:`MISS` when expired, or (with a warning) damaged.

        A value past the node's ``cache_ttl`` is a quiet miss; one whose
        checksum is wrong, or that no longer unpickles, a miss with a
        :class:`CacheWarning`.
        """
        data = unframe(raw, self.ttl)
        if data is None:
            if self.ttl is None or unframe(raw) is None:
                what = f"the stored result of {self._which(index)} is damaged"
                self._warn("load", what, ValueError("its checksum does not match"))
            return MISS
        try:
            return pickle.loads(data)
        except Exception as exc:
            self._warn("load", f"the stored result of {self._which(index)} cannot be loaded", exc)
            return MISS

    def get(self, key: bytes, index: int | None) -> Any:
        """The stored result under ``key``, or :data:`MISS`."""
        raw = self.get_many((key,)).get(key)
        return MISS if raw is None else self.load(raw, index)

    def save(self, key: bytes, value: Any, index: int | None) -> None:
        """Store ``value`` under ``key``; a value that does not pickle is skipped, with a warning.

        Raises:
            CacheError: The store failed to write it.
        """
        data = self._pickled(value, index)
        if data is not None:
            self._put_one(key, data)

    async def save_async(self, key: bytes, value: Any, index: int | None) -> None:
        """:meth:`save` from a task: results that finish together are written together.

        The first result to be saved waits for one scheduling turn, in which
        the tasks that finish at the same moment add theirs, and writes them
        all in one ``put_many`` (for SQLite, one transaction: a commit costs
        the same for one result or a hundred). Each caller returns once its
        own result is written, as with :meth:`save`, so an item still counts
        as in flight until its result is stored. A batch cancelled meanwhile
        still keeps the results that were handed in: they are written as the
        cancellation passes.

        Raises:
            CacheError: The store failed to write it.
        """
        data = self._pickled(value, index)
        if data is None:
            return
        group = self._group
        if group is not None:  # a write is gathering: join it
            group.entries.append((key, data, self.label))
            await group.done.wait()
            if group.error is not None:
                raise CacheError(str(group.error)) from group.error.__cause__
            return
        group = self._group = _Group([(key, data, self.label)])
        try:
            await anyio.lowlevel.checkpoint()
        except BaseException:
            # The batch was cancelled meanwhile (by any means: an asyncio
            # executor's task.cancel() knows no anyio shield). What was
            # handed in is written before the cancellation goes on, and a
            # failure to write it, which nobody will raise now, is said.
            self._write(group)
            if group.error is not None:
                warnings.warn(f"{group.error} (as the batch stopped)", CacheWarning, stacklevel=2)
            raise
        self._write(group)
        if group.error is not None:
            raise group.error

    def _write(self, group: _Group) -> None:
        """Write a gathered group, and wake who waits for it (its error, if any, is kept)."""
        self._group = None  # later results gather anew
        try:
            self._put_group(group)
        finally:
            group.done.set()

    def _pickled(self, value: Any, index: int | None) -> bytes | None:
        try:
            data = frame(pickle.dumps(value, VALUE_PROTOCOL))
        except Exception as exc:
            self._warn("value", f"the result of {self._which(index)} cannot be pickled", exc)
            return None
        if self.max_value is not None and len(data) > self.max_value:
            what = f"the result of {self._which(index)} is too large for {self.store.location}"
            limit = ValueError(f"{len(data):,} bytes, more than its {self.max_value:,}")
            self._warn("size", what, limit)
            return None
        return data

    def _put_one(self, key: bytes, data: bytes) -> None:
        """Put one entry; one the store cannot hold is skipped, with a warning.

        Raises:
            CacheError: The store failed.
        """
        try:
            self.store.put(key, data, self.label)
        except EntryNotStored as exc:
            what = f"a result of {type(self.node).__name__} could not be stored"
            self._warn("stored", what, exc)
            return
        except Exception as exc:
            raise self._failed("writing", exc) from exc
        self.saved += 1
        self.saved_bytes += len(data)

    def _put_group(self, group: _Group) -> None:
        """Put a gathered group (one by one if the store cannot hold one of them)."""
        entries = group.entries
        try:
            if len(entries) > 1:
                try:
                    self.store.put_many(entries)
                except EntryNotStored:
                    pass  # which one, the puts below say
                except Exception as exc:
                    raise self._failed("writing", exc) from exc
                else:
                    self.saved += len(entries)
                    self.saved_bytes += sum(len(data) for _, data, _ in entries)
                    return
            for key, data, _ in entries:
                self._put_one(key, data)
        except CacheError as exc:
            group.error = exc

    # --- whole batches: one entry holding every result of a batch --------------

    def batch_digest(self, items: Sequence[Any]) -> bytes | None:
        """What identifies the whole batch ``items`` (every input, in order), or ``None``.

        ``None`` for a node with its own ``cache_key`` (whose keys are made
        as items are pulled, never all up front) and for a batch that does
        not pickle (an item's own key will say which).
        """
        if self.custom or self.ttl is not None:
            # With a ttl each item's entry ages on its own; a whole-batch entry
            # rewritten from old items' entries would make them look new.
            return None
        try:
            return digest_of(items, self.prefix)
        except Exception:
            return None

    def _slot(self) -> bytes:
        """The key of the node's whole-batch entry: one per class, version and params."""
        slot = self.prefix.copy()
        slot.update(b"\0whole batch\0")
        return b"\x02" + slot.digest()

    def load_batch(self, digest: bytes, size: int) -> list[Any] | None:
        """The stored results of the batch ``digest`` identifies, of ``size`` items, or ``None``.

        The entry holds the last complete batch of this node (its class,
        version and params): its digest, then its results. Another batch's,
        or one that no longer loads, is passed over quietly: the items' own
        entries answer, and warn if need be.
        """
        slot = self._slot()
        raw = self.get_many((slot,)).get(slot)
        data = None if raw is None else unframe(raw, self.ttl)
        if data is None or data[: len(digest)] != digest:
            return None
        try:
            values = pickle.loads(data[len(digest) :])
        except Exception:
            return None
        return values if type(values) is list and len(values) == size else None

    def save_batch(self, digest: bytes, results: list[Any]) -> None:
        """Make ``results`` the node's whole-batch entry, for the batch ``digest`` identifies.

        It replaces the entry of the batch before, so a batch that changes
        from run to run keeps one entry, not one per version. The entry only
        spares lookups: a store that fails to write it gives a
        :class:`CacheWarning`, and the run goes on.
        """
        try:
            data = frame(digest + pickle.dumps(results, VALUE_PROTOCOL))
        except Exception:  # each result pickled on its own; not so together (too deep, say)
            return
        if self.max_value is not None and len(data) > self.max_value:
            return
        try:
            self.store.put(self._slot(), data, self.label + WHOLE_BATCH_SUFFIX)
        except Exception as exc:
            what = (
                f"cache store {self.store.location} could not write the whole-batch entry of "
                f"{type(self.node).__name__} (the entries of its items are kept)"
            )
            self._warn("batch", what, exc)

    def _which(self, index: int | None) -> str:
        name = type(self.node).__name__
        return f"the input of {name}" if index is None else f"item {index} of {name}"

    def _warn(self, kind: str, what: str, exc: Exception) -> None:
        mark = (id(self.node), kind)
        if mark in self.warned:
            return
        self.warned.add(mark)
        warnings.warn(
            f"{what} ({type(exc).__name__}: {exc}); it is not cached (said once per node per run)",
            CacheWarning,
            stacklevel=2,
        )

    def _failed(self, doing: str, exc: Exception) -> CacheError:
        return CacheError(
            f"cache store {self.store.location} failed while {doing} results of "
            f"{type(self.node).__name__}: {type(exc).__name__}: {exc}"
        )
