"""Where dask work runs: an embedded LocalCluster, or an existing scheduler."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import InputError

if TYPE_CHECKING:
    from dask.distributed import Client


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


# A job-script line that removes the same variable for nannies started by batch jobs:
# dask merges this into its config, and the nanny leaves out keys whose value is None.
BATCH_WORKER_PROLOGUE = (
    "export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON='{\"MALLOC_TRIM_THRESHOLD_\": None}'"
)


def worker_environ() -> dict[str, Any]:
    """Dask's environment for worker processes, less ``MALLOC_TRIM_THRESHOLD_``.

    Once that variable is set, glibc stops raising its mmap threshold, so every
    array above 128 KiB a task makes (each strip, its stretched copy, each chip)
    is a fresh mapping whose pages fault in again and are unmapped when freed:
    about a third more CPU time per chip in a tiling worker process.  Freed
    memory still returns to the system (large arrays stay mappings; the
    heap is trimmed above twice the adapted threshold).  Batch-job workers get
    the same through :data:`BATCH_WORKER_PROLOGUE`; workers started by hand
    (``--scheduler``) take dask's setting unless their configuration sets
    ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_`` to null.
    """
    import dask.config

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return env


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Client]:
    """A client for the run; an embedded cluster is torn down with it.

    The embedded cluster has no dashboard: it costs start-up time and a port that
    a second run on the same host would find taken (start a scheduler with one and
    pass ``--scheduler`` to watch a run).  One worker
    runs as a thread of this process: nothing to spawn and import again, and the
    driver's own work is small enough not to compete with it.
    """
    import dask.config
    from dask.distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    n = workers or default_workers()
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}),
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=n > 1,
            dashboard_address=None,
            worker_dashboard_address=None,
            memory_limit="auto",
            # the scheduler's HTTP endpoints (health, metrics) on any free port: the
            # default 8787 is taken by any other run on the host, with a warning
            scheduler_kwargs={"dashboard_address": ":0"},
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def check_workers_see(client: Client, probe: Path, store: Path) -> None:
    """Refuse, in one line, a store that a worker cannot reach: workers write into it.

    ``probe`` is a file of the store whose content is unique to this run (the
    lock, which names the process holding it); every worker reads it back.
    """
    expected = probe.read_text()
    seen = client.run(_reads, str(probe), expected)
    blind = sorted(address for address, ok in seen.items() if not ok)
    if blind:
        raise InputError(
            store,
            f"not visible from the dask worker at {blind[0]}: workers write chips into the "
            "store themselves, so it must be on a filesystem the driver and every worker "
            "share (a shared POSIX filesystem such as NFS, Lustre or GPFS)",
        )


def _reads(path: str, expected: str) -> bool:
    try:
        return Path(path).read_text() == expected
    except OSError:
        return False
