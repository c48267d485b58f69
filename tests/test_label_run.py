"""``geokr-etl label`` on real Zion chips: reference equality, the label-set contract, resume,
staleness, bad input, locking, the dask path and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from dask.distributed import Client

from geokr_testkit.grid import GridScene, add_grid_scenes, chip_windows
from pipeline.cli.label import label
from pipeline.errors import InputError
from pipeline.landcover import run as run_mod
from pipeline.landcover.legend import Legend, class_set
from pipeline.landcover.reference import reference_labels
from pipeline.landcover.run import LabelConfig, run_label
from pipeline.landcover.tiles import describe_tile
from pipeline.store.chips import ChipStore, writer_lock
from pipeline.store.labels import LabelSet, label_names, sample_weights

TOL = 0.02


@pytest.fixture(scope="module")
def zion(shared_data: Path) -> GridScene:
    return GridScene.from_raster(shared_data / "zion" / "landsat8_zion_bgrn.tif")


@pytest.fixture
def store(zion_chip_store: Path) -> Path:
    """A fresh copy of the Zion grid store for each test (built once per session)."""
    return zion_chip_store


def nlcd(shared_data: Path, which: str = "nlcd2011.tif") -> str:
    return str(shared_data / "zion" / which)


def cfg(store: Path, source: str, legend: str = "nlcd", **kw: object) -> LabelConfig:
    return LabelConfig(store, [source], legend=legend, workers=0, progress=False, **kw)  # type: ignore[arg-type]


def check_against_reference(path: Path, name: str, source: str, legend_name: str,
                            chips: np.ndarray | None = None) -> None:
    store = ChipStore.open(path)
    labels = LabelSet.open(store, name)
    legend = Legend.load(legend_name)
    codes = [c for c, _ in labels.classes]
    ids = np.arange(store.n_chips) if chips is None else chips
    wkts = [store.scenes[s]["crs_wkt"] for s in store.read("chip_scene")[ids]]
    props, frac = reference_labels(
        [describe_tile(Path(source))], store.read("chip_transform")[ids], wkts, store.chip_size,
        legend.lut(codes), len(codes), legend.nodata,
    )
    assert np.abs(labels.read("labeled_fraction")[ids] - frac).max() <= TOL
    valid = labels.read("valid")[ids]
    assert valid.any()
    assert np.abs(labels.read("proportions")[ids][valid] - props[valid]).max() <= TOL


@pytest.mark.parametrize(("raster", "legend"), [("nlcd2011.tif", "nlcd"), ("nlcd.tif", "nlcd8")])
def test_zion_matches_nearest_neighbour_reference(store: Path, shared_data: Path, raster: str,
                                                  legend: str) -> None:
    source = nlcd(shared_data, raster)
    report = run_label(cfg(store, source, legend, classes="all"))
    assert report.counts["chips_labelled"] == ChipStore.open(store).n_chips == 374
    check_against_reference(store, legend, source, legend, np.arange(0, 374, 2))


def test_full_and_generalised_nlcd_agree(store: Path, shared_data: Path) -> None:
    run_label(cfg(store, nlcd(shared_data), "nlcd", classes="all", name="full"))
    run_label(cfg(store, nlcd(shared_data, "nlcd.tif"), "nlcd8", classes="all", name="eight"))
    s = ChipStore.open(store)
    full, eight = LabelSet.open(s, "full"), LabelSet.open(s, "eight")
    assert np.abs(full.read("proportions") - eight.read("proportions")).max() <= TOL
    assert (full.read("dominant") == eight.read("dominant")).mean() > 0.97


def test_label_set_contract(store: Path, shared_data: Path) -> None:
    run_label(cfg(store, nlcd(shared_data), min_labeled=0.6))
    s = ChipStore.open(store)
    labels = LabelSet.open(s, "nlcd")
    n, k = s.n_chips, 8
    shapes = {name: labels.array(name).shape for name in
              ("proportions", "labeled_fraction", "valid", "dominant", "sample_weight")}
    assert shapes == {"proportions": (n, k), "labeled_fraction": (n,), "valid": (n,),
                      "dominant": (n,), "sample_weight": (n,)}
    dims = getattr(labels.array("proportions").metadata, "dimension_names", None)
    assert dims == ("chip", "class")
    assert str(labels.array("dominant").dtype) == "int16"
    props, frac, valid = labels.read("proportions"), labels.read("labeled_fraction"), \
        labels.read("valid")
    assert np.allclose(props[valid].sum(1), 1, atol=1e-5)
    assert np.array_equal(valid, frac >= 0.6)
    # shrubland (37 % of Zion) is outside the paper's 8 classes: some chips fall below 0.6
    assert 0 < valid.sum() < n
    assert np.array_equal(labels.read("dominant")[valid], props[valid].argmax(1))
    head = labels.header
    assert head["product"] == "NLCD" and head["legend"]["name"] == "nlcd"
    assert [c for c, _ in head["classes"]] == [10, 20, 30, 50, 60, 80, 90, 100]
    assert head["n_chips"] == n and head["parameters"]["min_labeled"] == 0.6
    assert "numpy" in head["versions"] and len(head["runs"]) == 1
    assert head["tiles"] == [{"path": str(Path(nlcd(shared_data)).resolve()), "chips": n}]
    weights = labels.read("sample_weight")
    assert (weights[~valid] == 0).all() and weights[valid].mean() == pytest.approx(1, rel=1e-5)


def test_sample_weights_balance_dominant_classes() -> None:
    dominant = np.array([0, 0, 0, 1, 2, 2, -1, 1], np.int16)
    valid = np.array([1, 1, 1, 1, 1, 1, 0, 0], bool)
    w = sample_weights(dominant, valid, 4)
    per_class = [w[valid & (dominant == c)].sum() for c in range(3)]
    assert np.allclose(per_class, per_class[0])
    assert w[~valid].tolist() == [0, 0]
    assert w[valid].mean() == pytest.approx(1)


def test_rerun_is_a_no_op(store: Path, shared_data: Path) -> None:
    run_label(cfg(store, nlcd(shared_data)))
    before = LabelSet.open(ChipStore.open(store), "nlcd").read("proportions")
    report = run_label(cfg(store, nlcd(shared_data)))
    assert report.counts["chips_labelled"] == 0
    assert report.counts["chips_already_labelled"] == 374
    labels = LabelSet.open(ChipStore.open(store), "nlcd")
    assert np.array_equal(labels.read("proportions"), before)
    assert len(labels.header["runs"]) == 2


def test_appended_chips_are_labelled_on_the_next_run(store: Path, shared_data: Path,
                                                    zion: GridScene) -> None:
    run_label(cfg(store, nlcd(shared_data), classes="all"))
    before = LabelSet.open(ChipStore.open(store), "nlcd").read("proportions")
    s = ChipStore.open(store, "r+")
    add_grid_scenes(s, [zion], 64, windows=[chip_windows(zion, 64, 64)[:0] + [
        w for w in chip_windows(zion, 64, 48)[:40]]])
    s = ChipStore.open(store)
    stale = LabelSet.open(s, "nlcd")
    assert stale.n_chips == 374 < s.n_chips == 414
    report = run_label(cfg(store, nlcd(shared_data), classes="all"))
    assert report.counts["chips_labelled"] == 40
    labels = LabelSet.open(ChipStore.open(store), "nlcd")
    assert labels.n_chips == 414
    assert np.array_equal(labels.read("proportions")[:374], before)
    check_against_reference(store, "nlcd", nlcd(shared_data), "nlcd", np.arange(374, 414))


def test_existing_name_with_other_parameters_is_refused(store: Path, shared_data: Path) -> None:
    run_label(cfg(store, nlcd(shared_data), name="lc"))
    before = LabelSet.open(ChipStore.open(store), "lc").header
    with pytest.raises(InputError, match=r"other parameters \(min_labeled differ\)"):
        run_label(cfg(store, nlcd(shared_data), name="lc", min_labeled=0.9))
    with pytest.raises(InputError, match="product, legend, sources differ"):
        run_label(cfg(store, nlcd(shared_data, "nlcd.tif"), "nlcd8", name="lc"))
    assert LabelSet.open(ChipStore.open(store), "lc").header == before


def test_second_writer_is_refused(store: Path, shared_data: Path) -> None:
    with writer_lock(store, "geokr-etl label"), pytest.raises(InputError, match="being written"):
        run_label(cfg(store, nlcd(shared_data)))
    assert label_names(ChipStore.open(store)) == []


def test_store_without_chips(tmp_path: Path, shared_data: Path) -> None:
    ChipStore.create(tmp_path / "empty.zarr", 64)
    with pytest.raises(InputError, match="no chips"):
        run_label(cfg(tmp_path / "empty.zarr", nlcd(shared_data)))
    with pytest.raises(InputError, match="does not exist"):
        run_label(cfg(tmp_path / "nothing.zarr", nlcd(shared_data)))


def test_codes_outside_the_legend_are_listed(store: Path, shared_data: Path) -> None:
    run_label(cfg(store, nlcd(shared_data), name="good"))
    with pytest.raises(InputError, match=r"nlcd2011.tif: codes not in the legend: 11, 21"):
        run_label(cfg(store, nlcd(shared_data), "nlcd8", name="bad"))
    s = ChipStore.open(store)
    assert label_names(s) == ["good"] and not (store / "labels" / "bad").exists()
    assert LabelSet.open(s, "good").n_chips == 374
    run_label(cfg(store, nlcd(shared_data), name="bad"))  # a set that never committed is redone
    assert LabelSet.open(ChipStore.open(store), "bad").n_chips == 374


def test_interrupted_run_resumes(store: Path, shared_data: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real = run_mod.count_scene
    calls = {"n": 0}

    def flaky(job: run_mod.SceneJob) -> run_mod.SceneCounts:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(run_mod, "count_scene", flaky)
    monkeypatch.setattr(run_mod, "COMMIT_SECONDS", 0.0)
    report = run_label(cfg(store, nlcd(shared_data), classes="all", job_chips=100))
    assert report.interrupted
    assert LabelSet.open(ChipStore.open(store), "nlcd").n_chips == 200
    monkeypatch.setattr(run_mod, "count_scene", real)
    report = run_label(cfg(store, nlcd(shared_data), classes="all", job_chips=100))
    assert report.counts["chips_labelled"] == 174 and not report.interrupted
    run_label(cfg(store, nlcd(shared_data), classes="all", name="whole"))
    s = ChipStore.open(store)
    resumed, whole = LabelSet.open(s, "nlcd"), LabelSet.open(s, "whole")
    for name in ("proportions", "labeled_fraction", "valid", "dominant", "sample_weight"):
        assert np.array_equal(resumed.read(name), whole.read(name)), name


def test_dask_workers_give_the_same_labels(store: Path, shared_data: Path,
                                           dask_client: Client) -> None:
    run_label(cfg(store, nlcd(shared_data), name="local"))
    dask_cfg = cfg(store, nlcd(shared_data), name="dask", job_chips=64)
    dask_cfg.scheduler = dask_client.scheduler_info()["address"]
    report = run_label(dask_cfg)
    assert report.counts["chips_labelled"] == 374
    s = ChipStore.open(store)
    assert np.array_equal(LabelSet.open(s, "local").read("proportions"),
                          LabelSet.open(s, "dask").read("proportions"))


def test_cli(store: Path, shared_data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["--store", str(store), "--landcover", nlcd(shared_data), "--legend", "nlcd",
            "--workers", "0", "--quiet", "--classes", "all"]
    result = runner.invoke(label, args)
    assert result.exit_code == 0, result.output
    assert "chips_labelled" in result.output and "374" in result.output
    runs = json.loads((store / "labels" / "nlcd" / "zarr.json").read_text())
    assert runs["attributes"]["geokr_labels"]["n_chips"] == 374
    both = runner.invoke(label, [*args, "--globeland30", str(tmp_path)])
    assert both.exit_code == 2 and "either --globeland30" in both.output
    empty = tmp_path / "gl30"
    empty.mkdir()
    res = runner.invoke(label, ["--store", str(store), "--globeland30", str(empty), "--quiet"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [f"error: {empty}: folder holds no land-cover "
                                               "rasters (.tif)"]
    assert class_set("paper")  # the default class set exists
