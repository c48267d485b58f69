"""The paper's Table VII protocol: CenterNet at label fractions, mAP@0.5 on test.

Per repeat a seeded 3:1:1 train/validation/test split by image, stratified by each
image's most frequent class; per fraction a nested subset of that repeat's training
images; every initialisation on the same split and seed. Each cell trains with model
selection on validation and reports the selected model's test mAP@0.5 (the table) and
COCO mAP@[.5:.95] (``table_coco.md`` beside it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import InputError
from pipeline.report import RunReport
from training.evaluation.backbones import InitSpec, build_backbone, read_normalisation
from training.evaluation.detection.data import LEVIR_CLASSES, read_annotations
from training.evaluation.detection.fit import DeviceSlices, Schedule, fit_detector, score
from training.evaluation.detection.model import CenterNet, CenterNetConfig
from training.evaluation.detection.slicing import SliceSet, SliceSpec, load_slices
from training.evaluation.protocol import Cell, ProtocolConfig, cell_seed, check_setup, run_protocol
from training.evaluation.results import ResultsFile, files_fingerprint, per_class_json
from training.evaluation.segmodel import spatial_encoder
from training.evaluation.splits import fraction_subset
from training.evaluation.tables import markdown_table, summarise, text_table, write_csv

MODES = ("finetune",)
METRIC = "mAP@0.5"
COCO_METRIC = "mAP@[.5:.95]"
PAPER_FRACTIONS = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0)
_SPLIT_PURPOSE = 2  # distinct from the classification splits' random streams


@dataclasses.dataclass(frozen=True)
class DetectConfig(ProtocolConfig):
    fractions: tuple[float, ...] = PAPER_FRACTIONS
    test_share: float = 0.2
    val_share: float = 0.2
    slices: SliceSpec = dataclasses.field(default_factory=SliceSpec)
    levir_classes: tuple[str, ...] = LEVIR_CLASSES
    net: CenterNetConfig = dataclasses.field(default_factory=CenterNetConfig)
    schedule: Schedule = dataclasses.field(default_factory=Schedule)


def split_images(strata: np.ndarray, seed: int, repeat: int, val_share: float = 0.2,
                 test_share: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) image indices, the shares taken from every stratum.

    A stratum keeps at least one training image; its validation and test parts shrink
    first when it is small.
    """
    if not (val_share > 0 and test_share > 0 and val_share + test_share < 1):
        raise ValueError(f"validation {val_share} and test {test_share} shares must be "
                         "positive and leave a training part")
    parts: tuple[list[np.ndarray], ...] = ([], [], [])
    for stratum in np.unique(strata):
        rng = np.random.default_rng([seed, repeat, int(stratum), _SPLIT_PURPOSE])
        idx = rng.permutation(np.flatnonzero(strata == stratum))
        n_test = min(round(len(idx) * test_share), len(idx) - 1)
        n_val = min(round(len(idx) * val_share), len(idx) - 1 - n_test)
        for part, chunk in zip(parts, (idx[n_test + n_val:], idx[n_test:n_test + n_val],
                                       idx[:n_test]), strict=True):
            part.append(chunk)
    train, val, test = (np.sort(np.concatenate(p)).astype(np.int64) for p in parts)
    return train, val, test


class DetectTask:
    """Slices on the training device; splits by source image."""

    def __init__(self, cfg: DetectConfig, data: SliceSet) -> None:
        self.cfg = cfg
        self.data = data
        self.strata = data.image_strata()
        device = cfg.train.device
        self.device_data = DeviceSlices(
            data.images.to(device), [b.to(device) for b in data.boxes],
            [lab.to(device) for lab in data.labels], len(data.classes))

    def model(self, spec: InitSpec, seed: int) -> CenterNet:
        encoder = spatial_encoder(build_backbone(self.cfg.arch, spec, seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return CenterNet(encoder, len(self.data.classes), read_normalisation(spec.weights),
                             self.cfg.net, probe_size=self.cfg.slices.size)

    def split(self, repeat: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return split_images(self.strata, self.cfg.seed, repeat, self.cfg.val_share,
                            self.cfg.test_share)

    def check(self, repeats: int, where: Path) -> None:
        """Fail before training where a split cannot score (too few annotated images)."""
        for repeat in range(repeats):
            _, val, test = self.split(repeat)
            for name, images in (("validation", val), ("test", test)):
                if not any(len(self.data.labels[i]) for i in self.data.slices_of(images)):
                    raise InputError(where, f"repeat {repeat}: the {name} part has no object "
                                            "(too few annotated images)")

    def evaluate(self, cell: Cell) -> dict[str, Any]:
        cfg = self.cfg
        train_img, val_img, test_img = self.split(cell.repeat)
        train_img = fraction_subset(self.strata, train_img, cell.fraction, cfg.seed,
                                    cell.repeat)
        train, val, test = (self.data.slices_of(x) for x in (train_img, val_img, test_img))
        seed = cell_seed(cfg.seed, cell.repeat, cell.fraction_index)
        net = self.model(cell.init, seed)
        chosen = fit_detector(net, self.device_data, train, val, cfg.train, cfg.net,
                              cfg.schedule, seed)
        result = score(net, self.device_data, test, cfg.train, cfg.net)
        return {"score": result.map50, "map": result.map,
                "per_class": per_class_json(result.per_class50),
                "selected_epoch": chosen.epoch, "val_map50": chosen.val_map50,
                "validation": [[e, round(v, 6)] for e, v in chosen.history],
                "n_train": len(train_img), "n_val": len(val_img), "n_test": len(test_img),
                "n_train_slices": len(train)}


def write_coco_table(out: Path, records: list[dict[str, Any]], inits: list[str],
                     fractions: tuple[float, ...]) -> str:
    """The COCO metric in the same layout: ``table_coco.md`` and ``table_coco.csv``."""
    table = summarise([{**r, "score": r["map"]} for r in records], inits, fractions)
    write_csv(out / "table_coco.csv", table, inits, fractions)
    (out / "table_coco.md").write_text(markdown_table(table, inits, fractions, COCO_METRIC))
    return text_table(table, inits, fractions, COCO_METRIC)


def run_detect(cfg: DetectConfig) -> tuple[str, RunReport]:
    """Run (or resume) every cell and write the outputs to ``cfg.out``."""
    check_setup(cfg.mode, MODES, cfg.inits, cfg.arch, cfg.seed)
    report = RunReport(stage="detect", parameters=cfg.parameters())
    annotations = read_annotations(cfg.data, cfg.levir_classes)
    data = load_slices(annotations, cfg.slices, report)
    fps = cfg.cell_fingerprints(files_fingerprint(cfg.data, annotations.files))
    report.parameters["classes"] = data.classes
    task = DetectTask(cfg, data)
    multiple = task.model(cfg.inits[0], cfg.seed).input_multiple
    if cfg.slices.size % multiple:
        raise ValueError(f"--slice-size {cfg.slices.size} must be a multiple of {multiple} "
                         f"(the stride of {cfg.arch})")
    task.check(cfg.repeats, cfg.data)
    cfg.out.mkdir(parents=True, exist_ok=True)
    table = run_protocol(cfg.out, report, cfg.inits, cfg.fractions, cfg.repeats, fps,
                         task.evaluate, METRIC)
    records = ResultsFile(cfg.out / "results.jsonl").current(fps)
    coco = write_coco_table(cfg.out, records, [i.name for i in cfg.inits], cfg.fractions)
    return f"{table}\n\n{coco}", report
