"""Scene classification at label fractions (the paper's Table IV protocol)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from pipeline.errors import InputError
from pipeline.report import RunReport
from training.evaluation.backbones import (
    Classifier,
    InitSpec,
    build_backbone,
    read_normalisation,
)
from training.evaluation.confusion import confusion_matrix, mean_class_accuracy, per_class_accuracy
from training.evaluation.finetune import extract_features, fit, predict
from training.evaluation.images import ImageSet, list_image_folder, load_image_folder
from training.evaluation.probes import knn_predict, linear_probe
from training.evaluation.protocol import (
    Cell,
    ProtocolConfig,
    cell_seed,
    check_setup,
    run_protocol,
)
from training.evaluation.results import files_fingerprint, per_class_json
from training.evaluation.splits import fraction_subset, split_problem, stratified_split

MODES = ("finetune", "linear", "knn")
METRIC = "mean class accuracy"


@dataclasses.dataclass(frozen=True)
class ClassifyConfig(ProtocolConfig):
    image_size: int = 224
    max_per_class: int | None = None
    k: int = 20
    probe_l2: float = 1e-3
    workers: int = 4

    def fingerprints(self) -> dict[str, str]:
        items = list_image_folder(self.data, self.max_per_class)
        data = files_fingerprint(self.data, [p for p, _ in items])
        ignore = ("workers",) if self.mode == "finetune" else ("workers", "train")
        return self.cell_fingerprints(data, ignore)


class ClassifyTask:
    """Holds the decoded data (on the training device) and per-init frozen features."""

    def __init__(self, cfg: ClassifyConfig, data: ImageSet) -> None:
        self.cfg = cfg
        self.data = data
        self.images = data.images.to(cfg.train.device)
        self.targets = torch.as_tensor(data.labels, device=cfg.train.device)
        self.n_classes = len(data.classes)
        self._features: dict[str, torch.Tensor] = {}

    def split(self, cell: Cell) -> tuple[np.ndarray, np.ndarray]:
        labels, cfg = self.data.labels, self.cfg
        train, test = stratified_split(labels, cfg.seed, cell.repeat, cfg.test_share)
        return fraction_subset(labels, train, cell.fraction, cfg.seed, cell.repeat), test

    def model(self, spec: InitSpec, seed: int) -> Classifier:
        backbone = build_backbone(self.cfg.arch, spec, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return Classifier(backbone, self.n_classes, read_normalisation(spec.weights))

    def features(self, spec: InitSpec) -> torch.Tensor:
        """One frozen forward pass per init, reused by every repeat and fraction."""
        if spec.name not in self._features:
            model = self.model(spec, self.cfg.seed)
            self._features[spec.name] = extract_features(
                torch.nn.Sequential(model.normalise, model.backbone), self.images, self.cfg.train)
        return self._features[spec.name]

    def predict(self, cell: Cell, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        cfg, labels = self.cfg, self.data.labels
        if cfg.mode == "finetune":
            seed = cell_seed(cfg.seed, cell.repeat, cell.fraction_index)
            model = self.model(cell.init, seed)
            fit(model, self.images, self.targets, train, cfg.train, seed)
            return predict(model, self.images, test, cfg.train)
        feats = self.features(cell.init)
        if cfg.mode == "linear":
            return linear_probe(feats[train], labels[train], feats[test], self.n_classes,
                                l2=cfg.probe_l2)
        return knn_predict(feats[train], labels[train], feats[test], self.n_classes, k=cfg.k)

    def evaluate(self, cell: Cell) -> dict[str, Any]:
        train, test = self.split(cell)
        pred = self.predict(cell, train, test)
        conf = confusion_matrix(self.data.labels[test], pred, self.n_classes)
        return {"score": mean_class_accuracy(conf), "n_train": len(train), "n_test": len(test),
                "per_class": per_class_json(per_class_accuracy(conf))}


def run_classify(cfg: ClassifyConfig) -> tuple[str, RunReport]:
    """Run (or resume) every cell and write the outputs to ``cfg.out``."""
    check_setup(cfg.mode, MODES, cfg.inits, cfg.arch, cfg.seed)
    report = RunReport(stage="classify", parameters=cfg.parameters())
    fps = cfg.fingerprints()
    data = load_image_folder(cfg.data, cfg.image_size, report, cfg.max_per_class, cfg.workers)
    problem = split_problem(data.labels, data.classes, cfg.test_share)
    if problem:
        raise InputError(cfg.data, problem)
    cfg.out.mkdir(parents=True, exist_ok=True)
    report.parameters["classes"] = data.classes
    task = ClassifyTask(cfg, data)
    table = run_protocol(cfg.out, report, cfg.inits, cfg.fractions, cfg.repeats, fps,
                         task.evaluate, METRIC)
    return table, report
