"""Cluster configs and the cluster options: checked before any job is sent, one line per mistake."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from pipeline.catalog import entries, load_yaml
from pipeline.cluster import BATCH_WORKER_PROLOGUE
from pipeline.errors import InputError
from pipeline.hpc.config import ClusterConfig, load_cluster_config, walltime_seconds
from pipeline.hpc.jobqueue import cluster_kwargs, make_cluster
from pipeline.hpc.options import ClusterOptions, cluster_options, open_client


def write(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_every_catalog_entry_loads() -> None:
    found = entries("clusters")
    assert {"slurm-example", "pbs-example", "local-slurm"} <= set(found)
    for name, path in found.items():
        kind = load_yaml(path)["scheduler"]
        config = load_cluster_config(kind, name)
        assert config.scheduler == kind
        assert config.source == str(path)


def test_unknown_keys_give_one_line_naming_file_and_keys(tmp_path: Path) -> None:
    path = write(tmp_path, {"queue": "gpu", "partition": "x", "wallclock": "1:00:00"})
    with pytest.raises(InputError) as e:
        load_cluster_config("slurm", str(path))
    message = str(e.value)
    assert message.startswith(f"{path}: unknown key(s) partition, wallclock; known keys:")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"cores": "eight"}, "key cores must be an integer, got 'eight'"),
        ({"cores": True}, "key cores must be an integer, got True"),
        ({"job_extra_directives": "--qos=x"}, "key job_extra_directives must be a list"),
        ({"job_extra_directives": [1]}, "key job_extra_directives must be a list"),
        ({"scheduler": "pbs"}, "describes a pbs cluster, not --cluster slurm"),
        ({"cores": 2, "processes": 4}, "processes (4) exceeds cores (2)"),
        ({"jobs": 0}, "key jobs must be positive"),
        ({"walltime": "two hours"}, "walltime 'two hours' is not [D-]HH:MM[:SS]"),
    ],
)
def test_bad_values(tmp_path: Path, doc: dict[str, object], reason: str) -> None:
    path = write(tmp_path, doc)
    with pytest.raises(InputError, match=None) as e:
        load_cluster_config("slurm", str(path))
    assert e.value.path == str(path)
    assert reason in e.value.reason


def test_unknown_catalog_name() -> None:
    with pytest.raises(InputError, match=r"no such clusters entry; known: .*local-slurm"):
        load_cluster_config("slurm", "no-such-site")


@pytest.mark.parametrize(
    ("text", "seconds"), [("00:30:00", 1800), ("1-02:00:00", 93600), ("12:30", 45000)]
)
def test_walltime_seconds(text: str, seconds: int) -> None:
    assert walltime_seconds(text) == seconds


def test_lifetime_ends_before_walltime_so_jobs_retire_cleanly() -> None:
    auto = ClusterConfig("slurm", walltime="02:00:00").lifetime()
    assert auto == ("6840s", "180s")  # margin max(5 min, 5 % of 2 h) = 6 min
    assert ClusterConfig("slurm", walltime="00:05:00").lifetime() is None
    explicit = ClusterConfig("slurm", worker_lifetime="50m", lifetime_stagger="3m")
    assert explicit.lifetime() == ("50m", "3m")


def test_job_script_carries_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "sbatch").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", str(fake_bin))
    config = ClusterConfig(
        "slurm", queue="cpu", account="proj42", cores=8, processes=2, memory="16GiB",
        walltime="02:00:00", job_extra_directives=("--qos=low",),
        job_script_prologue=("module load gdal",), lifetime_restart=True,
        scheduler_options={"host": "127.0.0.1", "dashboard_address": ":0"},
    )
    cluster = make_cluster(config)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p cpu", "#SBATCH -A proj42", "#SBATCH --cpus-per-task=8",
                 "#SBATCH -t 02:00:00", "#SBATCH --qos=low", "module load gdal",
                 BATCH_WORKER_PROLOGUE):
        assert line in script
    assert "--nworkers 2" in script
    assert "--lifetime 6840s --lifetime-stagger 180s --lifetime-restart" in script
    assert cluster_kwargs(config)["scheduler_options"]["host"] == "127.0.0.1"


@pytest.mark.parametrize(("kind", "command"), [("slurm", "sbatch"), ("pbs", "qsub")])
def test_no_submit_command_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, command: str
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InputError) as e, open_client(ClusterOptions(cluster=kind, jobs=2)):
        pass
    assert str(e.value).startswith(f"{command}: not found on PATH; --cluster {kind} must run")


def test_option_combinations_refused() -> None:
    with pytest.raises(InputError, match="need --cluster"), open_client(
        ClusterOptions(config="x")
    ):
        pass
    with pytest.raises(InputError, match="either --scheduler"), open_client(
        ClusterOptions(scheduler="tcp://h:8786", cluster="slurm")
    ):
        pass
    with pytest.raises(InputError, match=r"^--workers: sizes the embedded cluster"), open_client(
        ClusterOptions(workers=4, cluster="slurm")
    ):
        pass


def test_cluster_options_decorator() -> None:
    seen: dict[str, object] = {}

    @click.command()
    @cluster_options
    def cmd(**kwargs: object) -> None:
        seen.update(kwargs)

    runner = CliRunner()
    result = runner.invoke(cmd, ["--cluster", "slurm", "--cluster-config", "site", "--jobs", "4"])
    assert result.exit_code == 0, result.output
    assert seen == {"cluster": ClusterOptions(cluster="slurm", config="site", jobs=4)}
    result = runner.invoke(cmd, ["--cluster", "lsf"])
    assert result.exit_code == 2
    assert "'lsf' is not one of 'slurm', 'pbs'" in result.output
