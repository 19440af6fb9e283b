"""The ``uvloop`` executor itself (see the package's docstring)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pocketcore import ConfigError
from pocketcore_asyncio import AsyncioExecutor

__all__ = ["UvloopExecutor"]

T = TypeVar("T")


class UvloopExecutor(AsyncioExecutor):
    """The ``asyncio`` executor, whose :meth:`run` starts uvloop's event loop.

    ``map`` (and so the limit, fail-fast and cancellation) is
    :class:`~pocketcore_asyncio.AsyncioExecutor`'s, unchanged: uvloop's loop
    is an asyncio loop, and the executor's ``backend`` is ``"asyncio"``.
    """

    name = "uvloop"

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` on a new uvloop event loop (``uvloop.run``).

        Raises:
            pocketcore.ConfigError: uvloop is not available: on Windows, for
                which it is not built, or not installed.
        """
        if sys.platform == "win32":
            raise ConfigError("uvloop is not available on Windows; use executor='asyncio'")
        try:
            import uvloop
        except ImportError as exc:
            raise ConfigError(
                f"the uvloop executor needs the uvloop package, which cannot be imported "
                f"({exc}); install it (pip install uvloop) or use executor='asyncio'"
            ) from None

        async def main() -> T:
            return await fn()

        return uvloop.run(main())


# Known by its public place: in tracebacks, in the docs, and to pickle.
UvloopExecutor.__module__ = "pocketcore_uvloop"
