"""The strip-vectorised tiling equals the per-chip reference exactly: decisions, fractions,
bounds, and the store itself (same shard files, byte for byte)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyproj
import pytest
from affine import Affine
from dask.distributed import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from geokr_testkit.rasters import textured, write_raster
from pipeline.filters import REASONS, FilterParams, strip_stats
from pipeline.geobounds import bounds_wgs84
from pipeline.sensors import all_profiles
from pipeline.store.chips import ChipStore, chip_specs
from pipeline.tiling import ScenePlan, TileParams, prepare_scene, run_tile
from pipeline.windows import chip_rows
from tests.tile_reference import chip_decisions, read_strip, reference_store


def assert_same_decisions(
    rgb: np.ndarray, valid: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int,
    params: FilterParams,
) -> None:
    fast = strip_stats(rgb, valid, rows, cols, size, params)
    slow = chip_decisions(rgb, valid, rows, cols, size, params)
    assert [REASONS[r] or None for r in fast.reason] == [s[0] for s in slow]
    assert fast.cloud.tolist() == [s[1] for s in slow]
    assert fast.nodata.tolist() == [s[2] for s in slow]


@pytest.mark.parametrize(
    ("scene", "params"),
    [
        ("zion/landsat8_zion_bgrn.tif", TileParams(chip_size=64, filters=FilterParams(
            low_contrast_fraction=0.3))),
        ("zion/landsat8_zion_bgrn.tif", TileParams(chip_size=96, overlap=0.5,
                                                   filters=FilterParams(180, 0.05, 0.3, 0.2))),
        ("rgb_byte/RGB.byte.tif", TileParams(chip_size=48, overlap=0.3,
                                             filters=FilterParams(200, 0.3, 0.5, 0.1))),
    ],
)
def test_real_scenes_every_strip(shared_data: Path, scene: str, params: TileParams) -> None:
    plan = prepare_scene(str(shared_data / scene), None, all_profiles(), params)
    assert isinstance(plan, ScenePlan)
    reasons = set()
    for windows in plan.parts:
        strip, rgb, valid = read_strip(plan.info, plan.stretch, windows)
        rows = np.array([int(w.row_off - strip.row_off) for w in windows])
        cols = np.array([int(w.col_off - strip.col_off) for w in windows])
        assert_same_decisions(rgb, valid, rows, cols, params.chip_size, params.filters)
        reasons |= set(strip_stats(rgb, valid, rows, cols, params.chip_size, params.filters)
                       .reason.tolist())
    assert len(reasons) >= 2  # the scene exercises more than one outcome


@st.composite
def adversarial_strips(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    """Chips at the edge of every rule: contrast spans near the threshold, cloud blocks and
    nodata stripes that start on chip edges, saturated and flat regions."""
    size = draw(st.integers(4, 20))
    overlap = draw(st.sampled_from([0.0, 0.2, 0.5, 0.75]))
    height = draw(st.integers(size, 3 * size))
    width = draw(st.integers(size, 4 * size))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    fraction = draw(st.sampled_from([0.0, 0.02, 0.05, 0.1, 0.3, 1.0]))
    base = draw(st.integers(0, 255))
    span = round(fraction * 2 * 255 * draw(st.floats(0.8, 1.2))) + draw(st.integers(-2, 2))
    rgb = np.clip(base + rng.integers(0, max(1, span + 1), (3, height, width)), 0, 255)
    rgb = rgb.astype(np.uint8)
    if draw(st.booleans()):  # a few outliers: the 1st/99th percentiles sit on them
        k = draw(st.integers(1, 6))
        idx = rng.integers(0, height * width, k)
        rgb.reshape(3, -1)[:, idx] = draw(st.sampled_from([0, 255]))
    stride = max(1, round(size * (1 - overlap)))
    valid = np.ones((height, width), bool)
    for _ in range(draw(st.integers(0, 3))):
        edge = draw(st.integers(0, width - 1)) // stride * stride
        cut = slice(edge, edge + draw(st.integers(1, size)))
        if draw(st.booleans()):
            rgb[:, :, cut] = draw(st.integers(231, 255))  # a cloud block on a chip edge
        else:
            valid[:, cut] = False  # a nodata stripe
    rgb[:, ~valid] = 0
    windows = [w for row in chip_rows(height, width, size, overlap) for w in row]
    rows = np.array([int(w.row_off) for w in windows])
    cols = np.array([int(w.col_off) for w in windows])
    params = FilterParams(
        cloud_brightness=draw(st.sampled_from([200, 230, 254])),
        max_cloud=draw(st.sampled_from([0.0, 0.25, 0.5, 1.0])),
        max_nodata=draw(st.sampled_from([0.0, 0.01, 0.5, 1.0])),
        low_contrast_fraction=fraction,
    )
    return rgb, valid, rows, cols, np.array(size), params


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(adversarial_strips())
def test_adversarial_strips(case: tuple[np.ndarray, ...]) -> None:
    rgb, valid, rows, cols, size, params = case
    assert_same_decisions(rgb, valid, rows, cols, int(size), params)  # type: ignore[arg-type]


CRSS = ["EPSG:32612", "EPSG:32749", "EPSG:32660", "EPSG:3857", "EPSG:4326", "EPSG:3413",
        "EPSG:3035"]


@settings(max_examples=60)
@given(
    crs=st.sampled_from(CRSS),
    u=st.floats(0, 1), v=st.floats(0, 1),
    size=st.floats(1e-6, 0.05), n=st.integers(1, 20),
)
def test_bounds_equal_transform_bounds(crs: str, u: float, v: float, size: float, n: int) -> None:
    src = CRS.from_string(crs)
    # boxes anywhere in the CRS's area of use, as fractions of its projected extent
    west, south, east, north = transform_bounds("EPSG:4326", src, *_area(crs))
    w = west + u * (east - west) * np.linspace(0.0, 0.999, n)
    s = south + v * (north - south) * np.linspace(0.999, 0.0, n)
    d = size * min(east - west, north - south)
    boxes = np.stack([w, s, w + d, s + d], axis=1)
    fast = bounds_wgs84(src, boxes)
    slow = np.array([transform_bounds(src, "EPSG:4326", *b, densify_pts=21) for b in boxes])
    np.testing.assert_array_equal(fast, slow)


def _area(crs: str) -> tuple[float, float, float, float]:
    area = pyproj.CRS.from_user_input(crs).area_of_use
    assert area is not None
    return area.west, area.south, area.east, area.north


def test_store_equals_the_per_chip_reference(
    tmp_path: Path, shared_data: Path, dask_client: Client
) -> None:
    # Generated scenes that end mid-shard, so shards span parts, scenes and a rerun.
    scenes = [
        str(shared_data / "rgb_byte" / "RGB.byte.tif"),
        str(shared_data / "zion" / "landsat8_zion_bgrn.tif"),
        str(write_raster(tmp_path / "g.tif", textured(3, 500, 700, "uint8", seed=3))),
    ]
    params = TileParams(chip_size=64, shard_chips=16, commit_interval=0)
    ref = reference_store(tmp_path / "ref.zarr", scenes, params, None)
    fast = tmp_path / "fast.zarr"
    run_tile(fast, scenes[:2], dask_client, params, progress=False)
    run_tile(fast, scenes, dask_client, params, progress=False)  # appends the third
    got = ChipStore.open(fast)
    assert got.n_chips == ref.n_chips > 3 * 16
    for name in chip_specs(64):
        np.testing.assert_array_equal(got.read(name), ref.read(name), err_msg=name)
    files = _shard_files(ref.path)
    assert files == _shard_files(fast)
    for f in files:
        assert (fast / "chips" / f).read_bytes() == (ref.path / "chips" / f).read_bytes(), f


def _shard_files(store: Path) -> list[Path]:
    root = store / "chips"
    return sorted(p.relative_to(root) for p in (root / "c").rglob("*") if p.is_file())


def test_bounds_across_the_antimeridian_and_of_lonlat_boxes() -> None:
    utm60 = CRS.from_epsg(32660)
    origin = Affine(4.0, 0, 833_500.0, 0, -4.0, 101_000.0)
    boxes = np.array([[origin.c + 256 * i, origin.f - 1024, origin.c + 256 * (i + 4), origin.f]
                      for i in range(8)])
    fast = bounds_wgs84(utm60, boxes)
    slow = [transform_bounds(utm60, "EPSG:4326", *b, densify_pts=21) for b in boxes]
    np.testing.assert_array_equal(fast, slow)
    assert (fast[:, 0] > fast[:, 2]).any()  # GeoJSON convention for a box across 180°
    lonlat = np.array([[116.3, 39.89744, 116.30256, 39.9]])
    np.testing.assert_array_equal(
        bounds_wgs84(CRS.from_epsg(4326), lonlat),
        [transform_bounds("EPSG:4326", "EPSG:4326", *lonlat[0], densify_pts=21)],
    )
