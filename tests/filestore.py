"""A store kept in one pickle file, for tests of what names and opens stores by specification.

It is registered as ``testfile`` (``"testfile:PATH"``) by :class:`FileStorePlugin`.
Every ``put`` rewrites the whole file (atomically, through a temporary file),
so it is slow but simple, and its entries outlive the process. It refuses a
directory, and a file that is not one of its own, with a ``ConfigError`` as a
real store does.
"""

from __future__ import annotations

import os
import pickle
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pocketcore
from pocketcore import ConfigError, StoreInfo

NAME = "testfile"
_MARK = "pocketcore-test-file-store"


class FileStore(pocketcore.BaseStore):
    """Entries in a pickled ``dict`` of key to ``(value, node)``, under a mark."""

    def __init__(self, path: str) -> None:
        self.location = path
        self.lock = threading.Lock()
        if os.path.isdir(path):
            raise ConfigError(f"the test cache {path} is a directory")
        if os.path.exists(path):
            self._read()  # refuse what is not a test cache now, not at first use

    def _read(self) -> dict[bytes, tuple[bytes, str]]:
        try:
            with open(self.location, "rb") as f:
                mark, data = pickle.load(f)
        except FileNotFoundError:
            return {}
        except Exception:
            mark, data = None, None
        if mark != _MARK:
            raise ConfigError(f"the file {self.location} is not a test cache")
        entries: dict[bytes, tuple[bytes, str]] = data
        return entries

    def _write(self, data: dict[bytes, tuple[bytes, str]]) -> None:
        temporary = self.location + ".tmp"
        with open(temporary, "wb") as f:
            pickle.dump((_MARK, data), f)
        os.replace(temporary, self.location)

    def get_many(self, keys: Sequence[bytes]) -> Mapping[bytes, bytes]:
        with self.lock:
            data = self._read()
        return {k: data[k][0] for k in keys if k in data}

    def put(self, key: bytes, value: bytes, node: str) -> None:
        with self.lock:
            data = self._read()
            data[key] = (value, node)
            self._write(data)

    def info(self) -> StoreInfo:
        with self.lock:
            data = self._read()
        counts = Counter(node for _, node in data.values())
        size = os.path.getsize(self.location) if os.path.exists(self.location) else 0
        return StoreInfo(self.location, dict(counts), size)

    def clear(self, node: str | None = None) -> int:
        with self.lock:
            data = self._read()
            gone = [k for k, (_, n) in data.items() if node in (None, n)]
            for k in gone:
                del data[k]
            self._write(data)
        return len(gone)

    def close(self) -> None:
        pass


class FileStorePlugin:
    """Registers :class:`FileStore` as ``testfile``."""

    @pocketcore.hookimpl
    def pocketcore_register_stores(self, register: Callable[[str, Any], None]) -> None:
        register(NAME, lambda rest: FileStore(os.path.abspath(rest)))


def entries(path: str | os.PathLike[str]) -> Counter[str]:
    """How many entries each node class has in the test cache at ``path``."""
    return Counter(node for _, node in FileStore(os.fspath(path))._read().values())
