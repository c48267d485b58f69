"""Semantic segmentation / cloud detection at label fractions (Tables V–IX layout)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from pipeline.errors import InputError
from pipeline.report import RunReport
from training.evaluation.backbones import InitSpec, build_backbone, read_normalisation
from training.evaluation.confusion import confusion_matrix, mean_iou, per_class_iou
from training.evaluation.finetune import fit, predict
from training.evaluation.protocol import (
    Cell,
    ProtocolConfig,
    cell_seed,
    check_setup,
    run_protocol,
)
from training.evaluation.results import files_fingerprint, per_class_json
from training.evaluation.segdata import IGNORE, NpzSpec, TileSet, load_segmentation
from training.evaluation.segmodel import SegNet, spatial_encoder
from training.evaluation.splits import fraction_subset, min_class_size, stratified_split

MODES = ("finetune", "frozen")
METRIC = "mIoU"


@dataclasses.dataclass(frozen=True)
class SegmentConfig(ProtocolConfig):
    tile_size: int = 128
    max_tiles_per_file: int | None = None
    npz: NpzSpec = dataclasses.field(default_factory=NpzSpec)

    def fingerprints(self) -> dict[str, str]:
        root = self.data if self.data.is_dir() else self.data.parent
        files = ([p for p in sorted(root.rglob("*")) if p.is_file()] if self.data.is_dir()
                 else [self.data])
        return self.cell_fingerprints(files_fingerprint(root, files))


class SegmentTask:
    """Tiles on the training device; splits stratified by each tile's dominant class."""

    def __init__(self, cfg: SegmentConfig, data: TileSet) -> None:
        self.cfg = cfg
        self.data = data
        self.strata = data.dominant()
        self.images = data.images.to(cfg.train.device)
        self.masks = data.masks.to(cfg.train.device)

    def model(self, spec: InitSpec, seed: int) -> SegNet:
        encoder = spatial_encoder(build_backbone(self.cfg.arch, spec, seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = SegNet(encoder, len(self.data.classes), read_normalisation(spec.weights),
                         probe_size=self.cfg.tile_size)
        if self.cfg.mode == "frozen":
            net.encoder.requires_grad_(False)
        return net

    def evaluate(self, cell: Cell) -> dict[str, Any]:
        cfg = self.cfg
        train, test = stratified_split(self.strata, cfg.seed, cell.repeat, cfg.test_share)
        train = fraction_subset(self.strata, train, cell.fraction, cfg.seed, cell.repeat)
        seed = cell_seed(cfg.seed, cell.repeat, cell.fraction_index)
        net = self.model(cell.init, seed)
        fit(net, self.images, self.masks, train, cfg.train, seed,
            frozen=net.encoder if cfg.mode == "frozen" else None, ignore_index=IGNORE)
        pred = predict(net, self.images, test, cfg.train)
        conf = confusion_matrix(self.data.masks[test].numpy(), pred, len(self.data.classes),
                                ignore_index=IGNORE)
        return {"score": mean_iou(conf), "n_train": len(train), "n_test": len(test),
                "per_class": per_class_json(per_class_iou(conf))}


def run_segment(cfg: SegmentConfig) -> tuple[str, RunReport]:
    """Run (or resume) every cell and write the outputs to ``cfg.out``."""
    check_setup(cfg.mode, MODES, cfg.inits, cfg.arch, cfg.seed)
    report = RunReport(stage="segment", parameters=cfg.parameters())
    fps = cfg.fingerprints()
    data = load_segmentation(cfg.data, cfg.tile_size, report, cfg.npz, cfg.max_tiles_per_file)
    report.parameters["classes"] = data.classes
    pixels = np.bincount(data.masks.flatten().numpy(), minlength=256)[: len(data.classes)]
    report.parameters["class_pixels"] = pixels.tolist()
    problem = segmentation_problem(pixels, data.dominant(), data.classes, cfg.test_share)
    if problem:
        raise InputError(cfg.data, problem)
    cfg.out.mkdir(parents=True, exist_ok=True)
    task = SegmentTask(cfg, data)
    table = run_protocol(cfg.out, report, cfg.inits, cfg.fractions, cfg.repeats, fps,
                         task.evaluate, METRIC)
    return table, report


def segmentation_problem(
    class_pixels: np.ndarray, strata: np.ndarray, names: list[str], test_share: float
) -> str | None:
    """Why these tiles cannot be compared: fewer than two classes, or no test tile."""
    present = np.flatnonzero(class_pixels).tolist()
    if len(present) < 2:
        found = ", ".join(names[i] for i in present) or "none"
        return f"masks hold {len(present)} class(es) ({found}); mIoU needs at least 2"
    need = min_class_size(test_share)
    if np.bincount(strata).max(initial=0) < need:
        return (f"{len(strata)} tiles, none of their dominant classes has the {need} tiles "
                f"a {1 - test_share:.0%}/{test_share:.0%} train/test split needs "
                "(smaller --tile-size, or more data)")
    return None
