"""Layer 5, run-time: configuration with its sources, the run's context, observation, the cache."""
