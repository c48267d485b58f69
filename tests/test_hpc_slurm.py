"""Against a real single-node SLURM (scripts/slurm-local.sh), started once for the session.

Skipped, with the reason printed, only where SLURM cannot be installed or started.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import yaml
import zarr
from dask.distributed import Client

from geokr_testkit.rasters import textured, write_raster
from geokr_testkit.stores import build_store
from pipeline.cluster import dask_client
from pipeline.errors import InputError
from pipeline.hpc.options import ClusterOptions, open_client
from pipeline.store.chips import ChipStore, chip_specs
from pipeline.tiling import TileParams, run_tile
from training.checkpoint import list_checkpoints

pytestmark = pytest.mark.slurm
REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm-local.sh"


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture(scope="session")
def slurm() -> Iterator[Path]:
    """The state folder of a running local SLURM; ``SLURM_CONF`` points at it meanwhile."""
    # Not under pytest's tmp_path: munged must reach its socket, and pytest's folders are 0700.
    state = Path(tempfile.mkdtemp(prefix="geokr-slurm-"))
    env = {**os.environ, "GEOKR_SLURM_PORT": str(_free_port_pair())}
    env.pop("SLURM_CONF", None)
    started = subprocess.run(["bash", str(SCRIPT), "start", str(state)], env=env,
                             capture_output=True, text=True, timeout=600, check=False)
    if started.returncode != 0:
        shutil.rmtree(state, ignore_errors=True)
        reason = (started.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"SLURM integration tests skipped: {reason}", file=sys.stderr)
        pytest.skip(f"SLURM cannot be started here: {reason}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", str(state / "slurm.conf"))
        try:
            yield state
        finally:
            subprocess.run(["bash", str(SCRIPT), "stop", str(state)], check=False, timeout=120)
            shutil.rmtree(state, ignore_errors=True)


def squeue(name: str) -> list[list[str]]:
    """``[job id, state]`` of the live (pending or running) jobs called ``name``."""
    argv = ["squeue", "-h", "-n", name, "-t", "PD,CF,R,S", "-o", "%i %T"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line.split() for line in out.splitlines()]


def site_config(tmp_path: Path, **overrides: object) -> Path:
    doc = yaml.safe_load((REPO / "catalogs/clusters/local-slurm.yaml").read_text())
    doc.update(log_directory=str(tmp_path / "logs"), **overrides)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def job_id_and_square(x: int) -> tuple[str, int]:
    time.sleep(0.05)
    return os.environ.get("SLURM_JOB_ID", ""), x * x


def test_dask_work_runs_inside_slurm_jobs(slurm: Path, tmp_path: Path) -> None:
    config = site_config(tmp_path, job_name="geokr-test-basic")
    with open_client(ClusterOptions(cluster="slurm", config=str(config), jobs=2)) as client:
        results = client.gather(client.map(job_id_and_square, range(40)))
    assert [r[1] for r in results] == [x * x for x in range(40)]
    job_ids = {r[0] for r in results}
    assert all(j.isdigit() for j in job_ids)
    assert not squeue("geokr-test-basic")  # all worker jobs cancelled on exit


def test_job_that_never_starts_gives_one_line_and_is_cancelled(
    slurm: Path, tmp_path: Path
) -> None:
    config = site_config(tmp_path, job_name="geokr-test-pending", start_timeout=4,
                         job_extra_directives=["--begin=now+3600"])
    with pytest.raises(InputError) as e, open_client(
        ClusterOptions(cluster="slurm", config=str(config), jobs=1)
    ):
        pytest.fail("the client must not open")
    message = str(e.value)
    assert message.startswith(f"{config}: no slurm worker job started within 4 s (job ")
    assert "PENDING (BeginTime)" in message
    assert message.endswith("jobs cancelled, nothing written")
    assert not squeue("geokr-test-pending")


def slow_square(x: int) -> int:
    time.sleep(0.3)
    return x * x


def test_cancelled_worker_job_is_replaced_and_no_task_is_lost(
    slurm: Path, tmp_path: Path
) -> None:
    config = site_config(tmp_path, job_name="geokr-test-scancel", adaptive=False)
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "1s"}), open_client(
        ClusterOptions(cluster="slurm", config=str(config), jobs=2)
    ) as client:
        client.wait_for_workers(2, timeout=60)
        futures = client.map(slow_square, range(20))
        first = [j for j, _ in squeue("geokr-test-scancel")]
        while sum(f.done() for f in futures) < 3:
            time.sleep(0.1)
        subprocess.run(["scancel", first[0]], check=True)
        results = client.gather(futures)
        jobs_seen = {j for j, _ in squeue("geokr-test-scancel")}
        deadline = time.monotonic() + 60
        while first[0] in jobs_seen or len(jobs_seen) < 2:
            assert time.monotonic() < deadline, f"no replacement job; queue: {jobs_seen}"
            time.sleep(0.5)
            jobs_seen = {j for j, _ in squeue("geokr-test-scancel")}
    assert results == [x * x for x in range(20)]
    assert jobs_seen - set(first)  # a fresh job replaced the cancelled one


# -- the tile stage on SLURM workers ---------------------------------------------------------
TILE_PARAMS = TileParams(chip_size=64, commit_interval=0)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> list[str]:
    """The real Zion scene plus three generated ones, so a run lasts long enough to interrupt.

    Given in an order that is not sorted (the real scene between generated ones): every
    way of running keeps the given order, wherever the clone and the temporary folder sit.
    """
    folder = tmp_path_factory.mktemp("scenes")
    generated = [
        write_raster(folder / f"g{i}.tif", textured(4, 700, 600, seed=i)) for i in range(3)
    ]
    first, *rest = map(str, generated)
    return [first, str(shared_data / "zion" / "landsat8_zion_bgrn.tif"), *rest]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, scenes: list[str]) -> Path:
    """The same scenes tiled by the embedded default cluster."""
    path = tmp_path_factory.mktemp("reference") / "embedded.zarr"
    with dask_client(2) as client:
        run_tile(path, scenes, client, TILE_PARAMS, "bgrn", progress=False)
    return path


def snapshot(path: Path) -> tuple[dict[str, np.ndarray], list[dict[str, object]]]:
    store = ChipStore.open(path)
    arrays = {name: store.read(name) for name in chip_specs(store.chip_size)}
    scenes = [{k: v for k, v in s.items() if k != "run"} for s in store.scenes]
    return arrays, scenes


def assert_same_store(path: Path, reference: Path) -> None:
    arrays, scenes = snapshot(path)
    ref_arrays, ref_scenes = snapshot(reference)
    assert scenes == ref_scenes
    for name, ref in ref_arrays.items():
        np.testing.assert_array_equal(arrays[name], ref, err_msg=name)


def test_tile_on_slurm_workers_equals_the_embedded_run(
    slurm: Path, tmp_path: Path, scenes: list[str], reference: Path
) -> None:
    config = site_config(tmp_path, job_name="geokr-test-tile")
    with open_client(ClusterOptions(cluster="slurm", config=str(config), jobs=2)) as client:
        report = run_tile(tmp_path / "s.zarr", scenes, client, TILE_PARAMS, "bgrn", progress=False)
    assert report.counts["scenes_done"] == len(scenes)
    assert_same_store(tmp_path / "s.zarr", reference)


def test_worker_job_cancelled_mid_tile_loses_and_duplicates_no_chip(
    slurm: Path, tmp_path: Path, scenes: list[str], reference: Path
) -> None:
    config = site_config(tmp_path, job_name="geokr-test-tile-cancel", adaptive=False)
    cancelled: list[str] = []
    finished = threading.Event()

    def cancel_one_busy_job(client: Client) -> None:
        while not finished.is_set():
            if any(client.processing().values()):
                job = squeue("geokr-test-tile-cancel")[0][0]
                if not finished.is_set():
                    subprocess.run(["scancel", job], check=True)
                    cancelled.append(job)
                return
            time.sleep(0.05)

    with dask.config.set({"distributed.deploy.lost-worker-timeout": "1s"}), open_client(
        ClusterOptions(cluster="slurm", config=str(config), jobs=2)
    ) as client:
        client.wait_for_workers(2, timeout=60)
        killer = threading.Thread(target=cancel_one_busy_job, args=(client,), daemon=True)
        killer.start()
        report = run_tile(tmp_path / "s.zarr", scenes, client, TILE_PARAMS, "bgrn", progress=False)
        finished.set()
        killer.join()
    assert cancelled, "the run ended before a worker job could be cancelled"
    assert report.counts["scenes_done"] == len(scenes)
    assert_same_store(tmp_path / "s.zarr", reference)


def tile_argv(store: Path, scenes: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "tile", "--store", str(store),
            "--sensor", "bgrn", "--chip-size", "64", "--commit-interval", "0", "--no-progress",
            *[arg for s in scenes for arg in ("--scenes", s)], *extra]


def test_tile_cli_with_cluster_slurm(
    slurm: Path, tmp_path: Path, scenes: list[str], reference: Path
) -> None:
    config = site_config(tmp_path, job_name="geokr-test-cli")
    argv = tile_argv(tmp_path / "s.zarr", scenes, "--cluster", "slurm",
                     "--cluster-config", str(config), "--jobs", "2")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert_same_store(tmp_path / "s.zarr", reference)


def test_tile_cli_pending_job_writes_nothing(
    slurm: Path, tmp_path: Path, scenes: list[str]
) -> None:
    config = site_config(tmp_path, job_name="geokr-test-cli-pending", start_timeout=3,
                         job_extra_directives=["--begin=now+3600"])
    argv = tile_argv(tmp_path / "s.zarr", scenes, "--cluster", "slurm",
                     "--cluster-config", str(config))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {config}: no slurm worker job started within 3 s")
    assert not (tmp_path / "s.zarr").exists()


LABEL_ARRAYS = ("proportions", "labeled_fraction", "valid", "dominant", "sample_weight")


def test_label_cli_with_cluster_slurm_equals_the_embedded_run(
    slurm: Path, tmp_path: Path, reference: Path, shared_data: Path
) -> None:
    config = site_config(tmp_path, job_name="geokr-test-label")
    embedded, batch = tmp_path / "embedded.zarr", tmp_path / "batch.zarr"
    shutil.copytree(reference, embedded)
    shutil.copytree(reference, batch)
    base = [sys.executable, "-m", "pipeline.cli", "label", "--landcover",
            str(shared_data / "zion" / "nlcd.tif"), "--legend", "nlcd8", "--name", "nlcd8",
            "--quiet"]
    runs = [[*base, "--store", str(embedded), "--workers", "1"],
            [*base, "--store", str(batch), "--cluster", "slurm", "--cluster-config", str(config),
             "--jobs", "2"]]
    for argv in runs:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr
    want = zarr.open_group(str(embedded / "labels" / "nlcd8"), mode="r")
    got = zarr.open_group(str(batch / "labels" / "nlcd8"), mode="r")
    meta: Any = got.attrs["geokr_labels"]
    assert meta["n_chips"] == ChipStore.open(reference).n_chips
    for name in LABEL_ARRAYS:
        np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(want[name]), err_msg=name)


def test_job_array_parts_then_consolidate_equal_the_embedded_run(
    slurm: Path, tmp_path: Path, scenes: list[str], reference: Path
) -> None:
    """The array way: `sbatch --array=1-2` of the ETL template, then `geokr-etl consolidate`."""
    store = tmp_path / "s.zarr"
    env = {**os.environ, "GEOKR_STORE": str(store), "GEOKR_SCENES": " ".join(scenes),
           "GEOKR_TILE_ARGS": "--sensor bgrn --chip-size 64 --commit-interval 0 --workers 1",
           "GEOKR_ETL": f"{sys.executable} -m pipeline.cli"}
    argv = ["sbatch", "--parsable", "--wait", "--array=1-2", "--cpus-per-task=1", "--mem=1G",
            f"--output={tmp_path}/etl-%A_%a.out", str(REPO / "slurm" / "geokr-etl-array.sbatch")]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("etl-*.out")))
    assert done.returncode == 0, logs
    merged = subprocess.run([sys.executable, "-m", "pipeline.cli", "consolidate", "--store",
                             str(store)], capture_output=True, text=True, check=False)
    assert merged.returncode == 0, merged.stderr
    assert_same_store(store, reference)


# -- the trainer through slurm/geokr-train.sbatch ----------------------------------------------
TRAIN_ARGS = ["--labels", "test", "--arch", "resnet18", "--batch-size", "4", "--precision", "fp32",
              "--workers", "0", "--device", "cpu", "--log-every", "1", "--epochs", "500",
              "--max-steps", "8", "--checkpoint-every", "2"]


def wait_until(condition: Callable[[], bool], seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            text = log.read_text() if log.exists() else "(no log yet)"
            pytest.fail(f"{what} not within {seconds:g} s; job log:\n{text[-4000:]}")
        time.sleep(0.5)


def job_state(job: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True,
                         check=False).stdout.strip()
    return out or "GONE"


def test_sbatch_template_trains_with_two_gloo_processes_and_resumes_after_requeue(
    slurm: Path, tmp_path: Path
) -> None:
    build_store(tmp_path / "s.zarr")
    out = tmp_path / "run"
    env = {**os.environ, "GEOKR_NPROC_PER_NODE": "2",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    argv = ["sbatch", "--parsable", "--nodes=1", "--gres=none", "--cpus-per-task=2",
            "--time=00:10:00", f"--chdir={tmp_path}", str(REPO / "slurm" / "geokr-train.sbatch"),
            "--store", "s.zarr", "--out", "run", *TRAIN_ARGS]
    job = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout.strip()
    log = tmp_path / f"geokr-train-{job}.out"
    try:
        wait_until(lambda: bool(list_checkpoints(out)), 240, "a first checkpoint", log)
        # What SLURM does 120 s before the walltime: USR1 to the batch shell, whose trap requeues.
        subprocess.run(["scancel", "--batch", "--signal=USR1", job], check=True)
        wait_until(lambda: "start 1:" in log.read_text() or job_state(job) == "PENDING", 60,
                   "the requeue", log)
        # A requeued job is held ~2 min (BeginTime) before it may start again; skip the wait.
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=False)
        wait_until(lambda: job_state(job) == "GONE", 300, "the end of the requeued job", log)
    finally:
        subprocess.run(["scancel", job], check=False)
    text = log.read_text()
    assert "start 0: 1 node(s) x 2 process(es)" in text
    assert "walltime near, requeueing" in text
    assert "start 1: 1 node(s) x 2 process(es)" in text
    resumed = re.search(r"resumed from \S*checkpoint-(\d+)\.pt", text)
    assert resumed and int(resumed.group(1)) >= 2, text[-4000:]
    assert "cpu x2 (torchrun)" in text
    assert list_checkpoints(out)[-1][0] == 8
