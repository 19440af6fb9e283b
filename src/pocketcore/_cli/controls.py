"""``pocketcore run``'s run-level settings: their options, where each came from, and failures.

There is an option per row of the settings table (``--executor``,
``--max-concurrency``, ``--max-per-second``, ``--limiter``, ``--on-error``,
``--timeout``, ``--cache``, and ``--no-cache`` beside it), read by the
row's own parser: each wins over the flow file's ``[config]``, which wins
over the environment and the configuration files.
``--verbose`` says which value each setting has and where it came from, and
a run that collected failures (``on_error="collect"``) ends with a one-line
count of them, kept by a lifecycle observer registered only for such runs.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from pocketcore._core.errors import ConfigError
from pocketcore._core.results import Failed
from pocketcore._nodes.flows import Flow, reachable
from pocketcore._nodes.nodes import BaseNode
from pocketcore._plugins.registry import Registry
from pocketcore._runtime.config import RunSettings, Setting, find_config, plugin_settings
from pocketcore._runtime.limits import as_limiter_table
from pocketcore._runtime.settings import SETTINGS, Spec
from pocketcore._runtime.stores import open_store, parse_spec
from pocketcore.hookspecs import hookimpl

from .errors import BadInput
from .observing import reported
from .output import PROG
from .targets import Target

__all__ = [
    "FAILURES_PLUGIN",
    "FailureCounter",
    "add_options",
    "check_limiter",
    "chosen",
    "count_failures",
    "describe",
    "open_cache",
    "run_level",
]

FAILURES_PLUGIN = "pocketcore-cli-failures"


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add an option per run-level setting, from the settings table, and ``--verbose``."""
    for spec in SETTINGS.values():
        if spec.name != "cache":
            _add_option(parser, spec)
            continue
        cache = parser.add_mutually_exclusive_group()
        _add_option(cache, spec)
        cache.add_argument(
            "--no-cache",
            action="store_true",
            help="no result cache for this run, whatever the flow file's [config], "
            "POCKETCORE_CACHE and the configuration files say (a node's own cache still "
            "applies)",
        )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="before running, print each run-level setting and where it came from (stderr)",
    )


def _add_option(parser: argparse._ActionsContainer, spec: Spec) -> None:
    if spec.choices:
        parser.add_argument(spec.option, choices=spec.choices, help=spec.help)
    else:
        parser.add_argument(spec.option, metavar=spec.metavar, type=_text_of(spec), help=spec.help)


def _text_of(spec: Spec) -> Callable[[str], Any]:
    """How argparse reads the option of ``spec``: its row's parser, or the text as it is.

    A name (an executor, a limiter) is kept as given: it is looked up before
    the run, and an unknown one reported with the installed choices.
    """
    if not spec.usage:
        return str

    def parse(text: str) -> Any:
        try:
            return spec.parse(text, spec.option)
        except ConfigError:  # not a number; zero, negative, NaN or infinite; blank
            raise argparse.ArgumentTypeError(f"{spec.usage}, got {text!r}") from None

    return parse


def open_cache(given: dict[str, Setting]) -> None:
    """Open the store that ``--cache`` or the flow file's ``[config]`` names.

    The run would open it too, before any item runs, but would name its own
    argument as the source of a bad one; opened here (once per process: the
    run then uses it), the error names the option or the file.

    Raises:
        ConfigError: The store cannot be opened; the message names the file
            and the option or flow file.
    """
    setting = given.get("cache")
    if setting is not None and isinstance(setting.value, str):
        open_store(setting.value, setting.source)


def chosen(args: argparse.Namespace, target: Target) -> dict[str, Setting]:
    """The settings the options give, else the flow file's ``[config]``, with their sources."""
    found = {}
    for key, spec in SETTINGS.items():
        value = getattr(args, key)
        if key == "cache" and args.no_cache:
            found[key] = Setting(False, "--no-cache")
        elif value is not None:
            found[key] = Setting(value, spec.option)
        elif target.config.get(key) is not None:
            found[key] = Setting(target.config[key], f"[config] of {args.target}")
    return found


def check_limiter(name: str) -> None:
    """Check that ``--limiter NAME`` names a declared limiter.

    Raises:
        BadInput: No limiter of that name is declared.
        ConfigError: The configuration file cannot be read or holds a bad value.
    """
    declared, where = plugin_settings("limiters")
    if name in declared:
        return
    if where is None:
        raise BadInput(
            f"unknown limiter {name!r} (from --limiter); no limiters are declared (declare one "
            "under [tool.pocketcore.limiters.NAME] in pyproject.toml, or [limiters.NAME] in "
            f"pocketcore.toml); {find_config().describe()}"
        )
    names = ", ".join(sorted(declared))
    raise BadInput(f"unknown limiter {name!r} (from --limiter); {where} declares: {names}")


def describe(given: dict[str, Setting]) -> list[str]:
    """One line per run-level setting for ``--verbose``: its value and where it came from.

    ``given`` holds the options and the flow file's ``[config]``; the rest
    are looked for where a run looks (the environment, the configuration
    files). A value there that the run could not use is shown with the error.
    """
    settings = RunSettings(given)
    lines = []
    for key in SETTINGS:
        try:
            setting = settings.get(key)
        except ConfigError as exc:
            lines.append(f"{PROG}: {key}: unusable: {exc}")
            continue
        if setting is None:
            lines.append(f"{PROG}: {key}: not set ({SETTINGS[key].unset})")
            continue
        value = setting.value
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        more = ""
        if key == "limiter":
            more = _limiter_bounds(value)
        elif key == "cache":
            shown, more = _cache_details(value)
        lines.append(f"{PROG}: {key}: {shown} (from {setting.source}{more})")
    return lines


def _cache_details(value: object) -> tuple[str, str]:
    """The cache setting as ``--verbose`` shows it, and the file a path names."""
    if value is False:
        return "off", ""
    if not isinstance(value, str):  # a Store object given in code
        return str(getattr(value, "location", value)), ""
    name, rest = parse_spec(value)
    return value, f"; SQLite file {rest}" if name == "sqlite" and rest != value else ""


def _limiter_bounds(name: str) -> str:
    """``"; 2 at once, 5/s"``: the bounds of the limiter declared as ``name``."""
    try:
        declared, where = plugin_settings("limiters")
        if name not in declared:
            return "; not declared"
        limiter = as_limiter_table(declared[name], where or "", name)
    except ConfigError as exc:
        return f"; unusable: {exc}"
    # "limiter 'llm' (2 at once, 5/s)" -> "; 2 at once, 5/s"
    return "; " + limiter.describe().partition(" (")[2].removesuffix(")")


@contextlib.contextmanager
def count_failures(
    registry: Registry, target: BaseNode, given: dict[str, Setting], *, report: bool
) -> Iterator[None]:
    """Count the items the run collects as failures; say how many, if any, when it ends.

    The observer is registered only when ``on_error="collect"`` may be in
    force: for the run, or on a node or flow reachable from ``target``.
    Otherwise the lifecycle hooks stay free.
    """
    may_collect = report and _may_collect(target, given)
    with reported(registry, FailureCounter(), FAILURES_PLUGIN, when=may_collect):
        yield


def run_level(given: dict[str, Setting], key: str) -> object:
    """The run's own value of setting ``key`` (``None``: unset, or unusable).

    An unusable value is reported by the run, if it needs the value; an
    observer that only asks whether to register is not the place.
    """
    try:
        setting = RunSettings(given).get(key)
    except ConfigError:
        return None
    return None if setting is None else setting.value


def _may_collect(target: BaseNode, given: dict[str, Setting]) -> bool:
    if run_level(given, "on_error") == "collect":
        return True
    return any(getattr(node, "on_error", None) == "collect" for node in reachable(target))


class FailureCounter:
    """A lifecycle-hook plugin counting the items of batch nodes: done, and collected as failed.

    The passes of batch flows are not items of work, and are not counted.
    Items may finish on worker threads, so the counts are kept under a lock.
    """

    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0
        self._lock = threading.Lock()

    @hookimpl
    def pocketcore_batch_item_cached(self, node: Any) -> None:
        """Count one item of a batch node whose result came from the cache: ok."""
        if isinstance(node, Flow):
            return
        with self._lock:
            self.ok += 1

    @hookimpl
    def pocketcore_batch_item_done(self, node: Any, result: Any, exception: Any) -> None:
        """Count one finished item of a batch node: a :class:`pocketcore.Failed`, or ok."""
        if isinstance(node, Flow):
            return
        with self._lock:
            if isinstance(result, Failed):
                self.failed += 1
            elif exception is None:
                self.ok += 1

    def lines(self) -> list[str]:
        """``pocketcore: N ok, M failed`` once an item has failed; nothing before."""
        if not self.failed:
            return []
        return [f"{PROG}: {self.ok:,} ok, {self.failed:,} failed"]
