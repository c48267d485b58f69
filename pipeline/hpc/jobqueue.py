"""Dask workers as SLURM/PBS batch jobs (dask-jobqueue), sized and made resilient from a config.

The scheduler lives in the driver process; workers are ordinary batch jobs.
Jobs that end (walltime, node failure, ``scancel``) are replaced by the
adaptive loop, tasks lost with them are re-run up to ``task_retries`` times,
and workers retire before their walltime so no task is cut off mid-way.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dask
from dask.distributed import Client
from dask_jobqueue import PBSCluster, SLURMCluster
from dask_jobqueue.core import JobQueueCluster

from pipeline.cluster import BATCH_WORKER_PROLOGUE
from pipeline.errors import InputError
from pipeline.hpc.config import ClusterConfig

SUBMIT_COMMANDS = {"slurm": "sbatch", "pbs": "qsub"}
_CLUSTER_CLASSES: dict[str, type[JobQueueCluster]] = {"slurm": SLURMCluster, "pbs": PBSCluster}


def _keep_ctrl_c() -> None:
    """``dask_jobqueue.runner`` (imported with the package) makes SIGINT call
    ``sys.exit()``: Ctrl-C would end a run with exit 0 as if it had finished. It stays
    ``KeyboardInterrupt``, so an interrupted run commits, says so and exits 130."""
    handler = signal.getsignal(signal.SIGINT)
    if (threading.current_thread() is threading.main_thread()
            and getattr(handler, "__module__", "") == "dask_jobqueue.runner"):
        signal.signal(signal.SIGINT, signal.default_int_handler)


_keep_ctrl_c()


def require_submit_command(scheduler: str) -> None:
    """Fail before anything starts when this host cannot submit jobs."""
    command = SUBMIT_COMMANDS[scheduler]
    if shutil.which(command) is None:
        raise InputError(
            command,
            f"not found on PATH; --cluster {scheduler} must run on a host that can submit "
            "jobs (a login node), or use --scheduler ADDRESS for a cluster started elsewhere",
        )


def cluster_kwargs(config: ClusterConfig) -> dict[str, Any]:
    """Keyword arguments for the dask-jobqueue cluster class."""
    extra = list(config.worker_extra_args)
    lifetime = config.lifetime()
    if lifetime:
        extra += ["--lifetime", lifetime[0], "--lifetime-stagger", lifetime[1]]
        if config.lifetime_restart:
            extra.append("--lifetime-restart")
    kwargs: dict[str, Any] = {
        "queue": config.queue,
        "account": config.account,
        "cores": config.cores,
        "processes": config.processes,
        "memory": config.memory,
        "walltime": config.walltime,
        "job_name": config.job_name,
        "job_extra_directives": list(config.job_extra_directives),
        "job_script_prologue": [BATCH_WORKER_PROLOGUE, *config.job_script_prologue],
        "worker_extra_args": extra,
        "python": config.python,
        "local_directory": config.local_directory,
        "log_directory": config.log_directory,
        "interface": config.interface,
        "scheduler_options": dict(config.scheduler_options),
    }
    return {k: v for k, v in kwargs.items() if v is not None}


def make_cluster(config: ClusterConfig) -> JobQueueCluster:
    """A cluster object with no job submitted yet."""
    require_submit_command(config.scheduler)
    with dask.config.set({"distributed.scheduler.allowed-failures": config.task_retries}):
        return _CLUSTER_CLASSES[config.scheduler](**cluster_kwargs(config))


@contextmanager
def batch_client(config: ClusterConfig) -> Iterator[Client]:
    """A client whose workers are batch jobs; every job is cancelled on exit."""
    cluster = make_cluster(config)
    with cluster, Client(cluster) as client:
        cluster.scale(jobs=config.jobs)
        wait_for_first_worker(client, cluster, config)
        if config.adaptive:
            cluster.adapt(minimum_jobs=min(config.minimum_jobs, config.jobs),
                          maximum_jobs=config.jobs)
        else:  # a fixed size that still replaces jobs that end
            cluster.adapt(minimum_jobs=config.jobs, maximum_jobs=config.jobs)
        yield client


def wait_for_first_worker(client: Client, cluster: JobQueueCluster, config: ClusterConfig) -> None:
    """Give up with one line, jobs cancelled, when no job starts within ``start_timeout``."""
    try:
        client.wait_for_workers(1, timeout=config.start_timeout)
    except (TimeoutError, OSError):
        ids = [str(job.job_id) for job in cluster.workers.values() if job.job_id]
        states = job_states(config.scheduler, ids)
        raise InputError(
            config.source,
            f"no {config.scheduler} worker job started within {config.start_timeout:g} s "
            f"({states}); jobs cancelled, nothing written",
        ) from None


def job_states(scheduler: str, job_ids: list[str]) -> str:
    """``job 12 PENDING (Resources), ...`` as the batch system reports them."""
    if not job_ids:
        return "no job was submitted"
    if scheduler == "slurm":
        argv = ["squeue", "-h", "-o", "%i %T (%r)", "-j", ",".join(job_ids)]
    else:
        argv = ["qstat", *job_ids]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return f"jobs {', '.join(job_ids)}: state unknown"
    lines = [
        " ".join(line.split())
        for line in out.stdout.splitlines()
        if line.split() and line.split()[0].split(".")[0] in job_ids
    ]
    if not lines:
        return f"jobs {', '.join(job_ids)} ended without a worker connecting; see their logs"
    return "job " + "; job ".join(lines)
