"""``pocketcore run``: run a node or flow and print its final shared store, or what was asked."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pocketcore._front.run import run as run_flow
from pocketcore._front.timeline import Timeline
from pocketcore._plugins.registry import Registry

from . import controls
from .cache_counts import count_cached
from .errors import BadInput, user_code
from .output import dumps, safe_repr, write
from .progress import is_terminal, progress
from .targets import TARGET_HELP, load_registry, load_target
from .usage_totals import count_usage

__all__ = ["add_command", "parse_params", "print_result", "read_shared", "timeline"]

#: Past this many lines (a terminal's height), the default output sums the store up in a line.
SUMMARY_LINES = 24

EPILOG = f"""\
TARGET is loaded as follows:
  flow.toml                   a flow file; its [config] settings (executor,
                              max_concurrency, max_per_second, limiter, on_error,
                              timeout, cache) are used unless the matching option
                              is given
  path/to/file.py:object      the file is imported (its folder first on sys.path)
  package.module:object       imported with the current directory first on sys.path
object may be dotted (module:holder.flow). If it is a class or function rather than
a node or flow, it is called with no arguments and must return a node or flow.

--set key=value updates the params of the top-level node or flow (a flow hands
its params to every node it runs). The value is parsed as JSON when it is valid
JSON (--set n=3, --set tags='["a","b"]', --set flag=true), else taken as a
string (--set name=alice).

With --on-error collect, failed items become pocketcore.Failed values and the run
goes on; when any were collected, a line on stderr counts them ("pocketcore: 1,997 ok,
3 failed"), and the exit status is 0.

With --cache SPEC, each batch item's exec result is stored as it finishes, keyed by
the node (its class, code, attributes and params) and its input; a later run with
the same cache skips exec for every input it finds there, and a line per batch node
on stderr says how many came from the cache ("pocketcore: Summarize: 99 from cache,
1 computed"). Batch nodes with cache=False (an exec with side effects) are never
cached; plain nodes only when they say cache=True. A path is an SQLite file,
created readable by its owner only; it holds pickles, which run code when loaded:
use only cache files you trust as you trust the code. See 'pocketcore cache --help'
to inspect and clear one.

When nodes report what they used (pocketcore.report_usage, or a limiter's event
hooks), a line per node class on stderr totals it ("pocketcore: Summarize: 600
items, 1,234,567 tokens").

Without --output the final shared store is printed as indented JSON, then the
last action; a store of more than {SUMMARY_LINES} lines is summed up in one line
(its keys, and how to see them). --print KEY prints only that key of the store
(repeatable); --output text or json prints the whole store; --output none
prints nothing.

Exit status: 0 success, 1 the flow raised (its 'Type: message' on stderr),
2 bad input (also a --print KEY the final store lacks), 130 interrupted.

examples:
  pocketcore run examples/image_filter/flow.py:flow --shared '{{"filters": ["invert"]}}'
  pocketcore run flows/summarize.toml --shared @input.json --executor trio
  pocketcore run mypkg.flows:build_flow --set model=small --output json
  pocketcore run examples/parallel_summaries/target.py:flow --print summaries
  pocketcore run flows/summarize.toml --executor trio --timeline run.html
  pocketcore run flows/summarize.toml --cache cache.db
"""


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` command to ``commands``."""
    p = commands.add_parser(
        "run",
        help="run a flow and print the final shared store and last action",
        description="Run a node or flow and print the final shared store and the last action.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="TARGET", help=TARGET_HELP)
    p.add_argument(
        "--shared",
        metavar="JSON",
        default="{}",
        help="the initial shared store: a JSON object, or @path to a JSON file "
        "(@- reads standard input); default {}",
    )
    controls.add_options(p)
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
        "--print",
        metavar="KEY",
        action="append",
        default=[],
        dest="keys",
        help="print only this key of the final shared store (repeatable)",
    )
    p.add_argument(
        "--output",
        choices=("text", "json", "none"),
        help="text: two sections, the shared store as JSON and the action; json: one object "
        '{"shared": ..., "action": ...}; none: nothing. Without --output: text, with a store of '
        f"more than {SUMMARY_LINES} lines summed up in one line",
    )
    p.add_argument(
        "--timeline",
        metavar="FILE",
        help="write a timeline of the run to FILE, one self-contained HTML page to open in "
        "a browser (also when the flow fails)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar, even on a terminal, and no count of collected failures or of usage",
    )
    p.add_argument(
        "--traceback",
        action="store_true",
        help="when the flow fails, print the full traceback, not just its last line",
    )
    p.set_defaults(handler=_cmd_run, command_parser=p)


def _cmd_run(args: argparse.Namespace) -> int:
    shared = read_shared(args.shared)
    params = parse_params(args.params)
    registry = load_registry()
    if args.executor is not None and args.executor not in registry.executors:
        raise BadInput(
            f"unknown executor {args.executor!r} (from --executor); installed executors: "
            f"{registry.describe_choices()}"
        )
    if args.limiter is not None:
        controls.check_limiter(args.limiter)
    target = load_target(args.target, registry)
    if params:
        target.node.set_params({**target.node.params, **params})
    given = controls.chosen(args, target)
    if args.verbose:
        print(*controls.describe(given), sep="\n", file=sys.stderr)
    controls.open_cache(given)
    with (
        progress(registry, enabled=not args.quiet and is_terminal(sys.stderr)),
        timeline(registry, args.timeline),
        controls.count_failures(registry, target.node, given, report=not args.quiet),
        count_cached(registry, target.node, given, report=not args.quiet),
        count_usage(registry, report=not args.quiet),
        user_code(),
    ):
        action = run_flow(target.node, shared, **{k: s.value for k, s in given.items()})
    print_result(shared, action, args.output, args.keys)
    return 0


@contextlib.contextmanager
def timeline(registry: Registry, path: str | None) -> Iterator[None]:
    """Record a timeline of the body and write it to ``path``, also when the body raises.

    Without a path nothing is registered, so the lifecycle hooks stay free.

    Raises:
        BadInput: ``path`` is a folder or in a folder that does not exist (found
            before the body runs), or the file cannot be written.
    """
    if path is None:
        yield
        return
    file = Path(path)
    if file.is_dir() or not file.parent.is_dir():
        why = "is a folder" if file.is_dir() else "is in a folder that does not exist"
        raise BadInput(f"--timeline {path!r} {why}")
    observer = Timeline(registry=registry)
    try:
        with observer:
            yield
    except BaseException:
        # The flow's failure is what to report; the page is written if it can be.
        with contextlib.suppress(OSError):
            observer.write(file)
        raise
    try:
        observer.write(file)
    except OSError as exc:
        raise BadInput(f"cannot write --timeline {path!r}: {exc.strerror or exc}") from None


def print_result(
    shared: Any, action: Any, output: str | None = None, keys: Sequence[str] = ()
) -> None:
    """Print the final store and action, as ``--output`` and ``--print`` ask.

    ``text``: two sections, the store as indented JSON and the action;
    ``json``: one object ``{"shared": ..., "action": ...}``; ``none``:
    nothing. ``None`` (no ``--output``) is ``text``, except that a store
    whose JSON takes more than :data:`SUMMARY_LINES` lines is summed up in
    one line, which says how to see it. ``keys`` narrows the store to those
    keys, in their order; what they hold is printed whole.

    Never fails because of what ``shared`` or ``action`` hold (see :func:`.output.dumps`).

    Raises:
        BadInput: A key of ``keys`` is not in the store (nothing is printed).
    """
    if keys:
        shared = _chosen(shared, keys)
    if output == "none":
        return
    if output == "json":
        write(dumps({"shared": shared, "action": action}))
        return
    text = dumps(shared)
    lines = text.count("\n") + 1
    if output is None and not keys and lines > SUMMARY_LINES:
        write(f"shared: {_summary(shared, lines)}\n\naction: {dumps(action)}")
    else:
        write(f"shared:\n{text}\n\naction: {dumps(action)}")


def _chosen(shared: Mapping[Any, Any], keys: Sequence[str]) -> dict[str, Any]:
    missing = [key for key in keys if key not in shared]
    if missing:
        raise BadInput(
            f"--print {missing[0]!r}: the final shared store has no such key; "
            f"its keys: {_key_list(shared) or 'none'}"
        )
    return {key: shared[key] for key in keys}


def _key_list(shared: Mapping[Any, Any], most: int = 10) -> str:
    names = [key if isinstance(key, str) else safe_repr(key) for key in shared]
    more = f", and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _summary(shared: Mapping[Any, Any], lines: int) -> str:
    """One line for a store too long to print: its keys, and how to see them."""
    return (
        f"{len(shared)} keys ({_key_list(shared)}), {lines} lines of JSON, not shown "
        "(--print KEY shows a key, --output text or json the whole store)"
    )


# --- --shared and --set ---------------------------------------------------------------


class _NotANumber(ValueError):
    """NaN or Infinity in a --set value: JSON to Python, but hardly what --set x=NaN means."""


class _TooLong(ValueError):
    """A JSON integer with more digits than ``int()`` converts."""

    def __init__(self, digits: int) -> None:
        super().__init__(digits)
        self.digits = digits


def _reject_constant(name: str) -> Any:
    raise _NotANumber(name)


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _TooLong(len(text.lstrip("-"))) from None


def _parse_json(text: str, where: str, *, constants: bool = True) -> Any:
    """``text`` parsed as JSON.

    Raises:
        json.JSONDecodeError: ``text`` is not JSON.
        _NotANumber: ``text`` holds NaN or Infinity, and ``constants`` is false.
        BadInput: ``text`` is JSON beyond what Python reads: nested too deeply,
            or holding an integer with too many digits.
    """
    hooks: dict[str, Any] = {} if constants else {"parse_constant": _reject_constant}
    try:
        return json.loads(text, parse_int=_parse_int, **hooks)
    except _TooLong as exc:
        limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
        raise BadInput(
            f"{where} holds an integer of {exc.digits} digits, more than can be read "
            f"(at most {limit})"
        ) from None
    except RecursionError:
        raise BadInput(f"{where} is nested too deeply to read") from None


def read_shared(text: str) -> dict[str, Any]:
    """The initial store from ``--shared``: a JSON object, or ``@path`` / ``@-`` holding one.

    Raises:
        BadInput: The file cannot be read, or does not hold a JSON object.
    """
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
        value = _parse_json(text, where)
    except ValueError as exc:  # JSONDecodeError, or another ValueError of the decoder
        raise BadInput(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadInput(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def parse_params(items: list[str]) -> dict[str, Any]:
    """The params of ``--set KEY=VALUE`` options: VALUE as JSON when it parses, else a string.

    Raises:
        BadInput: An item has no ``=`` or no key, or its VALUE is JSON beyond
            what Python reads (nested too deeply, an integer too long).
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise BadInput(f"--set needs KEY=VALUE, got {item!r}")
        try:
            params[key] = _parse_json(raw, f"--set {key}", constants=False)
        except ValueError:  # not JSON (nor NaN): the text itself
            params[key] = raw
    return params
