"""Side-by-side benchmarks of pocketcore against its peers and against its performance targets.

Run ``python -m benchmarks`` from the repository root; see README.md here.
"""
