"""Checking a flow file's values, each problem reported with its place in the file.

:class:`Checks` holds the problems found so far and the checks of single
values: keys, settings, params, batches, and the classes a file names. Each
check that fails reports ``[place] key: message`` and returns what is valid,
so that loading goes on and one pass finds every problem. The loader builds on it.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeGuard

from pocketcore._core.errors import ConfigError
from pocketcore._nodes import flows
from pocketcore._nodes.flows import BatchFlow, Flow
from pocketcore._nodes.nodes import AsyncNode, BaseNode
from pocketcore._plugins.registry import Registry
from pocketcore._runtime.config import find_config, plugin_settings
from pocketcore._runtime.settings import CACHE_OFF, SETTINGS
from pocketcore._runtime.stores import parse_spec
from pocketcore._runtime.values import check_count

FLOW_TYPES: dict[str, type[Flow]] = {
    cls.__name__: cls
    for cls in (
        Flow,
        flows.AsyncFlow,
        BatchFlow,
        flows.AsyncBatchFlow,
        flows.ParallelBatchFlow,
        flows.AsyncParallelBatchFlow,
    )
}

_MISSING = object()

Path = tuple[str, ...]
"""A table's place in the file, as its header keys: ``("flow", "nodes", "load")``."""


def _place(path: Path) -> str:
    return "[" + ".".join(toml_key(p) for p in path) + "]" if path else "(top level)"


def toml_key(name: str) -> str:
    """``name`` as a TOML key: bare when it can be, quoted otherwise."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def got(value: object) -> str:
    return f"got {value!r} ({type(value).__name__})"


def listing(names: Iterable[str]) -> str:
    return ", ".join(names) or "none"


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def error_line(exc: BaseException) -> str:
    """``Type: first line of the message``, for a problem that quotes an exception."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _accepts(check: Callable[[object, str], object], value: object) -> bool:
    """Whether a kernel check function takes ``value`` (used as a predicate)."""
    try:
        check(value, "a flow file")
    except ConfigError:
        return False
    return True


def _default_prep(cls: type[BaseNode]) -> bool:
    """Whether ``cls`` keeps the default ``prep`` (async: ``prep_async``), which returns None."""
    if issubclass(cls, AsyncNode):
        return cls.prep_async is AsyncNode.prep_async
    return cls.prep is BaseNode.prep


class FatalProblem(Exception):
    """A problem after which loading stops: it is the one problem reported."""


class Checks:
    """The problems of one file so far, and the checks that add to them."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.problems: list[str] = []

    def report(self, path: Path, key: str, message: str) -> None:
        where = f"{_place(path)} {key}" if key else _place(path)
        self.problems.append(f"{where}: {message}")

    def is_table(self, value: object, path: Path, key: str = "") -> TypeGuard[dict[str, Any]]:
        if isinstance(value, dict):
            return True
        self.report(path, key, f"expected a table, {got(value)}")
        return False

    def check_keys(self, table: dict[str, Any], known: tuple[str, ...], path: Path) -> None:
        for key in table:
            if key not in known:
                hint = suggest(key, known)
                self.report(
                    path, toml_key(key), f"unknown key (known keys: {listing(known)}{hint})"
                )

    def batch(
        self, table: dict[str, Any], path: Path
    ) -> tuple[list[dict[str, Any]] | None, str | None] | None:
        """The flow's ``batch`` or ``batch_key`` (checked), or ``None`` when it has neither."""
        batch, key = table.get("batch"), table.get("batch_key")
        if batch is None and key is None:
            return None
        if batch is not None and key is not None:
            self.report(path, "batch_key", "give batch or batch_key, not both")
        if key is not None and not (isinstance(key, str) and key):
            self.report(path, "batch_key", f"expected a key of the shared store (str), {got(key)}")
        if batch is not None:
            if not isinstance(batch, list):
                self.report(path, "batch", f"expected an array of tables, {got(batch)}")
            else:
                for i, item in enumerate(batch):
                    self.is_table(item, path, f"batch[{i}]")
        return (copy.deepcopy(batch), None) if batch is not None else (None, key)

    def flow_class(
        self, table: dict[str, Any], path: Path, nodes: dict[str, BaseNode], batch: object
    ) -> type[Flow] | None:
        """The flow's class: ``type`` checked against its nodes and batch, or the default."""
        ref = table.get("type")
        async_nodes = [name for name, node in nodes.items() if isinstance(node, AsyncNode)]
        cls: type[BaseNode] | None
        if ref is None:
            # The plainest flow that can run these nodes (and this batch).
            if batch is not None:
                cls = flows.AsyncBatchFlow if async_nodes else BatchFlow
            else:
                cls = flows.AsyncFlow if async_nodes else Flow
        elif isinstance(ref, str) and ref in FLOW_TYPES:
            cls = FLOW_TYPES[ref]
        else:
            cls = self.node_class(ref, path, "type", kind="flow type")
        if cls is None:
            return None
        if not issubclass(cls, Flow):
            self.report(path, "type", f"{ref} is not a flow class (a pocketcore.Flow subclass)")
            return None
        if async_nodes and not issubclass(cls, AsyncNode):
            self.report(
                path,
                "type",
                f"{cls.__name__} cannot run async nodes ({listing(async_nodes)}); "
                "use an async flow type such as AsyncFlow",
            )
        if issubclass(cls, BatchFlow):
            if batch is None and _default_prep(cls):
                self.report(
                    path, "type", f"{cls.__name__} needs batch or batch_key to have passes to run"
                )
        elif batch is not None:
            key = "batch" if "batch" in table else "batch_key"
            self.report(
                path,
                key,
                f"only for batch flows (BatchFlow and its subclasses), and this flow is a "
                f"{cls.__name__}",
            )
        return cls

    def node_class(self, ref: object, path: Path, key: str, *, kind: str) -> type[BaseNode] | None:
        """The class named by ``ref``: a registered name or ``module:Class``."""
        if not isinstance(ref, str) or not ref:
            self.report(
                path,
                key,
                f"expected a registered {kind} name or 'package.module:Class', {got(ref)}",
            )
            return None
        obj: object
        if ":" in ref:
            found = self.import_object(ref, path, key)
            if found is None:
                return None
            obj = found[0]
        else:
            entry = self.registry.nodes.get(ref)
            if entry is None:
                self.report(path, key, self.unknown(ref, kind))
                return None
            obj = entry.cls
        if isinstance(obj, type) and issubclass(obj, BaseNode):
            return obj
        self.report(
            path, key, f"{ref} is not a node class (a pocketcore.BaseNode subclass): {obj!r}"
        )
        return None

    def unknown(self, ref: str, kind: str) -> str:
        registered = self.registry.nodes
        if kind == "flow type":
            found = [n for n, e in sorted(registered.items()) if issubclass(e.cls, Flow)]
            choices = [*FLOW_TYPES, *found]
            known = f"flow types: {listing(choices)}, or 'package.module:Class'"
        else:
            choices = sorted(registered)
            known = f"registered: {listing(choices)}"
        # A plugin that failed to load may be why the name is unknown.
        known += "".join(f"; {failure}" for failure in self.registry.failures)
        return f"unknown {kind} {ref!r} ({known}){suggest(ref, choices)}"

    def import_object(self, ref: str, path: Path, key: str) -> tuple[object] | None:
        """Import ``module:Qual.Name``; ``(obj,)`` or ``None`` after reporting why not."""
        module_name, _, qualname = ref.partition(":")
        if not module_name or not qualname:
            self.report(path, key, f"expected 'package.module:Class', got {ref!r}")
            return None
        try:
            obj: object = importlib.import_module(module_name)
        except Exception as exc:  # whatever the module raises, it is one problem of the file
            self.report(path, key, f"cannot import {module_name}: {error_line(exc)}")
            return None
        for part in qualname.split("."):
            found = getattr(obj, part, _MISSING)
            if found is _MISSING:
                hint = suggest(part, dir(obj))
                self.report(path, key, f"module {module_name} has no attribute {qualname!r}{hint}")
                return None
            obj = found
        return (obj,)

    def no_node(self, name: object, specs: dict[str, Any]) -> str:
        if not isinstance(name, str):
            return f"expected a node name (str), {got(name)}"
        hint = suggest(name, specs)
        return f"no node {name!r} in this flow (nodes: {listing(specs)}){hint}"

    # --- params and settings ------------------------------------------------------

    def params(self, table: dict[str, Any], path: Path) -> dict[str, Any]:
        params = table.get("params", {})
        if not self.is_table(params, path, "params"):
            return {}
        # Each object built gets its own copy: a [flows] table used twice must
        # not share mutable values between its two flows.
        return copy.deepcopy(params)

    def settings(
        self, table: dict[str, Any], path: Path, keys: tuple[str, ...], *, node: bool = False
    ) -> dict[str, Any]:
        """The valid values among ``keys`` of ``table``; each invalid one is reported.

        ``node``: the table is a node's (``use = ...``), where ``cache = true``
        opts the node in to the run's cache, as ``cache=True`` does in code.
        """
        valid = {}
        for key in keys:
            if key not in table:
                continue
            value = table[key]
            if node and key == "cache" and value is True:
                valid[key] = value
                continue
            problem = self.setting_problem(key, value)
            if problem is None:
                valid[key] = value
            else:
                self.report(path, key, problem)
        return valid

    def setting_problem(self, key: str, value: object) -> str | None:
        """What is wrong with ``value`` for the setting ``key``, or ``None``.

        A run-level setting is checked by its row of the settings table (as a
        configuration file's value is), then, for a name, against what is
        installed or declared.
        """
        spec = SETTINGS.get(key)
        if spec is None:
            return _NODE_CHECKS[key](value)
        if key == "cache" and value is True:
            return (
                f"expected {spec.expects}, {got(value)}: true opts a node in "
                "(cache = true in its [...nodes.NAME] table), and a flow's or the run's "
                "cache must name a store"
            )
        if not _accepts(spec.plain, value):
            return f"expected {spec.expects}, {got(value)}"
        lookup = _LOOKUPS.get(key)
        return None if lookup is None else lookup(self, value)

    def executor_problem(self, value: str) -> str | None:
        """An executor is named here and installed."""
        if value not in self.registry.executors:
            hint = suggest(value, self.registry.executors)
            return (
                f"unknown executor {value!r} "
                f"(installed executors: {self.registry.describe_choices()}){hint}"
            )
        return None

    def limiter_problem(self, value: str) -> str | None:
        """A limiter is named here and declared in the run's configuration file.

        That file (the nearest one from the working directory upward, else
        from the program's folder: the flow file's under ``pocketcore run``)
        is where the run looks the name up (``[limiters.NAME]`` of
        ``pocketcore.toml``, else ``[tool.pocketcore.limiters.NAME]`` of
        ``pyproject.toml``), so a name it lacks would stop the run.
        """
        try:
            declared, where = plugin_settings("limiters")
        except ConfigError as exc:  # the configuration file is unreadable or holds a bad value
            return f"cannot check limiter {value!r}: {exc}"
        if value in declared:
            return None
        if where is None:
            return (
                f"unknown limiter {value!r} (no limiters are declared; declare one under "
                "[limiters.NAME] in pocketcore.toml or [tool.pocketcore.limiters.NAME] in "
                f"pyproject.toml; {find_config().describe()})"
            )
        hint = suggest(value, declared)
        return f"unknown limiter {value!r} ({where} declares: {listing(sorted(declared))}){hint}"

    def cache_problem(self, value: str | bool) -> str | None:
        """A store specification or ``false``; a ``NAME:`` is that of a registered store.

        The store itself is opened when the flow runs, before any item does:
        loading a file creates no cache file.
        """
        if not isinstance(value, str):  # false: no cache
            return None
        name, _ = parse_spec(value)
        if value.strip().lower() in CACHE_OFF or name in self.registry.stores:
            return None
        stores = sorted(self.registry.stores)
        hint = suggest(name, stores)
        return (
            f"unknown cache store {name!r} (registered stores: {listing(stores)}; a path "
            f"without 'NAME:' is an SQLite file){hint}"
        )


def _count_problem(value: object) -> str | None:
    # The kernel's rule for a limit (an int >= 1, not a bool) is also the rule
    # for a number of attempts.
    return None if _accepts(check_count, value) else f"expected an integer >= 1, {got(value)}"


def _wait_problem(value: object) -> str | None:
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    ):
        return None
    return f"expected a number of seconds >= 0, {got(value)}"


# The keys of a node that are not run-level settings (those are checked by
# their rows of the settings table).
_NODE_CHECKS: dict[str, Callable[[object], str | None]] = {
    "max_retries": _count_problem,
    "wait": _wait_problem,
}

# The settings whose valid value is a name, looked up where the run will look it up.
_LOOKUPS: dict[str, Callable[[Checks, Any], str | None]] = {
    "executor": Checks.executor_problem,
    "limiter": Checks.limiter_problem,
    "cache": Checks.cache_problem,
}
