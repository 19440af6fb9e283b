"""Layer 5, run-time: the settings table, configuration, the run's context, observation, cache."""
