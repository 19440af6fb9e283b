"""The public face of flow files: :func:`load_flow`, :class:`LoadedFlow`, :class:`FlowFileError`."""

from __future__ import annotations

import os
import types
from collections.abc import Mapping
from typing import Any

import attrs

from pocketcore._core.errors import ConfigError
from pocketcore._nodes.nodes import BaseNode
from pocketcore._plugins.registry import Registry, get_registry
from pocketcore._runtime.settings import SETTINGS

from .checks import FatalProblem
from .loader import Loader
from .reading import read_toml


@attrs.frozen
class LoadedFlow:
    """A flow built from a flow file, with the run settings the file gives.

    Run it with ``pocketcore.run(loaded.flow, shared, **loaded.config)``, so
    that the file's ``[config]`` applies and the caller can still override it.

    The params the file gives a node fill in the keys its flow does not pass
    down (see ``docs/flow-files.md``). They are the node's ``params`` dict, so
    ``loaded.names["load"].params["model"] = "x"`` before a run changes them;
    ``loaded.flow.params`` are the top-level flow's, which reach every node.

    Attributes:
        flow: The top-level flow, ready to run.
        executor: ``executor`` of the file's ``[config]``, else ``None``.
        max_concurrency: ``max_concurrency`` of the file's ``[config]``, else ``None``.
        path: The file it was loaded from.
        names: Every node of the file by its qualified name: ``"load"`` for a
            node of the top-level flow, ``"sub.x"`` for node ``x`` of the
            nested flow ``sub`` (which is itself ``"sub"``).
        max_per_second: ``max_per_second`` of the file's ``[config]``, else ``None``.
        limiter: ``limiter`` of the file's ``[config]`` (a declared limiter's
            name), else ``None``.
        on_error: ``on_error`` of the file's ``[config]``, else ``None``.
        timeout: ``timeout`` of the file's ``[config]``, else ``None``.
        cache: ``cache`` of the file's ``[config]`` as the file gives it (a
            store specification; ``False`` or ``"off"`` turns the run's cache
            off), else ``None``.
        cache_ttl: ``cache_ttl`` of the file's ``[config]``, else ``None``.
    """

    flow: BaseNode
    executor: str | None
    max_concurrency: int | None
    path: str
    names: Mapping[str, BaseNode]
    max_per_second: float | None = None
    limiter: str | None = None
    on_error: str | None = None
    timeout: float | None = None
    cache: str | bool | None = None
    cache_ttl: float | None = None

    @property
    def config(self) -> dict[str, Any]:
        """The settings of the file's ``[config]``, as keyword arguments of ``pocketcore.run``."""
        given = {key: getattr(self, key) for key in SETTINGS}
        return {key: value for key, value in given.items() if value is not None}


class FlowFileError(ConfigError):
    """A flow file cannot be loaded; every problem found is listed.

    ``str(error)`` is ``"PATH: N problem(s)"`` followed by one indented line
    per problem. It is a :class:`~pocketcore.ConfigError`, so also a
    ``ValueError``.

    Attributes:
        path: The file.
        problems: Each problem, starting with its place in the file, as in
            ``"[flow.nodes.load] use: unknown node 'sumarize' (registered: ...)"``.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "".join(f"\n  {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s){lines}")


def load_flow(path: str | os.PathLike[str], *, registry: Registry | None = None) -> LoadedFlow:
    """Load a flow file and build the flow it describes.

    Everything is checked before the flow is returned: node names and
    classes, settings and their types, edges, start nodes, nested flows and
    batch settings. Classes named as ``module:Class`` are imported and every
    node is created (so their constructors run); nothing else runs.

    Args:
        path: The TOML file.
        registry: Where registered node names and executor names are looked
            up; :func:`pocketcore.get_registry` by default.

    Returns:
        The built flow, the file's ``[config]`` and every node by name.

    Raises:
        FlowFileError: The file is missing, is not TOML, or describes an
            invalid flow; every problem found is listed.
        PluginError: The registry's plugins conflict (two register one name).
    """
    path = os.fspath(path)
    try:
        data = read_toml(path)
    except FatalProblem as exc:
        raise FlowFileError(path, [str(exc)]) from None
    loader = Loader(get_registry() if registry is None else registry)
    try:
        flow, config = loader.load(data)
    except FatalProblem as exc:
        raise FlowFileError(path, [str(exc)]) from None
    except RecursionError:
        # The loader's nesting limits keep loading well inside the interpreter's
        # recursion limit; this is the net for a caller already deep in it.
        raise FlowFileError(path, ["nested too deeply to load"]) from None
    if loader.problems or flow is None:
        # A problem is found once per use of a nested flow; say it once.
        raise FlowFileError(path, list(dict.fromkeys(loader.problems)))
    names = {name: node for name, node in loader.names.items() if node is not None}
    return LoadedFlow(
        flow=flow,
        path=path,
        names=types.MappingProxyType(names),
        **{key: config.get(key) for key in SETTINGS},
    )
