"""The flow-file tests' registry: the three executors and the test nodes, nothing else."""

from __future__ import annotations

import pytest

import pocketcore
import pocketcore_asyncio
import pocketcore_sequential
import pocketcore_trio
from pocketcore import Registry
from tests import flowfile_nodes as nodes


@pytest.fixture(scope="module")
def registry() -> Registry:
    """A fresh registry: the three executors and the test nodes, nothing from entry points."""
    reg = Registry(pocketcore.make_plugin_manager())
    for module in (pocketcore_sequential, pocketcore_asyncio, pocketcore_trio):
        reg.register(module, name=module.__name__)
    reg.register(nodes.NodesPlugin(), name="flowfile-test-nodes")
    return reg
