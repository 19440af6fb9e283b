"""Tests of the plugins layer: discovery, registration hooks, failures and install hints."""
