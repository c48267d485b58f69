"""Where dask work runs: an embedded LocalCluster, or an existing scheduler."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from dask.distributed import Client, LocalCluster


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Client]:
    """A client for the run; an embedded cluster is torn down with it."""
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    n = workers or default_workers()
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit="auto",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
