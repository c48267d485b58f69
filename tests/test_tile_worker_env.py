"""Worker processes of the embedded cluster keep glibc's adaptive mmap threshold."""

from __future__ import annotations

import os

import pytest

from pipeline.cluster import dask_client, worker_environ


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
