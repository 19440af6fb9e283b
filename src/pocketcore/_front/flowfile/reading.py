"""Reading a flow file's TOML, every way it can fail made one problem of the file.

Beyond what ``tomllib`` rejects, a file may be too deeply nested for it to
read, or hold an integer of more digits than Python converts.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from .checks import FatalProblem, error_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]


def read_toml(path: str) -> dict[str, Any]:
    """The file's TOML.

    Raises:
        FatalProblem: The file cannot be read, or is not TOML; it says why.
    """
    try:
        with open(path, "rb") as f:
            data: dict[str, Any] = tomllib.load(f)
            return data
    except OSError as exc:
        raise FatalProblem(f"cannot read the file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FatalProblem(_syntax_problem(exc)) from None
    except UnicodeDecodeError as exc:
        raise FatalProblem(f"not UTF-8 text: {exc}") from None
    except RecursionError:
        # tomllib recurses once per level of nested arrays and inline tables.
        raise FatalProblem("invalid TOML: nested too deeply to read") from None
    except ValueError as exc:  # beyond what Python reads: an integer of too many digits
        raise FatalProblem(f"invalid TOML: {error_line(exc)}") from None


def _syntax_problem(exc: tomllib.TOMLDecodeError) -> str:
    # tomllib ends its message with "(at line L, column C)"; put the place first.
    match = re.fullmatch(r"(.*) \(at (line \d+, column \d+)\)", str(exc))
    if match is None:
        return f"invalid TOML: {exc}"
    return f"{match[2]}: invalid TOML: {match[1]}"
