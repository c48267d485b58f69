"""``--cluster``/``--cluster-config``/``--jobs`` and ``--part``, shared by the ETL stages.

A stage adds ``@cluster_options`` (and ``@part_option``) to its click command
and replaces ``dask_client(workers, scheduler)`` by ``open_client(...)``;
without ``--cluster`` nothing changes (embedded cluster or ``--scheduler``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import click

from pipeline.cluster import dask_client
from pipeline.errors import InputError
from pipeline.hpc.config import SCHEDULERS, load_cluster_config
from pipeline.hpc.parts import PartType

if TYPE_CHECKING:
    from dask.distributed import Client

F = TypeVar("F", bound=Callable[..., object])


def cluster_options(f: F) -> F:
    """Add ``--cluster``, ``--cluster-config`` and ``--jobs`` (keywords of the same names)."""
    decorators = [
        click.option(
            "--cluster", type=click.Choice(SCHEDULERS), default=None,
            help="Run the workers as batch jobs on this kind of cluster (dask-jobqueue).",
        ),
        click.option(
            "--cluster-config", metavar="NAME|FILE", default=None,
            help="Job shape and scaling: a catalogs/clusters entry or a YAML file.",
        ),
        click.option(
            "--jobs", type=click.IntRange(min=1), default=None,
            help="Batch jobs to run at most (overrides the config's jobs).",
        ),
    ]
    for decorate in reversed(decorators):
        f = decorate(f)
    return f


def part_option(f: F) -> F:
    """Add ``--part i/n`` (keyword ``part``: a Part or None)."""
    return click.option(
        "--part", type=PartType(), default=None,
        help="Process only part i of n of the scenes (job arrays), into STORE.parts/; "
        "merge with `geokr-etl consolidate`.",
    )(f)


@contextmanager
def open_client(
    workers: int | None,
    scheduler: str | None,
    cluster: str | None,
    cluster_config: str | None,
    jobs: int | None,
) -> Iterator[Client]:
    """A dask client for the run: batch jobs, an existing scheduler, or an embedded cluster.

    Enter it before the store is opened: when no job can start, the run stops
    here with one line and nothing is written.
    """
    if cluster is None:
        if cluster_config or jobs:
            raise InputError("--cluster", "--cluster-config/--jobs need --cluster slurm|pbs")
        with dask_client(workers, scheduler) as client:
            yield client
        return
    if scheduler:
        raise InputError("--scheduler", "give either --scheduler ADDRESS or --cluster, not both")
    if workers is not None:
        raise InputError("--workers", "sizes the embedded cluster; with --cluster the jobs' "
                         "cores and processes come from --cluster-config")
    from pipeline.hpc.jobqueue import batch_client  # dask-jobqueue only when asked for

    config = load_cluster_config(cluster, cluster_config).with_jobs(jobs)
    with batch_client(config) as client:
        yield client
