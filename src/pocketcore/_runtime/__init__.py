"""Layer 3, run-time: configuration with its sources, the run's context, and observation."""
