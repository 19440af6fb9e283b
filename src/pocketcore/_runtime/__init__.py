"""Layer 3, run-time: the settings table, configuration, the run's context, observation."""
