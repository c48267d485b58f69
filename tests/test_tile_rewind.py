"""Failures mid-run: a scene that fails half-way (a corrupt strip) leaves no chip behind,
even when whole shards of it were already handed to the workers; a shard that cannot be
written stops the run in one line with the committed chips intact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from dask.distributed import Client

from geokr_testkit.rasters import textured, write_raster
from pipeline import tiling
from pipeline.cluster import dask_client
from pipeline.errors import InputError
from pipeline.store.chips import ChipStore, chip_specs
from pipeline.tiling import TileParams, run_tile

PARAMS = TileParams(chip_size=32, shard_chips=4, commit_interval=0)


def corrupt_block(path: Path, row: int) -> Path:
    """Garbage in one compressed 16 px tile: the strip holding it cannot be read, while
    the stretch sample (a grid of small windows) misses it."""
    with rasterio.open(path) as src:
        offset = int(src.get_tag_item(f"BLOCK_OFFSET_0_{row}", "TIFF", bidx=1))
        size = int(src.get_tag_item(f"BLOCK_SIZE_0_{row}", "TIFF", bidx=1))
    data = bytearray(path.read_bytes())
    data[offset : offset + size] = b"\xff" * size
    path.write_bytes(bytes(data))
    return path


def snapshot(path: Path) -> dict[str, np.ndarray]:
    store = ChipStore.open(path)
    return {name: store.read(name) for name in chip_specs(store.chip_size)}


def test_failed_scene_is_rewound(tmp_path: Path, dask_client: Client) -> None:
    good = [str(write_raster(tmp_path / f"g{i}.tif", textured(4, 200, 180, seed=i)))
            for i in range(2)]
    bad = write_raster(tmp_path / "bad.tif", textured(4, 1200, 180, seed=9), tiled=True,
                       blockxsize=16, blockysize=16, compress="deflate")
    corrupt_block(bad, 56)  # rows 896-911: parts above it are cut and handed out first
    report = run_tile(tmp_path / "s.zarr", [good[0], str(bad), good[1]], dask_client, PARAMS,
                      "bgrn", progress=False)
    assert report.counts["scenes_failed"] == 1 and report.counts["scenes_done"] == 2
    assert "read failed" in report.failures[0]["reason"]
    run_tile(tmp_path / "ref.zarr", good, dask_client, PARAMS, "bgrn", progress=False)
    got, want = snapshot(tmp_path / "s.zarr"), snapshot(tmp_path / "ref.zarr")
    for name, values in want.items():
        np.testing.assert_array_equal(got[name], values, err_msg=name)


def test_a_shard_that_cannot_be_written_stops_the_run_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenes = [str(write_raster(tmp_path / f"g{i}.tif", textured(4, 200, 180, seed=i)))
              for i in range(2)]
    store = tmp_path / "s.zarr"
    with dask_client(1) as client:  # one worker: a thread of this process, patched too
        run_tile(store, scenes[:1], client, PARAMS, "bgrn", progress=False)
        before = snapshot(store)

        def disk_full(*args: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(tiling, "write_shard", disk_full)
        with pytest.raises(InputError, match=r"s\.zarr: cannot write chips \(\[Errno 28\] No "
                           r"space left on device\); what is committed is intact"):
            run_tile(store, scenes, client, PARAMS, "bgrn", progress=False)
    after = snapshot(store)
    for name, values in before.items():
        np.testing.assert_array_equal(after[name], values, err_msg=name)
    meta = ChipStore.open(store).meta
    assert len(meta["scenes"]) == 1 and meta["runs"][-1]["counts"]["scenes_done"] == 0
