"""Two thousand calls at once: a wide fan-out, with a few failures and a few slow answers.

``Fetch`` is an ``AsyncParallelBatchNode`` that sends one simulated request
per item, all at once (no concurrency limit). Each takes about 50 to 150 ms;
every 401st takes 0.3 s longer, and every 97th fails (``on_error="collect"``
keeps the batch going and gives a ``pocketcore.Failed`` for it). Its timeline
is too wide for one lane per item: it is drawn as a density, with the failed
and the slowest items a bar each. From the repository's root::

    pocketcore run examples/fan_out/flow.py:fetch --timeline wide.html

The shared store it reads: ``n``, the number of items (default 2000). It
writes ``ok`` (how many succeeded) and ``failed`` (the failed items' indices).
This module imports nothing from its package, so ``pocketcore run`` can load
it by path.
"""

from __future__ import annotations

from typing import Any

import anyio

import pocketcore


class Fetch(pocketcore.AsyncParallelBatchNode):
    """One simulated request per item, every one at once."""

    async def prep_async(self, shared: dict[str, Any]) -> range:
        return range(shared.get("n", 2000))

    async def exec_async(self, i: int) -> int:
        slow = 0.3 if i % 401 == 17 else 0.0
        await anyio.sleep(0.05 + 0.0001 * (i * 7919 % 1000) + slow)
        if i % 97 == 5:
            raise ConnectionError(f"item {i}: the service answered 503")
        return i

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        failed = [
            i for i, r in zip(prep_res, exec_res, strict=True) if isinstance(r, pocketcore.Failed)
        ]
        shared["ok"], shared["failed"] = len(exec_res) - len(failed), failed


fetch = Fetch(on_error="collect")
