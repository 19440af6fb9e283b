"""The parallel-summaries flow as ``pocketcore run`` targets.

Three module-level flows, built by :func:`examples.parallel_summaries.flow.build_flow`:

* ``parallel`` (also ``flow``): an ``AsyncParallelBatchNode`` hands the files to
  the run's executor;
* ``one_by_one``: an ``AsyncBatchNode`` summarises them one after another,
  whatever the executor.

From the repository root::

    pocketcore run examples/parallel_summaries/target.py:flow
    pocketcore run examples/parallel_summaries/target.py:one_by_one --executor trio
    pocketcore run examples.parallel_summaries.target:parallel --executor sequential

The shared store may name the folder of ``*.txt`` files (``{"folder": "..."}``);
by default it is the example's ``texts`` folder. The summaries end up in
``shared["summaries"]``. ``SUMMARY_DELAY`` sets the simulated LLM's delay, as for
``python -m examples.parallel_summaries.flow``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if __package__:  # imported as examples.parallel_summaries.target
    from .flow import build_flow
else:
    # Loaded from its path as a top-level module, where a relative import has
    # no package to be relative to: load the neighbouring flow.py by path too,
    # so the target works however the runner imports files.
    _spec = importlib.util.spec_from_file_location(
        "_parallel_summaries_flow", Path(__file__).with_name("flow.py")
    )
    if _spec is None or _spec.loader is None:  # pragma: no cover - flow.py is always there
        raise ImportError(f"cannot load flow.py next to {__file__}")
    _flow_module = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = _flow_module
    _spec.loader.exec_module(_flow_module)
    build_flow = _flow_module.build_flow

__all__ = ["flow", "one_by_one", "parallel"]

parallel = build_flow(parallel=True)
"""Load the texts, then summarise them concurrently, through the run's executor."""

one_by_one = build_flow(parallel=False)
"""Load the texts, then summarise them one after another (an ``AsyncBatchNode``)."""

flow = parallel
"""The default target: the parallel variant."""
