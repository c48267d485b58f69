"""End to end: ``tile`` the real Zion scene, ``label`` it with both NLCD rasters, ``stats``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from dask.distributed import Client

from pipeline.cli.label import label
from pipeline.cli.stats import stats
from pipeline.landcover.legend import Legend
from pipeline.landcover.reference import reference_labels
from pipeline.landcover.tiles import describe_tile
from pipeline.store.chips import ChipStore
from pipeline.store.labels import LabelSet
from pipeline.tiling import TileParams, run_tile


@pytest.fixture(scope="module")
def tiled(shared_data: Path, dask_client: Client,
          tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("e2e") / "zion.zarr"
    scene = str(shared_data / "zion" / "landsat8_zion_bgrn.tif")
    report = run_tile(path, [scene], dask_client, TileParams(chip_size=64, commit_interval=0),
                      progress=False)
    assert report.counts["scenes_done"] == 1
    return path


@pytest.mark.parametrize(("raster", "legend"), [("nlcd2011.tif", "nlcd"), ("nlcd.tif", "nlcd8")])
def test_tile_then_label_matches_reference(tiled: Path, shared_data: Path, raster: str,
                                           legend: str) -> None:
    source = shared_data / "zion" / raster
    result = CliRunner().invoke(label, [
        "--store", str(tiled), "--landcover", str(source), "--legend", legend,
        "--classes", "all", "--workers", "0", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    store = ChipStore.open(tiled)
    labels = LabelSet.open(store, legend)
    assert labels.n_chips == store.n_chips > 100
    ids = np.arange(0, store.n_chips, 3)
    lg = Legend.load(legend)
    codes = [c for c, _ in labels.classes]
    wkts = [store.scenes[s]["crs_wkt"] for s in store.read("chip_scene")[ids]]
    props, frac = reference_labels([describe_tile(source)], store.read("chip_transform")[ids],
                                   wkts, store.chip_size, lg.lut(codes), len(codes), lg.nodata)
    assert np.abs(labels.read("labeled_fraction")[ids] - frac).max() <= 0.02
    valid = labels.read("valid")[ids]
    assert np.abs(labels.read("proportions")[ids][valid] - props[valid]).max() <= 0.02


def test_stats_tables_and_figures(tiled: Path, tmp_path: Path) -> None:
    out = tmp_path / "stats"
    result = CliRunner().invoke(stats, ["--store", str(tiled), "--out", str(out),
                                        "--labels", "nlcd", "--labels", "nlcd8"])
    assert result.exit_code == 0, result.output
    assert "Table II — nlcd" in result.output and "Table III — nlcd vs nlcd8" in result.output
    for name in ("table2_nlcd.csv", "table2_nlcd.md", "fig3_nlcd.png", "fig5_nlcd.png",
                 "table3_nlcd_vs_nlcd8.csv", "table3_nlcd_vs_nlcd8.md"):
        assert (out / name).stat().st_size > 100, name
    # the two NLCD rasters are one map: the noise estimate must be near zero
    assert "Dominant class changed on 0.00 %" in (out / "table3_nlcd_vs_nlcd8.md").read_text()
