"""Layer 1, errors and protocols: the exceptions and the executor protocol with its capabilities.

Imports nothing of pocketcore's.
"""
