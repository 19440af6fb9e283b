"""Node classes for the flow-file tests, named in files as ``tests.flowfile_nodes:Class``.

:class:`NodesPlugin` registers some of them by name, the way a node plugin does.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import sniffio

import pocketcore


class Record(pocketcore.Node):
    """Appends a copy of its params to ``shared["log"]``; returns ``params["action"]``, if any."""

    def prep(self, shared: dict[str, Any]) -> dict[str, Any]:
        return dict(self.params)

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> Any:
        shared.setdefault("log", []).append(prep_res)
        return prep_res.get("action")


class Summarize(Record):
    """A registered node with a name worth misspelling."""


class AsyncRecord(pocketcore.AsyncNode):
    """:class:`Record`, async, also noting the event loop it ran on."""

    async def prep_async(self, shared: dict[str, Any]) -> dict[str, Any]:
        await anyio.lowlevel.checkpoint()
        return {**self.params, "backend": sniffio.current_async_library()}

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> Any:
        shared.setdefault("log", []).append(prep_res)
        return prep_res.get("action")


class Countdown(pocketcore.Node):
    """Counts ``shared["left"]`` down: ``"again"`` while some are left, then ``"done"``."""

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["left"] -= 1
        shared["rounds"] = shared.get("rounds", 0) + 1
        return "again" if shared["left"] > 0 else "done"


class Fanout(pocketcore.AsyncParallelBatchNode):
    """Doubles ``shared["items"]`` into ``shared[params["out"]]``, noting the most in flight."""

    async def prep_async(self, shared: dict[str, Any]) -> list[tuple[int, dict[str, int]]]:
        gauge = shared.setdefault("gauge", {"now": 0, "most": 0})
        return [(item, gauge) for item in shared["items"]]

    async def exec_async(self, pair: tuple[int, dict[str, int]]) -> int:
        item, gauge = pair
        gauge["now"] += 1
        gauge["most"] = max(gauge["most"], gauge["now"])
        await anyio.sleep(0.01)
        gauge["now"] -= 1
        return item * 2

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared[self.params["out"]] = exec_res


class Flaky(pocketcore.Node):
    """Fails ``params["failures"]`` times in a run, then returns ``"ok"``; counts attempts."""

    def prep(self, shared: dict[str, Any]) -> dict[str, Any]:
        return shared

    def exec(self, shared: dict[str, Any]) -> str:
        shared["attempts"] = shared.get("attempts", 0) + 1
        if shared["attempts"] <= self.params["failures"]:
            raise RuntimeError(f"attempt {shared['attempts']} failed")
        return "ok"

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["result"] = exec_res


class Passes(pocketcore.BatchFlow):
    """A batch flow with passes of its own: ``n`` = 1, 2, 3."""

    def prep(self, shared: Any) -> list[dict[str, int]]:
        return [{"n": n} for n in (1, 2, 3)]


class NeedsArgs(pocketcore.Node):
    """A node that cannot be created without an argument."""

    def __init__(self, required: int) -> None:
        super().__init__()
        self.required = required


class WithDefaults(Record):
    """A node whose constructor gives it params of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.set_params({"model": "built-in", "size": 1})


class NotANode:
    """A class that is not a node."""


def not_a_class() -> None:
    """A function, not a class."""


class NodesPlugin:
    """Registers the test nodes by name, as a node plugin does."""

    @pocketcore.hookimpl
    def pocketcore_register_nodes(self, register: Any) -> None:
        register("record", Record)
        register("summarize", Summarize)
        register("record_async", AsyncRecord)
        register("countdown", Countdown)
        register("fanout", Fanout)
        register("flaky", Flaky)
        register("passes", Passes)
