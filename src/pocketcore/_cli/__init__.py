"""The ``pocketcore`` command: run flows, draw them, and list what plugins provide.

Exit statuses: 0 success; 1 the flow (or a factory building it) raised;
2 bad input (usage, a missing file, bad JSON, an unknown executor, a TARGET
that is not a node or flow or cannot be imported, a flow file with problems,
any :class:`pocketcore.ConfigError`); 130 interrupted. Errors of status 2 are
one line on stderr (``pocketcore: error: ...``), plus one line per problem of
a flow file, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import importlib.util
import inspect
import json
import math
import operator
import os
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from pocketcore._core.errors import PluginWarning, PocketcoreError
from pocketcore._front.run import run
from pocketcore._nodes.nodes import AsyncNode, BaseNode
from pocketcore._plugins.registry import ExecutorEntry, NodeEntry, Registry, get_registry
from pocketcore.hookspecs import hookimpl

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["ProgressObserver", "main"]

PROG = "pocketcore"
PROGRESS_PLUGIN = "pocketcore-cli-progress"


class BadInput(Exception):
    """Input the command cannot use: reported in one line, exit status 2."""


class TargetFailed(Exception):
    """User code raised (the flow, or the factory building it): exit status 1.

    Attributes:
        error: The exception user code raised.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


# --- main ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pocketcore`` command with ``argv`` (default: ``sys.argv[1:]``).

    Args:
        argv: The arguments after the program name.

    Returns:
        The exit status: 0 success, 1 the flow failed, 2 bad input, 130
        interrupted. ``--help`` and ``--version`` return 0 rather than
        raising ``SystemExit``, so the function can be called in-process.
    """
    parser = _build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # reported by the command's parser, so the hint names its --help
            args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, --version, and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except BadInput as exc:
        _error(str(exc))
        return 2
    except TargetFailed as exc:
        _report_failure(exc.error, show_traceback=getattr(args, "traceback", False))
        return 1
    except PocketcoreError as exc:  # ConfigError (FlowFileError among them), PluginError
        problems = getattr(exc, "problems", None)
        if isinstance(problems, list):  # a FlowFileError: its header, then each problem
            _error(str(exc).partition("\n")[0])
            for problem in problems:
                print(f"  {_one_line(str(problem))}", file=sys.stderr)
        else:
            _error(str(exc))
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``pocketcore plugins | head``). Point stdout
        # at devnull so the interpreter's final flush does not fail again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _error(message: str) -> None:
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {_one_line(message)}", file=sys.stderr)


def _report_failure(exc: BaseException, *, show_traceback: bool) -> None:
    if show_traceback:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next  # the command's own frames say nothing about the flow
        traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
        return
    # ``ExceptionType: message`` as the last line of a traceback shows it,
    # with the notes a parallel executor attaches for other failed items.
    lines = traceback.format_exception_only(type(exc), exc)
    if sys.version_info < (3, 11):  # pragma: no cover - 3.10 does not print notes
        lines += [f"{note}\n" for note in getattr(exc, "__notes__", ())]
    sys.stderr.write("".join(lines))


# --- the parser ------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error."""

    def error(self, message: str) -> Any:
        _error(f"{message} (see '{self.prog} --help')")
        raise SystemExit(2)


class _CommandListFormatter(argparse.HelpFormatter):
    """Lines up the command list: argparse measures subcommands without their indent."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog)
        self._action_max_length = len("    executors")


def _version() -> str:
    try:
        return metadata.version("pocketcore")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


_TARGET_HELP = (
    "a flow file (*.toml), path/to/file.py:object, or package.module:object; the object "
    "is a node or flow, or a callable taking no arguments that returns one"
)

_RUN_EPILOG = """\
TARGET is loaded as follows:
  flow.toml                   a flow file; its [config] executor and max_concurrency
                              are used unless --executor / --max-concurrency are given
  path/to/file.py:object      the file is imported (its folder first on sys.path)
  package.module:object       imported with the current directory first on sys.path
object may be dotted (module:holder.flow). If it is a class or function rather than
a node or flow, it is called with no arguments and must return a node or flow.

--set key=value updates the params of the top-level node or flow (a flow hands
its params to every node it runs). The value is parsed as JSON when it is valid
JSON (--set n=3, --set tags='["a","b"]', --set flag=true), else taken as a
string (--set name=alice).

Exit status: 0 success, 1 the flow raised (its 'Type: message' on stderr),
2 bad input, 130 interrupted.

examples:
  pocketcore run examples/image_filter/flow.py:flow --shared '{"filters": ["invert"]}'
  pocketcore run flows/summarize.toml --shared @input.json --executor trio
  pocketcore run mypkg.flows:build_flow --set model=small --output json
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=(
            "Run pocketcore flows, draw them, and list the installed executors, nodes and plugins."
        ),
        epilog="Run 'pocketcore COMMAND --help' for the options of a command.",
        formatter_class=_CommandListFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True

    p = commands.add_parser(
        "run",
        help="run a flow and print the final shared store and last action",
        description="Run a node or flow and print the final shared store and the last action.",
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="TARGET", help=_TARGET_HELP)
    p.add_argument(
        "--shared",
        metavar="JSON",
        default="{}",
        help="the initial shared store: a JSON object, or @path to a JSON file "
        "(@- reads standard input); default {}",
    )
    p.add_argument(
        "--executor",
        metavar="NAME",
        help="the executor for the run (see 'pocketcore executors'); overrides the flow "
        "file's [config] and the environment",
    )
    p.add_argument(
        "--max-concurrency",
        metavar="N",
        type=_positive_int,
        help="the most items of a parallel batch in flight at once (an integer >= 1)",
    )
    p.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="params",
        help="set a param of the top-level node or flow (repeatable); VALUE is JSON "
        "if it parses, else a string",
    )
    p.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help='text (default): two sections; json: one object {"shared": ..., "action": ...}',
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, even on a terminal")
    p.add_argument(
        "--traceback",
        action="store_true",
        help="when the flow fails, print the full traceback, not just its last line",
    )
    p.set_defaults(handler=_cmd_run, command_parser=p)

    p = commands.add_parser(
        "graph",
        help="print a flow as a Mermaid flowchart",
        description=(
            "Print a flow as a Mermaid flowchart: nodes with their class names, edges "
            "labelled with their actions (except 'default'), nested flows as subgraphs, "
            "batch nodes and flows marked, start nodes with a thick border."
        ),
    )
    p.add_argument("target", metavar="TARGET", help=_TARGET_HELP)
    p.add_argument(
        "--format", choices=("mermaid",), default="mermaid", help="the output format (mermaid)"
    )
    p.set_defaults(handler=_cmd_graph, command_parser=p)

    p = commands.add_parser(
        "plugins",
        help="list loaded plugins, what they contribute, and failures",
        description=(
            "List every loaded plugin with its distribution and version, the executors "
            "and nodes it contributes and the hooks it implements; node classes declared "
            "in the pocketcore.nodes entry-point group; and entry points that failed to "
            "load, with the reason."
        ),
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(handler=_cmd_plugins, command_parser=p)

    p = commands.add_parser(
        "executors",
        help="list the executors that can be named",
        description="List the executors that can be named, with the plugin and "
        "distribution that supply each.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(handler=_cmd_executors, command_parser=p)

    p = commands.add_parser(
        "nodes",
        help="list the node classes that can be named in flow files",
        description="List the registered node classes that flow files can name, with "
        "where each comes from.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(handler=_cmd_nodes, command_parser=p)

    p = commands.add_parser(
        "demo",
        help="run the examples with each executor and print their wall times",
        description=(
            "Run the repository's examples (parallel summaries, image filter) one by one "
            "and in parallel with each installed executor, and print a table of wall "
            "times. Run it from the root of a pocketcore checkout. SUMMARY_DELAY and "
            "FILTER_DELAY set the simulated slow call's seconds."
        ),
    )
    p.add_argument(
        "executors",
        metavar="EXECUTOR",
        nargs="*",
        help="the executors to run with (default: every installed one)",
    )
    p.set_defaults(handler=_cmd_demo, command_parser=p)
    return parser


# --- loading -----------------------------------------------------------------------


def _registry(*, report: bool = True) -> Registry:
    """The process's registry; plugin load failures become one-line warnings.

    The kernel warns with ``PluginWarning``, which Python would print with a
    file name and line of the kernel; the command says the same in its own
    voice (or lists the failures, for ``plugins``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        registry = get_registry()
    if report:
        for failure in registry.failures:
            _warn(str(failure))
    return registry


class Target(NamedTuple):
    """What a TARGET names: the node or flow, and what its flow file configures."""

    node: BaseNode
    executor: str | None = None
    max_concurrency: int | None = None
    names: Mapping[str, BaseNode] | None = None


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
    if where.endswith(".py") or "/" in where or os.sep in where:
        module = _import_file(where)
    elif all(p.isidentifier() for p in where.split(".")):
        module = _import_module(where)
    else:
        raise BadInput(f"{where!r} is neither a .py file nor a module name (in TARGET {spec!r})")
    try:
        obj = operator.attrgetter(attr)(module)
    except AttributeError:
        close = difflib.get_close_matches(attr, [n for n in dir(module) if n[:1] != "_"], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise BadInput(f"{where!r} has no attribute {attr!r}{hint}") from None
    return Target(_as_node(obj, spec))


def _load_flow_file(spec: str, registry: Registry) -> Target:
    path = Path(spec)
    if not path.is_file():
        raise BadInput(f"no such flow file: {spec!r}")
    from pocketcore._front.flowfile import load_flow

    _cwd_on_path()
    before = len(registry.failures)
    with warnings.catch_warnings():
        # Node entry points are loaded now, the first time a flow file asks.
        warnings.simplefilter("ignore", PluginWarning)
        loaded = load_flow(path, registry=registry)
    for failure in registry.failures[before:]:
        _warn(str(failure))
    return Target(loaded.flow, loaded.executor, loaded.max_concurrency, loaded.names)


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
    # As `python path/to/file.py` does, so the file can import its neighbours.
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module  # classes and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise BadInput(f"cannot import {where!r}: {_describe(exc)}") from exc
    return module


def _cwd_on_path() -> None:
    # Console scripts do not put the working directory on sys.path (`python -m`
    # does); a project's own modules are what `package.module:object` and a
    # flow file's `module:Class` name.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


def _import_module(name: str) -> ModuleType:
    _cwd_on_path()
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise BadInput(f"cannot import module {name!r}: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


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
    try:
        result = obj()
    except PocketcoreError:
        raise  # e.g. a node built with max_concurrency=0: bad input, as in a run
    except Exception as exc:
        raise TargetFailed(exc) from exc
    if not isinstance(result, BaseNode):
        raise BadInput(
            f"{spec!r} returned an object of type {type(result).__name__}, not a node or flow"
        )
    return result


def _read_shared(text: str) -> dict[str, Any]:
    where = "--shared"
    if text.startswith("@"):
        name = text[1:]
        where = f"--shared file {name!r}"
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise BadInput(f"cannot read {where}: {reason}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadInput(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise BadInput(f"--set needs KEY=VALUE, got {item!r}")
        try:
            # NaN and Infinity are JSON to Python but hardly what --set x=NaN means.
            params[key] = json.loads(raw, parse_constant=_reject_constant)
        except ValueError:
            params[key] = raw
    return params


# --- run -----------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    shared = _read_shared(args.shared)
    params = _parse_params(args.params)
    registry = _registry()
    if args.executor is not None and args.executor not in registry.executors:
        raise BadInput(
            f"unknown executor {args.executor!r} (from --executor); installed executors: "
            f"{registry.describe_choices()}"
        )
    target = load_target(args.target, registry)
    if params:
        target.node.set_params({**target.node.params, **params})
    executor = args.executor if args.executor is not None else target.executor
    limit = args.max_concurrency if args.max_concurrency is not None else target.max_concurrency
    with _progress(registry, enabled=not args.quiet and _is_terminal(sys.stderr)):
        try:
            action = run(target.node, shared, executor=executor, max_concurrency=limit)
        except PocketcoreError:
            raise  # the configuration, not the flow: bad input
        except Exception as exc:
            raise TargetFailed(exc) from exc
    _print_result(shared, action, args.output)
    return 0


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _print_result(shared: Any, action: Any, output: str) -> None:
    if output == "json":
        _write(_dumps({"shared": shared, "action": action}))
    else:
        _write(f"shared:\n{_dumps(shared)}\n\naction: {_dumps(action)}")


def _write(text: str) -> None:
    try:
        print(text)
    except UnicodeEncodeError:  # a terminal that cannot show every character
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
        print(text.encode(encoding, "backslashreplace").decode(encoding))


def _dumps(value: Any) -> str:
    try:
        return json.dumps(_jsonable(value, set()), indent=2, ensure_ascii=False)
    except RecursionError:  # nested deeper than the interpreter can walk
        return json.dumps(_safe_repr(value))


def _jsonable(value: Any, active: set[int]) -> Any:
    """``value`` with everything JSON cannot hold replaced by its ``repr``.

    Dict keys that JSON would turn into strings itself (numbers, ``None``,
    booleans) are left to it; other keys become their ``repr``. A container
    that contains itself is shown by ``repr`` where it recurs.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _safe_repr(value)
    if isinstance(value, (dict, list, tuple)):
        if id(value) in active:
            return _safe_repr(value)
        active.add(id(value))
        try:
            if isinstance(value, dict):
                return {
                    (k if k is None or isinstance(k, (str, int, float)) else _safe_repr(k)): (
                        _jsonable(v, active)
                    )
                    for k, v in value.items()
                }
            return [_jsonable(v, active) for v in value]
        finally:
            active.discard(id(value))
    return _safe_repr(value)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not hide the rest of the output
        return f"<{type(value).__name__} object (repr failed)>"


# --- progress ----------------------------------------------------------------------


@contextlib.contextmanager
def _progress(registry: Registry, *, enabled: bool) -> Iterator[None]:
    """Show progress bars for the run's batches while the body runs, if ``enabled``.

    The observer is registered only for the run, so the lifecycle hooks cost
    nothing when no bar is wanted (stderr is not a terminal, or ``--quiet``).
    """
    if not enabled:
        yield
        return
    observer = ProgressObserver()
    registry.register(observer, name=PROGRESS_PLUGIN)
    try:
        yield
    finally:
        registry.unregister(observer)
        observer.close()


class ProgressObserver:
    """A lifecycle-hook plugin that shows rich progress bars for batch work.

    One bar per batch node or batch flow class (labelled with the class
    name): a class whose batches run several times, such as a batch node
    inside each pass of a batch flow, adds each batch's items to its bar, so
    the number of bars stays small. Items count when they finish, failed or
    not. rich is imported, and the display started, at the first batch, so a
    run without batches prints nothing.

    Args:
        console: The rich console to draw on (default: a new one on stderr).
    """

    def __init__(self, console: Console | None = None) -> None:
        self._console = console
        self.progress: Progress | None = None
        """The rich progress display, once a batch has started."""
        self._tasks: dict[str, TaskID] = {}
        # Items may finish on worker threads (sync parallel batches); rich's
        # own lock covers the display, this one the bookkeeping around it.
        self._lock = threading.Lock()

    @hookimpl
    def pocketcore_batch_start(self, node: Any, size: int | None) -> None:
        """Add the batch's items to its class's bar (creating the bar if needed)."""
        with self._lock:
            progress = self.progress or self._start()
            label = type(node).__name__
            task = self._tasks.get(label)
            if task is None:
                self._tasks[label] = progress.add_task(label, total=size)
                return
            bar = next(t for t in progress.tasks if t.id == task)
            if bar.total is not None and size is not None:
                progress.update(task, total=bar.total + size)
            else:  # rich's update() cannot unset a total; the task can
                bar.total = None

    @hookimpl
    def pocketcore_batch_item_done(self, node: Any) -> None:
        """Count one finished item on its class's bar."""
        with self._lock:
            task = self._tasks.get(type(node).__name__)
            if self.progress is not None and task is not None:
                self.progress.advance(task)

    def counts(self) -> dict[str, tuple[int, int | None]]:
        """Each bar's label with its finished items and total (``None``: unknown)."""
        if self.progress is None:
            return {}
        return {
            t.description: (int(t.completed), None if t.total is None else int(t.total))
            for t in self.progress.tasks
        }

    def close(self) -> None:
        """Stop the display, leaving the bars' final state on screen."""
        if self.progress is not None:
            self.progress.stop()

    def _start(self) -> Progress:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self._console or Console(stderr=True),
        )
        self.progress.start()
        return self.progress


# --- graph -------------------------------------------------------------------------------


def _cmd_graph(args: argparse.Namespace) -> int:
    from pocketcore._front.graph import to_mermaid

    target = load_target(args.target, _registry())
    sys.stdout.write(to_mermaid(target.node, names=target.names))
    return 0


# --- listings ----------------------------------------------------------------------------


def _split_dist(label: str | None) -> dict[str, str | None]:
    """``"name version"``, as the registry records a distribution, for JSON output."""
    if not label or label == "?":
        return {"distribution": None, "version": None}
    name, _, version = label.rpartition(" ")
    return (
        {"distribution": name, "version": version}
        if name
        else {"distribution": label, "version": None}
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str | None]]) -> list[str]:
    cells = [[c or "-" for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def _collect(
    registry: Registry,
) -> tuple[dict[str, ExecutorEntry], dict[str, NodeEntry], list[str]]:
    """The executors and the nodes, with what went wrong collecting them.

    The listings are where one finds out what is broken, so a conflict
    between plugins is listed, not raised.
    """
    errors: list[str] = []
    executors: dict[str, ExecutorEntry] = {}
    nodes: dict[str, NodeEntry] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        try:
            executors = dict(registry.executors)
        except PocketcoreError as exc:  # e.g. two plugins registering one name
            errors.append(str(exc))
        try:
            nodes = dict(registry.nodes)
        except PocketcoreError as exc:
            errors.append(str(exc))
    return executors, nodes, errors


def _problems(registry: Registry, errors: list[str]) -> dict[str, Any]:
    failures = [
        {
            "entry_point": f.entry_point,
            "group": f.group,
            **_split_dist(f.distribution),
            "error": f.error,
        }
        for f in registry.failures
    ]
    return {"failures": failures, "errors": errors}


def _with_problems(out: list[str], registry: Registry, errors: list[str]) -> str:
    """``out``, then a blank line and what failed to load (and why so little), if anything."""
    lines = [str(f) for f in registry.failures]
    lines += [f"error: {e}" for e in errors]
    note = registry.selection_note()
    if note is not None:
        lines.append(f"({note})")
    return "\n".join([*out, "", *lines] if lines else out)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _cmd_plugins(args: argparse.Namespace) -> int:
    registry = _registry(report=False)
    executors, nodes, errors = _collect(registry)
    plugins: list[dict[str, Any]] = []
    for name, plugin in sorted(registry.pm.list_name_plugin(), key=lambda np: np[0]):
        plugins.append(
            {
                "name": name,
                **_split_dist(registry.distributions.get(name)),
                "executors": sorted(e.name for e in executors.values() if e.plugin == name),
                "nodes": sorted(n.name for n in nodes.values() if n.plugin == name),
                "hooks": sorted(c.name for c in registry.pm.get_hookcallers(plugin) or []),
            }
        )
    from_entry_points = [
        n for n in sorted(nodes.values(), key=lambda n: n.name) if n.plugin is None
    ]
    if args.json:
        entry_points = [
            {"name": n.name, "class": _class_path(n.cls), **_split_dist(n.distribution)}
            for n in from_entry_points
        ]
        report = {"plugins": plugins, "node_entry_points": entry_points}
        _write(json.dumps({**report, **_problems(registry, errors)}, indent=2))
        return 0
    out: list[str] = []
    for p in plugins:
        out.append(f"{p['name']}  ({registry.distributions.get(p['name'], 'registered in code')})")
        out += [
            f"  {key + ':':<10} {', '.join(p[key])}"
            for key in ("executors", "nodes", "hooks")
            if p[key]
        ]
    if not plugins:
        out.append("no plugins loaded")
    if from_entry_points:
        out += ["", "node classes from the entry-point group pocketcore.nodes:"]
        rows = [[n.name, _class_path(n.cls), n.distribution] for n in from_entry_points]
        out += ["  " + line for line in _table(["name", "class", "distribution"], rows)]
    _write(_with_problems(out, registry, errors))
    return 0


def _cmd_executors(args: argparse.Namespace) -> int:
    registry = _registry(report=False)
    executors, _, errors = _collect(registry)
    entries = sorted(executors.values(), key=lambda e: e.name)
    if args.json:
        rows = [
            {
                "name": e.name,
                "backend": e.executor.backend,
                "plugin": e.plugin,
                **_split_dist(registry.distributions.get(e.plugin)),
            }
            for e in entries
        ]
        _write(json.dumps({"executors": rows, **_problems(registry, errors)}, indent=2))
        return 2 if errors else 0
    table = [
        [e.name, e.executor.backend or "any", e.plugin, registry.distributions.get(e.plugin)]
        for e in entries
    ]
    out = _table(["name", "backend", "plugin", "distribution"], table) if entries else []
    _write(_with_problems(out or ["no executors installed"], registry, errors))
    # A conflict between plugins makes every run fail: say so in the status too.
    return 2 if errors else 0


def _cmd_nodes(args: argparse.Namespace) -> int:
    registry = _registry(report=False)
    _, nodes, errors = _collect(registry)
    entries = sorted(nodes.values(), key=lambda n: n.name)
    if args.json:
        rows = [
            {
                "name": n.name,
                "class": _class_path(n.cls),
                "supplier": n.supplier,
                **_split_dist(n.distribution),
            }
            for n in entries
        ]
        _write(json.dumps({"nodes": rows, **_problems(registry, errors)}, indent=2))
        return 2 if errors else 0
    # The distribution has a column of its own; "from" says only by which route.
    table = [
        [n.name, _class_path(n.cls), n.supplier.split(" of ")[0], n.distribution] for n in entries
    ]
    out = _table(["name", "class", "from", "distribution"], table) if entries else []
    _write(_with_problems(out or ["no nodes registered"], registry, errors))
    return 2 if errors else 0


# --- demo --------------------------------------------------------------------------------


class _Example(NamedTuple):
    title: str
    module: str
    one_by_one: str  # the class that runs the items one after another
    parallel: str  # the class that hands them to the executor


# Each example module provides ``build_flow(parallel=...)``, ``timed(flow,
# executor) -> (seconds, shared)`` and ``DELAY`` (the simulated call's seconds).
_EXAMPLES = (
    _Example(
        "parallel summaries",
        "examples.parallel_summaries.flow",
        "AsyncBatchNode",
        "AsyncParallelBatchNode",
    ),
    _Example(
        "image filter", "examples.image_filter.flow", "AsyncBatchFlow", "AsyncParallelBatchFlow"
    ),
)


def _cmd_demo(args: argparse.Namespace) -> int:
    registry = _registry()
    installed = sorted(registry.executors)
    # Remote executors (dask) run only the exec of batch nodes; the examples
    # include a batch flow, and a cluster per run is not a demo. Named, they run.
    local = [n for n in installed if not getattr(registry.executors[n].executor, "remote", False)]
    wanted: list[str] = args.executors or local
    unknown = [name for name in wanted if name not in installed]
    if unknown:
        raise BadInput(
            f"unknown executor(s) {', '.join(map(repr, unknown))}; installed executors: "
            f"{registry.describe_choices()}"
        )
    if not wanted:
        raise BadInput("no executors installed")
    _cwd_on_path()  # the examples are a package of the checkout, not installed
    found: list[tuple[_Example, ModuleType]] = []
    missing: list[str] = []
    for example in _EXAMPLES:
        try:
            module = importlib.import_module(example.module)
        except ImportError as exc:
            missing.append(
                f"{example.title} example skipped: cannot import {example.module} "
                f"({_describe(exc)})"
            )
            continue
        if not all(hasattr(module, name) for name in ("build_flow", "timed")):
            missing.append(f"{example.title} example skipped: no build_flow() and timed()")
            continue
        found.append((example, module))
    if not found:
        raise BadInput(
            "the demo runs the examples/ folder of a pocketcore checkout; run "
            f"'pocketcore demo' from the repository root (cannot import {_EXAMPLES[0].module})"
        )
    for line in missing:
        print(f"{PROG}: {line}", file=sys.stderr)

    for name in wanted:
        # Start each executor's event loop once before timing, so importing
        # trio (say) is not counted as the first run's time.
        run(AsyncNode(), {}, executor=name)
    header = f"{'example':<20} {'class':<24} {'executor':<12} {'wall time':>10} {'x delay':>8}"
    print(header)
    for example, module in found:
        delay = float(getattr(module, "DELAY", 0) or 0)
        runs = [(example.one_by_one, wanted[0], False)]
        runs += [(example.parallel, name, True) for name in wanted]
        for kind, name, parallel in runs:
            try:
                seconds, _ = module.timed(module.build_flow(parallel=parallel), name)
            except PocketcoreError:
                raise
            except Exception as exc:
                raise TargetFailed(exc) from exc
            ratio = f"{seconds / delay:>7.1f}x" if delay else f"{'-':>8}"
            print(f"{example.title:<20} {kind:<24} {name:<12} {seconds:>9.2f}s {ratio}", flush=True)
    print(
        "\nx delay: wall time / the simulated slow call's delay. One by one it grows with "
        "the\nnumber of items; in parallel it stays near 1."
    )
    return 0
