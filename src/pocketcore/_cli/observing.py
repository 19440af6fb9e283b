"""An observer registered for the length of one command's run, and no longer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pocketcore._plugins.registry import Registry

__all__ = ["registered"]


@contextlib.contextmanager
def registered(registry: Registry, observer: object, name: str) -> Iterator[None]:
    """Register ``observer`` as plugin ``name`` while the body runs; unregister it after.

    Registered only for the run, a lifecycle-hook plugin costs nothing to the
    runs (and to the commands) that do not want it.
    """
    registry.register(observer, name=name)
    try:
        yield
    finally:
        registry.unregister(observer)
