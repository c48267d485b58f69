"""GlobeLand30 tiles: naming, the WGS84 tile index, and labels where geometry is hard.

No GlobeLand30 tile may be redistributed, so these tests generate small tiles
in the product's exact layout: ``N50_30_2010LC030/n50_30_2010lc030.tif``, each
in its own WGS84 / UTM zone, 30 m, codes 10..100, 255 ocean, 0 no data outside
the tile's 6° x 5° cell.  Each tile covers only a few km of its cell to stay
small.  Every label is checked against the slow per-chip GDAL reference.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import CRS, Transformer

from geokr_testkit.grid import GridScene, bounds_wgs84, grid_store, utm_wkt
from pipeline.errors import InputError
from pipeline.landcover import lookup
from pipeline.landcover.legend import Legend, class_set
from pipeline.landcover.reference import reference_labels
from pipeline.landcover.run import LabelConfig, run_label
from pipeline.landcover.tiles import GL30Name, TileIndex, build_index, expand_sources
from pipeline.store.chips import ChipStore
from pipeline.store.labels import LabelSet

RES = 30.0
TOL = 0.02


def write_gl30_tile(
    root: Path, hemisphere: str, zone: int, band: int, lon: tuple[float, float],
    lat: tuple[float, float], codes: list[int], seed: int, ocean_east_of: float | None = None,
    year: int = 2010,
) -> Path:
    """A GlobeLand30 tile covering ``lon`` x ``lat`` (part of its cell), in the real layout.

    Classes come in 4 x 4 pixel patches; 0 outside the tile's own 6° x 5° cell,
    255 east of ``ocean_east_of``.  A southern band ``S32_00`` spans 0° to 5° S.
    """
    name = GL30Name(hemisphere, zone, band, year)
    path = root / name.relpath()
    path.parent.mkdir(parents=True, exist_ok=True)
    crs = CRS.from_epsg(name.epsg)
    fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    xs, ys = fwd.transform([lon[0], lon[1], lon[0], lon[1]], [lat[0], lat[0], lat[1], lat[1]])
    x0, y1 = np.floor(min(xs) / RES) * RES, np.ceil(max(ys) / RES) * RES
    w, h = int((max(xs) - x0) / RES) + 1, int((y1 - min(ys)) / RES) + 1
    rng = np.random.default_rng(seed)
    patches = rng.choice(codes, size=(h // 4 + 1, w // 4 + 1)).astype(np.uint8)
    data = np.kron(patches, np.ones((4, 4), np.uint8))[:h, :w]
    t = Affine(RES, 0, x0, 0, -RES, y1)
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    px, py = t * (cols, rows)
    plon, plat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(px, py)
    west = -180 + 6 * (zone - 1)
    south = band if hemisphere == "N" else -band - 5
    data[(plon < west) | (plon >= west + 6) | (plat < south) | (plat >= south + 5)] = 0
    if ocean_east_of is not None:
        data[(plon >= ocean_east_of) & (data != 0)] = 255
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8",
                       crs=crs, transform=t, nodata=0, compress="deflate") as ds:
        ds.write(data, 1)
    return path


@pytest.fixture(scope="module")
def gl30(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("globeland30")
    # zone 50 | zone 51 boundary at 120° E; ocean east of 120.05° E in zone 51
    write_gl30_tile(root, "N", 50, 30, (119.96, 120.01), (31.0, 31.05), [10, 20, 30, 80], 1)
    write_gl30_tile(root, "N", 51, 30, (119.99, 120.08), (31.0, 31.05), [50, 60, 90, 40], 2,
                    ocean_east_of=120.05)
    # southern hemisphere, and the equator between zone 32 N and S tiles
    write_gl30_tile(root, "S", 35, 30, (26.97, 27.03), (-32.53, -32.47), [10, 20, 100, 70], 3)
    write_gl30_tile(root, "N", 32, 0, (8.97, 9.03), (-0.01, 0.03), [20, 30, 60], 4)
    write_gl30_tile(root, "S", 32, 0, (8.97, 9.03), (-0.03, 0.01), [10, 80, 90], 5)
    # the antimeridian between zone 60 and zone 1
    write_gl30_tile(root, "N", 60, 50, (179.96, 180.03), (50.5, 50.55), [20, 30], 6)
    write_gl30_tile(root, "N", 1, 50, (-180.03, -179.96), (50.5, 50.55), [60, 90], 7)
    return root


def scene_at(lon: float, lat: float, wkt: str, size: int, res: float = RES,
             rotation: float = 0.0) -> GridScene:
    """A one-chip grid centred on lon/lat in ``wkt`` (optionally rotated)."""
    x, y = Transformer.from_crs("EPSG:4326", CRS.from_wkt(wkt), always_xy=True).transform(lon, lat)
    half = size * res / 2
    t = (Affine.translation(x, y) * Affine.rotation(rotation)
         * Affine.translation(-half, half) * Affine.scale(res, -res))
    return GridScene(wkt, t, size, size)


CASES = {
    "zone_boundary": scene_at(120.0, 31.025, utm_wkt(50), 64),
    "zone_boundary_other_crs": scene_at(120.0, 31.02, utm_wkt(51), 64),
    "half_ocean": scene_at(120.05, 31.025, utm_wkt(51), 64),
    "outside": scene_at(10.0, 45.0, utm_wkt(32), 64),
    "south": scene_at(27.0, -32.5, utm_wkt(35, south=True), 64),
    "south_from_north_zone": scene_at(27.0, -32.5, utm_wkt(34), 64, res=20.0),
    "equator": scene_at(9.0, 0.0, utm_wkt(32), 64),
    "rotated": scene_at(119.985, 31.025, utm_wkt(50), 64, res=25.0, rotation=30.0),
    "web_mercator": scene_at(27.0, -32.5, CRS.from_epsg(3857).to_wkt(), 64),
    "lon_lat_scene": GridScene(CRS.from_epsg(4326).to_wkt(),
                               Affine(0.0003, 0, 119.99, 0, -0.0003, 31.035), 64, 64),
    "antimeridian": scene_at(180.0, 50.525, utm_wkt(60), 64),
    "antimeridian_from_zone_1": scene_at(-179.999, 50.525, utm_wkt(1), 64, res=20.0),
}


@pytest.fixture(scope="module")
def labelled(gl30: Path, tmp_path_factory: pytest.TempPathFactory) -> ChipStore:
    path = tmp_path_factory.mktemp("store") / "chips.zarr"
    grid_store(path, list(CASES.values()), 64)
    run_label(LabelConfig(path, [str(gl30)], classes="all", workers=0, progress=False))
    return ChipStore.open(path)


def reference(store: ChipStore, gl30: Path, classes: str = "all") -> tuple[np.ndarray, ...]:
    index = build_index(expand_sources([str(gl30)]))
    legend = Legend.load("globeland30")
    lut = legend.lut([c for c, _ in class_set(classes)])
    wkts = [store.scenes[s]["crs_wkt"] for s in store.read("chip_scene")]
    return reference_labels(index.records, store.read("chip_transform"), wkts, store.chip_size,
                            lut, len(class_set(classes)), legend.nodata)


def test_gl30_name_round_trip() -> None:
    name = GL30Name.parse("N50_30_2010LC030/n50_30_2010lc030.tif")
    assert name == GL30Name("N", 50, 30, 2010)
    assert name.epsg == 32650
    assert name.relpath() == Path("N50_30_2010LC030/n50_30_2010lc030.tif")
    assert GL30Name("S", 35, 30, 2020).epsg == 32735
    assert GL30Name.parse("nlcd2011.tif") is None


def test_index_reads_crs_from_raster_and_year_zone_from_name(gl30: Path, tmp_path: Path) -> None:
    cache = tmp_path / "index.json"
    index = build_index(expand_sources([str(gl30)]), cache=cache)
    assert len(index.records) == 7 and cache.is_file()
    by_zone = {(r.zone, CRS.from_wkt(r.crs_wkt).to_epsg()) for r in index.records}
    assert by_zone == {(50, 32650), (51, 32651), (35, 32735), (32, 32632), (32, 32732),
                       (60, 32660), (1, 32601)}
    assert {r.year for r in index.records} == {2010}
    chips, tiles = index.query(np.array([[119.99, 31.02, 120.01, 31.03]]))
    assert sorted(index.records[t].zone for t in tiles) == [50, 51]
    assert len(chips) == 2
    again = TileIndex.load(cache)
    assert [r.path for r in again.records] == [r.path for r in index.records]


def test_index_cache_is_reused_until_a_file_changes(gl30: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "index.json"
    paths = expand_sources([str(gl30)])
    build_index(paths, cache=cache)
    opened: list[Path] = []
    real = lookup.rasterio.open  # the index opens rasters through rasterio.open too

    def spy(p: Path, *a: Any, **k: Any) -> Any:
        opened.append(Path(p))
        return real(p, *a, **k)

    monkeypatch.setattr("pipeline.landcover.tiles.rasterio.open", spy)
    build_index(paths, cache=cache)
    assert opened == []
    os.utime(paths[0], (1, 1))
    build_index(paths, cache=cache)
    assert opened == [paths[0]]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_tile_without_crs_is_one_line_and_left_out(gl30: Path, tmp_path: Path) -> None:
    bad = tmp_path / "N50_35_2010LC030" / "n50_35_2010lc030.tif"
    bad.parent.mkdir()
    with rasterio.open(bad, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8") as ds:
        ds.write(np.full((8, 8), 10, np.uint8), 1)
    errors: list[InputError] = []
    index = build_index(expand_sources([str(gl30), str(bad)]), on_error=errors.append)
    assert len(index.records) == 7
    assert [e.reason for e in errors] == ["raster has no CRS"]
    with pytest.raises(InputError, match="no CRS"):
        build_index([bad])


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no land-cover rasters"):
        expand_sources([str(tmp_path)])
    with pytest.raises(InputError, match="does not exist"):
        expand_sources([str(tmp_path / "nope")])
    with pytest.raises(InputError, match="matches no file"):
        expand_sources([str(tmp_path / "*.tif")])


def test_every_case_matches_the_reference(labelled: ChipStore, gl30: Path) -> None:
    labels = LabelSet.open(labelled, "globeland30_2010")
    props, frac = labels.read("proportions"), labels.read("labeled_fraction")
    ref_props, ref_frac = reference(labelled, gl30)
    assert np.abs(frac - ref_frac).max() <= TOL
    valid = labels.read("valid")
    assert np.abs(props[valid] - ref_props[valid]).max() <= TOL
    assert np.allclose(props[valid].sum(1), 1, atol=1e-5)


def test_zone_boundary_chip_takes_pixels_from_both_tiles(labelled: ChipStore) -> None:
    labels = LabelSet.open(labelled, "globeland30_2010")
    codes = [c for c, _ in labels.classes]
    for case in ("zone_boundary", "zone_boundary_other_crs"):
        p = labels.read("proportions")[list(CASES).index(case)]
        west = sum(p[codes.index(c)] for c in (10, 20, 30, 80))  # zone 50 tile classes
        east = sum(p[codes.index(c)] for c in (50, 60, 90, 40))  # zone 51 tile classes
        assert 0.3 < west < 0.7 and 0.3 < east < 0.7, case
        # a seam of a few pixels whose nearest tile pixel is on the other side of 120° in both
        frac = labels.read("labeled_fraction")[list(CASES).index(case)]
        assert frac == pytest.approx(1, abs=0.01)


def test_half_ocean_outside_south_and_equator(labelled: ChipStore) -> None:
    labels = LabelSet.open(labelled, "globeland30_2010")
    frac, valid = labels.read("labeled_fraction"), labels.read("valid")
    i = {k: n for n, k in enumerate(CASES)}
    assert 0.35 < frac[i["half_ocean"]] < 0.65  # ocean (255) never counts
    assert frac[i["outside"]] == 0 and not valid[i["outside"]]
    assert labels.read("dominant")[i["outside"]] == -1
    assert labels.read("sample_weight")[i["outside"]] == 0
    for case in ("south", "south_from_north_zone", "equator", "web_mercator", "rotated",
                 "lon_lat_scene"):
        assert frac[i[case]] == pytest.approx(1.0) and valid[i[case]], case
    codes = [c for c, _ in labels.classes]
    eq = labels.read("proportions")[i["equator"]]
    assert sum(eq[codes.index(c)] for c in (20, 30, 60)) > 0.3  # northern tile
    assert sum(eq[codes.index(c)] for c in (10, 80, 90)) > 0.3  # southern tile


def test_antimeridian_chip_takes_pixels_from_both_sides(labelled: ChipStore) -> None:
    labels = LabelSet.open(labelled, "globeland30_2010")
    codes = [c for c, _ in labels.classes]
    bounds = labelled.read("chip_bounds_wgs84")
    for case in ("antimeridian", "antimeridian_from_zone_1"):
        i = list(CASES).index(case)
        assert bounds[i, 0] > bounds[i, 2]  # west > east: the box crosses ±180°
        p = labels.read("proportions")[i]
        assert sum(p[codes.index(c)] for c in (20, 30)) > 0.2, case  # zone 60 tile
        assert sum(p[codes.index(c)] for c in (60, 90)) > 0.2, case  # zone 1 tile
        assert labels.read("labeled_fraction")[i] == pytest.approx(1, abs=0.01)


def test_paper_classes_leave_out_tundra_and_shrubland(labelled: ChipStore, gl30: Path,
                                                      tmp_path: Path) -> None:
    run_label(LabelConfig(labelled.path, [str(gl30)], classes="paper", name="paper",
                          workers=0, progress=False))
    labels = LabelSet.open(ChipStore.open(labelled.path), "paper")
    assert [c for c, _ in labels.classes] == [10, 20, 30, 50, 60, 80, 90, 100]
    _, ref_frac = reference(labelled, gl30, "paper")
    frac = labels.read("labeled_fraction")
    assert np.abs(frac - ref_frac).max() <= TOL
    south = list(CASES).index("south")  # a quarter of its patches are tundra (70)
    assert 0.5 < frac[south] < 0.95


def test_subsampled_fine_chips_stay_area_true(gl30: Path, tmp_path: Path) -> None:
    """Chips of 0.5-4 m see only ~4-16 land-cover pixels across; sampling keeps fractions."""
    scenes = [scene_at(119.985, 31.02 + 0.002 * k, utm_wkt(50), 128, res=r)
              for k, r in enumerate([0.5, 1.0, 1.7, 4.0])]
    scenes.append(scene_at(120.0, 31.02, utm_wkt(50), 128, res=1.9, rotation=10.0))
    path = tmp_path / "fine.zarr"
    grid_store(path, scenes, 128)
    report = run_label(LabelConfig(path, [str(gl30)], classes="all", oversample=4,
                                   workers=0, progress=False))
    assert report.counts["chips_labelled"] == 5
    store = ChipStore.open(path)
    labels = LabelSet.open(store, "globeland30_2010")
    ref_props, ref_frac = reference(store, gl30)
    assert np.abs(labels.read("labeled_fraction") - ref_frac).max() <= TOL
    assert np.abs(labels.read("proportions") - ref_props).max() <= TOL


def test_exact_fallback_equals_affine_path(gl30: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.zarr"
    grid_store(path, [CASES["zone_boundary"], CASES["rotated"], CASES["south"]], 64)
    run_label(LabelConfig(path, [str(gl30)], classes="all", name="fast", workers=0,
                          progress=False))
    monkeypatch.setattr(lookup, "FIT_TOLERANCE_PX", -1.0)  # every chip: pyproj at every pixel
    run_label(LabelConfig(path, [str(gl30)], classes="all", name="exact", workers=0,
                          progress=False))
    store = ChipStore.open(path)
    fast = LabelSet.open(store, "fast").read("proportions")
    exact = LabelSet.open(store, "exact").read("proportions")
    assert np.abs(fast - exact).max() <= 1 / 64**2 + 1e-6  # at most a pixel on a boundary


def test_raster_wins_over_a_wrong_name(gl30: Path, tmp_path: Path) -> None:
    src = next(gl30.rglob("n50_30_2010lc030.tif"))
    wrong = tmp_path / "N49_30_2010LC030" / "n49_30_2010lc030.tif"
    wrong.parent.mkdir()
    wrong.write_bytes(src.read_bytes())
    (rec,) = build_index([wrong]).records
    assert CRS.from_wkt(rec.crs_wkt).to_epsg() == 32650 and rec.zone == 49
    assert rec.note == "name says EPSG:32649, raster is 32650; raster wins"


@pytest.mark.parametrize(("res", "size", "oversample", "step"),
                         [(30.0, 64, 8, 1), (1.0, 256, 8, 3), (0.5, 256, 8, 4), (1.0, 64, 4, 1)])
def test_auto_step(gl30: Path, res: float, size: int, oversample: int, step: int) -> None:
    """At least ``oversample`` samples per land-cover pixel and 64 per chip side."""
    index = build_index(expand_sources([str(gl30)]))
    scene = scene_at(119.985, 31.02, utm_wkt(50), size, res=res)
    gt = np.array([scene.transform.to_gdal()])
    chips, tiles = index.query(np.array([[119.98, 31.015, 119.99, 31.025]]))
    job = lookup.SceneJob(np.arange(1), gt, scene.crs_wkt, size, index.records, chips, tiles,
                          Legend.load("globeland30").lut([10]), 1, oversample=oversample)
    assert lookup.auto_step(job) == step


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lon=st.floats(119.975, 120.03), lat=st.floats(31.01, 31.04),
    res=st.sampled_from([0.5, 2.0, 8.0, 30.0]), size=st.sampled_from([32, 64, 128]),
    rotation=st.floats(-45, 45), zone=st.sampled_from([50, 51]),
)
def test_any_chip_geometry_matches_the_reference(
    gl30: Path, lon: float, lat: float, res: float, size: int, rotation: float, zone: int
) -> None:
    index = build_index(expand_sources([str(gl30)]))
    scene = scene_at(lon, lat, utm_wkt(zone), size, res=res, rotation=rotation)
    gt = np.array([scene.transform.to_gdal()])
    legend = Legend.load("globeland30")
    classes = class_set("all")
    lut = legend.lut([c for c, _ in classes])
    chips, tiles = index.query(bounds_wgs84(gt, scene.crs_wkt, size))
    job = lookup.SceneJob(np.arange(1), gt, scene.crs_wkt, size, index.records, chips, tiles,
                          lut, len(classes), nodata=legend.nodata)
    got = lookup.count_scene(job)
    props, frac = reference_labels(index.records, gt, [scene.crs_wkt], size, lut, len(classes),
                                   legend.nodata)
    assert abs(got.labeled[0] / size**2 - frac[0]) <= TOL
    if got.labeled[0] > 0:
        assert np.abs(got.counts[0] / got.labeled[0] - props[0]).max() <= TOL
