"""What a failed call says about the provider it called: the value the classifiers return."""

from __future__ import annotations

import attrs

__all__ = ["ProviderSignal"]


@attrs.frozen
class ProviderSignal:
    """What a failure says about the provider: slow down (and for how long), or try again.

    Returned by the built-in reading of HTTP errors and by plugins'
    ``pocketcore_classify_error`` hooks.

    Attributes:
        rate_limited: The provider refused the call for its rate limits:
            every call sharing the item's limiters should wait, and the
            item tries again without spending one of its ``max_retries``.
        retry_after: Seconds until the provider takes calls again, when it
            said (``None``: it did not).
        status: The HTTP status the signal was read from, if any.
    """

    rate_limited: bool
    retry_after: float | None = None
    status: int | None = None
