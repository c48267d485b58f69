"""Faults and bad input: one line, a documented exit status, and nothing committed lost.

Scenes are generated small (uint16 blue-green-red-NIR GeoTIFFs, the Gaofen layout); the
land cover is the real NLCD 2011 of Zion on chips of the real Landsat 8 scene.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from dask.distributed import Client
from rasterio.control import GroundControlPoint
from rasterio.rpc import RPC
from zarr.storage import LocalStore

from geokr_testkit.grid import GridScene, grid_store
from geokr_testkit.rasters import textured, write_raster
from geokr_testkit.stores import build_store
from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.store import chips as store_mod
from pipeline.store.chips import ChipStore
from pipeline.store.labels import LabelSet, label_names
from pipeline.store.shards import open_shards
from pipeline.tiling import TileParams, run_tile
from training.cli import main as train


def snapshot(store: Path) -> dict[str, str]:
    """Every file of the store with its content hash (the writer lock excepted)."""
    return {str(p.relative_to(store)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(store.rglob("*"))
            if p.is_file() and store_mod.LOCK_GROUP not in p.parts}


def _scenes(tmp: Path, n: int = 3) -> list[str]:
    return [str(write_raster(tmp / f"scene{i}.tif", textured(4, 128, 128, seed=i)))
            for i in range(n)]


def _tile_args(store: Path, client: Client, scenes: list[str]) -> list[str]:
    args = ["tile", "--store", str(store), "--sensor", "bgrn", "--chip-size", "64",
            "--overlap", "0", "--commit-interval", "0", "--no-progress",
            "--scheduler", client.scheduler.address]
    for s in scenes:
        args += ["--scenes", s]
    return args


def _disk_full(monkeypatch: pytest.MonkeyPatch, full: Callable[[str], bool]) -> None:
    """Store writes fail with ENOSPC from the moment ``full(key)`` says so."""
    real_set = LocalStore.set

    async def write(self: LocalStore, key: str, value: Any) -> None:
        if full(key):
            raise OSError(errno.ENOSPC, "No space left on device", str(Path(self.root) / key))
        await real_set(self, key, value)

    monkeypatch.setattr(LocalStore, "set", write)


def test_disk_full_during_tile(tmp_path: Path, dask_client: Client,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    scenes = _scenes(tmp_path / "in")
    reference = tmp_path / "ref.zarr"
    assert CliRunner().invoke(main, _tile_args(reference, dask_client, scenes)).exit_code == 0
    store = tmp_path / "s.zarr"
    real_commit, commits = ChipStore.commit, []

    def commit(self: ChipStore, *args: Any) -> None:
        real_commit(self, *args)
        commits.append(1)

    monkeypatch.setattr(ChipStore, "commit", commit)
    _disk_full(monkeypatch, lambda key: len(commits) >= 1)  # full once one scene is in
    result = CliRunner().invoke(main, _tile_args(store, dask_client, scenes))
    monkeypatch.undo()
    assert result.exit_code == 2, result.output
    assert "no space left on device (disk full or quota reached); committed: 4 chips of " \
           "1 scenes; finished scenes are committed; rerun the same command to resume" \
           in result.output
    assert "Traceback" not in result.output
    partial = ChipStore.open(store)
    assert partial.n_chips == 4
    assert np.array_equal(partial.read("chips"), ChipStore.open(reference).read("chips")[:4])
    again = CliRunner().invoke(main, _tile_args(store, dask_client, scenes))
    assert again.exit_code == 0, again.output
    ref = ChipStore.open(reference)
    assert np.array_equal(ChipStore.open(store).read("chips"), ref.read("chips"))
    assert [s["path"] for s in ChipStore.open(store).scenes] == [s["path"] for s in ref.scenes]


@pytest.fixture(scope="module")
def zion_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zion") / "chips.zarr"
    grid_store(path, [GridScene.from_raster(shared_data / "zion" / "landsat8_zion_bgrn.tif")],
               64)
    return path


@pytest.fixture
def labelled(zion_store: Path, tmp_path: Path) -> Path:
    path = tmp_path / "chips.zarr"
    shutil.copytree(zion_store, path)
    return path


def _label_args(store: Path, shared_data: Path, name: str = "nlcd") -> list[str]:
    return ["label", "--store", str(store), "--landcover",
            str(shared_data / "zion" / "nlcd2011.tif"), "--legend", "nlcd", "--name", name,
            "--workers", "0", "--quiet"]


def test_disk_full_during_label(labelled: Path, shared_data: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert CliRunner().invoke(main, _label_args(labelled, shared_data, "a")).exit_code == 0
    before = snapshot(labelled)
    _disk_full(monkeypatch, lambda key: key.startswith("labels/b/") and "/c/" in key)
    result = CliRunner().invoke(main, _label_args(labelled, shared_data, "b"))
    monkeypatch.undo()
    assert result.exit_code == 2, result.output
    assert "no space left on device" in result.output
    assert "committed: 374 chips of 1 scenes, label sets (chips): a 374; labelled chips " \
           "are committed; rerun the same command to resume" in result.output
    assert label_names(ChipStore.open(labelled)) == ["a"]
    assert not (labelled / "labels" / "b").exists()  # no empty label set left behind
    kept = {k: v for k, v in snapshot(labelled).items() if k.startswith("labels/a")}
    assert kept == {k: v for k, v in before.items() if k.startswith("labels/a")}
    again = CliRunner().invoke(main, _label_args(labelled, shared_data, "b"))
    assert again.exit_code == 0, again.output
    s = ChipStore.open(labelled)
    assert np.array_equal(LabelSet.open(s, "a").read("proportions"),
                          LabelSet.open(s, "b").read("proportions"))


def test_read_only_store(labelled: Path, shared_data: Path, dask_client: Client,
                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only mount (EROFS) is simulated: a test running as root ignores chmod."""
    assert CliRunner().invoke(main, _label_args(labelled, shared_data)).exit_code == 0
    shutil.rmtree(labelled / "landcover_index")
    before = snapshot(labelled)
    stats = CliRunner().invoke(main, ["stats", "--store", str(labelled), "--out",
                                      str(tmp_path / "stats")])
    assert stats.exit_code == 0, stats.output
    assert snapshot(labelled) == before  # stats only reads
    real_open = os.open

    def read_only(path: Any, flags: int, *args: Any) -> int:
        if store_mod.LOCK_GROUP in str(path):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    scene = _scenes(tmp_path / "in", 1)
    for args in (_tile_args(labelled, dask_client, scene),
                 _label_args(labelled, shared_data, "other")):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert f"error: {labelled}: store is read-only (Read-only file system)" in result.output
    monkeypatch.undo()
    assert snapshot(labelled) == before


def test_stats_out_is_a_file(labelled: Path, shared_data: Path, tmp_path: Path) -> None:
    assert CliRunner().invoke(main, _label_args(labelled, shared_data)).exit_code == 0
    out = tmp_path / "stats.txt"
    out.write_text("keep me")
    result = CliRunner().invoke(main, ["stats", "--store", str(labelled), "--out", str(out)])
    assert result.exit_code == 2
    assert f"error: {out}: --out is a file; give a folder" in result.output
    assert out.read_text() == "keep me"


def test_corrupt_array_metadata_is_named(labelled: Path, shared_data: Path) -> None:
    meta = labelled / "chips" / "zarr.json"
    meta.write_text(meta.read_text()[:40])
    before = snapshot(labelled)
    result = CliRunner().invoke(main, _label_args(labelled, shared_data))
    assert result.exit_code == 2, result.output
    assert f"error: {meta}: corrupt array metadata" in result.output
    assert "the 374 committed chips cannot be read" in result.output
    assert snapshot(labelled) == before


class _Chips(torch.utils.data.Dataset[torch.Tensor]):
    def __init__(self, store: Path) -> None:
        self.store = store

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        reader = open_shards(self.store)
        assert reader is not None
        return torch.from_numpy(reader.read(np.array([i])))


def test_corrupt_shard_is_named_with_its_chips(labelled: Path) -> None:
    shard = labelled / "chips" / "c" / "0" / "0" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    raw[:16] = bytes(16)  # damage the first chip, the index stays
    shard.write_bytes(bytes(raw))
    last = ChipStore.open(labelled).meta["shard_chips"] - 1
    reader = open_shards(labelled)
    assert reader is not None
    with pytest.raises(InputError, match=rf"0/0/0/0: corrupt shard \(chips 0-{last}\): chip 0 "):
        reader.read(np.arange(4))
    # The training loader re-raises a worker's error from its text: still one line.
    loader = torch.utils.data.DataLoader(_Chips(labelled), num_workers=1)
    with pytest.raises(InputError) as err:
        next(iter(loader))
    assert err.value.path == str(shard) and "\n" not in str(err.value)
    shard.write_bytes(bytes(raw[:-4000]))  # truncated: the index is gone
    reader = open_shards(labelled)
    assert reader is not None
    with pytest.raises(InputError, match=rf"corrupt shard \(chips 0-{last}\): its index points"):
        reader.read(np.arange(1))


@pytest.mark.parametrize(("option", "message"), [
    (["--workers", "-3"], "-3 is not in the range x>=1"),
    (["--stretch", "98", "2"], "98 2: need 0 <= LOW < HIGH <= 100"),
    (["--stretch", "-5", "150"], "-5 150: need 0 <= LOW < HIGH <= 100"),
])
def test_tile_usage_errors(tmp_path: Path, option: list[str], message: str) -> None:
    store = tmp_path / "s.zarr"
    result = CliRunner().invoke(main, ["tile", "--store", str(store), "--scenes", "x.tif",
                                       *option])
    assert result.exit_code == 2
    assert message in result.output
    assert not store.exists()


def test_label_workers_negative(labelled: Path, shared_data: Path) -> None:
    result = CliRunner().invoke(main, [*_label_args(labelled, shared_data)[:-3],
                                       "--workers", "-3"])
    assert result.exit_code == 2 and "-3 is not in the range x>=0" in result.output


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_scene_problems_each_get_their_line(tmp_path: Path, dask_client: Client) -> None:
    five = write_raster(tmp_path / "five.tif", textured(5, 128, 128))
    gcps = tmp_path / "gcps.tif"
    with rasterio.open(gcps, "w", driver="GTiff", width=128, height=128, count=4,
                       dtype="uint16") as dst:
        dst.write(textured(4, 128, 128))
        dst.gcps = ([GroundControlPoint(0, 0, 500_000.0, 3_000_000.0),
                     GroundControlPoint(128, 0, 500_256.0, 3_000_000.0),
                     GroundControlPoint(0, 128, 500_000.0, 2_999_744.0)],
                    rasterio.crs.CRS.from_epsg(32650))
    rpcs = tmp_path / "rpcs.tif"
    unit = [1.0] + [0.0] * 19
    with rasterio.open(rpcs, "w", driver="GTiff", width=128, height=128, count=4,
                       dtype="uint16") as dst:
        dst.write(textured(4, 128, 128))
        dst.rpcs = RPC(0, 1, 25, 0.1, unit, unit, 64, 64, 117, 0.1, unit, unit, 64, 64)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no rasters here")
    report = run_tile(tmp_path / "s.zarr", [str(five), str(gcps), str(rpcs), str(empty)],
                      dask_client,
                      TileParams(chip_size=64), "bgrn", progress=False)
    reasons = {f["path"]: f["reason"] for f in report.failures}
    assert reasons[str(five)] == "5 bands, sensor bgrn has 4"
    assert reasons[str(gcps)].startswith("georeferenced by GCPs only (no geotransform)")
    assert reasons[str(rpcs)] == ("georeferenced by RPCs only (no geotransform); "
                                  "orthorectify it first (gdalwarp -rpc)")
    assert reasons[str(empty)].startswith("folder holds no rasters")
    assert report.counts["scenes_failed"] == 4 and ChipStore.open(tmp_path / "s.zarr").n_chips == 0


def test_training_stops_with_the_corrupt_shard_named(tmp_path: Path) -> None:
    """Through the trainer's loader worker process, as a real run reads chips."""
    store = tmp_path / "s.zarr"
    build_store(store, n_scenes=2, chips_per_scene=20, chip_size=16)
    for shard in sorted((store / "chips" / "c").glob("*/0/0/0")):
        raw = bytearray(shard.read_bytes())
        payload = len(raw) - 16 * 16 - 4  # 16 chips a shard: keep the index and its CRC
        shard.write_bytes(bytes(payload) + bytes(raw[payload:]))
    result = CliRunner().invoke(train, [
        "--store", str(store), "--out", str(tmp_path / "run"), "--arch", "mobilenet_v3_small",
        "--batch-size", "4", "--precision", "fp32", "--workers", "1", "--device", "cpu",
        "--epochs", "1", "--norm", "imagenet"])
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert re.fullmatch(rf"error: {re.escape(str(store))}/chips/c/\d/0/0/0: corrupt shard "
                        r"\(chips \d+-\d+\): chip \d+ is damaged \(its size disagrees\)", last)
    assert "Traceback" not in result.output
