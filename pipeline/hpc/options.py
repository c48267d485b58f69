"""``--cluster``/``--cluster-config``/``--jobs`` and ``--part``, shared by the ETL stages.

A stage adds ``@cluster_options`` (and ``@part_option``) to its click command,
receives one :class:`ClusterOptions` (keyword ``cluster``) in place of
``--workers``, ``--scheduler`` and the three cluster options, and opens its
client with ``open_client(cluster)``; without ``--cluster`` nothing changes
(embedded cluster or ``--scheduler``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pipeline.cluster import dask_client
from pipeline.errors import InputError
from pipeline.hpc.config import SCHEDULERS, load_cluster_config
from pipeline.hpc.parts import PartType

if TYPE_CHECKING:
    from dask.distributed import Client

F = TypeVar("F", bound=Callable[..., object])


@dataclasses.dataclass(frozen=True)
class ClusterOptions:
    """Where a stage's dask work runs: embedded workers, a scheduler, or batch jobs."""

    workers: int | None = None  # embedded cluster size (None: all cores)
    scheduler: str | None = None  # address of a running scheduler
    cluster: str | None = None  # slurm | pbs: workers are batch jobs
    config: str | None = None  # catalogs/clusters entry or YAML file
    jobs: int | None = None  # at most this many batch jobs

    def check(self) -> None:
        """Refuse combinations that would silently ignore an option."""
        if self.cluster is None:
            if self.config or self.jobs:
                raise InputError("--cluster", "--cluster-config/--jobs need --cluster slurm|pbs")
            return
        if self.scheduler:
            raise InputError("--scheduler",
                             "give either --scheduler ADDRESS or --cluster, not both")
        if self.workers is not None:
            raise InputError("--workers", "sizes the embedded cluster; with --cluster the jobs' "
                             "cores and processes come from --cluster-config")

    @property
    def in_process(self) -> bool:
        """``--workers 0`` without a scheduler or cluster: no dask at all."""
        return self.workers == 0 and not self.scheduler and not self.cluster


def cluster_options(f: F) -> F:
    """Add ``--cluster``, ``--cluster-config`` and ``--jobs``; the command's ``workers``
    and ``scheduler`` keywords and these three arrive as one ``cluster: ClusterOptions``."""

    @functools.wraps(f)
    def gather(*args: Any, **kwargs: Any) -> Any:
        kwargs["cluster"] = ClusterOptions(
            workers=kwargs.pop("workers", None), scheduler=kwargs.pop("scheduler", None),
            cluster=kwargs.pop("cluster"), config=kwargs.pop("cluster_config"),
            jobs=kwargs.pop("jobs"),
        )
        return f(*args, **kwargs)

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
    wrapped: Any = gather
    for decorate in reversed(decorators):
        wrapped = decorate(wrapped)
    return wrapped


def part_option(f: F) -> F:
    """Add ``--part i/n`` (keyword ``part``: a Part or None)."""
    return click.option(
        "--part", type=PartType(), default=None,
        help="Process only part i of n of the scenes (job arrays), into STORE.parts/; "
        "merge with `geokr-etl consolidate`.",
    )(f)


@contextmanager
def open_client(options: ClusterOptions) -> Iterator[Client]:
    """A dask client for the run: batch jobs, an existing scheduler, or an embedded cluster.

    Enter it before the store is opened: when no job can start, the run stops
    here with one line and nothing is written.
    """
    options.check()
    if options.cluster is None:
        with dask_client(options.workers, options.scheduler) as client:
            yield client
        return
    from pipeline.hpc.jobqueue import batch_client  # dask-jobqueue only when asked for

    config = load_cluster_config(options.cluster, options.config).with_jobs(options.jobs)
    with batch_client(config) as client:
        yield client
