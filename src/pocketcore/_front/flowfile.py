"""Flow files: a flow described in TOML, checked as a whole, then built.

A file names its nodes by registered name or ``package.module:Class``, gives
their params and settings, joins them with actions, and may nest flows from
its ``[flows]`` tables. Loading reports every problem it finds, each with its
place in the file, before anything runs. See ``docs/flow-files.md``.
"""

from __future__ import annotations

import copy
import copyreg
import difflib
import importlib
import json
import math
import os
import re
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeGuard

import attrs

from pocketcore._core.errors import ConfigError
from pocketcore._nodes.flows import (
    AsyncBatchFlow,
    AsyncFlow,
    AsyncParallelBatchFlow,
    BatchFlow,
    Flow,
    ParallelBatchFlow,
)
from pocketcore._nodes.nodes import AsyncNode, BaseNode, Node
from pocketcore._plugins.registry import Registry, get_registry
from pocketcore._runtime.config import check_executor_value, check_limit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = ["FlowFileError", "LoadedFlow", "load_flow"]

_FLOW_TYPES: dict[str, type[Flow]] = {
    cls.__name__: cls
    for cls in (
        Flow,
        AsyncFlow,
        BatchFlow,
        AsyncBatchFlow,
        ParallelBatchFlow,
        AsyncParallelBatchFlow,
    )
}
_TOP_KEYS = ("config", "flow", "flows")
_CONFIG_KEYS = ("executor", "max_concurrency")
_FLOW_SETTINGS = ("executor", "max_concurrency")
_NODE_SETTINGS = ("max_retries", "wait", "executor", "max_concurrency")
_FLOW_KEYS = ("type", "start", "params", *_FLOW_SETTINGS, "batch", "batch_key", "nodes")
_NODE_KEYS = ("use", "flow", "params", "next", *_NODE_SETTINGS)

_MISSING = object()

MAX_FLOW_DEPTH = 100
"""How deep ``[flows]`` tables may nest in one another.

Loading, running and drawing a flow recurse once per level or more; this
limit keeps them all well inside the interpreter's recursion limit, so a
deeper file is a problem of the file, not a ``RecursionError``.
"""

MAX_OBJECTS = 10_000
"""How many nodes and flows one file may build.

Each use of a ``[flows]`` table builds it anew, so tables used twice at each
of many levels multiply; past this many objects the file is rejected rather
than built for ever.
"""

Path = tuple[str, ...]
"""A table's place in the file, as its header keys: ``("flow", "nodes", "load")``."""


@attrs.frozen
class LoadedFlow:
    """A flow built from a flow file, with the run settings the file gives.

    Run it with ``pocketcore.run(loaded.flow, shared, executor=loaded.executor,
    max_concurrency=loaded.max_concurrency)``.

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
    """

    flow: BaseNode
    executor: str | None
    max_concurrency: int | None
    path: str
    names: Mapping[str, BaseNode]


class _TooLarge(Exception):
    """The file builds more than ``MAX_OBJECTS`` objects: loading stops."""


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
    data = _read(path)
    loader = _Loader(get_registry() if registry is None else registry)
    try:
        flow, executor, limit = loader.load(data)
    except _TooLarge as exc:
        raise FlowFileError(path, [str(exc)]) from None
    except RecursionError:
        # The nesting limits below keep loading well inside the interpreter's
        # recursion limit; this is the net for a caller already deep in it.
        raise FlowFileError(path, ["nested too deeply to load"]) from None
    if loader.problems or flow is None:
        # A problem is found once per use of a nested flow; say it once.
        raise FlowFileError(path, list(dict.fromkeys(loader.problems)))
    names = {name: node for name, node in loader.names.items() if node is not None}
    return LoadedFlow(flow, executor, limit, path, types.MappingProxyType(names))


def _read(path: str) -> dict[str, Any]:
    """The file's TOML, or a ``FlowFileError`` saying why it cannot be read."""
    try:
        with open(path, "rb") as f:
            data: dict[str, Any] = tomllib.load(f)
            return data
    except OSError as exc:
        raise FlowFileError(path, [f"cannot read the file: {exc.strerror or exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise FlowFileError(path, [_syntax_problem(exc)]) from None
    except UnicodeDecodeError as exc:
        raise FlowFileError(path, [f"not UTF-8 text: {exc}"]) from None
    except RecursionError:
        # tomllib recurses once per level of nested arrays and inline tables.
        raise FlowFileError(path, ["invalid TOML: nested too deeply to read"]) from None
    except ValueError as exc:  # beyond what Python reads: an integer of too many digits
        raise FlowFileError(path, [f"invalid TOML: {_error_line(exc)}"]) from None


def _syntax_problem(exc: tomllib.TOMLDecodeError) -> str:
    # tomllib ends its message with "(at line L, column C)"; put the place first.
    match = re.fullmatch(r"(.*) \(at (line \d+, column \d+)\)", str(exc))
    if match is None:
        return f"invalid TOML: {exc}"
    return f"{match[2]}: invalid TOML: {match[1]}"


# --- what a loaded node is ------------------------------------------------------


class _FromFile(BaseNode):
    """Mixed into the class of every node and flow a file creates.

    A flow hands its params to each node it runs with ``set_params``, which
    replaces the node's own. For a node built from a file, the params the file
    gives it (``file_params``) fill in the keys that the flow does not pass,
    so they survive. What is passed still wins, as in PocketFlow, so that
    ``set_params(d)`` leaves every value of ``d`` in place, whoever calls it,
    and a value set on an outer flow reaches every node below it.
    """

    file_params: Mapping[str, Any] = types.MappingProxyType({})

    def set_params(self, params: dict[str, Any]) -> None:
        """Set ``params``, filling in the keys it lacks from this node's params in the file."""
        own = self.file_params
        # Without own params the flow's dict is kept as is, shared by the pass
        # as PocketFlow shares it.
        super().set_params({**own, **params} if own else params)


class _FileBatch(BaseNode):
    """Mixed into a batch flow given ``batch`` or ``batch_key``: its ``prep`` returns the passes."""

    file_batch: list[dict[str, Any]] | None = None
    file_batch_key: str | None = None

    def prep(self, shared: Any) -> Any:
        """The params dicts of the passes, as the file says."""
        return self._passes(shared)

    async def prep_async(self, shared: Any) -> Any:
        """The params dicts of the passes, as the file says."""
        return self._passes(shared)

    def _passes(self, shared: Any) -> Any:
        key = self.file_batch_key
        if key is None:
            return copy.deepcopy(self.file_batch)  # each run starts from the file's values
        try:
            return shared[key]
        except KeyError:
            raise KeyError(f"batch_key {key!r}: the shared store has no such key") from None


_file_classes: dict[tuple[type[BaseNode], bool], type[BaseNode]] = {}
_origins: dict[type[BaseNode], tuple[type[BaseNode], bool]] = {}


def _file_class(cls: type[BaseNode], batched: bool) -> type[BaseNode]:
    """``cls`` with the flow-file behaviour mixed in, under the same name (made once).

    Keeping the name keeps messages, lifecycle events and graphs speaking of
    the class the user named.
    """
    made = _file_classes.get((cls, batched))
    if made is not None:
        return made
    bases = (_FromFile, _FileBatch, cls) if batched else (_FromFile, cls)

    def body(ns: dict[str, Any]) -> None:
        ns.update(__module__=cls.__module__, __qualname__=cls.__qualname__, __doc__=cls.__doc__)

    made = _file_classes[cls, batched] = types.new_class(cls.__name__, bases, exec_body=body)
    _origins[made] = (cls, batched)
    # No module holds the made class under its name, so pickle could not find
    # it; its instances pickle as "cls, with the mixins" instead. Remote
    # executors send nodes to other processes that way. (copyreg, not a
    # __reduce__ method: that would cost every flow step a slow copy.copy.)
    copyreg.pickle(made, _reduce_file_node)
    return made


def _reduce_file_node(node: BaseNode) -> tuple[Any, ...]:
    cls, batched = _origins[type(node)]
    getstate = getattr(node, "__getstate__", None)  # Python 3.10's object has none
    return _blank_file_node, (cls, batched), node.__dict__ if getstate is None else getstate()


def _blank_file_node(cls: type[BaseNode], batched: bool) -> BaseNode:
    """An instance of ``cls``'s flow-file class, before pickle restores its state."""
    made = _file_class(cls, batched)
    return made.__new__(made)


# --- the loader -------------------------------------------------------------------


def _place(path: Path) -> str:
    return "[" + ".".join(_key(p) for p in path) + "]" if path else "(top level)"


def _key(name: str) -> str:
    """``name`` as a TOML key: bare when it can be, quoted otherwise."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _got(value: object) -> str:
    return f"got {value!r} ({type(value).__name__})"


def _listing(names: Iterable[str]) -> str:
    return ", ".join(names) or "none"


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _error_line(exc: BaseException) -> str:
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


class _Loader:
    """Builds the flows of one file, collecting problems rather than stopping at the first.

    Each check that fails reports and lets loading go on with what is valid,
    so one pass finds everything. A ``[flows]`` table is built anew for each
    use (every use needs its own flow object); one that nothing uses is built
    once anyway, only to check it.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.built = 0  # nodes and flows created, against MAX_OBJECTS
        self.too_deep = False  # MAX_FLOW_DEPTH was met (and reported)
        self.problems: list[str] = []
        self.names: dict[str, BaseNode | None] = {}  # None: a node that could not be built
        self.flows: dict[str, Any] = {}
        self.checked: set[str] = set()  # [flows] tables built at least once
        self.cycles: set[frozenset[str]] = set()  # reported once, whichever flow they are met from

    def report(self, path: Path, key: str, message: str) -> None:
        where = f"{_place(path)} {key}" if key else _place(path)
        self.problems.append(f"{where}: {message}")

    def is_table(self, value: object, path: Path, key: str = "") -> TypeGuard[dict[str, Any]]:
        if isinstance(value, dict):
            return True
        self.report(path, key, f"expected a table, {_got(value)}")
        return False

    def check_keys(self, table: dict[str, Any], known: tuple[str, ...], path: Path) -> None:
        for key in table:
            if key not in known:
                hint = _suggest(key, known)
                self.report(path, _key(key), f"unknown key (known keys: {_listing(known)}{hint})")

    # --- the file ---------------------------------------------------------------

    def load(self, data: dict[str, Any]) -> tuple[BaseNode | None, str | None, int | None]:
        """Build the top-level flow; return it with the ``[config]`` executor and limit."""
        self.check_keys(data, _TOP_KEYS, ())
        config = data.get("config", {})
        settings: dict[str, Any] = {}
        if self.is_table(config, ("config",)):
            self.check_keys(config, _CONFIG_KEYS, ("config",))
            settings = self.settings(config, ("config",), _CONFIG_KEYS)
        flows = data.get("flows", {})
        if self.is_table(flows, ("flows",)):
            self.flows = flows
        flow = None
        if "flow" in data:
            flow = self.build_flow(data["flow"], ("flow",), "", ())
        else:
            self.report(("flow",), "", "missing: a flow file needs a [flow] table (start, nodes)")
        for name, table in self.flows.items():
            if name not in self.checked:  # nothing used it: check it all the same
                self.checked.add(name)
                self.build_flow(table, ("flows", name), None, (name,))
        return flow, settings.get("executor"), settings.get("max_concurrency")

    # --- flows ------------------------------------------------------------------

    def build_flow(
        self, table: object, path: Path, prefix: str | None, stack: tuple[str, ...]
    ) -> BaseNode | None:
        """Build the flow of a ``[flow]`` or ``[flows.NAME]`` table.

        ``prefix`` qualifies the names of its nodes (``None``: do not record
        them); ``stack`` holds the ``[flows]`` tables being built around it.
        """
        if not self.is_table(table, path):
            return None
        self.check_keys(table, _FLOW_KEYS, path)
        specs, start = self.specs_and_start(table, path)
        batch = self.batch(table, path)
        settings = self.settings(table, path, _FLOW_SETTINGS)
        params = self.params(table, path)
        nodes = self.build_nodes(specs, path, prefix, stack)
        cls = self.flow_class(table, path, nodes, batch)
        flow = None if cls is None else self.create(cls, path, "type", batched=batch is not None)
        if not isinstance(flow, Flow):
            return None
        if isinstance(start, str) and start in nodes:
            flow.start(nodes[start])
        if isinstance(flow, _FileBatch) and batch is not None:
            flow.file_batch, flow.file_batch_key = batch
        self.configure(flow, path, settings, params)
        return flow

    def specs_and_start(self, table: dict[str, Any], path: Path) -> tuple[dict[str, Any], object]:
        """The flow's node tables (empty when invalid), and its ``start`` (checked)."""
        specs: dict[str, Any] = {}
        raw = table.get("nodes")
        if raw is None:
            self.report(path, "nodes", "missing: a flow needs at least one [...nodes.NAME] table")
        elif self.is_table(raw, path, "nodes"):
            specs = raw
        # Without a valid nodes table, a start name cannot be checked (and
        # saying it names no node would only repeat that problem).
        checkable = specs is raw
        start = table.get("start")
        if start is None:
            self.report(path, "start", "missing: the name of the flow's first node")
        elif not isinstance(start, str) or (checkable and start not in specs):
            self.report(path, "start", self.no_node(start, specs))
        return specs, start

    def build_nodes(
        self, specs: dict[str, Any], path: Path, prefix: str | None, stack: tuple[str, ...]
    ) -> dict[str, BaseNode]:
        """Build the nodes of a flow's node tables, then join them with their edges."""
        nodes: dict[str, BaseNode] = {}
        edges: list[tuple[str, str, str]] = []
        for name, spec in specs.items():
            node_path = (*path, "nodes", name)
            node = self.named_node(name, spec, node_path, prefix, stack)
            if node is not None:
                nodes[name] = node
            if isinstance(spec, dict):
                edges += [(name, *edge) for edge in self.edges(spec, node_path, specs)]
        # Joined once every node exists: edges may point forwards, or loop back.
        for name, action, target in edges:
            if name in nodes and target in nodes:
                nodes[name].next(nodes[target], action)
        return nodes

    def named_node(
        self, name: str, spec: object, path: Path, prefix: str | None, stack: tuple[str, ...]
    ) -> BaseNode | None:
        """Build one node and record it in ``names`` (by its qualified name, given a prefix)."""
        if not name or "." in name:
            self.report(path, "", "a node name must be non-empty and without '.'")
        qualified = None if prefix is None else prefix + name
        if qualified is not None:
            self.names[qualified] = None  # holds its place before the nodes nested in it
        node = self.build_node(spec, path, qualified, stack)
        if qualified is not None:
            self.names[qualified] = node
        return node

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
            self.report(path, "batch_key", f"expected a key of the shared store (str), {_got(key)}")
        if batch is not None:
            if not isinstance(batch, list):
                self.report(path, "batch", f"expected an array of tables, {_got(batch)}")
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
                cls = AsyncBatchFlow if async_nodes else BatchFlow
            else:
                cls = AsyncFlow if async_nodes else Flow
        elif isinstance(ref, str) and ref in _FLOW_TYPES:
            cls = _FLOW_TYPES[ref]
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
                f"{cls.__name__} cannot run async nodes ({_listing(async_nodes)}); "
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

    # --- nodes ------------------------------------------------------------------

    def build_node(
        self, spec: object, path: Path, qualified: str | None, stack: tuple[str, ...]
    ) -> BaseNode | None:
        """Build the node of a ``[...nodes.NAME]`` table (its edges are joined later)."""
        if not self.is_table(spec, path):
            return None
        self.check_keys(spec, _NODE_KEYS, path)
        use, flow = spec.get("use"), spec.get("flow")
        node = None
        if use is not None and flow is not None:
            self.report(path, "", "give use or flow, not both")
        elif use is not None:
            cls = self.node_class(use, path, "use", kind="node")
            if cls is not None:
                node = self.create(cls, path, "use", batched=False)
        elif flow is not None:
            node = self.nested_flow(flow, path, qualified, stack)
        else:
            self.report(
                path, "", "missing use (a node name or 'module:Class') or flow (a [flows] name)"
            )
        settings = self.settings(spec, path, _NODE_SETTINGS)
        params = self.params(spec, path)
        if node is not None:
            self.configure(node, path, settings, params)
        return node

    def nested_flow(
        self, name: object, path: Path, qualified: str | None, stack: tuple[str, ...]
    ) -> BaseNode | None:
        if not isinstance(name, str) or name not in self.flows:
            hint = _suggest(name, self.flows) if isinstance(name, str) else ""
            shown = f"[flows.{_key(name)}]" if isinstance(name, str) else repr(name)
            self.report(path, "flow", f"no {shown} table (flows: {_listing(self.flows)}){hint}")
            return None
        if name in stack:
            cycle = (*stack[stack.index(name) :], name)
            if frozenset(cycle) not in self.cycles:
                self.cycles.add(frozenset(cycle))
                chain = " -> ".join(f"flows.{_key(n)}" for n in cycle)
                self.report(path, "flow", f"a flow cannot contain itself: {chain}")
            return None
        if len(stack) >= MAX_FLOW_DEPTH:
            if not self.too_deep:  # once: every deeper table would say it again
                self.too_deep = True
                self.report(path, "flow", f"[flows] tables nested more than {MAX_FLOW_DEPTH} deep")
            return None
        self.checked.add(name)
        prefix = None if qualified is None else qualified + "."
        return self.build_flow(self.flows[name], ("flows", name), prefix, (*stack, name))

    def node_class(self, ref: object, path: Path, key: str, *, kind: str) -> type[BaseNode] | None:
        """The class named by ``ref``: a registered name or ``module:Class``."""
        if not isinstance(ref, str) or not ref:
            self.report(
                path,
                key,
                f"expected a registered {kind} name or 'package.module:Class', {_got(ref)}",
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
            flows = [n for n, e in sorted(registered.items()) if issubclass(e.cls, Flow)]
            choices = [*_FLOW_TYPES, *flows]
            known = f"flow types: {_listing(choices)}, or 'package.module:Class'"
        else:
            choices = sorted(registered)
            known = f"registered: {_listing(choices)}"
        # A plugin that failed to load may be why the name is unknown.
        known += "".join(f"; {failure}" for failure in self.registry.failures)
        return f"unknown {kind} {ref!r} ({known}){_suggest(ref, choices)}"

    def import_object(self, ref: str, path: Path, key: str) -> tuple[object] | None:
        """Import ``module:Qual.Name``; ``(obj,)`` or ``None`` after reporting why not."""
        module_name, _, qualname = ref.partition(":")
        if not module_name or not qualname:
            self.report(path, key, f"expected 'package.module:Class', got {ref!r}")
            return None
        try:
            obj: object = importlib.import_module(module_name)
        except Exception as exc:  # whatever the module raises, it is one problem of the file
            self.report(path, key, f"cannot import {module_name}: {_error_line(exc)}")
            return None
        for part in qualname.split("."):
            found = getattr(obj, part, _MISSING)
            if found is _MISSING:
                hint = _suggest(part, dir(obj))
                self.report(path, key, f"module {module_name} has no attribute {qualname!r}{hint}")
                return None
            obj = found
        return (obj,)

    def create(
        self, cls: type[BaseNode], path: Path, key: str, *, batched: bool
    ) -> BaseNode | None:
        self.built += 1
        if self.built > MAX_OBJECTS:
            raise _TooLarge(
                f"the file builds more than {MAX_OBJECTS} nodes and flows (each use of a "
                "[flows] table builds it anew)"
            )
        try:
            node = _file_class(cls, batched and issubclass(cls, BatchFlow))()
        except Exception as exc:  # a constructor that needs arguments, or fails
            self.report(path, key, f"cannot create {cls.__qualname__}: {_error_line(exc)}")
            return None
        assert isinstance(node, _FromFile)
        # What the constructor set is the base of the node's own params; the
        # file's are added to that same dict in configure().
        node.file_params = node.params
        return node

    def edges(
        self, spec: dict[str, Any], path: Path, specs: dict[str, Any]
    ) -> list[tuple[str, str]]:
        """The ``(action, target)`` pairs of a node's ``next`` whose target exists."""
        nxt = spec.get("next")
        if nxt is None:
            return []
        if isinstance(nxt, str):
            pairs = [("next", "default", nxt)]
        elif isinstance(nxt, dict):
            pairs = [(f"next.{_key(action)}", action, target) for action, target in nxt.items()]
        else:
            self.report(
                path, "next", f"expected a node name or a table of action = node, {_got(nxt)}"
            )
            return []
        found = []
        for key, action, target in pairs:
            if isinstance(target, str) and target in specs:
                found.append((action, target))
            else:
                self.report(path, key, self.no_node(target, specs))
        return found

    def no_node(self, name: object, specs: dict[str, Any]) -> str:
        if not isinstance(name, str):
            return f"expected a node name (str), {_got(name)}"
        hint = _suggest(name, specs)
        return f"no node {name!r} in this flow (nodes: {_listing(specs)}){hint}"

    # --- params and settings ------------------------------------------------------

    def params(self, table: dict[str, Any], path: Path) -> dict[str, Any]:
        params = table.get("params", {})
        if not self.is_table(params, path, "params"):
            return {}
        # Each object built gets its own copy: a [flows] table used twice must
        # not share mutable values between its two flows.
        return copy.deepcopy(params)

    def settings(self, table: dict[str, Any], path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
        """The valid values among ``keys`` of ``table``; each invalid one is reported."""
        valid = {}
        for key in keys:
            if key not in table:
                continue
            value = table[key]
            problem = self.setting_problem(key, value)
            if problem is None:
                valid[key] = value
            else:
                self.report(path, key, problem)
        return valid

    def setting_problem(self, key: str, value: object) -> str | None:
        if key in ("max_retries", "max_concurrency"):
            # The kernel's rule for a limit (an int >= 1, not a bool) is also
            # the rule for a number of attempts.
            return (
                None if _accepts(check_limit, value) else f"expected an integer >= 1, {_got(value)}"
            )
        if key == "wait":
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value >= 0
            ):
                return None
            return f"expected a number of seconds >= 0, {_got(value)}"
        # key == "executor"
        if not (isinstance(value, str) and _accepts(check_executor_value, value)):
            return f"expected an executor name (str), {_got(value)}"
        if value not in self.registry.executors:
            hint = _suggest(value, self.registry.executors)
            return (
                f"unknown executor {value!r} "
                f"(installed executors: {self.registry.describe_choices()}){hint}"
            )
        return None

    def configure(
        self, node: BaseNode, path: Path, settings: dict[str, Any], params: dict[str, Any]
    ) -> None:
        """Set checked settings as attributes and add ``params`` to the node's own."""
        assert isinstance(node, _FromFile)
        node.params.update(params)  # the same dict as node.file_params (see create)
        for key, value in settings.items():
            if key in ("max_retries", "wait") and (
                not isinstance(node, Node) or isinstance(node, Flow)
            ):
                self.report(
                    path, key, f"{type(node).__name__} has no retries (not a pocketcore.Node)"
                )
            else:
                setattr(node, key, value)
