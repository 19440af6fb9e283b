"""Helpers of the flow-file tests: writing, loading and running a file's text."""

from __future__ import annotations

import json
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

import pocketcore
from pocketcore import Registry
from pocketcore._front.flowfile import FlowFileError, LoadedFlow, load_flow

EXECUTORS = ["sequential", "asyncio", "trio"]
BACKEND = {"sequential": "asyncio", "asyncio": "asyncio", "trio": "trio"}
FLOWFILES = Path(__file__).parent.parent / "flowfiles"


def write(text: str, directory: str | Path) -> Path:
    path = Path(directory, "flow.toml")
    path.write_text(textwrap.dedent(text))
    return path


def load(text: str, registry: Registry) -> LoadedFlow:
    with tempfile.TemporaryDirectory() as tmp:
        return load_flow(write(text, tmp), registry=registry)


def problems(text: str, registry: Registry) -> list[str]:
    with pytest.raises(FlowFileError) as info:
        load(text, registry)
    return info.value.problems


def run(loaded: LoadedFlow, shared: dict[str, Any], executor: str | None = None) -> Any:
    return pocketcore.run(
        loaded.flow,
        shared,
        executor=executor or loaded.executor,
        max_concurrency=loaded.max_concurrency,
    )


def place(*parts: str) -> str:
    bare = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
    return "[" + ".".join(p if p and set(p) <= set(bare) else json.dumps(p) for p in parts) + "]"
