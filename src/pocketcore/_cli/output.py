"""What the command prints: one-line errors, tables, and the shared store as JSON.

Printing a result never fails because of what the store holds: a value JSON
cannot hold is shown by its ``repr``, a ``repr`` that raises by a placeholder,
an integer too long for ``str`` by its number of digits, and containers
nested too deeply by a placeholder at the depth where printing stops.
"""

from __future__ import annotations

import json
import math
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

__all__ = [
    "PROG",
    "describe_error",
    "dumps",
    "error",
    "one_line",
    "report_failure",
    "safe_repr",
    "table",
    "warn",
    "write",
]

PROG = "pocketcore"

# Deeper containers are shown as a placeholder: the JSON encoder (and any
# reader of the output) would otherwise meet the interpreter's recursion limit.
MAX_PRINT_DEPTH = 100

_PACKAGE_DIR = os.path.dirname(__file__) + os.sep


def one_line(text: str) -> str:
    """``text`` on one line: its non-blank lines, stripped and joined with ``"; "``."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def error(message: str) -> None:
    """Print ``pocketcore: error: MESSAGE`` on stderr, on one line."""
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)


def warn(message: str) -> None:
    """Print ``pocketcore: warning: MESSAGE`` on stderr, on one line."""
    print(f"{PROG}: warning: {one_line(message)}", file=sys.stderr)


def describe_error(exc: BaseException) -> str:
    """``ExceptionType: message``, as the last line of a traceback shows an exception."""
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def report_failure(exc: BaseException, *, show_traceback: bool) -> None:
    """Report an exception user code raised: its last traceback line, or all of it."""
    if show_traceback:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            tb = tb.tb_next  # the command's own frames say nothing about the flow
        traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
        return
    # With the notes a parallel executor attaches for other failed items.
    lines = traceback.format_exception_only(type(exc), exc)
    if sys.version_info < (3, 11):  # pragma: no cover - 3.10 does not print notes
        lines += [f"{note}\n" for note in getattr(exc, "__notes__", ())]
    sys.stderr.write("".join(lines))


def write(text: str) -> None:
    """Print ``text`` on stdout, escaping what the stream's encoding cannot show."""
    try:
        print(text)
    except UnicodeEncodeError:  # a terminal that cannot show every character
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
        print(text.encode(encoding, "backslashreplace").decode(encoding))


def table(header: Sequence[str], rows: Sequence[Sequence[str | None]]) -> list[str]:
    """Left-aligned columns, two spaces apart; an empty cell is shown as ``-``."""
    cells = [[c or "-" for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


# --- values as JSON ----------------------------------------------------------------


def dumps(value: Any) -> str:
    """``value`` as indented JSON, whatever it holds; never raises.

    Everything JSON cannot hold is replaced by a string (see the module's
    docstring). Should the encoder still fail (a dict changed by another
    thread while it is read, say), the whole value is one placeholder string.
    """
    try:
        return json.dumps(_jsonable(value, set(), 0), indent=2, ensure_ascii=False)
    except Exception as exc:  # printing must not fail, whatever the value does
        reason = type(exc).__name__
        return json.dumps(f"<{type(value).__name__} object (cannot be printed: {reason})>")


def _jsonable(value: Any, active: set[int], depth: int) -> Any:
    """``value`` made of what JSON holds, with placeholders for the rest.

    Dict keys that JSON would turn into strings itself (numbers, ``None``,
    booleans) are left to it; other keys become their ``repr``. A container
    that contains itself is shown by ``repr`` where it recurs.
    """
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return _int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else safe_repr(value)
    if not isinstance(value, (dict, list, tuple)) or id(value) in active:
        return safe_repr(value)
    if depth >= MAX_PRINT_DEPTH:
        return f"<{type(value).__name__} nested too deeply to print>"
    active.add(id(value))
    try:
        if isinstance(value, dict):
            return {_key(k): _jsonable(v, active, depth + 1) for k, v in value.items()}
        return [_jsonable(v, active, depth + 1) for v in value]
    finally:
        active.discard(id(value))


def _key(key: Any) -> Any:
    if key is None or isinstance(key, (str, bool)):
        return key
    if isinstance(key, int):
        return _int(key)
    if isinstance(key, float) and math.isfinite(key):
        return key
    return safe_repr(key)


def _int(value: int) -> int | str:
    """``value``, or a placeholder when it has more digits than ``str()`` converts."""
    limit: int = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    # Fewer than 3 bits per digit: shorter ints are surely within the limit,
    # and the exact count (below) is only worked out for the long ones.
    if limit and value.bit_length() > 3 * limit:
        digits = _digits(value)
        if digits > limit:
            return f"<int of {digits} digits, too long to print>"
    return value


def _digits(value: int) -> int:
    """How many decimal digits ``abs(value)`` has, without converting it to a string."""
    n = abs(value)
    estimate = int(n.bit_length() * math.log10(2)) + 1  # exact, or one too many
    return estimate - 1 if n < 10 ** (estimate - 1) else estimate


def safe_repr(value: Any) -> str:
    """``repr(value)``, or a placeholder when that raises."""
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not hide the rest of the output
        return f"<{type(value).__name__} object (repr failed)>"
