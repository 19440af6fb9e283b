"""pocketcore: PocketFlow's API on a small kernel with pluggable executors.

Code written for PocketFlow runs by changing ``import pocketflow`` to
``import pocketcore``. How the items of a parallel batch are scheduled is
supplied by executor plugins and chosen by configuration; see
:func:`pocketcore.run`.

This module says what the public API is. The kernel behind it is in layers,
lowest first, each importing only from those below it (``nox -s lint``
checks this with import-linter; docs/architecture.md describes them):

1. ``_core``: the exceptions, the executor protocol and its capabilities,
   the store protocol and base, what the lower layers know of a node.
2. ``hookspecs``: the hook specs, typed with ``_core``'s protocols.
3. ``_stores``: the built-in result-cache stores.
4. ``_plugins``: plugin manager, entry-point discovery, the registry.
5. ``_runtime``: configuration, the run's context, observation, the cache.
6. ``_dispatch``: the per-item pipeline and the fan-out to an executor.
7. ``_nodes``: PocketFlow's node and flow classes.
8. ``_front``: :func:`run`, flow files, graph rendering, the timeline.
9. ``_cli`` and ``testing``: the command line, and the conformance suites.
"""

from __future__ import annotations

from ._core.errors import (
    CacheError,
    ConfigError,
    EntryNotStored,
    PluginError,
    PluginWarning,
    PocketcoreError,
    attach_failures,
)
from ._core.executor import (
    BaseExecutor,
    BlockingExecutor,
    Executor,
    Gate,
    GatingExecutor,
    RemoteExecutor,
    ReportingExecutor,
    TaskBatch,
    TaskExecutor,
)
from ._core.plugin import PluginState, ReportsState
from ._core.provider import ProviderSignal
from ._core.results import Failed
from ._core.store import BaseStore, Store, StoreInfo, StoreOpener
from ._front.flowfile import FlowFileError, LoadedFlow, load_flow
from ._front.run import run
from ._front.timeline import Timeline
from ._nodes.flows import (
    AsyncBatchFlow,
    AsyncFlow,
    AsyncParallelBatchFlow,
    BatchFlow,
    Flow,
    ParallelBatchFlow,
)
from ._nodes.nodes import (
    AsyncBatchNode,
    AsyncNode,
    AsyncParallelBatchNode,
    BaseNode,
    BatchNode,
    Node,
    ParallelBatchNode,
)
from ._plugins.entries import ExecutorEntry, NodeEntry
from ._plugins.registry import (
    PluginFailure,
    Registry,
    get_registry,
    make_plugin_manager,
)
from ._runtime.backoff import Backoff
from ._runtime.cache import CacheWarning
from ._runtime.config import Setting, plugin_settings
from ._runtime.governor import report_usage
from ._runtime.limits import Limiter
from ._runtime.plugin_config import PluginKey, PluginSettings
from ._runtime.stores import close_stores
from .hookspecs import hookimpl

__all__ = [
    "AsyncBatchFlow",
    "AsyncBatchNode",
    "AsyncFlow",
    "AsyncNode",
    "AsyncParallelBatchFlow",
    "AsyncParallelBatchNode",
    "Backoff",
    "BaseExecutor",
    "BaseNode",
    "BaseStore",
    "BatchFlow",
    "BatchNode",
    "BlockingExecutor",
    "CacheError",
    "CacheWarning",
    "ConfigError",
    "EntryNotStored",
    "Executor",
    "ExecutorEntry",
    "Failed",
    "Flow",
    "FlowFileError",
    "Gate",
    "GatingExecutor",
    "Limiter",
    "LoadedFlow",
    "Node",
    "NodeEntry",
    "ParallelBatchFlow",
    "ParallelBatchNode",
    "PluginError",
    "PluginFailure",
    "PluginKey",
    "PluginSettings",
    "PluginState",
    "PluginWarning",
    "PocketcoreError",
    "ProviderSignal",
    "Registry",
    "RemoteExecutor",
    "ReportingExecutor",
    "ReportsState",
    "Setting",
    "Store",
    "StoreInfo",
    "StoreOpener",
    "TaskBatch",
    "TaskExecutor",
    "Timeline",
    "attach_failures",
    "close_stores",
    "get_registry",
    "hookimpl",
    "load_flow",
    "make_plugin_manager",
    "plugin_settings",
    "report_usage",
    "run",
]
