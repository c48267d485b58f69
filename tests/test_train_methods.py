"""Each method's loss glue against a hand computation; two-view augmentation; kNN; targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geokr_testkit.stores import build_store, write_label_set
from pipeline.store.reader import open_for_training
from training.config import TrainConfig
from training.distributed import DistEnv
from training.knn import knn_accuracy
from training.loop import build_data
from training.methods.byol import BYOL, byol_loss
from training.methods.mocov2 import MoCoV2
from training.methods.simclr import SimCLR
from training.views import TwoViews, ViewParams

SMALL = {"arch": "resnet18", "proj_hidden": 16, "proj_dim": 8, "pred_hidden": 16,
         "queue_size": 6}


def config(method: str, **kw: object) -> TrainConfig:
    return TrainConfig(store=Path("s"), out=Path("o"), method=method,
                       **{**SMALL, **kw})  # type: ignore[arg-type]


def test_ntxent_matches_hand_computation() -> None:
    torch.manual_seed(0)
    z0, z1 = torch.randn(4, 8), torch.randn(4, 8)
    t = 0.1
    got = SimCLR(config("simclr", temperature=t)).criterion(z0, z1)
    z = F.normalize(torch.cat([z0, z1]), dim=1)
    sim = z @ z.T / t
    losses = []
    for i in range(8):
        pos = (i + 4) % 8
        others = [k for k in range(8) if k != i]
        losses.append(-(sim[i, pos] - torch.logsumexp(sim[i, others], 0)))
    torch.testing.assert_close(got, torch.stack(losses).mean())


def test_moco_logits_with_known_queue_and_enqueue() -> None:
    torch.manual_seed(0)
    method = MoCoV2(config("mocov2", temperature=0.2))
    bank = method.criterion.memory_bank
    queue = F.normalize(torch.randn(6, 8), dim=1)
    bank.bank.copy_(queue)
    bank.bank_ptr.zero_()
    q = torch.randn(3, 8, requires_grad=True)  # as in training: the queue is updated
    k = torch.randn(3, 8)
    got = method.criterion(q, k)
    qn, kn = F.normalize(q.detach(), dim=1), F.normalize(k, dim=1)
    logits = torch.cat([(qn * kn).sum(1, keepdim=True), qn @ queue.T], 1) / 0.2
    torch.testing.assert_close(got, F.cross_entropy(logits, torch.zeros(3, dtype=torch.long)))
    torch.testing.assert_close(bank.bank[:3], kn)  # keys enqueued after use
    torch.testing.assert_close(bank.bank[3:], queue[3:])
    assert int(bank.bank_ptr) == 3
    with torch.no_grad():  # validation: the queue is left alone
        method.criterion(q, k)
    assert int(bank.bank_ptr) == 3


def test_byol_loss_is_symmetric_normalised_mse() -> None:
    torch.manual_seed(0)
    p0, p1, z0, z1 = (torch.randn(5, 8) for _ in range(4))
    method = BYOL(config("byol"))

    def nmse(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return ((F.normalize(p, dim=1) - F.normalize(z, dim=1)) ** 2).sum(1).mean()

    torch.testing.assert_close(byol_loss(p0, p1, z0, z1, method.neg_cos),
                               nmse(p0, z1) + nmse(p1, z0))


def test_byol_target_momentum_follows_cosine_to_one() -> None:
    method = BYOL(config("byol", ema=0.996, ema_end=1.0))
    assert method.tau(0, 100) == pytest.approx(0.996)
    assert method.tau(99, 100) == pytest.approx(1.0)
    assert 0.996 < method.tau(50, 100) < 1.0


def test_moco_and_simclr_refuse_batches_without_negatives() -> None:
    assert "at least 2" in str(SimCLR(config("simclr", batch_size=1)).check(1))
    moco = MoCoV2(config("mocov2", batch_size=4))
    assert "not a multiple of the global batch 4" in str(moco.check(4))
    assert moco.check(2) is None and MoCoV2(config("mocov2", queue_size=8)).check(8) is None


def test_two_views_are_seeded_and_leave_the_global_rng_alone() -> None:
    chips = torch.randint(0, 255, (4, 3, 16, 16), dtype=torch.uint8)
    views = TwoViews(ViewParams(), 16, [0.5] * 3, [0.25] * 3)
    torch.manual_seed(7)
    before = torch.get_rng_state()
    a0, a1 = views.train(chips, seed=1, step=3, rank=0)
    assert torch.equal(torch.get_rng_state(), before)
    b0, b1 = views.train(chips, seed=1, step=3, rank=0)
    c0, _ = views.train(chips, seed=1, step=4, rank=0)
    d0, _ = views.train(chips, seed=1, step=3, rank=1)
    assert a0.shape == (4, 3, 16, 16) and torch.equal(a0, b0) and torch.equal(a1, b1)
    assert not torch.equal(a0, a1) and not torch.equal(a0, c0) and not torch.equal(a0, d0)


def test_weighted_knn_by_hand() -> None:
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 1])
    query = torch.tensor([[1.0, 0.05], [0.05, 1.0], [1.0, 0.0]])
    assert knn_accuracy(bank, labels, query, torch.tensor([0, 1, 1]), k=2, t=0.1) == (
        pytest.approx(2 / 3))


def test_classification_target_is_the_stored_dominant_class(tmp_path: Path) -> None:
    store = build_store(tmp_path / "s.zarr", n_scenes=2, chips_per_scene=12, chip_size=16)
    props = np.full((24, 3), [0.5, 0.3, 0.2], np.float32)
    dominant = np.arange(24) % 3  # deliberately not the proportions' argmax
    write_label_set(store, "dom", props, np.ones(24, bool), dominant=dominant)
    labels = open_for_training(store.path, lambda names: "dom").labels
    assert labels is not None
    assert np.array_equal(labels.dominant, dominant)
    cfg = TrainConfig(store=store.path, out=tmp_path / "o", method="classification",
                      labels="dom", batch_size=4, workers=0, val_fraction=0.0, device="cpu")
    data = build_data(cfg, DistEnv(), torch.device("cpu"))
    idx = next(iter(data.sampler))
    _, targets = next(iter(data.train_loader))
    assert targets.dtype == torch.int64 and targets.tolist() == dominant[idx].tolist()
    assert data.meta["sampling"].startswith("class-balanced")
    ssl = build_data(TrainConfig(store=store.path, out=tmp_path / "o", method="simclr",
                                 batch_size=4, workers=0, device="cpu"),
                     DistEnv(), torch.device("cpu"))
    assert ssl.labels is None and ssl.meta["sampling"] == "uniform"

