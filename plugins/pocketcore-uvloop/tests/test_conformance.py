"""The uvloop executor against the executor contract."""

from pocketcore.testing import ExecutorConformance
from pocketcore_uvloop import UvloopExecutor


class TestUvloopExecutor(ExecutorConformance):
    executor = UvloopExecutor()
