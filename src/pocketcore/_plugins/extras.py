"""Install hints: which executors the ``pocketcore`` distribution offers as extras.

An extra ``NAME`` of ``pocketcore`` that installs the distribution
``pocketcore-NAME`` offers the executor ``NAME`` (``pip install
"pocketcore[trio]"`` installs ``pocketcore-trio``, which registers ``trio``).
The extras are read from pocketcore's own installed metadata, so this module
keeps no second list of them; without that metadata there is no hint.
"""

from __future__ import annotations

import re
from importlib import metadata

from pocketcore._plugins.discovery import normalize_name

__all__ = ["executor_extras", "install_hint"]

DISTRIBUTION = "pocketcore"

# "pocketcore-trio>=0.1; extra == 'trio'": the requirement's name, and the extra.
_REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA_MARKER = re.compile(r"""\bextra\s*==\s*["']([^"']+)["']""")


def executor_extras() -> dict[str, str]:
    """Executor name -> the distribution its extra of pocketcore installs.

    Empty when pocketcore's metadata cannot be read (it is not installed as a
    distribution).
    """
    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return {}
    offered: dict[str, str] = {}
    for requirement in requirements:
        name = _REQUIREMENT_NAME.match(requirement)
        _, _, marker = requirement.partition(";")
        extra = _EXTRA_MARKER.search(marker)
        if name is None or extra is None:
            continue
        executor = extra.group(1)
        if normalize_name(name.group(1)) == f"{DISTRIBUTION}-{normalize_name(executor)}":
            offered[executor] = name.group(1)
    return offered


def install_hint(executor: str) -> str | None:
    """How to install the executor ``executor``, or ``None`` when there is nothing to say.

    There is a hint only for an executor offered as an extra of pocketcore
    whose distribution is not installed; an installed one that is missing was
    left out by the plugin selection or failed, which the failures say.
    """
    distribution = executor_extras().get(executor)
    if distribution is None:
        return None
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return f'the {executor!r} executor is installed with: pip install "pocketcore[{executor}]"'
    return None
