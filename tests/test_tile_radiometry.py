"""The per-scene stretch: computed once on a sample, nodata excluded, lookup table exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import given
from hypothesis import strategies as st
from skimage.exposure import is_low_contrast

from geokr_testkit.rasters import textured, write_raster
from pipeline.filters import FilterParams, cloud_fraction, drop_reason, gray, low_contrast
from pipeline.radiometry import Stretch, compute_stretch


def test_lookup_table_equals_direct_scaling() -> None:
    s = Stretch((100.0, 250.5, 3000.0), (4000.0, 900.0, 3001.0), (2.0, 98.0))
    data = np.random.default_rng(0).integers(0, 65536, (3, 40, 50)).astype(np.uint16)
    assert np.array_equal(s.apply(data), s._scale(data))
    assert s.apply(np.array([[[100]], [[900]], [[0]]], np.uint16)).ravel().tolist() == [0, 255, 0]


def test_stretch_ignores_nodata(tmp_path: Path) -> None:
    data = textured(3, 200, 200)
    data[:, :, :100] = 65535  # nodata half
    path = write_raster(tmp_path / "s.tif", data, nodata=65535)
    with rasterio.open(path) as src:
        s = compute_stretch(src, (1, 2, 3), (2.0, 98.0))
    assert s is not None and s.high is not None and max(s.high) < 2000
    valid = data[:, :, 100:].reshape(3, -1)
    expected = np.percentile(valid, 98, axis=1)
    assert np.allclose(s.high, expected, rtol=0.05)


def test_eight_bit_passes_through(shared_data: Path) -> None:
    with rasterio.open(shared_data / "rgb_byte" / "RGB.byte.tif") as src:
        s = compute_stretch(src, (1, 2, 3), (2.0, 98.0))
        data = src.read(window=((0, 10), (0, 10)))
    assert s == Stretch.identity() and np.array_equal(s.apply(data), data)


def test_cloud_and_contrast_filters() -> None:
    params = FilterParams()
    valid = np.ones((16, 16), bool)
    rng = np.random.default_rng(0)
    clear = rng.integers(20, 200, (3, 16, 16)).astype(np.uint8)
    cloudy = clear.copy()
    cloudy[:, :9, :] = 250  # 9/16 of the rows: 56 % cloud
    assert drop_reason(clear, valid, params)[0] is None
    reason, cloud, _ = drop_reason(cloudy, valid, params)
    assert reason == "cloud" and abs(cloud - 9 / 16) < 1e-6
    assert cloud_fraction(cloudy, valid, 230) == cloud
    flat = np.full((3, 16, 16), 120, np.uint8)
    assert drop_reason(flat, valid, params)[0] == "low_contrast"
    holes = valid.copy()
    holes[0, :4] = False  # 4 / 256 = 1.6 % nodata
    assert drop_reason(clear, holes, params)[0] == "nodata"


def test_strip_luminance_gives_skimage_decision() -> None:
    rng = np.random.default_rng(1)
    params = FilterParams()
    valid = np.ones((32, 32), bool)
    for spread in (2, 5, 8, 12, 20, 60):  # around skimage's 5 % threshold
        chip = (120 + rng.integers(0, spread, (3, 32, 32))).astype(np.uint8)
        expected = is_low_contrast(np.moveaxis(chip, 0, -1), fraction_threshold=0.05)
        got = drop_reason(chip, valid, params, gray(chip))[0] == "low_contrast"
        assert got == expected == (drop_reason(chip, valid, params)[0] == "low_contrast")


@given(
    level=st.integers(0, 255),
    spread=st.integers(0, 80),
    bright=st.floats(0, 0.05),
    seed=st.integers(0, 2**16),
)
def test_fast_low_contrast_equals_skimage(
    level: int, spread: int, bright: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    chip = np.clip(level + rng.integers(-spread, spread + 1, (3, 48, 48)), 0, 255).astype(np.uint8)
    chip[:, rng.random((48, 48)) < bright] = 255  # a few outliers near the 99th percentile
    lum = gray(chip)
    assert low_contrast(lum, 0.05) == is_low_contrast(lum, fraction_threshold=0.05)


@pytest.mark.parametrize("sensor", ["sentinel2", "landsat5", "landsat7"])
def test_cloud_rule_on_real_cloud_masks(shared_data: Path, sensor: str) -> None:
    """The paper's rule (8-bit brightness > 230 after the scene stretch) against real
    reference masks (code 4 = cloud): it tracks cloud cover and never drops a clear chip,
    but it is conservative: most chips that are more than half cloud stay below 0.5."""
    npz = np.load(shared_data / "cloudmasks" / f"{sensor}.npz")
    rgb = np.moveaxis(npz["img"][..., [2, 1, 0]], -1, 0)  # blue, green, red → RGB
    cloud_ref = npz["msk"][..., 0] == 4
    flat = rgb.reshape(3, -1)
    stretch = Stretch(
        tuple(np.percentile(flat, 2, axis=1)), tuple(np.percentile(flat, 98, axis=1)), (2, 98)
    )
    rgb8 = stretch.apply(rgb)
    valid = np.ones(cloud_ref.shape, bool)
    pairs = np.array(
        [
            (
                cloud_ref[r : r + 64, c : c + 64].mean(),
                cloud_fraction(rgb8[:, r : r + 64, c : c + 64], valid[r : r + 64, c : c + 64], 230),
            )
            for r in range(0, 512, 64)
            for c in range(0, 512, 64)
        ]
    )
    assert np.corrcoef(pairs.T)[0, 1] > 0.5
    clear = pairs[:, 0] < 0.05
    assert clear.any() and (pairs[clear, 1] <= FilterParams().max_cloud).all()
