"""Job-array consolidation: part stores appended in part order, idempotent, gaps reported.

Part stores are written with the ChipStore API (tiny 8 px chips) the way a
``geokr-etl tile --part i/n`` task leaves them: chips plus a finished run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli.consolidate import consolidate as consolidate_cmd
from pipeline.hpc.consolidate import consolidate, consolidate_report
from pipeline.hpc.parts import Part, part_store_path
from pipeline.report import RunReport
from pipeline.store.chips import ChipBatch, ChipStore, chip_specs
from pipeline.store.records import RunRecord, SceneRecord

SIZE = 8
NAMES = list(chip_specs(SIZE))


def make_batch(rng: np.random.Generator, n: int, n_scenes: int) -> ChipBatch:
    return ChipBatch(
        chips=rng.integers(0, 256, (n, 3, SIZE, SIZE), dtype=np.uint8),
        chip_scene=np.sort(rng.integers(0, n_scenes, n)).astype(np.int32),
        chip_window=rng.integers(0, 1000, (n, 4)).astype(np.int32),
        chip_transform=rng.normal(size=(n, 6)),
        chip_bounds_wgs84=rng.normal(size=(n, 4)),
        chip_cloud_fraction=rng.random(n).astype(np.float32),
        chip_nodata_fraction=rng.random(n).astype(np.float32),
    )


def write_part(store: Path, part: Part, n: int, seed: int, finished: bool = True) -> ChipBatch:
    rng = np.random.default_rng(seed)
    n_scenes = 2
    batch = make_batch(rng, n, n_scenes)
    chip_store = ChipStore.create(part_store_path(store, part), SIZE, shard_chips=4)
    writer = chip_store.writer()
    writer.append(batch)
    writer.flush()
    counts = np.bincount(batch.chip_scene, minlength=n_scenes)
    scenes = [
        SceneRecord(i, f"/data/p{part.index}-s{i}.tif", int(counts[i]), f"{seed}-{i}",
                    chip_offset=int(counts[:i].sum()), run=0)
        for i in range(n_scenes)
    ]
    run = RunReport("tile", {"part": str(part)})
    if finished:
        run.finish()
    chip_store.commit(n, scenes=scenes, runs=[RunRecord.of(run)])
    return batch


def merged(store: Path) -> RunReport:
    with consolidate_report(store) as report:
        consolidate(store, report)
    return report


def test_parts_are_appended_in_part_order_with_scene_ids_remapped(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    sizes = [5, 0, 11]
    batches = [write_part(store, Part(i + 1, 3), n, seed=i) for i, n in enumerate(sizes)]
    report = merged(store)
    out = ChipStore.open(store)
    assert report.counts["parts_merged"] == 3
    assert out.n_chips == sum(sizes)
    for name in NAMES:
        if name == "chip_scene":
            continue
        expected = np.concatenate([getattr(b, name) for b in batches])
        np.testing.assert_array_equal(out.read(name), expected)
    expected_scene = np.concatenate([b.chip_scene + 2 * i for i, b in enumerate(batches)])
    np.testing.assert_array_equal(out.read("chip_scene"), expected_scene)
    paths = [s["path"] for s in out.scenes]
    assert paths == [f"/data/p{p}-s{i}.tif" for p in (1, 2, 3) for i in (0, 1)]
    assert [s["id"] for s in out.scenes] == list(range(6))
    scene_of_chip = out.read("chip_scene")
    for s in out.scenes:  # chip_offset/n_chips still point at the scene's own chips
        assert (scene_of_chip[s["chip_offset"]:s["chip_offset"] + s["n_chips"]] == s["id"]).all()
    assert [out.meta["runs"][s["run"]]["part"] for s in out.scenes] == ["1/3"] * 2 + ["2/3"] * 2 + [
        "3/3"] * 2
    assert [r["part"] for r in out.meta["consolidated"]] == ["1/3", "2/3", "3/3"]


def test_rerun_skips_merged_parts_and_continues_after_a_gap(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    first = write_part(store, Part(1, 3), 6, seed=1)
    third = write_part(store, Part(3, 3), 4, seed=3)
    report = merged(store)
    assert report.counts["parts_merged"] == 1
    assert report.counts["parts_pending"] == 1  # part 2 missing: part 3 must wait
    assert ChipStore.open(store).n_chips == 6

    second = write_part(store, Part(2, 3), 3, seed=2)
    report = merged(store)
    assert report.counts["parts_already_merged"] == 1
    assert report.counts["parts_merged"] == 2
    out = ChipStore.open(store)
    expected = np.concatenate([first.chips, second.chips, third.chips])
    np.testing.assert_array_equal(out.read("chips"), expected)

    again = merged(store)
    assert again.counts["parts_merged"] == 0
    assert ChipStore.open(store).n_chips == 13
    assert [r["stage"] for r in ChipStore.open(store).meta["runs"]].count("consolidate") == 3


def test_unfinished_part_is_not_merged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s.zarr"
    write_part(store, Part(1, 2), 3, seed=1, finished=False)
    write_part(store, Part(2, 2), 3, seed=2)
    report = merged(store)
    assert report.counts["parts_merged"] == 0
    assert ChipStore.open(store).n_chips == 0
    err = capsys.readouterr().err
    assert "part-1-of-2.zarr: its tile run has not finished" in err


def test_label_sets_of_parts_are_reported_not_merged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "s.zarr"
    write_part(store, Part(1, 1), 3, seed=1)
    ChipStore.open(part_store_path(store, Part(1, 1)), "r+").group.require_group("labels")
    report = merged(store)
    assert report.counts["part_label_sets_not_merged"] == 1
    assert "part-1-of-1.zarr: its label sets are not merged" in capsys.readouterr().err
    assert "labels" not in ChipStore.open(store).group


def test_a_scene_in_two_parts_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    write_part(store, Part(1, 2), 3, seed=7)
    write_part(store, Part(2, 2), 3, seed=7)  # same fingerprints as part 1
    report = merged(store)
    assert report.counts["parts_merged"] == 1
    assert "already in" in report.failures[0]["reason"]


def test_cli_exit_status_and_error_lines(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    runner = CliRunner()
    result = runner.invoke(consolidate_cmd, ["--store", str(store)])
    assert result.exit_code == 2
    assert "s.zarr.parts: no part stores" in result.output
    write_part(store, Part(1, 2), 2, seed=1)
    result = runner.invoke(consolidate_cmd, ["--store", str(store)])
    assert result.exit_code == 1  # part 2 of 2 not there yet
    write_part(store, Part(2, 2), 2, seed=2)
    result = runner.invoke(consolidate_cmd, ["--store", str(store)])
    assert result.exit_code == 0, result.output
    assert ChipStore.open(store).n_chips == 4
    write_part(tmp_path / "t.zarr", Part(2, 3), 2, seed=3)
    write_part(tmp_path / "t.zarr", Part(1, 2), 2, seed=4)
    result = runner.invoke(consolidate_cmd, ["--store", str(tmp_path / "t.zarr")])
    assert result.exit_code == 2
    assert "different splits" in result.output


def test_chips_move_as_bytes_and_parts_stay_intact(tmp_path: Path) -> None:
    # Parts that start and end mid-shard, merged in two runs (the second starts on a
    # partial shard): the shard files equal those of one writer given all chips at once.
    store = tmp_path / "s.zarr"
    batches = [write_part(store, Part(i, 4), n, seed=i) for i, n in ((1, 6), (2, 9))]
    merged(store)
    batches += [write_part(store, Part(i, 4), n, seed=i) for i, n in ((3, 1), (4, 7))]
    merged(store)
    reference = ChipStore.create(tmp_path / "ref.zarr", SIZE, shard_chips=4)
    writer = reference.writer()
    for b in batches:
        writer.append(b)
    reference.commit(writer.flush())
    files = sorted(p.relative_to(reference.path) for p in (reference.path / "chips" / "c")
                   .rglob("*") if p.is_file())
    assert len(files) == 6
    for f in files:
        assert (store / f).read_bytes() == (reference.path / f).read_bytes(), f
    for i, b in enumerate(batches, start=1):  # the part stores are read, never changed
        np.testing.assert_array_equal(
            ChipStore.open(part_store_path(store, Part(i, 4))).read("chips"), b.chips)
