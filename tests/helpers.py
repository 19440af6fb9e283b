"""Small building blocks shared by the kernel tests."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import sniffio

import pocketcore
from pocketcore.testing import RecordingExecutor


class Double(pocketcore.AsyncParallelBatchNode):
    """Doubles every item of ``shared["items"]`` into ``shared["out"]``."""

    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return shared.get("items", [1, 2, 3])

    async def exec_async(self, item: int) -> int:
        return item * 2

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["out"] = exec_res
        shared["backend"] = sniffio.current_async_library()
        return "done"


class RecorderPlugin:
    """A plugin registering recording executors named ``rec-0`` ... ``rec-<n-1>``."""

    def __init__(self, n: int = 5) -> None:
        self.recorders = {f"rec-{i}": RecordingExecutor(name=f"rec-{i}") for i in range(n)}

    @pocketcore.hookimpl
    def pocketcore_register_executors(self, register: Any) -> None:
        for recorder in self.recorders.values():
            register(recorder)

    def used(self) -> list[str]:
        return [name for name, rec in self.recorders.items() if rec.calls]

    def reset(self) -> None:
        for rec in self.recorders.values():
            rec.calls.clear()


@contextlib.contextmanager
def configured(
    env: Mapping[str, str] | None = None, files: Mapping[str, str] | None = None
) -> Iterator[Path]:
    """Run the body in a fresh working directory holding ``files``, with ``env`` set."""
    env = dict(env or {})
    saved_env = {k: os.environ.get(k) for k in env}
    saved_cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in (files or {}).items():
            Path(tmp, name).write_text(text)
        os.chdir(tmp)
        os.environ.update(env)
        try:
            yield Path(tmp)
        finally:
            os.chdir(saved_cwd)
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
