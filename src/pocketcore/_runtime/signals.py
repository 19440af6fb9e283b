"""What a failed call says about the provider: slow down (and for how long), or try again.

Providers answer too many calls with HTTP 429 (Anthropic's overload with
529), and say when to come back in headers: ``retry-after`` (seconds or an
HTTP date), ``retry-after-ms``, and the ``x-ratelimit-reset-*`` family. The
clients users call them with (openai, anthropic, httpx, requests, aiohttp,
litellm) raise exceptions that carry the status and the headers, each in its
own place. They are read here by shape, never by importing a client: a
status in ``status_code`` or ``status`` on the exception or on its
``response``, headers in ``headers`` on either. A wrapped exception is read
through its ``__cause__``.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from datetime import datetime, timezone

from pocketcore._core.provider import ProviderSignal
from pocketcore._plugins.registry import get_registry

__all__ = [
    "RATE_LIMITED",
    "TRANSIENT",
    "ProviderSignal",
    "classify",
    "headers_of",
    "parse_duration",
    "remaining",
    "retry_after",
    "signal_of",
    "status_of",
]

RATE_LIMITED = frozenset({429, 529})
"""Statuses that mean "too many calls": rate limited, or (Anthropic) overloaded."""

TRANSIENT = frozenset({500, 502, 503, 504})
"""Server errors worth another attempt after a backoff."""

_CHAIN = 4  # how far down __cause__ to look for the exception that carries the response


def _status(obj: object) -> int | None:
    for name in ("status_code", "status"):
        value = getattr(obj, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    out = [exc]
    while len(out) < _CHAIN and out[-1].__cause__ is not None:
        out.append(out[-1].__cause__)
    return out


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (on itself or its ``response``), or ``None``."""
    for link in _chain(exc):
        status = _status(link)
        if status is None:
            status = _status(getattr(link, "response", None))
        if status is not None:
            return status
    return None


def headers_of(exc: BaseException) -> Mapping[str, str]:
    """The response headers an exception carries, with lower-case names (empty if none)."""
    for link in _chain(exc):
        for holder in (getattr(link, "response", None), link):
            headers = getattr(holder, "headers", None)
            if headers is not None and hasattr(headers, "items"):
                return {str(k).lower(): str(v) for k, v in headers.items()}
    return {}


_DURATION = re.compile(
    r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m(?!s))?"
    r"(?:(?P<s>\d+(?:\.\d+)?)s)?(?:(?P<ms>\d+(?:\.\d+)?)ms)?$"
)


def parse_duration(text: str, now: float | None = None) -> float | None:
    """Seconds from a reset or retry header's value, or ``None`` if it is not one.

    Accepts a plain number of seconds (``"20"``, ``"0.5"``), a duration as
    OpenAI writes them (``"6m0s"``, ``"1.5s"``, ``"40ms"``, ``"1h2m3s"``),
    an HTTP date (``retry-after``) or an ISO 8601 time (Anthropic's resets);
    a time is counted from ``now`` (Unix seconds; the clock if ``None``),
    and one in the past is 0.
    """
    text = text.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    match = _DURATION.match(text)
    if match and any(match.groups()):
        parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
        return (
            parts.get("h", 0.0) * 3600
            + parts.get("m", 0.0) * 60
            + parts.get("s", 0.0)
            + parts.get("ms", 0.0) / 1000
        )
    when = _as_time(text)
    if when is None:
        return None
    return max(0.0, when - (time.time() if now is None else now))


def _as_time(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds until the provider takes calls again, from response headers (lower-case names).

    ``retry-after-ms`` first, then ``retry-after``; failing both, the
    longest of the ``*-reset-*`` times of a budget that has nothing left
    (any of them when none says how much is left).
    """
    ms = headers.get("retry-after-ms")
    if ms is not None:
        value = parse_duration(ms, now)
        if value is not None:
            return value / 1000
    plain = headers.get("retry-after")
    if plain is not None:
        value = parse_duration(plain, now)
        if value is not None:
            return value
    resets: list[float] = []
    exhausted: list[float] = []
    for name, text in headers.items():
        if "ratelimit" not in name or "reset" not in name:
            continue
        value = parse_duration(text, now)
        if value is None:
            continue
        resets.append(value)
        left = headers.get(name.replace("reset", "remaining"))
        if left is not None and _number(left) == 0:
            exhausted.append(value)
    chosen = exhausted or resets
    return max(chosen) if chosen else None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


_REMAINING = re.compile(r"^(?:x-)?(?:[a-z]+-)?ratelimit-remaining-(?P<unit>[a-z-]+)$")
_UNITS = {"requests": "requests", "tokens": "tokens"}


def remaining(headers: Mapping[str, str]) -> dict[str, float]:
    """What the provider says is left of each budget, by unit (``requests``, ``tokens``).

    Read from ``x-ratelimit-remaining-requests`` / ``-tokens`` (OpenAI's
    names) and ``anthropic-ratelimit-requests-remaining`` / ``-tokens-remaining``
    (Anthropic's); names are lower-case.
    """
    out: dict[str, float] = {}
    for name, text in headers.items():
        unit: str | None = None
        match = _REMAINING.match(name)
        if match:
            unit = _UNITS.get(match["unit"])
        elif name.startswith("anthropic-ratelimit-") and name.endswith("-remaining"):
            unit = _UNITS.get(name[len("anthropic-ratelimit-") : -len("-remaining")])
        if unit is None:
            continue
        value = _number(text)
        if value is not None and value >= 0:
            out[unit] = min(value, out.get(unit, math.inf))
    return out


def signal_of(exc: BaseException, now: float | None = None) -> ProviderSignal | None:
    """What ``exc`` says about its provider, or ``None`` when it says nothing.

    A 429 or 529 is a rate-limit signal with the wait its headers give; a
    500, 502, 503 or 504 is a transient error worth a retry (with the
    ``retry-after`` the server may have sent).
    """
    status = status_of(exc)
    if status is None:
        return None
    if status in RATE_LIMITED:
        return ProviderSignal(True, retry_after(headers_of(exc), now), status)
    if status in TRANSIENT:
        return ProviderSignal(False, retry_after(headers_of(exc), now), status)
    return None


def classify(exc: BaseException) -> ProviderSignal | None:
    """What ``exc`` says about its provider: the plugins' word first, then :func:`signal_of`.

    A plugin implementing ``pocketcore_classify_error`` can teach pocketcore
    the exceptions of a client it does not read by shape. Asked only when a
    call has failed.
    """
    hook = get_registry().pm.hook.pocketcore_classify_error
    if hook.get_hookimpls():
        said = hook(exception=exc)
        if said is not None:
            return said  # type: ignore[no-any-return]
    return signal_of(exc)
