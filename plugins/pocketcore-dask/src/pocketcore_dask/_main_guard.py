"""Refuse to start a ``LocalCluster`` of processes from an unguarded main module.

dask starts the worker processes of a ``LocalCluster`` with multiprocessing's
"spawn" method, and each new process first imports the main module of the
program (as ``__mp_main__``) to find the functions it may be sent. A script
that runs its flow at module level, outside ``if __name__ == "__main__":``,
therefore runs the flow again in every worker while it starts; multiprocessing
refuses to start processes from there, the workers die, and the user sees
screens of tracebacks ending in ``Nanny failed to start``.

So before starting one, the executor looks at the call stack for the main
module's top-level code, still running, and at the line it is on: when that
line is not inside an ``if __name__ == "__main__":`` block, the worker
processes would run it again, and the run stops with one ``ConfigError``
saying what to add. Nothing is started, so nothing else is printed.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import FrameType

__all__ = ["check_main_module", "unguarded_line"]


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"``, either way round."""
    if not (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq)
        and len(test.comparators) == 1
    ):
        return False
    sides = {ast.dump(test.left), ast.dump(test.comparators[0])}
    return sides == {ast.dump(ast.Name("__name__", ast.Load())), ast.dump(ast.Constant("__main__"))}


def unguarded_line(source: str, line: int) -> bool:
    """Whether ``line`` of ``source`` runs when the module is imported under another name.

    That is, whether no ``if __name__ == "__main__":`` block holds it. A
    source that cannot be parsed is given the benefit of the doubt.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and _is_main_test(node.test)
            and node.body[0].lineno <= line <= (node.body[-1].end_lineno or line)
        ):
            return False
    return True


def _main_module_frame() -> FrameType | None:
    """The frame of the main module's top-level code, if it is on the stack (still running)."""
    main = sys.modules.get("__main__")
    if main is None:
        return None
    namespace = vars(main)
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals is namespace:
            return frame
        frame = frame.f_back
    return None


def check_main_module(start_method: str) -> None:
    """Raise ``ConfigError`` if worker processes started now would run this very call again.

    ``start_method`` is dask's multiprocessing method: with "fork" the main
    module is not imported again, and there is nothing to check. Nor is there
    without a main script file (an interactive session, a notebook, ``-c``).

    Raises:
        ConfigError: The main module is running its top-level code, on a
            line outside ``if __name__ == "__main__":``.
    """
    if start_method == "fork":
        return
    frame = _main_module_frame()
    filename = getattr(sys.modules.get("__main__"), "__file__", None)
    if frame is None or not filename:
        return
    try:
        source = Path(filename).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    line = frame.f_lineno
    if not unguarded_line(source, line):
        return
    from pocketcore import ConfigError

    name = Path(filename).name
    raise ConfigError(
        f"the dask executor cannot start a LocalCluster from {name} line {line}: that line "
        f"runs at import, outside 'if __name__ == \"__main__\":', and each worker process "
        f"imports {name} again as it starts, so it would run the flow again there instead "
        f"of starting. Put the code that runs the flow under 'if __name__ == \"__main__\":' "
        f"(as any program using multiprocessing must), or point the executor at a running "
        f"scheduler (POCKETCORE_DASK_ADDRESS), whose workers are started elsewhere."
    )
