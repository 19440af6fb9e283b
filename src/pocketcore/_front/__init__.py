"""Layer 6, front doors: ``pocketcore.run``, flow files and graph rendering."""
