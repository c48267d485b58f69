"""Training data: scene-wise split, batched reads, weighted DDP sampler (the store side:
test_store_reader.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from geokr_testkit.stores import build_store
from pipeline.store.chips import ChipStore
from pipeline.store.labels import LabelSet
from pipeline.store.reader import ChipReader
from training.config import TrainConfig
from training.data import (
    ChipBatches,
    WeightedBatchSampler,
    channel_stats,
    eval_batches,
    keep_batch,
    split_chips,
)
from training.distributed import DistEnv
from training.loop import build_data, norm_stats


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ChipStore:
    return build_store(tmp_path_factory.mktemp("data") / "s.zarr", n_scenes=3,
                       chips_per_scene=12, chip_size=16)


def test_scene_split_never_shares_a_scene(store: ChipStore) -> None:
    labels = LabelSet.open(store, "test").view(store.n_chips)
    scene = store.read("chip_scene")
    split = split_chips(scene, store.read("chip_window"), labels.valid, 0.34, seed=3)
    assert split.mode == "scene" and len(split.val_scenes) == 1
    assert set(scene[split.train]).isdisjoint(scene[split.val])
    assert sorted([*split.train, *split.val]) == list(np.flatnonzero(labels.valid))
    again = split_chips(scene, store.read("chip_window"), labels.valid, 0.34, seed=3)
    assert np.array_equal(again.val, split.val)


def test_single_scene_falls_back_to_spatial_block(tmp_path: Path) -> None:
    s = build_store(tmp_path / "one.zarr", n_scenes=1, chips_per_scene=36, chip_size=8,
                    invalid_every=0)
    window = s.read("chip_window")
    split = split_chips(s.read("chip_scene"), window, np.ones(36, bool), 0.2, seed=0)
    assert split.mode == "spatial-block" and "one scene only" in split.note
    train_bottom = (window[split.train, 0] + window[split.train, 2]).max()
    assert train_bottom <= window[split.val, 0].min()  # no overlap across the cut
    off = split_chips(s.read("chip_scene"), window, np.ones(36, bool), 0.0, seed=0)
    assert off.mode == "none" and len(off.val) == 0 and len(off.train) == 36


def test_loader_batches_with_workers_equal_in_process(store: ChipStore) -> None:
    labels = LabelSet.open(store, "test").view(store.n_chips)
    ds = ChipBatches(ChipReader(store.path), labels.proportions)
    batches = [[1, 5, 9], [33, 2, 2]]
    a = list(DataLoader(ds, batch_sampler=batches, collate_fn=keep_batch, num_workers=0))
    b = list(DataLoader(ds, batch_sampler=batches, collate_fn=keep_batch, num_workers=2))
    for (ca, pa), (cb, pb) in zip(a, b, strict=True):
        assert ca.dtype == torch.uint8 and ca.shape == (3, 3, 16, 16)
        assert torch.equal(ca, cb) and torch.equal(pa, pb)
    assert torch.equal(a[1][1][0], torch.from_numpy(labels.proportions[33]))


def test_sampler_follows_weights() -> None:
    idx = np.array([10, 20, 30])
    sampler = WeightedBatchSampler(idx, np.array([1.0, 0.0, 3.0]), batch_size=100,
                                   epoch_size=4000)
    drawn = np.concatenate([np.array(b) for b in sampler])
    assert set(drawn) == {10, 30}
    assert abs((drawn == 30).mean() - 0.75) < 0.03


def test_sampler_reshuffles_and_shards_by_rank() -> None:
    idx = np.arange(100, 164)
    w = np.ones(64)
    full = WeightedBatchSampler(idx, w, batch_size=4, seed=5)
    ranks = [WeightedBatchSampler(idx, w, batch_size=2, num_replicas=2, rank=r, seed=5)
             for r in (0, 1)]
    assert len(full) == 16 and all(len(r) == 16 for r in ranks)
    merged = np.stack([np.concatenate(list(r)) for r in ranks], 1).ravel()
    np.testing.assert_array_equal(merged, np.concatenate(list(full)))
    epoch0 = list(full)
    full.set_epoch(1)
    assert list(full) != epoch0
    full.set_epoch(0)
    assert list(full) == epoch0


def test_sampler_position_skips_done_batches() -> None:
    sampler = WeightedBatchSampler(np.arange(40), np.ones(40), batch_size=4, seed=1)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.set_position(2, 7)
    assert len(sampler) == 3 and list(sampler) == whole[7:]


def test_sampler_needs_one_full_batch() -> None:
    with pytest.raises(ValueError, match="do not fill one batch of 8 on 2"):
        WeightedBatchSampler(np.arange(10), np.ones(10), batch_size=8, num_replicas=2)


def test_eval_batches_cover_val_once_across_ranks() -> None:
    val = np.arange(11)
    got = [i for r in range(3) for b in eval_batches(val, 2, 3, r) for i in b]
    assert sorted(got) == list(range(11))


def test_channel_stats(store: ChipStore) -> None:
    idx = np.arange(36)
    mean, std = channel_stats(ChipReader(store.path), idx, 100, seed=0)
    x = store.read("chips").astype(np.float64) / 255
    np.testing.assert_allclose(mean, x.mean((0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, x.std((0, 2, 3)), rtol=1e-5)


def test_trainer_opens_the_store_once(store: ChipStore, tmp_path: Path,
                                      store_opens: list[Path]) -> None:
    """From the config to the first batch and the normalisation statistics: one open."""
    cfg = TrainConfig(store=store.path, out=tmp_path / "o", labels="test", batch_size=4,
                      workers=0, device="cpu", norm="store")
    data = build_data(cfg, DistEnv(), torch.device("cpu"))
    next(iter(data.train_loader))
    norm_stats(cfg, data)
    assert store_opens == [store.path]
