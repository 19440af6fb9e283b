"""Layer 3, built-in stores: the result cache's ``sqlite`` and ``memory`` stores.

Just above the hook specs and errors and protocols (:class:`BaseStore` is
there), and below plugins; it imports nothing else of pocketcore's but the
hook marker. This package is itself the plugin that registers the two
stores, through ``pocketcore_register_stores``, the hook every store plugin
implements.
"""

from __future__ import annotations

from collections.abc import Callable

from pocketcore._core.store import StoreOpener
from pocketcore.hookspecs import hookimpl

from .memory import MemoryStore, open_memory
from .sqlite import SqliteStore, open_sqlite

__all__ = [
    "MemoryStore",
    "SqliteStore",
    "open_memory",
    "open_sqlite",
    "pocketcore_register_stores",
]


@hookimpl
def pocketcore_register_stores(register: Callable[[str, StoreOpener], None]) -> None:
    """Register the built-in stores: ``sqlite`` (a file) and ``memory``."""
    register("sqlite", open_sqlite)
    register("memory", open_memory)
