"""Direct shard reads give exactly zarr's bytes, and other layouts fall back to zarr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from geokr_testkit.stores import build_store, make_batch
from pipeline.store.chips import ChipStore
from pipeline.store.reader import ChipReader
from pipeline.store.shards import open_shards


def test_every_chip_equals_zarr_including_partial_last_shard(tmp_path: Path) -> None:
    store = build_store(tmp_path / "s.zarr", n_scenes=1, chips_per_scene=37, chip_size=8)
    reader = open_shards(store.path)
    assert reader is not None and reader.shard_chips == 16
    idx = np.arange(37)[::-1].copy()
    np.testing.assert_array_equal(reader.read(idx), store.read("chips")[idx])
    reader.close()


def test_all_fill_chips_and_shards_read_as_zero(tmp_path: Path) -> None:
    store = ChipStore.create(tmp_path / "z.zarr", 8, shard_chips=4)
    scene = np.zeros(12, np.int32)
    batch = make_batch(scene, np.full((12, 2), 0.5, np.float32), 8, np.random.default_rng(0))
    batch.chips[1] = 0  # one empty inner chunk
    batch.chips[4:8] = 0  # one whole shard of fill values
    writer = store.writer()
    writer.append(batch)
    store.commit(writer.flush())
    reader = ChipReader(store.path)
    assert reader.uses_shards
    np.testing.assert_array_equal(reader.read(np.arange(12)), batch.chips)


def test_batched_reads_with_and_without_shards_agree(tmp_path: Path) -> None:
    store = build_store(tmp_path / "s.zarr", n_scenes=2, chips_per_scene=20, chip_size=8)
    idx = np.array([39, 3, 3, 17, 0])
    direct, plain = ChipReader(store.path), ChipReader(store.path, direct=False)
    assert direct.uses_shards and not plain.uses_shards
    np.testing.assert_array_equal(direct.read(idx), plain.read(idx))
    np.testing.assert_array_equal(direct.read(idx), store.read("chips")[idx])


def test_other_layouts_are_not_read_directly(tmp_path: Path) -> None:
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=3)
    group.create_array("chips", shape=(4, 3, 8, 8), dtype="uint8", chunks=(1, 3, 8, 8))
    assert open_shards(tmp_path / "g.zarr") is None  # not sharded
    group.create_array("other", shape=(4, 3, 8, 8), dtype="uint8", chunks=(1, 3, 8, 8),
                       shards=(2, 3, 8, 8), compressors=zarr.codecs.ZstdCodec())
    assert open_shards(tmp_path / "g.zarr", "other") is None  # zstd, not blosc
    assert open_shards(tmp_path / "missing.zarr") is None
