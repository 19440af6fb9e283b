"""``pocketcore cache``: what a result cache holds (``info``), and emptying it (``clear``).

The store is the one SPEC names, else the configured one: ``POCKETCORE_CACHE``,
then ``cache`` in the configuration file found from the working directory upward, read as a
run reads them. There is no default store: a cache is only ever opened where
the configuration (or the command line) says. A store that cannot be opened
is a :class:`~pocketcore.ConfigError` (status 2, one line); an SQLite file
that does not exist is reported as empty and is not created.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import attrs

from pocketcore._core.errors import CacheError
from pocketcore._core.store import Store, StoreInfo
from pocketcore._runtime.cache import WHOLE_BATCH_SUFFIX
from pocketcore._runtime.config import RunSettings, Setting, check_cache_value, find_config
from pocketcore._runtime.stores import close_stores, open_store, parse_spec

from .errors import BadInput
from .output import write
from .targets import load_registry

__all__ = ["add_command", "find_node", "human_size"]

SPEC_HELP = (
    "the store: a file path (an SQLite file), sqlite:///PATH, or NAME:... for a store a "
    "plugin registers; default: POCKETCORE_CACHE, else 'cache' in pocketcore.toml or "
    "[tool.pocketcore] of pyproject.toml"
)

CONFIGURED = """\
Without SPEC the configured cache is used: POCKETCORE_CACHE, else the 'cache' key of
pocketcore.toml (or [tool.pocketcore] of pyproject.toml), the nearest from the working
directory upward;
with neither, the command says so and exits 2. The 'memory' store lives inside the
process that runs a flow and ends with it, so there is none to show or clear here.
An SQLite file that does not exist is reported as empty, and is not created.
"""

STATUS = """
Exit status: 0 success, 2 bad input (no cache configured, a store that cannot be
opened, a --node that names no class in the store).
"""

CLASSES = """
CLASS is a node class as 'pocketcore cache info' lists it (module.Qualname), or
module:Qualname, or its name alone (Summarize, Outer.Inner) when exactly one class
in the store has that name.
"""


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``cache`` command, with its subcommands ``info`` and ``clear``, to ``commands``."""
    p = commands.add_parser(
        "cache",
        help="show what a result cache holds, or clear it",
        description="Show what a result cache holds, or clear all or part of it.",
        epilog=CONFIGURED + STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(title="subcommands", dest="subcommand", metavar="SUBCOMMAND")
    sub.required = True
    p.set_defaults(command_parser=p)

    info = sub.add_parser(
        "info",
        help="the store's location, entries per node class, total entries and size",
        description="Print where the cache is, how many entries each node class has there,\n"
        "the total, and the store's size.",
        epilog=CONFIGURED + STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    info.add_argument("spec", metavar="SPEC", nargs="?", help=SPEC_HELP)
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(handler=_cmd_info, command_parser=info)

    clear = sub.add_parser(
        "clear",
        help="remove every entry, or those of one node class",
        description="Remove every entry of the cache, or those of one node class, and say\n"
        "how many went. The next run computes those results again.",
        epilog=CONFIGURED + CLASSES + STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    clear.add_argument("spec", metavar="SPEC", nargs="?", help=SPEC_HELP)
    clear.add_argument(
        "--node",
        metavar="CLASS",
        help="clear only the entries of this node class (see below)",
    )
    clear.set_defaults(handler=_cmd_clear, command_parser=clear)


# --- which store ----------------------------------------------------------------------


@attrs.frozen
class _Chosen:
    """The store a command works on: its specification, where that came from, its file."""

    spec: str
    source: str
    file: str | None  # an SQLite store's file; None for another store


def _choose(spec: str | None, command: str) -> _Chosen:
    """The store ``spec`` names, else the configured one.

    Raises:
        BadInput: None is configured, the setting turns the cache off, or it
            names the memory store.
        ConfigError: The configured value is unusable; the message names where it is.
    """
    if spec is not None:
        setting: Setting | None = Setting(check_cache_value(spec, "SPEC"), "the SPEC argument")
    else:
        setting = RunSettings().get("cache")
    if setting is None:
        raise BadInput(
            f"no cache is configured: name one (pocketcore cache {command} SPEC), or set "
            "POCKETCORE_CACHE or 'cache' in pocketcore.toml or [tool.pocketcore] of "
            f"pyproject.toml; {find_config().describe()}"
        )
    value = setting.value
    if value is False:
        raise BadInput(f"the cache is off (from {setting.source}): name a store as SPEC")
    name, rest = parse_spec(value)
    if name == "memory":
        raise BadInput(
            f"the 'memory' cache (from {setting.source}) lives in the process that runs a flow "
            "and ends with it: a new process has nothing in it to show or clear; use a file "
            "(--cache cache.db) to keep results between runs"
        )
    # parse_spec makes a path (bare, or sqlite:///) absolute; other sqlite: forms
    # (sqlite://host/..., sqlite:relative) are the store's to judge when it opens them.
    is_file = name == "sqlite" and os.path.isabs(rest) and not rest.startswith("//")
    file = rest if is_file else None
    return _Chosen(value, setting.source, file)


@contextmanager
def _opened(chosen: _Chosen) -> Iterator[Store | None]:
    """The open store, or ``None`` for an SQLite file that does not exist (not created).

    Raises:
        ConfigError: The store cannot be opened (a directory, a file that is
            not a cache, a newer schema, an unknown store name).
    """
    if chosen.file is not None and not os.path.lexists(chosen.file):
        yield None
        return
    load_registry()  # a plugin that failed to load is reported as a warning
    store = open_store(chosen.spec, chosen.source)
    try:
        yield store
    finally:
        close_stores()


def _failed(store: Store, doing: str, exc: Exception) -> CacheError:
    return CacheError(
        f"cache store {store.location} failed while {doing}: {type(exc).__name__}: {exc}"
    )


def _info(store: Store) -> StoreInfo:
    try:
        return store.info()
    except Exception as exc:  # a store's own failure (a damaged file, say): one line
        raise _failed(store, "reading its entries", exc) from exc


# --- info -----------------------------------------------------------------------------


def _cmd_info(args: argparse.Namespace) -> int:
    chosen = _choose(args.spec, "info")
    with _opened(chosen) as store:
        info = StoreInfo(chosen.file or chosen.spec, {}, 0) if store is None else _info(store)
    exists = store is not None
    if args.json:
        write(json.dumps(_as_json(info, chosen, exists=exists), indent=2, ensure_ascii=False))
    else:
        write("\n".join(_as_text(info, chosen, exists=exists)))
    return 0


def _as_json(info: StoreInfo, chosen: _Chosen, *, exists: bool) -> dict[str, object]:
    entries = dict(sorted(info.entries.items()))
    return {
        "location": info.location,
        "source": chosen.source,
        "exists": exists,
        "entries": entries,
        "total": sum(entries.values()),
        "size": info.size,
    }


def _as_text(info: StoreInfo, chosen: _Chosen, *, exists: bool) -> list[str]:
    """``location``, ``source`` and ``size`` lines, then a table of entries per node class."""
    where = info.location if exists else f"{info.location} (no such file: nothing stored yet)"
    lines = [f"location  {where}", f"source    {chosen.source}"]
    if not exists:
        return lines
    lines.append(f"size      {human_size(info.size)}")
    if not info.entries:
        return [*lines, "entries   none"]
    rows = [(label, f"{n:,}") for label, n in sorted(info.entries.items())]
    rows.append(("total", f"{sum(info.entries.values()):,}"))
    wide = max(len(label) for label, _ in [("node class", ""), *rows])
    digits = max(len("entries"), *(len(n) for _, n in rows))
    header = f"{'node class'.ljust(wide)}  {'entries'.rjust(digits)}"
    return [*lines, "", header, *(f"{label.ljust(wide)}  {n.rjust(digits)}" for label, n in rows)]


_UNITS = ("kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: int) -> str:
    """``size`` bytes for a reader: ``"812 bytes"``, ``"1.2 MB"`` (powers of 1000, like disks).

    One decimal from a kilobyte up, rounded to the nearest; a value that
    would round to 1000 of a unit is shown in the next (``"1.0 MB"``, not
    ``"1000.0 kB"``).
    """
    if size < 1000:
        return "1 byte" if size == 1 else f"{size} bytes"
    value = float(size)
    for unit in _UNITS:
        value /= 1000
        if round(value, 1) < 1000 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


# --- clear ----------------------------------------------------------------------------


def _cmd_clear(args: argparse.Namespace) -> int:
    chosen = _choose(args.spec, "clear")
    with _opened(chosen) as store:
        if store is None:
            write(f"nothing to clear: {chosen.file} does not exist")
            return 0
        node = None
        labels: list[str | None] = [None]
        if args.node is not None:
            entries = _info(store).entries
            if args.node.endswith(WHOLE_BATCH_SUFFIX) and args.node in entries:
                node = args.node  # a whole-batch label, as info lists it: those entries alone
                labels = [node]
            else:
                node = find_node(args.node, _node_classes(entries), store)
                # A class's whole-batch entries go with its items' (they hold the same results).
                labels = [label for label in (node, node + WHOLE_BATCH_SUFFIX) if label in entries]
        removed: dict[str | None, int] = {}
        try:
            for label in labels:
                removed[label] = store.clear(label)
        except Exception as exc:  # a read-only file, say
            raise _failed(store, "clearing it", exc) from exc
        location = store.location
    write(_removed(removed, node, location))
    return 0


def _removed(removed: Mapping[str | None, int], node: str | None, location: str) -> str:
    """The line ``cache clear`` prints: how many entries went, of which class, from where."""
    gone = sum(removed.values())
    what = "entry" if gone == 1 else "entries"
    if node is None:
        return f"removed {gone:,} {what} from {location}"
    wholes = removed.get(node + WHOLE_BATCH_SUFFIX, 0)
    detail = ""
    if wholes:
        batches = "batch" if wholes == 1 else "batches"
        detail = f" ({gone - wholes:,} results, {wholes:,} whole {batches})"
    return f"removed {gone:,} {what} of {node}{detail} from {location}"


def _node_classes(entries: Mapping[str, int]) -> dict[str, int]:
    """The node classes that have entries (a whole-batch label counts as its class's)."""
    classes: dict[str, int] = {}
    for label, n in entries.items():
        base = label.removesuffix(WHOLE_BATCH_SUFFIX)
        classes[base] = classes.get(base, 0) + n
    return classes


def find_node(name: str, entries: Mapping[str, int], store: Store | None = None) -> str:
    """The node class (as the store labels it: ``module.Qualname``) that ``name`` means.

    ``name`` is a label (``flows.Summarize``), the same with a colon
    (``flows:Summarize``, as ``pocketcore nodes`` writes classes), or any
    tail of one after a dot (``Summarize``, ``Outer.Inner``) that exactly
    one label in ``entries`` ends with. A whole label always means itself.

    Raises:
        BadInput: No label matches, or several do; the message lists them.
    """
    wanted = name.replace(":", ".")
    if wanted in entries:
        return wanted
    matches = sorted(label for label in entries if label.endswith("." + wanted))
    if len(matches) == 1:
        return matches[0]
    where = "" if store is None else f" in {store.location}"
    if matches:
        raise BadInput(
            f"--node {name!r} matches {len(matches)} node classes{where}: "
            f"{', '.join(matches)}; give the whole name"
        )
    known = sorted(entries)
    # A misspelt name alone is likelier than a misspelt label.
    close = difflib.get_close_matches(wanted, known + [k.rpartition(".")[2] for k in known], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(known) if known else "none (it is empty)"
    raise BadInput(f"--node {name!r}: no such node class{where}; its node classes: {listed}{hint}")
