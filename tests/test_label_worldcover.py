"""ESA WorldCover (EPSG:4326, 10 m) under UTM chips, on the real 36000 px tile.

The tile is never read whole: the production path reads only the window under
each batch of chips, and the reference only the window under each chip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from pyproj import Transformer

from geokr_testkit.grid import GridScene, grid_store, utm_wkt
from pipeline.landcover.legend import Legend
from pipeline.landcover.reference import reference_labels
from pipeline.landcover.run import LabelConfig, run_label
from pipeline.landcover.tiles import describe_tile
from pipeline.store.chips import ChipStore
from pipeline.store.labels import LabelSet

TILE = "worldcover/ESA_WorldCover_10m_2021_v200_N00E006_Map.tif"


@pytest.fixture(scope="module")
def labelled(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> ChipStore:
    # 4 x 4 chips of 64 px at 30 m over the coast near 7.44° E, 1.69° N, in UTM 32 N
    wkt = utm_wkt(32)
    x, y = Transformer.from_crs("EPSG:4326", wkt, always_xy=True).transform(7.40, 1.72)
    scene = GridScene(wkt, Affine(30, 0, x, 0, -30, y), 256, 256)
    path = tmp_path_factory.mktemp("wc") / "chips.zarr"
    grid_store(path, [scene], 64)
    run_label(LabelConfig(path, [str(shared_data / TILE)], legend="worldcover", classes="all",
                          workers=0, progress=False))
    return ChipStore.open(path)


def test_worldcover_matches_reference(labelled: ChipStore, shared_data: Path) -> None:
    labels = LabelSet.open(labelled, "worldcover")
    legend = Legend.load("worldcover")
    codes = [c for c, _ in labels.classes]
    wkts = [labelled.scenes[0]["crs_wkt"]] * labelled.n_chips
    props, frac = reference_labels(
        [describe_tile(shared_data / TILE)], labelled.read("chip_transform"), wkts,
        labelled.chip_size, legend.lut(codes), len(codes), legend.nodata,
    )
    assert np.abs(labels.read("labeled_fraction") - frac).max() <= 0.02
    valid = labels.read("valid")
    assert np.abs(labels.read("proportions")[valid] - props[valid]).max() <= 0.02
    # the area mixes forest, water and grass; several classes must be present
    assert (labels.read("proportions")[valid].max(0) > 0.05).sum() >= 3


def test_worldcover_is_a_rotated_lookup(labelled: ChipStore, shared_data: Path) -> None:
    """Lon/lat pixels are not aligned with UTM rows: the sampled path did the work."""
    from pipeline.landcover.lookup import fit_pixel_affine

    tile = describe_tile(shared_data / TILE)
    coef, bad = fit_pixel_affine(labelled.read("chip_transform"), labelled.scenes[0]["crs_wkt"],
                                 tile, 64.0)
    assert not bad.any()
    assert np.abs(coef[:, 0, 2]).max() * 64 > 0.01  # columns move with chip rows
    assert np.abs(coef[:, 0, 1]).mean() == pytest.approx(30 * 12000 / 111320, rel=0.01)
