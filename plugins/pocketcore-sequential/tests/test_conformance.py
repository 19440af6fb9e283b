"""The sequential executor against the executor contract, on asyncio and trio."""

from pocketcore.testing import ExecutorConformance
from pocketcore_sequential import SequentialExecutor


class TestSequentialExecutor(ExecutorConformance):
    executor = SequentialExecutor()
    parallel = False
