"""The exceptions pocketcore raises on its own account."""

from __future__ import annotations

import sys
from collections.abc import Iterable

__all__ = [
    "CacheError",
    "ConfigError",
    "EntryNotStored",
    "PluginError",
    "PluginWarning",
    "PocketcoreError",
    "attach_failures",
]


class PocketcoreError(Exception):
    """Base class of every error pocketcore raises on its own account.

    Exceptions raised by user code inside ``prep``/``exec``/``post`` are never
    wrapped in this class: they reach the caller unchanged.
    """


class ConfigError(PocketcoreError, ValueError):
    """A configuration value is unusable.

    Raised for an unknown executor name, a concurrency limit that is not an
    integer >= 1, a value of the wrong type, or an executor that cannot run on
    the event loop that is already running. The message names where the value
    came from (an argument, an environment variable, a file, a node attribute)
    and, for executor names, the executors that are installed.
    """


class PluginError(PocketcoreError):
    """A plugin could not be loaded or contributed something invalid.

    Raised, for example, when two plugins register an executor under the same
    name; the message names both plugins.
    """


class CacheError(PocketcoreError):
    """The result cache's store failed while a run used it.

    Raised when a store that opened fine fails mid-run (a full disk, a file
    made read-only): the message names the store and what it was doing. The
    run stops; what the store already held is not damaged. A store that
    cannot be opened at all is a :class:`ConfigError`, raised before any
    item runs.
    """


class EntryNotStored(CacheError):
    """A store could not hold one entry, and is otherwise fine; raised by a store's ``put``.

    For a value larger than the store takes, or one that lies in a damaged
    part of it. The kernel does not fail the run for it: it skips the entry
    with a :class:`~pocketcore.CacheWarning` (that result is computed again
    next time). From ``put_many``, it makes the kernel put the entries one
    by one, skipping those that raise it.
    """


class PluginWarning(UserWarning):
    """An installed plugin failed to load; the others were loaded.

    Emitted once per failing entry point when the plugins are loaded; the
    message names the distribution, its version and the entry point. The same
    failures are listed in :attr:`pocketcore.Registry.failures`.
    """


def attach_failures(first: BaseException, others: Iterable[BaseException]) -> None:
    """Name the other failures of a batch on the one that is raised, as notes.

    For executor authors: ``map`` raises the first failure itself (contract
    point 5), and every other failure that happened before the batch was
    stopped is recorded on it, one note each, so none is lost without a
    trace. ``first`` itself and repeats of it in ``others`` are skipped;
    leave out the backend's own cancellations, which are not failures.

    Executor plugins need nothing of pocketcore at import time; import this
    where a batch has failed (``from pocketcore import attach_failures``),
    where the kernel is already loaded.
    """
    for exc in others:
        if exc is not first:
            _add_note(
                first,
                f"another item failed before the batch was stopped: {type(exc).__name__}: {exc}",
            )


def _add_note(exc: BaseException, note: str) -> None:
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:  # pragma: no cover - Python 3.10: the attribute 3.11's add_note fills
        notes = getattr(exc, "__notes__", None)
        if notes is None:
            notes = []
            exc.__notes__ = notes  # type: ignore[attr-defined]
        notes.append(note)
