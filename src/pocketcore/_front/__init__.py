"""Layer 8, front doors: ``pocketcore.run``, flow files, graph rendering and the timeline."""
