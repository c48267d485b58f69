"""Tiling real scenes: exact georeferencing, the store contract, idempotence, appends, locking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from dask.distributed import Client
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geokr_testkit.rasters import textured, write_raster
from pipeline.errors import InputError
from pipeline.radiometry import Stretch
from pipeline.store.chips import ChipBatch, ChipStore, writer_lock
from pipeline.tiling import TileParams, run_tile


@pytest.fixture(scope="module")
def real_store(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path, dask_client: Client
) -> Path:
    path = tmp_path_factory.mktemp("real") / "chips.zarr"
    scenes = [
        str(shared_data / "zion" / "landsat8_zion_bgrn.tif"),
        str(shared_data / "rgb_byte" / "RGB.byte.tif"),
    ]
    report = run_tile(path, scenes, dask_client, TileParams(commit_interval=0), progress=False)
    assert report.counts["scenes_done"] == 2 and not report.failures
    return path


def test_every_chip_matches_rasterio_exactly(real_store: Path) -> None:
    store = ChipStore.open(real_store)
    chips = store.read("chips")
    windows, transforms = store.read("chip_window"), store.read("chip_transform")
    scene_ids, bounds = store.read("chip_scene"), store.read("chip_bounds_wgs84")
    assert store.n_chips == len(chips) > 0
    for i in range(store.n_chips):
        scene = store.scenes[scene_ids[i]]
        row, col, height, width = (int(v) for v in windows[i])
        window = Window(col, row, width, height)
        with rasterio.open(scene["path"]) as src:
            assert scene["crs_wkt"] == src.crs.to_wkt()
            expected = window_transform(window, src.transform)
            assert tuple(transforms[i]) == expected.to_gdal()
            raw = src.read([3, 2, 1] if src.count == 4 else [1, 2, 3], window=window)
            west, south, east, north = rasterio.windows.bounds(window, src.transform)
            wgs = transform_bounds(src.crs, "EPSG:4326", west, south, east, north, densify_pts=21)
        assert np.allclose(bounds[i], wgs)
        stretch = scene["stretch"]
        if stretch["method"] == "none":
            assert np.array_equal(chips[i], raw)
        else:
            s = Stretch(
                tuple(stretch["low"]), tuple(stretch["high"]), tuple(stretch["percentiles"])
            )
            assert np.array_equal(chips[i], s.apply(raw))


def test_real_coordinates_of_known_chips(real_store: Path) -> None:
    store = ChipStore.open(real_store)
    transforms, windows = store.read("chip_transform"), store.read("chip_window")
    zion_first = transforms[0]
    # The Zion scene's upper-left corner is (301905, 4154085) in UTM 12N, 30 m pixels.
    assert tuple(zion_first) == (301905.0, 30.0, 0.0, 4154085.0, 0.0, -30.0)
    # 1128 px wide, 1428 px high: the last chips sit flush with the east and south edges.
    zion = [i for i in range(store.n_chips) if store.read("chip_scene")[i] == 0]
    assert max(windows[i][1] for i in zion) == 1128 - 256
    assert max(windows[i][0] for i in zion) == 1428 - 256
    east_edge = 301905.0 + 30.0 * 1128
    assert max(transforms[i][0] + 30.0 * 256 for i in zion) == east_edge
    bounds = store.read("chip_bounds_wgs84")[zion]
    assert (bounds[:, 0] > -114).all() and (bounds[:, 2] < -112.7).all()  # Zion, Utah
    assert (bounds[:, 1] > 37).all() and (bounds[:, 3] < 37.6).all()


def test_nodata_border_is_dropped_and_counted(real_store: Path) -> None:
    store = ChipStore.open(real_store)
    rgb = store.scenes[1]
    assert rgb["n_windows"] == 16 and rgb["dropped"].get("nodata", 0) >= 10
    assert rgb["n_chips"] + sum(rgb["dropped"].values()) == rgb["n_windows"]
    mine = store.read("chip_scene") == 1
    assert (store.read("chip_nodata_fraction")[mine] <= 0.01).all()


def test_store_metadata_and_xarray(real_store: Path) -> None:
    store = ChipStore.open(real_store)
    meta = store.meta
    assert meta["schema_version"] == 1 and meta["chip_size"] == 256
    zion = meta["scenes"][0]
    assert zion["sensor"] == "bgrn" and zion["resolution"] == [30.0, 30.0]
    assert zion["stretch"]["method"] == "percentile" and zion["fingerprint"].startswith("sha256")
    run = meta["runs"][-1]
    assert run["parameters"]["overlap"] == 0.2 and "zarr" in run["versions"]
    ds = xr.open_zarr(real_store, consolidated=False)
    assert ds["chips"].dims == ("chip", "band", "y", "x")
    assert ds.sizes["chip"] == store.n_chips
    assert store.array("chips").chunks == (1, 3, 256, 256)


def test_rerun_writes_nothing_and_new_scenes_append(
    real_store: Path, tmp_path: Path, dask_client: Client, shared_data: Path
) -> None:
    before = ChipStore.open(real_store)
    n, chips = before.n_chips, before.read("chips")
    again = run_tile(
        real_store,
        [str(shared_data / "zion" / "landsat8_zion_bgrn.tif")],
        dask_client,
        TileParams(),
        progress=False,
    )
    assert again.counts["scenes_already_in_store"] == 1 and again.counts["chips_written"] == 0
    assert ChipStore.open(real_store).n_chips == n
    extra = write_raster(tmp_path / "extra.tif", textured(4, 256, 300))
    added = run_tile(real_store, [str(extra)], dask_client, TileParams(), "bgrn", progress=False)
    after = ChipStore.open(real_store)
    assert added.counts["chips_written"] == 2 and after.n_chips == n + 2
    assert np.array_equal(after.read("chips")[:n], chips)
    assert list(after.read("chip_scene")[n:]) == [2, 2]


def test_gaofen_like_scenes_any_hemisphere(tmp_path: Path, dask_client: Client) -> None:
    # Generated in the GF-2 PMS product layout (4-band uint16, 0.8 m, product file name),
    # once in the northern and once in the southern hemisphere (UTM 49S).
    north = write_raster(
        tmp_path / "GF2_PMS1_E113.6_N23.0_20180301_L1A0002993340-MSS1.tif",
        textured(4, 600, 500),
        crs="EPSG:32649",
        transform=Affine(0.8, 0, 770_000.0, 0, -0.8, 2_545_000.0),
    )
    south = write_raster(
        tmp_path / "GF2_PMS2_E113.0_S7.5_20190405_L1A0003000000-MSS2.tif",
        textured(4, 300, 300, seed=1),
        crs="EPSG:32749",
        transform=Affine(0.8, 0, 720_000.0, 0, -0.8, 9_170_000.0),
    )
    report = run_tile(
        tmp_path / "gf.zarr", [str(north), str(south)], dask_client, TileParams(), progress=False
    )
    store = ChipStore.open(tmp_path / "gf.zarr")
    assert report.counts["scenes_done"] == 2
    assert [s["sensor"] for s in store.scenes] == ["gf2-pms", "gf2-pms"]
    assert [s["acquired"] for s in store.scenes] == ["2018-03-01", "2019-04-05"]
    bounds = store.read("chip_bounds_wgs84")
    south_rows = store.read("chip_scene") == 1
    assert (bounds[south_rows, 3] < 0).all() and (bounds[~south_rows, 1] > 0).all()
    assert tuple(store.read("chip_transform")[0]) == (770_000.0, 0.8, 0.0, 2_545_000.0, 0.0, -0.8)


def test_second_writer_is_refused(real_store: Path, dask_client: Client, shared_data: Path) -> None:
    with (
        writer_lock(real_store, "another tile run"),
        pytest.raises(InputError, match=r"chips\.zarr: store is being written by another tile run"),
    ):
        run_tile(
            real_store,
            [str(shared_data / "rgb_byte" / "RGB.byte.tif")],
            dask_client,
            TileParams(),
            progress=False,
        )


def test_writer_buffers_whole_shards_and_rewinds(tmp_path: Path) -> None:
    store = ChipStore.create(tmp_path / "w.zarr", chip_size=8, shard_chips=4)

    def batch(n: int, value: int) -> ChipBatch:
        b = ChipBatch.empty(8)
        arrays = {k: np.zeros((n, *v.shape[1:]), v.dtype) for k, v in b.arrays().items()}
        arrays["chips"][:] = value
        return ChipBatch(**arrays)

    writer = store.writer()
    writer.append(batch(3, 1))
    assert writer.written == 0  # below a shard: still buffered
    writer.append(batch(3, 2))
    assert writer.written == 4 and writer.end == 6
    writer.rewind(5)  # the second scene failed after one chip
    writer.append(batch(2, 3))
    store.commit(writer.flush())
    assert store.n_chips == 7
    values = store.read("chips")[:, 0, 0, 0].tolist()
    assert values == [1, 1, 1, 2, 2, 3, 3]
    writer.rewind(3)  # past what is on disk: the rest becomes invisible garbage
    writer.append(batch(1, 4))
    store.commit(writer.flush())
    assert store.read("chips")[:, 0, 0, 0].tolist() == [1, 1, 1, 4]


def test_geographic_and_antimeridian_scenes(tmp_path: Path, dask_client: Client) -> None:
    # A lon/lat scene (EPSG:4326, ~1.1 m pixels) and a UTM 60N scene straddling 180°.
    lonlat = write_raster(
        tmp_path / "lonlat.tif",
        textured(4, 300, 300),
        crs="EPSG:4326",
        transform=Affine(1e-5, 0, 116.3, 0, -1e-5, 39.9),
    )
    dateline = write_raster(
        tmp_path / "dateline.tif",
        textured(4, 256, 300, seed=2),
        crs="EPSG:32660",
        transform=Affine(4.0, 0, 833_500.0, 0, -4.0, 101_000.0),
    )
    report = run_tile(
        tmp_path / "g.zarr",
        [str(lonlat), str(dateline)],
        dask_client,
        TileParams(),
        "bgrn",
        progress=False,
    )
    assert report.counts["scenes_done"] == 2
    store = ChipStore.open(tmp_path / "g.zarr")
    scene = store.read("chip_scene")
    transforms, bounds = store.read("chip_transform"), store.read("chip_bounds_wgs84")
    first = transforms[scene == 0][0]
    assert tuple(first) == (116.3, 1e-5, 0.0, 39.9, 0.0, -1e-5)
    west, south, east, north = bounds[scene == 0][0]
    assert south == pytest.approx(39.9 - 256e-5)
    assert (west, north) == pytest.approx((116.3, 39.9)) and east == pytest.approx(116.30256)
    # GeoJSON convention for a box across the antimeridian: west > east.
    crossing = bounds[scene == 1]
    assert (crossing[:, 0] > 179.9).all() and (crossing[:, 2] < -179.9).all()


def test_moved_scene_is_recognised_by_content(tmp_path: Path, dask_client: Client) -> None:
    first = write_raster(tmp_path / "a" / "scene.tif", textured(4, 300, 300))
    run_tile(tmp_path / "m.zarr", [str(first)], dask_client, TileParams(), "bgrn", progress=False)
    moved = tmp_path / "b" / "scene.tif"
    moved.parent.mkdir()
    first.rename(moved)
    again = run_tile(
        tmp_path / "m.zarr", [str(moved)], dask_client, TileParams(), "bgrn", progress=False
    )
    assert again.counts["scenes_already_in_store"] == 1 and again.counts["chips_written"] == 0
    assert len(ChipStore.open(tmp_path / "m.zarr").scenes) == 1
