"""The flows ``pocketcore demo`` runs: small, self-contained, with simulated slow calls.

They ship inside the package, so the demo runs from any folder after a plain
install; they read no files and write none. Each waits on a fake slow call
(``anyio.sleep``), so the wall times show how the executor schedules the
work, on asyncio and trio alike.
"""

from __future__ import annotations

from . import images, summaries
from .spec import Demo

__all__ = ["DEMOS", "Demo"]

DEMOS = (summaries.DEMO, images.DEMO)
"""Every demo, in the order the table shows them."""
