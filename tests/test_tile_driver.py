"""The ETL's one driver pattern: ordered results, a window that follows the live workers,
a committer with an interval; label takes the store lock before it starts a cluster; a
store the workers cannot see is refused in one line."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dask.distributed import Client

import pipeline.landcover.run as run_mod
from geokr_testkit.grid import GridScene, grid_store
from pipeline.cluster import check_workers_see
from pipeline.driver import Committer, InFlight, ordered_map
from pipeline.errors import InputError
from pipeline.landcover.run import LabelConfig, run_label
from pipeline.store.chips import lock_file, writer_lock


def slow_square(x: int) -> int:
    import random
    import time

    time.sleep(random.random() / 50)  # finish out of order
    if x == 7:
        raise ValueError("seven")
    return x * x


def test_results_come_in_order_and_failures_as_values(dask_client: Client) -> None:
    out = list(ordered_map(slow_square, range(20), lambda x: (x,), dask_client, per_thread=2))
    assert [x for x, _ in out] == list(range(20))
    assert [r for x, r in out if x != 7] == [x * x for x in range(20) if x != 7]
    assert isinstance(out[7][1], ValueError)
    local = list(ordered_map(slow_square, range(9), lambda x: (x,), None))
    assert [r for _, r in local][:7] == [x * x for x in range(7)]


class GrowingCluster:
    """A client stand-in whose worker threads change, as an adaptive batch cluster's do."""

    def __init__(self) -> None:
        self.threads = {"w1": 1}

    def nthreads(self) -> dict[str, int]:
        return self.threads


def test_window_follows_the_live_worker_threads() -> None:
    cluster = GrowingCluster()
    window = InFlight(cluster, per_thread=3, recount_s=0.0)  # type: ignore[arg-type]
    assert window.size() == 3
    cluster.threads = {f"w{i}": 4 for i in range(8)}  # eight 4-core jobs joined
    assert window.size() == 96
    cluster.threads = {}  # every job ended: still one task waits for the next worker
    assert window.size() == 3


def test_committer_interval() -> None:
    calls: list[int] = []
    now = Committer(0.0, lambda: calls.append(1))
    now.tick()
    later = Committer(3600.0, lambda: calls.append(2))
    later.tick()
    later.now()
    assert calls == [1, 2]


def test_label_takes_the_lock_before_the_cluster(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "chips.zarr"
    grid_store(store, [GridScene.from_raster(shared_data / "zion" / "landsat8_zion_bgrn.tif")],
               64)
    started: list[bool] = []

    @contextlib.contextmanager
    def no_cluster(cfg: LabelConfig) -> Iterator[None]:
        with (
            pytest.raises(InputError, match="store is being written by geokr-etl label"),
            writer_lock(store, "a second run"),
        ):
            pass
        started.append(True)
        yield None

    monkeypatch.setattr(run_mod, "_client", no_cluster)
    cfg = LabelConfig(store, [str(shared_data / "zion" / "nlcd2011.tif")], legend="nlcd",
                      workers=0, progress=False)
    run_label(cfg)
    assert started == [True]
    with writer_lock(store, "another label run"), pytest.raises(InputError, match="being written"):
        run_label(cfg)
    assert started == [True]  # refused before any cluster started


class BlindWorker:
    def run(self, fn: Any, *args: Any) -> dict[str, bool]:
        return {"tcp://10.0.0.7:4242": False, "tcp://10.0.0.8:4242": fn(*args)}


def test_a_store_the_workers_cannot_see_is_refused(tmp_path: Path, dask_client: Client) -> None:
    with writer_lock(tmp_path, "a tile run"):  # what the probe reads: unique to this run
        check_workers_see(dask_client, lock_file(tmp_path), tmp_path)  # a shared filesystem
        with pytest.raises(InputError, match=r"not visible from the dask worker at "
                           r"tcp://10\.0\.0\.7:4242.*shared POSIX filesystem"):
            check_workers_see(BlindWorker(), lock_file(tmp_path), tmp_path)  # type: ignore[arg-type]
