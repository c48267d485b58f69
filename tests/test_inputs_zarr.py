"""Plain zarr readers see a store without a warning: the writer lock and the tile catalog
are valid zarr groups, and stores written before (a ``.geokr.lock`` file, JSON catalogs)
are tidied by their next writer. Real Zion scene and NLCD land cover."""

from __future__ import annotations

import fcntl
import json
import os
import warnings
from pathlib import Path

import pytest
import xarray as xr
import zarr
from dask.distributed import Client

from geokr_testkit.grid import GridScene, grid_store
from pipeline.errors import InputError
from pipeline.landcover.run import LabelConfig, run_label
from pipeline.store.chips import LEGACY_LOCK, LOCK_GROUP, ChipStore, writer_lock
from pipeline.tiling import TileParams, run_tile


def read_everything(path: Path) -> list[str]:
    """Every member, recursively, as plain zarr and xarray see them; warnings are errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        group = zarr.open_group(str(path), mode="r")
        names = sorted(name for name, _ in group.members(max_depth=None))
        xr.open_zarr(str(path), consolidated=False).close()
    return names


def test_tiled_and_labelled_store_reads_without_warnings(
    shared_data: Path, tmp_path: Path, dask_client: Client
) -> None:
    store = tmp_path / "zion.zarr"
    run_tile(store, [str(shared_data / "zion" / "landsat8_zion_bgrn.tif")], dask_client,
             TileParams(chip_size=128), progress=False)
    run_label(LabelConfig(store, [str(shared_data / "zion" / "nlcd2011.tif")], legend="nlcd",
                          workers=0, progress=False))
    names = read_everything(store)
    assert "chips" in names and "labels/nlcd/proportions" in names
    assert LOCK_GROUP in names and any(n.startswith("landcover_index/") for n in names)
    with writer_lock(store, "a test"):  # while a writer holds the store, too
        assert read_everything(store) == names


@pytest.fixture
def old_store(shared_data: Path, tmp_path: Path) -> Path:
    """A store as earlier versions left it: a lock file and a JSON catalog inside."""
    path = tmp_path / "old.zarr"
    grid_store(path, [GridScene.from_raster(shared_data / "zion" / "landsat8_zion_bgrn.tif")],
               64)
    (path / LEGACY_LOCK).write_text("geokr-etl tile (pid 1 on somewhere)")
    (path / "landcover_index").mkdir()
    (path / "landcover_index" / "0123456789abcdef.json").write_text(json.dumps({"tiles": []}))
    return path


def test_stores_written_before_keep_working(old_store: Path, shared_data: Path) -> None:
    with pytest.warns(UserWarning, match="not recognized as a component"):
        zarr.open_group(str(old_store), mode="r").members()
    before = ChipStore.open(old_store).read("chips")
    run_label(LabelConfig(old_store, [str(shared_data / "zion" / "nlcd2011.tif")],
                          legend="nlcd", workers=0, progress=False))
    assert not (old_store / LEGACY_LOCK).exists()
    assert not (old_store / "landcover_index" / "0123456789abcdef.json").exists()
    read_everything(old_store)
    assert (ChipStore.open(old_store).read("chips") == before).all()


def test_an_older_writer_still_holding_its_lock_is_respected(old_store: Path) -> None:
    fd = os.open(old_store / LEGACY_LOCK, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(InputError, match="being written by geokr-etl tile"), \
                writer_lock(old_store, "new"):
            pass
    finally:
        os.close(fd)
    assert (old_store / LEGACY_LOCK).exists()
