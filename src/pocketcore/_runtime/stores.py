"""Result-cache stores by name: a specification turned into a store, opened once per process.

``"memory"`` is the memory store; ``"NAME:REST"`` names a registered store;
anything else is the path of an SQLite file. A store opened by name stays
open for the process (every run naming it shares it) and is closed at exit.
"""

from __future__ import annotations

import atexit
import os
import re
import threading

from pocketcore._core.errors import ConfigError
from pocketcore._core.store import BaseStore, Store, declared_store
from pocketcore._plugins.registry import get_registry

__all__ = ["close_stores", "open_store", "parse_spec"]

# A store's name: two characters or more, so a Windows drive ("C:\...") is a path.
_NAMED = re.compile(r"^([A-Za-z][A-Za-z0-9_.+-]+):(.*)$", re.DOTALL)

_open_stores: dict[tuple[str, str], BaseStore] = {}
_open_lock = threading.Lock()


def parse_spec(spec: str) -> tuple[str, str]:
    """Split a store specification into the store's name and what the store is given.

    ``"memory"`` is the memory store; ``"NAME:REST"`` names a registered store
    (``"sqlite:///cache.db"``: SQLite, file ``cache.db``); anything else is
    the path of an SQLite file. SQLite paths come back absolute, so one file
    is one store however it was named.
    """
    if spec == "memory":
        return "memory", ""
    named = _NAMED.match(spec)
    if named is None:
        return "sqlite", _absolute(spec)
    name, rest = named.group(1), named.group(2)
    if name == "sqlite" and rest.startswith("///"):
        return "sqlite", _absolute(rest[3:])
    return name, rest


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path)) if path else path


def open_store(value: str | Store, source: str) -> BaseStore:
    """The open store that ``value`` names (or ``value`` itself); opened once per process.

    A store that does not build on :class:`~pocketcore.BaseStore` is used
    through :func:`~pocketcore._core.store.declared_store`'s adapter.

    Raises:
        ConfigError: No store of that name is registered, or the store
            cannot be opened (the message names the file).

    Warns:
        DeprecationWarning: The store does not build on
            :class:`~pocketcore.BaseStore` (once per class).
    """
    if not isinstance(value, str):
        return declared_store(value)
    name, rest = parse_spec(value)
    with _open_lock:
        found = _open_stores.get((name, rest))
        if found is None:
            opener = get_registry().get_store_opener(name, source=source)
            try:
                opened = opener(rest)
            except ConfigError as exc:
                raise ConfigError(f"{exc} (cache from {source})") from None
            except Exception as exc:
                raise ConfigError(
                    f"cannot open cache store {value!r} (from {source}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            found = _open_stores[(name, rest)] = declared_store(opened)
    return found


def close_stores() -> None:
    """Close every store opened by name in this process (they reopen on next use)."""
    with _open_lock:
        stores = list(_open_stores.values())
        _open_stores.clear()
    for store in stores:
        store.close()


atexit.register(close_stores)
