"""Land cover as users have it: codes stored as float, signed integers with negative nodata,
codes outside the legend, a product beside the chips; a failed run leaves no label set.

Real NLCD 2011 (Zion) pixels, rewritten in the dtypes and nodata conventions of other
products (float32/float64 with NaN or 255, int16/int32 with -1, -9999, -32768).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.landcover.run import LabelConfig, run_label
from pipeline.store.chips import ChipStore
from pipeline.store.labels import LabelSet, label_names

NODATA_ROWS = 300  # a strip of no data across the top of every variant


@pytest.fixture
def store(zion_chip_store: Path) -> Path:
    """A fresh copy of the Zion grid store for each test (built once per session)."""
    return zion_chip_store


@pytest.fixture(scope="module")
def nlcd(shared_data: Path) -> tuple[np.ndarray, dict[str, object]]:
    with rasterio.open(shared_data / "zion" / "nlcd2011.tif") as src:
        codes, profile = src.read(1), dict(src.profile)
    codes[:NODATA_ROWS] = 255
    return codes, profile


def variant(tmp: Path, nlcd: tuple[np.ndarray, dict[str, object]], dtype: str,
            nodata: float, **changes: object) -> Path:
    codes, profile = nlcd
    data = codes.astype(dtype)
    data[codes == 255] = nodata
    out = tmp / f"nlcd_{dtype}_{nodata}.tif"
    with rasterio.open(out, "w", **{**profile, "dtype": dtype, "nodata": nodata,
                                    **changes}) as dst:
        dst.write(data, 1)
    return out


def label(store: Path, source: Path, name: str) -> LabelSet:
    run_label(LabelConfig(store, [str(source)], legend="nlcd", name=name, workers=0,
                          progress=False))
    return LabelSet.open(ChipStore.open(store), name)


def snapshot(store: Path) -> dict[str, str]:
    """Every zarr file of the store (the lock and the tile catalog are not data)."""
    return {str(p.relative_to(store)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(store.rglob("*")) if p.is_file()
            and not str(p.relative_to(store)).startswith((".geokr", "landcover_index"))}


@pytest.mark.parametrize(("dtype", "nodata"), [
    ("float32", float("nan")), ("float64", 255.0),  # integer codes stored as float
    ("int16", -1), ("int16", -9999), ("int16", -32768), ("int32", -9999),  # signed, negative
])
def test_land_cover_dtypes_label_like_uint8(
    store: Path, tmp_path: Path, nlcd: tuple[np.ndarray, dict[str, object]], dtype: str,
    nodata: float,
) -> None:
    reference = label(store, variant(tmp_path, nlcd, "uint8", 255), "uint8")
    other = label(store, variant(tmp_path, nlcd, dtype, nodata), "other")
    assert reference.read("valid").any() and not reference.read("valid").all()
    for name in ("proportions", "labeled_fraction", "valid", "dominant"):
        assert np.array_equal(reference.read(name), other.read(name)), name


def test_fractional_float_is_one_line_and_leaves_nothing(
    store: Path, tmp_path: Path, nlcd: tuple[np.ndarray, dict[str, object]]
) -> None:
    label(store, variant(tmp_path, nlcd, "uint8", 255), "nlcd")
    before = snapshot(store)
    codes, profile = nlcd
    data = codes.astype("float32")
    data[700, 500] = 41.5
    bad = tmp_path / "reflectance_like.tif"
    with rasterio.open(bad, "w", **{**profile, "dtype": "float32", "nodata": 255}) as dst:
        dst.write(data, 1)
    result = CliRunner().invoke(main, ["label", "--store", str(store), "--landcover", str(bad),
                                       "--legend", "nlcd", "--name", "bad", "--workers", "0",
                                       "--quiet"])
    assert result.exit_code == 2, result.output
    line = f"error: {bad}: float land cover holds a value that is not a class code (41.5)"
    assert line in result.output and "Traceback" not in result.output
    assert label_names(ChipStore.open(store)) == ["nlcd"]  # `--labels` stays optional
    assert not (store / "labels" / "bad").exists()
    assert snapshot(store) == before


def test_negative_code_outside_the_legend_is_listed(
    store: Path, tmp_path: Path, nlcd: tuple[np.ndarray, dict[str, object]]
) -> None:
    codes, profile = nlcd
    data = codes.astype("int16")
    data[codes == 255] = -9999
    data[700:710, 500:510] = -5  # not the nodata value, not in the legend
    path = tmp_path / "signed.tif"
    with rasterio.open(path, "w", **{**profile, "dtype": "int16", "nodata": -9999}) as dst:
        dst.write(data, 1)
    with pytest.raises(InputError, match=r"signed\.tif: codes not in the legend: -5$"):
        label(store, path, "signed")
    assert label_names(ChipStore.open(store)) == []


def test_land_cover_beside_the_chips_warns_and_exits_1(
    store: Path, tmp_path: Path, nlcd: tuple[np.ndarray, dict[str, object]]
) -> None:
    before = snapshot(store)
    far = variant(tmp_path, nlcd, "uint8", 255,
                  transform=Affine(31.53, 0, 700_000.0, 0, -31.53, 2_000_000.0))
    result = CliRunner().invoke(main, ["label", "--store", str(store), "--landcover", str(far),
                                       "--legend", "nlcd", "--workers", "0", "--quiet"])
    assert result.exit_code == 1, result.output
    assert f"warning: {far}: land cover overlaps no chip of the store" in result.output
    assert label_names(ChipStore.open(store)) == []
    assert snapshot(store) == before
