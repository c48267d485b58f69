"""Legends in catalogs/legends: loading, GlobeLand30 mapping, class sets, real raster codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from pipeline.catalog import entries
from pipeline.errors import InputError
from pipeline.landcover.legend import (
    GLOBELAND30_CLASSES,
    NOT_COUNTED,
    PAPER_CODES,
    UNKNOWN,
    Legend,
    class_set,
)


@pytest.mark.parametrize("name", ["globeland30", "worldcover", "nlcd", "nlcd8"])
def test_catalog_legends_load(name: str) -> None:
    legend = Legend.load(name)
    assert legend.name == name
    assert legend.classes
    assert all(len(c.color) == 3 for c in legend.classes)
    assert name in entries("legends")


def test_globeland30_legend_is_identity_with_ocean_not_counted() -> None:
    legend = Legend.load("globeland30")
    codes = [c for c, _ in GLOBELAND30_CLASSES]
    lut = legend.lut(codes)
    assert [int(lut[c]) for c in codes] == list(range(10))
    assert lut[255] == NOT_COUNTED  # ocean
    assert lut[0] == NOT_COUNTED  # no data
    assert lut[11] == UNKNOWN


def test_paper_class_set_drops_tundra_and_shrubland() -> None:
    paper = class_set("paper")
    assert [c for c, _ in paper] == list(PAPER_CODES)
    assert 40 not in dict(paper) and 70 not in dict(paper)
    assert len(class_set("all")) == 10
    assert class_set("60,10") == ((60, "water bodies"), (10, "cultivated land"))
    lut = Legend.load("nlcd").lut([c for c, _ in paper])
    assert lut[52] == NOT_COUNTED  # NLCD shrub/scrub → shrubland, not in the paper's set
    assert lut[42] == paper.index((20, "forest"))


@pytest.mark.parametrize("spec", ["", "10,11", "10,10", "forest"])
def test_bad_class_sets(spec: str) -> None:
    with pytest.raises(InputError):
        class_set(spec)


@pytest.mark.parametrize(
    ("raster", "legend"), [("zion/nlcd2011.tif", "nlcd"), ("zion/nlcd.tif", "nlcd8")]
)
def test_real_nlcd_codes_are_all_in_their_legend(shared_data: Path, raster: str,
                                                 legend: str) -> None:
    with rasterio.open(shared_data / raster) as ds:
        codes = np.unique(ds.read(1))
        nodata = ds.nodata
    lut = Legend.load(legend).lut([c for c, _ in GLOBELAND30_CLASSES])
    known = [c for c in codes if c != nodata]
    assert known and all(lut[c] >= 0 for c in known)


def test_worldcover_window_codes_in_legend(shared_data: Path) -> None:
    path = shared_data / "worldcover" / "ESA_WorldCover_10m_2021_v200_N00E006_Map.tif"
    with rasterio.open(path) as ds:  # never the whole 36000 px tile: a window on Príncipe
        codes = np.unique(ds.read(1, window=Window(16500, 15000, 1500, 1500)))
    lut = Legend.load("worldcover").lut([c for c, _ in GLOBELAND30_CLASSES])
    assert len(codes) > 3
    assert all(lut[c] != UNKNOWN for c in codes)


def test_user_legend_file_and_errors(tmp_path: Path) -> None:
    own = tmp_path / "mine.yaml"
    own.write_text(
        "product: mine\nnodata: [0]\nclasses:\n"
        "  - {code: 1, name: wet, color: [0, 0, 255], globeland30: 60}\n"
        "  - {code: 2, name: dry, color: [200, 200, 0], globeland30: 90}\n"
    )
    legend = Legend.load(str(own))
    assert legend.lut([60, 90])[1:3].tolist() == [0, 1]
    other = tmp_path / "other.yaml"
    other.write_text(own.read_text().replace("globeland30: 90", "globeland30: 91"))
    with pytest.raises(InputError, match="not GlobeLand30 classes"):
        Legend.load(str(other))
    assert Legend.load(str(own)).fingerprint != Legend.load("nlcd").fingerprint
    with pytest.raises(InputError, match="no such legends entry"):
        Legend.load("corine")
