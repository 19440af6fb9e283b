"""The chunked executor against pocketcore's executor contract, on asyncio and trio."""

from pocketcore_chunked import ChunkedExecutor

from pocketcore.testing import ExecutorConformance


class TestChunkedExecutor(ExecutorConformance):
    executor = ChunkedExecutor()
    # Items of one chunk run concurrently, so the parallel properties apply.
    parallel = True
    # backend is None, so every property runs on both backends.
    backends = ("asyncio", "trio")
