"""The checks of a limit's value, each rule written once.

The settings table, limiters, plugins' settings and flow files all check
their bounds with these, so a bad value reads the same wherever it was given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pocketcore._core.errors import ConfigError

__all__ = ["check_budgets", "check_count", "check_rate"]


def check_rate(value: object, source: str, what: str = "max_per_second") -> float | None:
    """Return ``value`` as a positive, finite number of seconds or calls per second.

    ``None`` means unset. ``bool``, zero, negative, NaN and infinite values
    are a :class:`ConfigError` naming ``source``.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"{what} must be a positive number, got {value!r} ({type(value).__name__}) "
            f"from {source}"
        )
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{what} must be a positive, finite number, got {value!r} from {source}")
    return float(value)


def check_count(value: object, source: str, what: str = "max_concurrency") -> int | None:
    """Return ``value`` as a count of at least one (a concurrency limit), or raise ConfigError.

    ``None`` means unset; anything else must be an ``int`` >= 1 (``bool`` is
    rejected even though it is an ``int``). The one place this rule is written:
    the settings table, limiters and flow files all use it.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"{what} must be an integer >= 1, got {value!r} ({type(value).__name__}) from {source}"
        )
    if value < 1:
        raise ConfigError(f"{what} must be >= 1, got {value} from {source}")
    return value


def check_budgets(budgets: object, source: str) -> dict[str, float]:
    """The ``budgets`` table checked: unit -> per minute, neither requests nor tokens."""
    if not isinstance(budgets, Mapping):
        raise ConfigError(f"budgets must be a table of unit = per minute, from {source}")
    per_minute: dict[str, float] = {}
    for unit, value in budgets.items():
        rate = check_rate(value, source, f"budgets.{unit}")
        if rate is not None:
            per_minute[str(unit)] = rate
    for unit in ("requests", "tokens"):
        if unit in per_minute:
            raise ConfigError(f"budgets.{unit} in {source}: give it as {unit}_per_minute")
    return per_minute
