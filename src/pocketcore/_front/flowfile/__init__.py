"""Flow files: a flow described in TOML, checked as a whole, then built.

A file names its nodes by registered name or ``package.module:Class``, gives
their params and settings, joins them with actions, and may nest flows from
its ``[flows]`` tables. Loading reports every problem it finds, each with its
place in the file, before anything runs. See ``docs/flow-files.md``.

One module per job: ``load`` is the public face (:func:`load_flow`,
:class:`LoadedFlow`, :class:`FlowFileError`); ``reading`` reads the TOML;
``checks`` checks values and reports each problem with its place;
``loader`` builds the nodes and flows, within ``MAX_FLOW_DEPTH`` and
``MAX_OBJECTS``; ``filenodes`` is what a node built from a file is.
"""

from __future__ import annotations

from .load import FlowFileError, LoadedFlow, load_flow
from .loader import MAX_FLOW_DEPTH, MAX_OBJECTS

__all__ = ["MAX_FLOW_DEPTH", "MAX_OBJECTS", "FlowFileError", "LoadedFlow", "load_flow"]
