"""Side-by-side benchmarks of pocketcore against its peers (issue 4).

Run ``python -m benchmarks`` from the repository root; see README.md here.
"""
