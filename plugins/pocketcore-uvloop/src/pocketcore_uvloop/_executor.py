"""The ``uvloop`` executor: the ``asyncio`` executor, on uvloop's event loop.

Scheduling is not repeated here: :class:`UvloopExecutor` subclasses
:class:`pocketcore_asyncio.AsyncioExecutor` and changes only its ``name`` and
``run``. When pocketcore starts the loop (``pocketcore.run``, a sync flow's
parallel batch), ``run`` starts uvloop's; its ``backend`` is ``"asyncio"``,
so a batch awaited inside an asyncio loop that is already running (uvloop's
or the default one) is scheduled there exactly as by the ``asyncio`` executor.

uvloop is imported only inside ``run``: loading the plugin, which every
process that runs a flow does, stays as cheap as loading the asyncio one.
pocketcore is imported only to raise its ``ConfigError`` where uvloop cannot
run (Windows, or a platform the install left it off).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pluggy

from pocketcore_asyncio import AsyncioExecutor

__all__ = ["UvloopExecutor", "pocketcore_register_executors"]

T = TypeVar("T")

hookimpl = pluggy.HookimplMarker("pocketcore")


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
        # At run time only: loading the plugin stays cheap.
        from pocketcore import ConfigError

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

    def __repr__(self) -> str:
        return "UvloopExecutor()"


@hookimpl
def pocketcore_register_executors(register: Callable[[Any], None]) -> None:
    """Register the ``uvloop`` executor."""
    register(UvloopExecutor())
