"""Layer 2, plugins: the plugin manager, entry-point discovery and the registry of contributions."""
