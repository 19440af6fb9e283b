"""``main``: parse the arguments, run the command, turn what it raises into an exit status."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pocketcore._core.errors import PluginWarning, PocketcoreError
from pocketcore._front.flowfile import FlowFileError

from .errors import BadInput, TargetFailed
from .output import PROG, error, one_line, report_failure, warn
from .parser import build_parser

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pocketcore`` command with ``argv`` (default: ``sys.argv[1:]``).

    Args:
        argv: The arguments after the program name.

    Returns:
        The exit status: 0 success, 1 the flow failed, 2 bad input, 130
        interrupted. ``--help`` and ``--version`` return 0 rather than
        raising ``SystemExit``, so the function can be called in-process.
    """
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # reported by the command's parser, so the hint names its --help
            args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, --version, and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command's handler; report what it raises and return the status."""
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        with _plugin_warnings_in_our_voice():
            return handler(args)
    except BadInput as exc:
        error(str(exc))
        return 2
    except TargetFailed as exc:
        report_failure(exc.error, show_traceback=getattr(args, "traceback", False))
        return 1
    except PocketcoreError as exc:  # ConfigError (FlowFileError among them), PluginError
        _report_pocketcore_error(exc)
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


@contextlib.contextmanager
def _plugin_warnings_in_our_voice() -> Iterator[None]:
    """Print a plugin failure found during the command as one ``pocketcore: warning:`` line.

    Failures of registration hooks are found when executors or nodes are
    first collected, which may be in the middle of a run; Python would show
    them with a file and line of the kernel.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("always", PluginWarning)
        shown = warnings.showwarning

        def show(
            message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any
        ) -> None:
            if issubclass(category, PluginWarning):
                warn(str(message))
            else:
                shown(message, category, *args, **kwargs)

        warnings.showwarning = show
        yield


def _report_pocketcore_error(exc: PocketcoreError) -> None:
    if not isinstance(exc, FlowFileError):
        error(str(exc))
        return
    # Its header, then each problem on a line of its own.
    error(str(exc).partition("\n")[0])
    for problem in exc.problems:
        print(f"  {one_line(str(problem))}", file=sys.stderr)
