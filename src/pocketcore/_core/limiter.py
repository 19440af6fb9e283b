"""What the layers below the run-time know of a limiter: the :class:`LimiterLike` protocol.

``pocketcore.Limiter`` lives in the run-time layer; the hook specs, below
it, describe the limiters they hand an observer with this protocol.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["LimiterLike"]


class LimiterLike(Protocol):
    """A limiter as an observer sees it; ``pocketcore.Limiter`` is one.

    Attributes:
        name: Its name, for messages and listings, or ``None``.
        max_concurrency: The most items holding it at once, or ``None``.
        max_per_second: The most items starting per second, or ``None``.
    """

    @property
    def name(self) -> str | None:
        """Its name, or ``None``."""
        ...

    @property
    def max_concurrency(self) -> int | None:
        """The most items holding it at once, or ``None``."""
        ...

    @property
    def max_per_second(self) -> float | None:
        """The most items starting per second, or ``None``."""
        ...
