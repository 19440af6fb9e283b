"""The asyncio executor against the executor contract."""

from pocketcore.testing import ExecutorConformance
from pocketcore_asyncio import AsyncioExecutor


class TestAsyncioExecutor(ExecutorConformance):
    executor = AsyncioExecutor()
