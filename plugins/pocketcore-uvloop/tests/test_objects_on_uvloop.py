"""On uvloop's loop too, a batch keeps no more objects alive per item than a raw ``gather``.

The uvloop executor's fan-out target (at most 0.75 x a raw ``gather`` on the
default loop) holds only while the batch does not bring on a full garbage
collection that the raw ``gather`` escapes; see the asyncio plugin's
``tests/test_objects.py``. Counted, not timed (``pocketcore.testing``'s
``check_objects_per_item``).
"""

from __future__ import annotations

import uvloop

from pocketcore.testing import check_objects_per_item
from pocketcore_uvloop import UvloopExecutor


def test_an_item_keeps_no_more_alive_than_under_a_raw_gather() -> None:
    check_objects_per_item(UvloopExecutor(), run=uvloop.run)
