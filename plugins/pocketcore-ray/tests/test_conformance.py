"""The ray executor against pocketcore's executor contract, on a real local Ray instance."""

from __future__ import annotations

import pytest
from conftest import CPUS, warm

from pocketcore.testing import ExecutorConformance
from pocketcore_ray import RayExecutor


@pytest.fixture(scope="class")
def workers() -> None:
    """A worker process for each CPU, before the properties that count items in flight."""
    warm()


@pytest.mark.usefixtures("workers")
class TestRayExecutor(ExecutorConformance):
    executor = RayExecutor(num_cpus=CPUS)
