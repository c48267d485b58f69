"""Bad input: one line naming the file and the reason; the other scenes still get tiled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from dask.distributed import Client

from geokr_testkit.rasters import textured, write_raster
from pipeline.errors import InputError
from pipeline.scenes import acquisition_date, inspect_scene
from pipeline.sensors import all_profiles, infer_profile, load_profile
from pipeline.store.chips import ChipStore
from pipeline.tiling import TileParams, run_tile

PROFILES = all_profiles()


def test_catalog_has_the_required_sensors() -> None:
    names = {p.name for p in PROFILES}
    assert {"gf1-pms", "gf1-wfv", "gf2-pms", "gf6-wfv", "landsat8", "sentinel2", "rgb"} <= names
    gf6 = load_profile("gf6-wfv")
    assert gf6.bands[:4] == ("blue", "green", "red", "nir") and gf6.rgb == (3, 2, 1)


@pytest.mark.parametrize(
    ("count", "dtype", "res", "expected"),
    [
        (4, "uint16", 0.8, "gf2-pms"),
        (4, "uint16", 2.0, "gf1-pms"),
        (4, "uint16", 16.0, "gf1-wfv"),
        (8, "uint16", 16.0, "gf6-wfv"),
        (11, "uint16", 30.0, "landsat8"),
        (13, "uint16", 10.0, "sentinel2"),
        (12, "uint16", 10.0, "sentinel2"),
        (3, "uint8", 0.3, "rgb"),
        (4, "uint16", 30.0, "bgrn"),  # the Zion Landsat stack: generic BGRN
    ],
)
def test_sensor_inference(count: int, dtype: str, res: float, expected: str) -> None:
    assert infer_profile("x.tif", count, dtype, res, PROFILES).name == expected


def test_ambiguous_sensor_asks_for_it() -> None:
    with pytest.raises(InputError, match=r"x\.tif: cannot infer the sensor.*pass --sensor"):
        infer_profile("x.tif", 6, "uint16", 5.0, PROFILES)


def test_acquisition_date_from_product_names() -> None:
    # Real product naming conventions (Gaofen, Landsat pre-collection and collection).
    assert (
        acquisition_date("GF2_PMS1_E113.6_N23.0_20180301_L1A0002993340-MSS1.tif", {})
        == "2018-03-01"
    )
    assert acquisition_date("LC80380342015230LGN00.tif", {}) == "2015-08-18"
    assert acquisition_date("LC08_L1TP_038034_20150818_20200908_02_T1.tif", {}) == "2015-08-18"
    assert acquisition_date("scene.tif", {"ACQUISITION_DATE": "2020-01-02T03:04"}) == "2020-01-02"
    assert acquisition_date("scene_99999999.tif", {}) is None


def _bad_scenes(tmp: Path) -> dict[str, tuple[Path, str]]:
    ok = textured(4, 300, 300)
    corrupt = tmp / "corrupt.tif"
    tmp.mkdir(parents=True, exist_ok=True)
    corrupt.write_bytes(b"II*\x00" + bytes(range(256)) * 10)
    rotated = Affine(2.0, 0.5, 500_000.0, 0.5, -2.0, 3_000_000.0)
    nodata = np.full((4, 300, 300), 65535, np.uint16)
    return {
        "missing": (tmp / "missing.tif", "no such file"),
        "corrupt": (corrupt, "unreadable or not a raster"),
        "nocrs": (write_raster(tmp / "nocrs.tif", ok, crs=None), "no CRS"),
        "notransform": (
            write_raster(tmp / "notransform.tif", ok, transform=None),
            "no geotransform",
        ),
        "rotated": (
            write_raster(tmp / "rotated.tif", ok, transform=rotated),
            "rotated geotransform",
        ),
        "twobands": (
            write_raster(tmp / "twobands.tif", ok[:2]),
            "2 bands, sensor bgrn needs band 3",
        ),
        "float": (
            write_raster(tmp / "float.tif", ok.astype("int32")),
            "unsupported dtype int32",
        ),
        "allnodata": (write_raster(tmp / "allnodata.tif", nodata, nodata=65535), "all nodata"),
        "small": (
            write_raster(tmp / "small.tif", ok[:, :200, :250]),
            "smaller than one 256 px chip",
        ),
    }


def test_inspect_reports_each_problem(tmp_path: Path) -> None:
    bgrn = load_profile("bgrn")
    for key in ("corrupt", "nocrs", "notransform", "rotated", "twobands", "float"):
        path, reason = _bad_scenes(tmp_path)[key]
        with pytest.raises(InputError) as err:
            inspect_scene(str(path), bgrn if key == "twobands" else None, PROFILES)
        assert str(path) in str(err.value) and reason in str(err.value), key
        assert "\n" not in str(err.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.tif: file does not exist"):
        inspect_scene(str(tmp_path / "missing.tif"), None, PROFILES)


def test_bad_scenes_are_counted_and_the_good_one_is_tiled(
    tmp_path: Path, dask_client: Client
) -> None:
    bad = _bad_scenes(tmp_path / "in")
    good = write_raster(tmp_path / "in" / "good.tif", textured(4, 300, 300))
    scenes = [str(p) for p, _ in bad.values()] + [str(good)]
    report = run_tile(
        tmp_path / "s.zarr", scenes, dask_client, TileParams(), "bgrn", progress=False
    )
    assert report.counts["scenes_done"] == 1
    assert report.counts["scenes_failed"] == len(bad)
    reasons = {f["path"]: f["reason"] for f in report.failures}
    for path, reason in bad.values():
        assert reason in reasons[str(path.resolve()) if path.exists() else str(path)], path
    store = ChipStore.open(tmp_path / "s.zarr")
    assert [s["path"] for s in store.scenes] == [str(good.resolve())]
    assert store.n_chips == 4
    assert store.meta["runs"][-1]["counts"]["scenes_failed"] == len(bad)


def test_store_path_that_is_not_a_store(tmp_path: Path, dask_client: Client) -> None:
    (tmp_path / "notastore").mkdir()
    (tmp_path / "notastore" / "file.txt").write_text("hello")
    with pytest.raises(InputError, match="notastore: path exists and is not a GeoKR chip store"):
        run_tile(tmp_path / "notastore", [], dask_client, TileParams(), progress=False)
