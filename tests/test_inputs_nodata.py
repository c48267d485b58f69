"""Zero fill without a nodata tag, and float scenes: the stretch sample, the mask and the
nodata filter all follow one rule (``--nodata``, else the file's tag, else the profile's).

Gaofen scenes cannot be redistributed: they are generated small here in the product's
shape (uint16 blue-green-red-NIR at 0.8 m, zero fill outside the footprint, no nodata tag).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from dask.distributed import Client

from geokr_testkit.rasters import textured, write_raster
from pipeline.cli import main
from pipeline.nodata import NodataChoice
from pipeline.scenes import inspect_scene
from pipeline.sensors import all_profiles
from pipeline.store.chips import ChipStore
from pipeline.tiling import TileParams, run_tile

GF2_GRID = Affine(0.8, 0, 500_000.0, 0, -0.8, 3_000_000.0)
FILL_COLS = 200  # zero-filled columns on the left of the generated scenes


def _gaofen_with_zero_fill(path: Path) -> Path:
    data = textured(4, 256, 512) + 300  # dark land: DN well above the fill
    data[:, :, :FILL_COLS] = 0
    return write_raster(path, data, transform=GF2_GRID)


def _tile(tmp: Path, scene: Path, client: Client, *extra: str) -> tuple[int, str, ChipStore]:
    store = tmp / f"s{len(list(tmp.glob('s*.zarr')))}.zarr"
    args = ["tile", "--store", str(store), "--scenes", str(scene), "--chip-size", "64",
            "--overlap", "0", "--no-progress", "--scheduler", client.scheduler.address, *extra]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output, ChipStore.open(store)


def test_gaofen_zero_fill_without_tag_is_nodata(tmp_path: Path, dask_client: Client) -> None:
    scene = _gaofen_with_zero_fill(tmp_path / "GF2_PMS1_20180301.tif")
    code, out, store = _tile(tmp_path, scene, dask_client)
    assert code == 0, out
    record = store.scenes[0]
    assert record["sensor"] == "gf2-pms"
    assert record["nodata"] == {"value": 0, "source": "sensor"}
    # The stretch floor comes from the image, not from the fill.
    assert min(record["stretch"]["low"]) > 300
    windows = store.read("chip_window")
    assert (windows[:, 1] >= FILL_COLS).all()  # no chip reaches into the fill
    assert "dropped (nodata)" in out
    assert store.read("chip_nodata_fraction").max() <= 0.01
    brightness = store.read("chips").mean()
    # --nodata none: the old behaviour, the fill pulls the floor to 0 and washes chips out.
    code, out, washed = _tile(tmp_path, scene, dask_client, "--nodata", "none")
    assert code == 0, out
    assert washed.scenes[0]["nodata"] == {"value": None, "source": "none"}
    assert min(washed.scenes[0]["stretch"]["low"]) == 0.0
    kept = washed.read("chip_window")[:, 1] >= FILL_COLS
    assert washed.read("chips")[kept].mean() > brightness + 20


def test_nodata_option_overrides_the_file_tag(tmp_path: Path, dask_client: Client) -> None:
    data = textured(4, 128, 256)
    data[:, :, :64] = 0
    scene = write_raster(tmp_path / "tagged.tif", data, nodata=65535)  # tag says 65535
    code, out, store = _tile(tmp_path, scene, dask_client, "--sensor", "bgrn")
    assert code == 0, out
    assert store.scenes[0]["nodata"]["source"] == "file"
    assert store.scenes[0]["dropped"] == {"low_contrast": 2}  # zeros are data under the tag
    code, out, store = _tile(tmp_path, scene, dask_client, "--sensor", "bgrn", "--nodata", "0")
    assert code == 0, out
    assert store.scenes[0]["nodata"] == {"value": 0, "source": "run"}
    assert store.scenes[0]["dropped"] == {"nodata": 2}


def test_bad_nodata_value_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["tile", "--store", str(tmp_path / "s.zarr"),
                                       "--scenes", "x.tif", "--nodata", "zero"])
    assert result.exit_code == 2
    assert "'zero' is not a number, nan or none" in result.output
    assert not (tmp_path / "s.zarr").exists()


def test_real_landsat_keeps_its_tag(shared_data: Path) -> None:
    path = str(shared_data / "zion" / "landsat8_zion_bgrn.tif")
    info = inspect_scene(path, None, all_profiles())
    assert info.nodata.value == 65535 and info.nodata.source == "file"
    override = inspect_scene(path, None, all_profiles(), nodata=NodataChoice(0.0))
    assert override.nodata.value == 0 and override.nodata.source == "run"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_reflectance_is_stretched_like_integers(
    tmp_path: Path, dask_client: Client, dtype: str
) -> None:
    """Reflectance 0-1 (float) tiles to the same chips as the same scene in integer DN."""
    dn = textured(4, 192, 192)
    reflectance = (dn / 10000.0).astype(dtype)
    reflectance[:, :64, :64] = np.nan  # a NaN hole: nodata, never a stretch value
    dn[:, :64, :64] = 0
    flt = write_raster(tmp_path / f"refl_{dtype}.tif", reflectance)
    ints = write_raster(tmp_path / "dn.tif", dn)
    params = TileParams(chip_size=64, overlap=0.0)
    a = run_tile(tmp_path / "f.zarr", [str(flt)], dask_client, params, None, False)
    b = run_tile(tmp_path / "i.zarr", [str(ints)], dask_client, params, "gf1-pms", False)
    assert a.counts["scenes_done"] == 1 and b.counts["scenes_done"] == 1
    fs, ints_store = ChipStore.open(tmp_path / "f.zarr"), ChipStore.open(tmp_path / "i.zarr")
    assert fs.scenes[0]["sensor"] == "bgrn-float"
    assert np.allclose(np.array(fs.scenes[0]["stretch"]["low"]) * 10000,
                       ints_store.scenes[0]["stretch"]["low"], rtol=1e-3)
    assert a.dropped["nodata"] == 1 == b.dropped["nodata"]
    assert np.array_equal(fs.read("chip_window"), ints_store.read("chip_window"))
    diff = np.abs(fs.read("chips").astype(int) - ints_store.read("chips").astype(int))
    assert diff.max() <= 1


def test_profile_may_declare_float_and_nodata(tmp_path: Path, dask_client: Client) -> None:
    profile = tmp_path / "my-sensor.yaml"
    profile.write_text("name: my-sensor\nbands: [red, green, blue]\nrgb: [1, 2, 3]\n"
                       "dtype: float64\nbit_depth: 64\nnodata: -1\n")
    data = textured(3, 128, 128).astype("float32") * 0.5
    data[:, :, :64] = -1.0
    scene = write_raster(tmp_path / "scaled.tif", data)
    code, out, store = _tile(tmp_path, scene, dask_client, "--sensor", str(profile))
    assert code == 0, out
    assert store.scenes[0]["nodata"] == {"value": -1.0, "source": "sensor"}
    assert (store.read("chip_window")[:, 1] >= 64).all()
    with rasterio.open(scene) as src:
        assert src.nodata is None  # the fill is untagged: only the profile knows it


def test_real_sentinel2_reflectance_as_float_geotiff(
    shared_data: Path, tmp_path: Path, dask_client: Client
) -> None:
    """Real Sentinel-2 TOA reflectance (float32, 0-1.3) from the cloud-mask sample, written
    as a blue-green-red-NIR GeoTIFF (the patch is not georeferenced: a grid is made up),
    with a NaN hole as a float product marks missing pixels."""
    img = np.load(shared_data / "cloudmasks" / "sentinel2.npz")["img"][:, :, :4]
    data = np.ascontiguousarray(img.transpose(2, 0, 1))
    data[:, :64, :] = np.nan
    scene = write_raster(tmp_path / "S2_TOA_20190101.tif", data,
                         transform=Affine(10.0, 0, 500_000.0, 0, -10.0, 3_000_000.0))
    code, out, store = _tile(tmp_path, scene, dask_client, "--max-cloud", "1")
    assert code == 0, out
    record = store.scenes[0]
    assert record["sensor"] == "bgrn-float" and record["nodata"]["source"] == "none"
    low, high = record["stretch"]["low"], record["stretch"]["high"]
    assert all(0 < lo < hi < 1.5 for lo, hi in zip(low, high, strict=True))
    assert store.scenes[0]["dropped"].get("nodata") == 8  # the NaN row of chips
    assert store.n_chips > 0 and (store.read("chip_window")[:, 0] >= 64).all()
