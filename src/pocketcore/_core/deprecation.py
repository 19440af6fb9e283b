"""Saying, once per class, that an object of an earlier protocol is used through an adapter."""

from __future__ import annotations

import warnings
import weakref

__all__ = ["warn_undeclared"]

_warned: weakref.WeakSet[type] = weakref.WeakSet()


def warn_undeclared(obj: object, what: str, base: str) -> None:
    """Warn that ``obj``'s class does not build on ``base`` (once per class, per process).

    ``what`` names the kind of object (``"executor"``, ``"cache store"``),
    ``base`` the public class it should subclass.
    """
    cls = type(obj)
    if cls in _warned:
        return
    _warned.add(cls)
    warnings.warn(
        f"the {what} {cls.__module__}.{cls.__qualname__} does not build on {base}; it is "
        f"used through an adapter for now, and must subclass {base} in the next release",
        DeprecationWarning,
        stacklevel=3,
    )
