"""The store opened for training in one call: label-set checks, the fingerprint, chip reads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from geokr_testkit.stores import build_store, write_label_set
from pipeline.errors import InputError
from pipeline.store.chips import ChipStore
from pipeline.store.labels import LabelView
from pipeline.store.reader import ChipReader, open_for_training, store_fingerprint


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ChipStore:
    return build_store(tmp_path_factory.mktemp("data") / "s.zarr", n_scenes=3,
                       chips_per_scene=12, chip_size=16)


def open_label_set(store: ChipStore, name: str) -> LabelView:
    labels = open_for_training(store.path, lambda names: name).labels
    assert labels is not None
    return labels


def test_label_set_uses_only_valid_chips(store: ChipStore) -> None:
    labels = open_label_set(store, "test")
    assert labels.n_chips == 36
    assert labels.class_names == ["class0", "class1", "class2", "class3"]
    assert not labels.valid[::7].any() and labels.valid.sum() == 36 - 6
    np.testing.assert_allclose(labels.proportions[labels.valid].sum(1), 1.0, rtol=1e-5)


def test_missing_label_set_names_the_alternatives(store: ChipStore) -> None:
    with pytest.raises(InputError, match=r"no label set 'nlcd' in store \(available: test\)"):
        open_label_set(store, "nlcd")


def test_stale_label_set_is_cut_to_its_commit_point(tmp_path: Path) -> None:
    s = build_store(tmp_path / "s.zarr", chips_per_scene=6, chip_size=8)
    props = np.full((12, 2), 0.5, np.float32)
    write_label_set(s, "old", props, np.ones(12, bool), n_labelled=5)
    assert open_label_set(s, "old").n_chips == 5


def test_no_valid_chips(tmp_path: Path) -> None:
    s = build_store(tmp_path / "s.zarr", chips_per_scene=4, chip_size=8)
    write_label_set(s, "empty", np.full((8, 2), 0.5, np.float32), np.zeros(8, bool))
    with pytest.raises(InputError, match="marks no chip valid"):
        open_label_set(s, "empty")


def test_store_without_chips_or_missing(tmp_path: Path) -> None:
    ChipStore.create(tmp_path / "empty.zarr", 8)
    with pytest.raises(InputError, match="store holds no chips"):
        open_for_training(tmp_path / "empty.zarr")
    with pytest.raises(InputError, match="does not exist"):
        open_for_training(tmp_path / "nope.zarr")


def test_fingerprint_changes_with_labels(store: ChipStore, tmp_path: Path) -> None:
    labels = open_label_set(store, "test")
    other = build_store(tmp_path / "o.zarr", n_scenes=3, chips_per_scene=12, chip_size=16)
    assert store_fingerprint(store, labels) == store_fingerprint(other, labels)
    cut = open_label_set(store, "test")
    object.__setattr__(cut, "n_chips", 30)
    assert store_fingerprint(store, cut) != store_fingerprint(store, labels)


def test_reader_matches_store_with_duplicates(store: ChipStore) -> None:
    idx = np.array([30, 2, 2, 17, 0, 30])
    np.testing.assert_array_equal(ChipReader(store.path).read(idx), store.read("chips")[idx])


def test_one_call_reads_what_training_needs(store: ChipStore) -> None:
    opened = open_for_training(store.path, lambda names: names[0])
    assert opened.labels is not None and opened.labels.name == "test"
    assert opened.n_chips == opened.n_stored == 36 and opened.chip_size == 16
    np.testing.assert_array_equal(opened.chip_scene, store.read("chip_scene"))
    np.testing.assert_array_equal(opened.chip_window, store.read("chip_window"))
    assert opened.fingerprint == store_fingerprint(store, opened.labels)
    assert opened.reader.uses_shards
    assert open_for_training(store.path).labels is None  # no label set asked for


def test_store_is_opened_once(store: ChipStore, store_opens: list[Path]) -> None:
    training = open_for_training(store.path, lambda names: "test")
    training.reader.read(np.arange(4))
    assert store_opens == [store.path]


def test_fingerprint_is_the_one_checkpoints_recorded(store: ChipStore) -> None:
    """The formula of earlier versions, spelled out: a run resumes across the upgrade."""
    labels = open_label_set(store, "test")
    doc = {"scenes": [s.get("fingerprint", s.get("path")) for s in store.meta["scenes"]],
           "chip_size": store.chip_size, "n_chips": labels.n_chips, "labels": labels.name,
           "classes": labels.classes, "label_parameters": labels.attrs.get("parameters")}
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode())
    assert store_fingerprint(store, labels) == digest.hexdigest()[:16]
