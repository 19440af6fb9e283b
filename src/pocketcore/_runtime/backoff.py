"""How long to wait before the next attempt: a number of seconds, or a :class:`Backoff`."""

from __future__ import annotations

import math
import random
from typing import Any

import attrs

from pocketcore._core.errors import ConfigError
from pocketcore._runtime.signals import classify

__all__ = ["Backoff", "pause_before"]


def _positive(what: str) -> Any:
    def check(instance: object, attribute: object, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"Backoff {what} must be a number, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"Backoff {what} must be a positive, finite number, got {value!r}")

    return check


@attrs.frozen
class Backoff:
    """Exponential backoff with full jitter, for ``wait=`` on a node.

    The wait before attempt ``n + 1`` (after the ``n``-th failure, counted
    from 0) is drawn at random between 0 and ``min(maximum, initial *
    multiplier ** n)``: retries of many items spread out instead of coming
    back in waves. When the failure carries the server's own word (a
    ``retry-after`` or ``retry-after-ms`` header on a 429 or a 5xx, read
    from the exception as limiters read it), that wait is used instead.

    Args:
        initial: The bound of the first wait, in seconds.
        maximum: The largest bound, in seconds.
        multiplier: How much the bound grows with each failure (at least 1).
        jitter: ``False`` waits the bound itself (no randomness), for tests
            and for a single caller.

    Raises:
        ConfigError: A value is not a positive, finite number, or
            ``multiplier`` is below 1.
    """

    initial: float = attrs.field(default=1.0, validator=_positive("initial"))
    maximum: float = attrs.field(default=60.0, validator=_positive("maximum"))
    multiplier: float = attrs.field(default=2.0, validator=_positive("multiplier"))
    jitter: bool = True

    def __attrs_post_init__(self) -> None:
        if self.multiplier < 1:
            raise ConfigError(f"Backoff multiplier must be >= 1, got {self.multiplier!r}")

    def bound(self, failures: int) -> float:
        """The most it waits after ``failures + 1`` failures in a row."""
        try:
            grown = self.initial * self.multiplier**failures
        except OverflowError:  # far past the maximum
            return self.maximum
        return min(self.maximum, grown)

    def delay(self, failures: int, exc: BaseException | None = None) -> float:
        """Seconds to wait after the ``failures``-th failure (from 0) ended with ``exc``."""
        if exc is not None:
            signal = classify(exc)
            if signal is not None and signal.retry_after is not None:
                return signal.retry_after
        bound = self.bound(failures)
        return random.uniform(0, bound) if self.jitter else bound


def pause_before(wait: Any, failures: int, exc: BaseException) -> float:
    """The seconds a node's ``wait`` asks for after its ``failures``-th failure (from 0)."""
    if isinstance(wait, Backoff):
        return wait.delay(failures, exc)
    return float(wait)
