"""The ray executor against pocketcore's executor contract, on a real local Ray instance."""

from __future__ import annotations

from conftest import CPUS

from pocketcore.testing import ExecutorConformance
from pocketcore_ray import RayExecutor


class TestRayExecutor(ExecutorConformance):
    executor = RayExecutor(num_cpus=CPUS)
