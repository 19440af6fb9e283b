"""The process's LocalCluster: refused from an unguarded script, reused, closed at exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from process_groups import kill_group, left_after

from pocketcore_dask._main_guard import unguarded_line

NODE = """
import pocketcore


class Schedulers(pocketcore.ParallelBatchNode):
    def prep(self, shared):
        return range(4)

    def exec(self, i):
        from distributed import get_worker

        return get_worker().scheduler.address

    def post(self, shared, prep_res, exec_res):
        shared["schedulers"] = exec_res
"""

UNGUARDED = (
    NODE
    + """
shared = {}
pocketcore.run(Schedulers(), shared, executor="dask")
print(shared["schedulers"])
"""
)

GUARDED = (
    NODE
    + """

def scheduler():
    shared = {}
    pocketcore.run(Schedulers(), shared, executor="dask")
    [scheduler] = set(shared["schedulers"])
    return scheduler


if __name__ == "__main__":
    import json

    import pocketcore_dask

    first, second = scheduler(), scheduler()
    pocketcore_dask.shutdown()
    third = scheduler()
    print(json.dumps({"first": first, "second": second, "third": third}))
"""
)


def run_script(
    folder: Path, source: str, **env_vars: str
) -> tuple[subprocess.CompletedProcess[str], set[int]]:
    """Run ``source`` as a script in its own process group; what it did, and what it left."""
    (folder / "script.py").write_text(source)
    (folder / "pocketcore.toml").write_text("[dask]\nn_workers = 2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POCKETCORE_DASK_")}
    env.update(env_vars)
    proc = subprocess.Popen(
        [sys.executable, "script.py"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=240)
        left = left_after(proc, 20)
    finally:
        kill_group(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), left


@pytest.mark.parametrize(
    ("source", "line", "unguarded"),
    [
        ("run()\n", 1, True),
        ("if __name__ == '__main__':\n    run()\n", 2, False),
        ("if '__main__' == __name__:\n    run()\n", 2, False),
        ("if __name__ != '__main__':\n    run()\n", 2, True),
        ("def main():\n    run()\n\nif __name__ == '__main__':\n    main()\nmain()\n", 5, False),
        ("def main():\n    run()\n\nif __name__ == '__main__':\n    main()\nmain()\n", 6, True),
        ("try:\n    if __name__ == '__main__':\n        run()\nfinally:\n    pass\n", 3, False),
        ("this is not python(\n", 1, False),  # the benefit of the doubt
    ],
)
def test_which_lines_run_again_in_a_worker(source: str, line: int, unguarded: bool) -> None:
    assert unguarded_line(source, line) is unguarded


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table in /proc")
def test_an_unguarded_script_gets_one_config_error_and_starts_nothing(tmp_path: Path) -> None:
    done, left = run_script(tmp_path, UNGUARDED)
    line = UNGUARDED.splitlines().index('pocketcore.run(Schedulers(), shared, executor="dask")') + 1
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "pocketcore._core.errors.ConfigError: the dask executor cannot start a LocalCluster "
        f"from script.py line {line}: that line runs at import, outside "
        "'if __name__ == \"__main__\":'"
    ), done.stderr
    # No worker process was started, so none printed multiprocessing's complaint.
    for noise in ("bootstrapping phase", "Nanny failed to start", "distributed.nanny"):
        assert noise not in done.stderr
    assert not left


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table in /proc")
def test_runs_reuse_the_cluster_until_shutdown_and_nothing_outlives_the_script(
    tmp_path: Path,
) -> None:
    done, left = run_script(tmp_path, GUARDED)
    assert done.returncode == 0, done.stderr
    schedulers = json.loads(done.stdout.strip().splitlines()[-1])
    # The same cluster served the first two runs; after shutdown(), the third
    # run started a new one (its scheduler on another free port).
    assert schedulers["first"] == schedulers["second"]
    assert schedulers["third"] != schedulers["first"]
    assert not left, f"still running after the script ended: {left}"
    assert "Traceback" not in done.stderr, done.stderr


FAILING = """
import pocketcore


class Fails(pocketcore.ParallelBatchNode):
    def prep(self, shared):
        return [1]

    def exec(self, i):
        raise ValueError("item failed on purpose")


if __name__ == "__main__":
    try:
        pocketcore.run(Fails(), executor="dask")
    except ValueError as exc:
        print("caught:", exc)
"""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table in /proc")
@pytest.mark.parametrize("log_failures", ["", "1"])
def test_compute_failed_logs_only_when_asked(tmp_path: Path, log_failures: str) -> None:
    done, left = run_script(tmp_path, FAILING, POCKETCORE_DASK_LOG_FAILURES=log_failures)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "caught: item failed on purpose"
    logged = "Compute Failed" in done.stderr and "item failed on purpose" in done.stderr
    assert logged is bool(log_failures), done.stderr
    assert not left
