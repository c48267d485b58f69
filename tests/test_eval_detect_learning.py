"""The detector learns: a few CPU epochs take mAP@0.5 from about 0 to far above it.

The data are real UC Merced scenes (shared data) with generated objects pasted at known
boxes. A from-scratch ResNet18 needs far more steps than a unit test affords to
generalise to held-out images, so the score is taken on the training slices: it checks
that targets, loss, optimiser, decoding and metric agree with one another.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.report import RunReport
from training.evaluation.backbones import InitSpec
from training.evaluation.detection.data import read_annotations
from training.evaluation.detection.fit import Schedule, fit_detector, score
from training.evaluation.detection.model import CenterNetConfig
from training.evaluation.detection.run import DetectConfig, DetectTask
from training.evaluation.detection.slicing import SliceSpec, load_slices
from training.evaluation.detection.synthetic import make_synthetic
from training.evaluation.finetune import FinetuneConfig

EPOCHS = 20


def test_a_few_epochs_lift_map_far_above_the_untrained_detector(shared_data: Path,
                                                                tmp_path: Path) -> None:
    root = make_synthetic(shared_data / "ucmerced", tmp_path / "set", n_images=16,
                          image_size=64, objects=(2, 4), size_range=(14, 26), seed=0)
    spec = SliceSpec(size=64)
    cfg = DetectConfig(
        data=root, out=tmp_path / "out", arch="resnet18", inits=(InitSpec("random"),),
        train=FinetuneConfig(epochs=EPOCHS, lr=2e-3, batch_size=8), slices=spec,
        net=CenterNetConfig(neck_channels=32, head_channels=32),
        schedule=Schedule(augment=False, val_every=EPOCHS))
    task = DetectTask(cfg, load_slices(read_annotations(root), spec, RunReport("t", {})))
    slices = np.arange(16)
    with torch.random.fork_rng(devices=[]):
        net = task.model(InitSpec("random"), seed=0)
        before = score(net, task.device_data, slices, cfg.train, cfg.net).map50
        chosen = fit_detector(net, task.device_data, slices, slices, cfg.train, cfg.net,
                              cfg.schedule, seed=0)
        after = score(net, task.device_data, slices, cfg.train, cfg.net).map50
    assert before < 0.05
    assert after > 0.5
    assert chosen.epoch == EPOCHS and chosen.val_map50 == after
