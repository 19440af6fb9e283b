"""The trio executor against the executor contract."""

from pocketcore.testing import ExecutorConformance
from pocketcore_trio import TrioExecutor


class TestTrioExecutor(ExecutorConformance):
    executor = TrioExecutor()
