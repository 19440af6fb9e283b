"""Layer 4, plugins: the plugin manager, entry-point discovery and the registry of contributions.

- :mod:`.manager`: the plugin manager factory, and the per-plugin calls of
  registration hooks through pluggy;
- :mod:`.discovery`: entry points, ``POCKETCORE_DISABLE_PLUGIN_AUTOLOAD`` /
  ``POCKETCORE_PLUGINS``, and load failures;
- :mod:`.failures`: the :class:`PluginFailure` record and its warning;
- :mod:`.registry`: the executors, the node classes, the stores and the
  lifecycle observer;
- :mod:`.registering`: each plugin's registration hook called on its own,
  and each contribution checked as it registers;
- :mod:`.entries`: the records of the contributions;
- :mod:`.extras`: how to install an executor that is an extra of pocketcore.
"""
