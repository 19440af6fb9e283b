"""The chunked executor against pocketcore's executor contract, on asyncio and trio."""

from pocketcore.testing import ExecutorConformance
from pocketcore_chunked import ChunkedExecutor


class TestChunkedExecutor(ExecutorConformance):
    executor = ChunkedExecutor()
    # Items of one chunk run concurrently, so the parallel properties apply.
    parallel = True
    # backend is None: check both loops, and fail rather than skip if trio is missing.
    backends = ("asyncio", "trio")
