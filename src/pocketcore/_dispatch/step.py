"""A plain node's step: its one input through the attempts, its timeout, and its cache.

The functions here *are* the ``_exec`` of :class:`~pocketcore.Node` and
:class:`~pocketcore.AsyncNode` (the classes assign them), so a node step
runs them with no frame in between. A plain node is cached only when it
opts in (its own ``cache`` is ``True`` or a store), and an async one is
timed by its own ``timeout`` or one in force for the run or a flow around
it. While no timeout is in force anywhere in the process
(:data:`~pocketcore._runtime.context.TIMING` is 0) and the node has neither
of its own (``_step_settings``, decided per class and by the constructor),
a step asks nothing else; the usual async step (one attempt) awaits
``exec_async`` right here, and ``AsyncNode._run_async`` does the same
without calling this function at all.
"""

from __future__ import annotations

from typing import Any

from pocketcore._dispatch.attempts import retry, retry_async, timed
from pocketcore._dispatch.cached import exec_cached, exec_cached_async
from pocketcore._runtime.cache import node_cache
from pocketcore._runtime.context import TIMING, step_timeout

__all__ = ["exec_step", "exec_step_async"]


def exec_step(node: Any, prep_res: Any) -> Any:
    """``Node._exec``: ``exec`` with the node's attempts, waits and fallback (and cache)."""
    if not node._step_settings:  # a blocking exec is never timed: only its own cache counts
        return retry(node, node.exec, False, prep_res)
    return exec_cached(node, prep_res)


async def exec_step_async(node: Any, prep_res: Any) -> Any:
    """``AsyncNode._exec``: :func:`exec_step` for ``exec_async``, each attempt in its timeout."""
    if node._step_settings or TIMING[0]:
        timeout = step_timeout(node)
        cache = node_cache(node, batch=False)
        if cache is not None:
            return await exec_cached_async(node, cache, prep_res, timeout)
        if timeout is not None:
            return await retry_async(node, timed(timeout, node.exec_async), False, prep_res)
    elif node.max_retries == 1:
        # The usual step: no loop, and exec_async called as a method (no bound method made).
        node.__dict__["cur_retry"] = 0
        try:
            return await node.exec_async(prep_res)
        except Exception as exc:
            return await node.exec_fallback_async(prep_res, exc)
    return await retry_async(node, node.exec_async, False, prep_res)
