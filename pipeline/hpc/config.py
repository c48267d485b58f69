"""A batch-cluster description (``catalogs/clusters/*.yaml``), checked before any job is sent.

Every key is checked up front so a typo fails in one line on the login node
instead of as a silently ignored directive after an hour in the queue.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from pipeline.catalog import load_yaml, resolve
from pipeline.errors import InputError

SCHEDULERS = ("slurm", "pbs")

# key -> (accepted Python types, short description used in error lines)
_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "scheduler": ((str,), "slurm or pbs"),
    "queue": ((str,), "a string"),
    "account": ((str,), "a string"),
    "cores": ((int,), "an integer"),
    "processes": ((int,), "an integer"),
    "memory": ((str,), "a size such as '16GiB'"),
    "walltime": ((str,), "a time such as '02:00:00'"),
    "job_name": ((str,), "a string"),
    "job_extra_directives": ((list,), "a list of strings"),
    "job_script_prologue": ((list,), "a list of strings"),
    "worker_extra_args": ((list,), "a list of strings"),
    "python": ((str,), "a path"),
    "local_directory": ((str,), "a path"),
    "log_directory": ((str,), "a path"),
    "interface": ((str,), "a network interface name"),
    "scheduler_options": ((dict,), "a mapping"),
    "jobs": ((int,), "an integer"),
    "adaptive": ((bool,), "true or false"),
    "minimum_jobs": ((int,), "an integer"),
    "start_timeout": ((int, float), "a number of seconds"),
    "worker_lifetime": ((str,), "a duration such as '55m'"),
    "lifetime_stagger": ((str,), "a duration such as '4m'"),
    "lifetime_restart": ((bool,), "true or false"),
    "task_retries": ((int,), "an integer"),
}
_WALLTIME = re.compile(r"^(?:(\d+)-)?(\d+):(\d{2})(?::(\d{2}))?$")


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """Job shape, scaling and resilience of one batch cluster."""

    scheduler: str
    source: str = "<defaults>"
    queue: str | None = None
    account: str | None = None
    cores: int = 1
    processes: int = 1
    memory: str = "2GiB"
    walltime: str = "01:00:00"
    job_name: str = "geokr-etl"
    job_extra_directives: tuple[str, ...] = ()
    job_script_prologue: tuple[str, ...] = ()
    worker_extra_args: tuple[str, ...] = ()
    python: str | None = None
    local_directory: str | None = None
    log_directory: str | None = None
    interface: str | None = None
    scheduler_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    jobs: int = 1
    adaptive: bool = True
    minimum_jobs: int = 0
    start_timeout: float = 300.0
    worker_lifetime: str | None = None
    lifetime_stagger: str | None = None
    lifetime_restart: bool = False
    task_retries: int = 3

    def with_jobs(self, jobs: int | None) -> ClusterConfig:
        """The command line's ``--jobs`` wins over the file's ``jobs``."""
        return self if jobs is None else dataclasses.replace(self, jobs=jobs)

    def lifetime(self) -> tuple[str, str] | None:
        """Worker lifetime and stagger: explicit, else walltime minus a safety margin.

        Workers that retire before the walltime kill hand their tasks back and
        the adaptive cluster submits fresh jobs, so a run outlives any one job.
        """
        if self.worker_lifetime:
            return self.worker_lifetime, self.lifetime_stagger or "0s"
        seconds = walltime_seconds(self.walltime)
        if seconds < 600:
            return None
        margin = max(300, seconds // 20)
        return f"{seconds - margin}s", self.lifetime_stagger or f"{margin // 2}s"


def walltime_seconds(text: str) -> int:
    """``[D-]HH:MM[:SS]`` (the form both SLURM and PBS accept) in seconds."""
    m = _WALLTIME.match(text.strip())
    if not m:
        raise ValueError(f"walltime {text!r} is not [D-]HH:MM[:SS]")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def load_cluster_config(scheduler: str, name_or_path: str | None) -> ClusterConfig:
    """The config for ``--cluster scheduler --cluster-config name_or_path``."""
    if name_or_path is None:
        return ClusterConfig(scheduler=scheduler)
    path = resolve("clusters", name_or_path)
    return parse_cluster_config(load_yaml(path), path, scheduler)


def parse_cluster_config(doc: dict[str, Any], path: Path, scheduler: str) -> ClusterConfig:
    _check_keys(doc, path)
    declared = doc.get("scheduler", scheduler)
    if declared != scheduler:
        raise InputError(path, f"describes a {declared} cluster, not --cluster {scheduler}")
    values: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in doc.items() if v is not None
    }
    values["scheduler"] = scheduler
    config = ClusterConfig(source=str(path), **values)
    _check_values(config, path)
    return config


def _check_keys(doc: dict[str, Any], path: Path) -> None:
    unknown = sorted(set(doc) - set(_KEYS))
    if unknown:
        raise InputError(
            path, f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(_KEYS))}"
        )
    for key, value in doc.items():
        types, wanted = _KEYS[key]
        ok = value is None or (isinstance(value, types) and not _is_bool_for_int(value, types))
        if ok and isinstance(value, list):
            ok = all(isinstance(v, str) for v in value)
        if not ok:
            raise InputError(path, f"key {key} must be {wanted}, got {value!r}")


def _is_bool_for_int(value: Any, types: tuple[type, ...]) -> bool:
    """YAML ``yes`` is a bool, and bool is an int in Python; refuse it for numbers."""
    return isinstance(value, bool) and bool not in types


def _check_values(config: ClusterConfig, path: Path) -> None:
    if config.scheduler not in SCHEDULERS:
        raise InputError(path, f"scheduler must be one of {', '.join(SCHEDULERS)}")
    for key in ("cores", "processes", "jobs", "start_timeout"):
        if getattr(config, key) <= 0:
            raise InputError(path, f"key {key} must be positive, got {getattr(config, key)}")
    if config.processes > config.cores:
        raise InputError(path, f"processes ({config.processes}) exceeds cores ({config.cores})")
    if config.minimum_jobs < 0 or config.task_retries < 0:
        raise InputError(path, "minimum_jobs and task_retries must be >= 0")
    try:
        walltime_seconds(config.walltime)
    except ValueError as e:
        raise InputError(path, str(e)) from None
