"""Typed store records read and extend the metadata document exactly as it was written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from geokr_testkit.stores import make_batch
from pipeline.report import RunReport
from pipeline.store.chips import ChipStore
from pipeline.store.records import (
    PartRecord,
    RunRecord,
    SceneRecord,
    append_run,
    append_scenes,
    known_scenes,
)

# A scene and a run record as the tile stage of the previous layout wrote them.
TILED_SCENE: dict[str, Any] = {
    "path": "/data/a.tif", "crs_wkt": "EPSG:32650", "sensor": "bgrn",
    "resolution": [30.0, 30.0], "width": 100, "height": 80,
    "transform": [30.0, 0.0, 500000.0, 0.0, -30.0, 3000000.0], "acquired": "2019-04-05",
    "fingerprint": "sha256:abc", "nodata": {"value": 0, "source": "file"}, "id": 0,
    "stretch": {"method": "percentile", "low": [1.0], "high": [2.0]}, "n_chips": 4,
    "chip_offset": 0, "n_windows": 6, "dropped": {"cloud": 2}, "run": 0,
}
GRID_SCENE: dict[str, Any] = {
    "id": 1, "path": "grid-1", "crs_wkt": "EPSG:32612", "sensor": "grid",
    "resolution": [10.0, 10.0], "acquired": None, "n_chips": 3, "fingerprint": "grid-1",
}


def test_records_round_trip_every_key() -> None:
    for doc in (TILED_SCENE, GRID_SCENE):
        record = SceneRecord.from_dict(doc)
        assert record.to_dict() == doc
        assert dict(record) == doc and record["crs_wkt"] == doc["crs_wkt"]
    run = RunReport("tile", {"overlap": 0.2})
    run.finish()
    doc = json.loads(json.dumps(run.to_dict()))
    assert RunRecord.from_dict(doc).to_dict() == doc
    assert RunRecord.of(run).to_dict().keys() == doc.keys()
    assert RunRecord.of(run).complete and not RunRecord("tile").complete
    part = {"part": "1/2", "path": "/s.parts/p", "offset": 0, "n_chips": 5, "n_scenes": 1}
    assert PartRecord.from_dict(part).to_dict() == part


def test_one_identity_rule() -> None:
    tiled, grid = SceneRecord.from_dict(TILED_SCENE), SceneRecord.from_dict(GRID_SCENE)
    assert tiled.key == "sha256:abc"  # moved or copied, the same content is the same scene
    assert SceneRecord(2, "/data/b.tif", 1).key == "/data/b.tif"  # no fingerprint kept
    assert known_scenes([tiled, grid]) == {"sha256:abc", "grid-1"}


def test_shifted_moves_indices_only() -> None:
    moved = SceneRecord.from_dict(TILED_SCENE).shifted(scenes=3, chips=100, runs=2)
    assert (moved.id, moved.chip_offset, moved.run) == (3, 100, 2)
    assert moved.to_dict() | {"id": 0, "chip_offset": 0, "run": 0} == TILED_SCENE
    grid = SceneRecord.from_dict(GRID_SCENE).shifted(scenes=3, chips=100, runs=2)
    assert grid.to_dict() == GRID_SCENE | {"id": 4}  # no offset or run to shift


def test_append_keeps_what_was_there() -> None:
    doc = {"n_chips": 4, "scenes": [TILED_SCENE], "runs": [{"stage": "tile", "x": 1}]}
    grown = append_run(append_scenes(doc, [SceneRecord.from_dict(GRID_SCENE)]),
                       RunRecord("label", finished="now"))
    assert grown["scenes"] == [TILED_SCENE, GRID_SCENE]
    assert grown["runs"] == [{"stage": "tile", "x": 1},
                             {"stage": "label", "finished": "now", "interrupted": False}]
    assert doc["runs"] == [{"stage": "tile", "x": 1}]  # a new document, the old one untouched


def test_store_written_before_reads_and_grows(tmp_path: Path) -> None:
    """A store whose metadata was written as a plain document (the previous code path)
    opens, reads as records, and keeps its old records byte for byte after a commit."""
    store = ChipStore.create(tmp_path / "s.zarr", 32, shard_chips=4)
    writer = store.writer()
    rng = np.random.default_rng(0)
    writer.append(make_batch(np.zeros(4, np.int64), rng.dirichlet([1, 1], 4), 32, rng))
    old_meta = {**store.meta, "n_chips": 0, "scenes": [TILED_SCENE],
                "runs": [{"stage": "tile", "finished": "t", "interrupted": False, "extra": 1}]}
    store.group.attrs["geokr"] = old_meta
    reopened = ChipStore.open(store.path, "r+")
    assert [s.to_dict() for s in reopened.scenes] == [TILED_SCENE]
    assert reopened.runs[0].complete and reopened.runs[0]["extra"] == 1
    reopened.commit(writer.flush(), scenes=[SceneRecord.from_dict(GRID_SCENE)])
    reopened.append_run(RunRecord("label"))
    meta = ChipStore.open(store.path).meta
    assert meta["scenes"] == [TILED_SCENE, GRID_SCENE] and meta["n_chips"] == 4
    assert meta["runs"][0] == old_meta["runs"][0] and meta["runs"][1]["stage"] == "label"
    assert meta["schema_version"] == old_meta["schema_version"]
