"""A plain node's step: its one input through the attempts, and the cache if it opted in.

The functions here *are* the ``_exec`` of :class:`~pocketcore.Node` and
:class:`~pocketcore.AsyncNode` (the classes assign them), so a node step
runs them with no frame in between. A plain node is cached only when it
opts in (its own ``cache`` is ``True`` or a store); without one, a step
asks nothing else, and the usual async step (one attempt) awaits
``exec_async`` right here.
"""

from __future__ import annotations

from typing import Any

from pocketcore._dispatch.attempts import retry, retry_async
from pocketcore._dispatch.cached import exec_cached, exec_cached_async
from pocketcore._runtime.cache import node_cache

__all__ = ["exec_step", "exec_step_async"]


def exec_step(node: Any, prep_res: Any) -> Any:
    """``Node._exec``: ``exec`` with the node's attempts, waits and fallback (and cache)."""
    if node.cache is None or node.cache is False:
        return retry(node, node.exec, False, prep_res)
    return exec_cached(node, prep_res)


async def exec_step_async(node: Any, prep_res: Any) -> Any:
    """``AsyncNode._exec``: :func:`exec_step` for ``exec_async``."""
    if node.cache is not None and node.cache is not False:
        cache = node_cache(node, batch=False)
        if cache is not None:
            return await exec_cached_async(node, cache, prep_res)
    elif node.max_retries == 1:
        # The usual step: no loop, and exec_async called as a method (no bound method made).
        node.__dict__["cur_retry"] = 0
        try:
            return await node.exec_async(prep_res)
        except Exception as exc:
            return await node.exec_fallback_async(prep_res, exc)
    return await retry_async(node, node.exec_async, False, prep_res)
