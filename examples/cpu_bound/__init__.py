"""The CPU-bound example: pure-Python work on one core, on threads, on a dask cluster."""
