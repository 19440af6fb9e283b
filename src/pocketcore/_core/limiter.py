"""What the layers below the run-time know of a limiter: the :class:`LimiterLike` protocol.

``pocketcore.Limiter`` lives in the run-time layer; the hook specs, below
it, describe the limiters they hand an observer with this protocol.
"""

from __future__ import annotations

from typing import Literal, Protocol

__all__ = ["LimiterLike"]


class LimiterLike(Protocol):
    """A limiter as an observer sees it; ``pocketcore.Limiter`` is one.

    Attributes:
        name: Its name, for messages and listings, or ``None``.
        max_concurrency: The most items holding it at once, ``"auto"``
            when it finds that bound itself, or ``None``.
        max_per_second: The most items starting per second, or ``None``.
        concurrency: The bound on items holding it in force now:
            ``max_concurrency``, or where ``"auto"`` stands (it moves as
            calls succeed and are refused), or ``None``.
        ceiling: The most ``"auto"`` grows to.
    """

    @property
    def name(self) -> str | None:
        """Its name, or ``None``."""
        ...

    @property
    def max_concurrency(self) -> int | Literal["auto"] | None:
        """The most items holding it at once, ``"auto"``, or ``None``."""
        ...

    @property
    def concurrency(self) -> int | None:
        """The bound in force now (where ``"auto"`` stands), or ``None``."""
        ...

    @property
    def ceiling(self) -> int:
        """The most ``"auto"`` grows to."""
        ...

    @property
    def max_per_second(self) -> float | None:
        """The most items starting per second, or ``None``."""
        ...
