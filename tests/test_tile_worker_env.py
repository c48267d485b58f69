"""Worker processes, embedded or batch jobs, keep glibc's adaptive mmap threshold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cluster import BATCH_WORKER_PROLOGUE, dask_client, worker_environ


def _env(name: str) -> str | None:
    return os.environ.get(name)


def test_worker_processes_start_without_malloc_trim_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # dask sets MALLOC_TRIM_THRESHOLD_ for the processes it spawns; it would make every
    # strip and chip a fresh mapping, faulted in again on each task.  Dask also leaves it
    # in the spawning process's own environment, where an earlier cluster of this test
    # session (started with dask's defaults) has put it; a command starts one cluster.
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert "MALLOC_TRIM_THRESHOLD_" not in worker_environ()
    with dask_client(2) as client:
        trim = client.run(_env, "MALLOC_TRIM_THRESHOLD_")
        threads = client.run(_env, "OMP_NUM_THREADS")
    assert len(trim) == 2
    assert set(trim.values()) == {None}
    assert set(threads.values()) == {"1"}  # dask's other settings for workers are kept


def test_batch_job_nannies_leave_out_malloc_trim_threshold(tmp_path: Path) -> None:
    # What a SLURM/PBS job runs before `dask worker`: the nanny it starts must not pass the
    # variable to its worker process, and must keep dask's other settings.
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import json\n"
        "from distributed.nanny import _get_env_variables\n"
        "print(json.dumps(_get_env_variables('distributed.nanny.pre-spawn-environ')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    done = subprocess.run(["bash", "-c", f"{BATCH_WORKER_PROLOGUE}\nexec \"$0\" \"$1\"",
                           sys.executable, str(probe)],
                          env=env, capture_output=True, text=True, check=True)
    spawned = json.loads(done.stdout)
    assert "MALLOC_TRIM_THRESHOLD_" not in spawned
    assert spawned["OMP_NUM_THREADS"] == "1"
