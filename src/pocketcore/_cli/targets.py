"""Loading what a command works on: the registry, and the node or flow a TARGET names."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import operator
import os
import sys
import types
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from pocketcore._core.errors import PluginWarning
from pocketcore._front.flowfile import load_flow
from pocketcore._nodes.nodes import BaseNode
from pocketcore._plugins.registry import Registry, get_registry
from pocketcore._runtime.config import set_program

from .errors import BadInput, user_code
from .output import describe_error, warn

__all__ = ["TARGET_HELP", "Target", "cwd_on_path", "load_registry", "load_target"]

TARGET_HELP = (
    "a flow file (*.toml), path/to/file.py:object, or package.module:object; the object "
    "is a node or flow, or a callable taking no arguments that returns one"
)


def load_registry(*, report: bool = True) -> Registry:
    """The process's registry; plugin load failures become one-line warnings.

    The kernel warns with ``PluginWarning``, which Python would print with a
    file name and line of the kernel; the command says the same in its own
    voice (or lists the failures, for the listings, with ``report=False``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        registry = get_registry()
    if report:
        for failure in registry.failures:
            warn(str(failure))
    return registry


class Target(NamedTuple):
    """What a TARGET names: the node or flow, and what its flow file configures."""

    node: BaseNode
    executor: str | None = None
    max_concurrency: int | None = None
    names: Mapping[str, BaseNode] | None = None
    config: Mapping[str, Any] = types.MappingProxyType({})
    """Every setting of the flow file's ``[config]`` (see ``LoadedFlow.config``)."""


def load_target(spec: str, registry: Registry) -> Target:
    """Load the node or flow that ``spec`` (a TARGET argument) names.

    Raises:
        BadInput: The file or module is missing or cannot be imported, the
            object does not exist, or it is not a node or flow (nor a callable
            without arguments returning one).
        FlowFileError: The flow file has problems.
        TargetFailed: A factory raised while building the flow.
    """
    if spec.lower().endswith(".toml"):
        return _load_flow_file(spec, registry)
    where, sep, attr = spec.rpartition(":")
    if not sep and spec.endswith(".py"):
        raise BadInput(f"TARGET {spec!r} names a file but no object in it: use {spec}:NAME")
    if not (sep and where and attr and all(p.isidentifier() for p in attr.split("."))):
        raise BadInput(
            f"TARGET must be a flow file (*.toml), path/to/file.py:object or "
            f"package.module:object, got {spec!r}"
        )
    module = _import(where, spec)
    try:
        obj = operator.attrgetter(attr)(module)
    except AttributeError:
        close = difflib.get_close_matches(attr, [n for n in dir(module) if n[:1] != "_"], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise BadInput(f"{where!r} has no attribute {attr!r}{hint}") from None
    return Target(_as_node(obj, spec))


def _import(where: str, spec: str) -> ModuleType:
    if where.endswith(".py") or "/" in where or os.sep in where:
        return _import_file(where)
    if all(p.isidentifier() for p in where.split(".")):
        return _import_module(where)
    raise BadInput(f"{where!r} is neither a .py file nor a module name (in TARGET {spec!r})")


def _load_flow_file(spec: str, registry: Registry) -> Target:
    path = Path(spec)
    if not path.is_file():
        raise BadInput(f"no such flow file: {spec!r}")
    cwd_on_path()
    set_program(str(path))  # its folder's configuration, when the working directory has none
    before = len(registry.failures)
    with warnings.catch_warnings():
        # Node entry points are loaded now, the first time a flow file asks.
        warnings.simplefilter("ignore", PluginWarning)
        loaded = load_flow(path, registry=registry)
    for failure in registry.failures[before:]:
        warn(str(failure))
    return Target(
        loaded.flow,
        loaded.executor,
        loaded.max_concurrency,
        loaded.names,
        types.MappingProxyType(loaded.config),
    )


def _import_file(where: str) -> ModuleType:
    path = Path(where)
    if not path.is_file():
        raise BadInput(f"no such file: {where!r}")
    # Not "__main__" (that would run the file's own command-line code); the
    # file's name, unless a module of that name is imported already.
    name = path.stem if path.stem.isidentifier() else "pocketcore_target"
    base, n = name, 1
    while name in sys.modules:
        n += 1
        name = f"{base}_{n}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BadInput(f"cannot import {where!r}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    # As `python path/to/file.py` does, so the file can import its neighbours,
    # and the configuration beside it is found (see find_config).
    set_program(str(path))
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module  # classes and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise BadInput(f"cannot import {where!r}: {describe_error(exc)}") from exc
    return module


def cwd_on_path() -> None:
    """Put the working directory first on ``sys.path``, unless it is there already.

    Console scripts do not put it there (``python -m`` does); a project's own
    modules are what ``package.module:object`` and a flow file's
    ``module:Class`` name.
    """
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


def _import_module(name: str) -> ModuleType:
    cwd_on_path()
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise BadInput(f"cannot import module {name!r}: {describe_error(exc)}") from exc


def _as_node(obj: Any, spec: str) -> BaseNode:
    if isinstance(obj, BaseNode):
        return obj
    if not callable(obj):
        raise BadInput(f"{spec!r} is not a node or flow (it is of type {type(obj).__name__})")
    try:
        inspect.signature(obj).bind()
    except TypeError:
        raise BadInput(
            f"{spec!r} needs arguments; TARGET must name a node, a flow, or a callable "
            "taking no arguments that returns one"
        ) from None
    except ValueError:  # no signature to inspect (some builtins): just call it
        pass
    # A PocketcoreError passes (e.g. a node built with max_concurrency=0): bad input.
    with user_code():
        result = obj()
    if not isinstance(result, BaseNode):
        raise BadInput(
            f"{spec!r} returned an object of type {type(result).__name__}, not a node or flow"
        )
    return result
