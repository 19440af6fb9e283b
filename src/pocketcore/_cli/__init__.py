"""Layer 9, the ``pocketcore`` command: run flows, draw them, and list what plugins provide.

One module per command (``run``, ``cache``, ``graph``, ``plugins``,
``executors``, ``nodes``, ``demo``), each adding its subcommand to the parser
(``parser``); ``targets`` loads what a command works on, ``output`` prints,
``main`` turns what a command raises into the exit status.

Exit statuses: 0 success; 1 the flow (or a factory building it) raised;
2 bad input (usage, a missing file, bad JSON, an unknown executor, a TARGET
that is not a node or flow or cannot be imported, a flow file with problems,
a cache store that cannot be opened, any :class:`pocketcore.ConfigError`);
130 interrupted. Errors of status 2 are one line on stderr
(``pocketcore: error: ...``), plus one line per problem of a flow file, never
a traceback.
"""

from __future__ import annotations

from .main import main
from .progress import ProgressObserver

__all__ = ["ProgressObserver", "main"]
