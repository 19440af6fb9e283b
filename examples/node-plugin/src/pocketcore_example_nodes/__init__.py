"""Example pocketcore nodes for a tiny text pipeline.

The distribution ``pocketcore-example-nodes`` registers two node classes, one
each way pocketcore offers:

* ``word_count`` (:class:`~pocketcore_example_nodes.nodes.WordCount`) through
  the entry-point group ``pocketcore.nodes``, with no hook code at all;
* ``uppercase`` (:class:`~pocketcore_example_nodes.nodes.Uppercase`) through
  the plugin module :mod:`pocketcore_example_nodes.plugin`, which implements
  the hook ``pocketcore_register_nodes``.

Once installed, both can be created by name
(``pocketcore.get_registry().create_node("word_count", {"top": 3})``) and used
in flow files. The classes live in :mod:`pocketcore_example_nodes.nodes`; this
package module imports nothing, so loading the plugin stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
