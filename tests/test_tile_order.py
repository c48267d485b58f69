"""One canonical scene order for every way of building a store, and duplicates tiled once.

Scenes sit in folders that sort before and after each other and are given in an order
that is neither sorted nor reverse-sorted, so no way of building can pass by sorting.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from dask.distributed import Client

from geokr_testkit.rasters import textured, write_raster
from pipeline.hpc.consolidate import consolidate, consolidate_report
from pipeline.hpc.parts import Part
from pipeline.store.chips import ChipStore, chip_specs
from pipeline.tiling import TileParams, run_tile

PARAMS = TileParams(chip_size=64, shard_chips=8, commit_interval=0)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("order")
    folders = ["m_middle", "z_last", "a_first", "b_second"]
    return [
        str(write_raster(root / f / f"scene{i}.tif", textured(4, 200 + 40 * i, 260, seed=i)))
        for i, f in enumerate(folders)
    ]


def snapshot(path: Path) -> tuple[dict[str, np.ndarray], list[dict[str, object]]]:
    store = ChipStore.open(path)
    arrays = {name: store.read(name) for name in chip_specs(store.chip_size)}
    return arrays, [{k: v for k, v in s.items() if k != "run"} for s in store.scenes]


def assert_same(a: Path, b: Path) -> None:
    (arrays_a, scenes_a), (arrays_b, scenes_b) = snapshot(a), snapshot(b)
    assert scenes_a == scenes_b
    for name, values in arrays_a.items():
        np.testing.assert_array_equal(values, arrays_b[name], err_msg=name)


@pytest.mark.parametrize("reverse", [False, True])
def test_embedded_run_and_parts_give_one_order(
    tmp_path: Path, scenes: list[str], dask_client: Client, reverse: bool
) -> None:
    given = scenes[::-1] if reverse else scenes
    run_tile(tmp_path / "one.zarr", given, dask_client, PARAMS, "bgrn", progress=False)
    assert [s["path"] for s in ChipStore.open(tmp_path / "one.zarr").scenes] == given
    for i in (1, 2, 3):
        run_tile(tmp_path / "arr.zarr", given, dask_client, PARAMS, "bgrn", progress=False,
                 part=Part(i, 3))
    with consolidate_report(tmp_path / "arr.zarr") as report:
        consolidate(tmp_path / "arr.zarr", report)
    assert report.counts["parts_merged"] == 3
    assert_same(tmp_path / "one.zarr", tmp_path / "arr.zarr")


def test_a_scene_given_twice_or_copied_is_tiled_once(
    tmp_path: Path, scenes: list[str], dask_client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "elsewhere" / "copy-of-scene1.tif"
    copy.parent.mkdir()
    shutil.copy(scenes[1], copy)
    given = [scenes[0], scenes[1], str(copy), scenes[0], str(Path(scenes[2]).parent)]
    report = run_tile(tmp_path / "d.zarr", given, dask_client, PARAMS, "bgrn", progress=False)
    assert report.counts["scenes_duplicate"] == 2 and report.counts["scenes_done"] == 3
    assert [s["path"] for s in ChipStore.open(tmp_path / "d.zarr").scenes] == scenes[:3]
    err = capsys.readouterr().err
    assert f"note: {copy}: same content as {scenes[1]}; tiled once" in err
    assert f"note: {scenes[0]}: given twice; tiled once" in err
    # in a job array the copy and its original fall into different parts: still once
    for i in (1, 2):
        part = run_tile(tmp_path / "p.zarr", [scenes[1], scenes[0], str(copy)], dask_client,
                        PARAMS, "bgrn", progress=False, part=Part(i, 2))
        assert part.counts["scenes_duplicate"] == (1 if i == 1 else 0)
    with consolidate_report(tmp_path / "p.zarr") as merged:
        consolidate(tmp_path / "p.zarr", merged)
    assert not merged.failures
    assert [s["path"] for s in ChipStore.open(tmp_path / "p.zarr").scenes] == [
        scenes[1], scenes[0]
    ]
