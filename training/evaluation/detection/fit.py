"""Train a CenterNet on slices in device memory; keep the checkpoint best on validation.

Targets are encoded per batch on the training device after the random flips and
rotations, so every view of a slice gets exact targets. Validation mAP@0.5 is measured
every ``val_every`` epochs and after the last; the best checkpoint (the earlier on a
tie) is restored at the end. Without any validation object, the last epoch is kept.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from tqdm import tqdm

from training.evaluation.detection.average_precision import DetectionScore, mean_average_precision
from training.evaluation.detection.box_dihedral import random_box_dihedral
from training.evaluation.detection.loss import centernet_loss
from training.evaluation.detection.model import CenterNet, CenterNetConfig
from training.evaluation.detection.targets import Detections, decode, encode
from training.evaluation.finetune import FinetuneConfig, autocast, batch_indices, to_input

OPTIMIZERS = ("adam", "sgd")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Optimiser and step decay; the paper decays by 0.95 every 200 epochs."""

    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_step: int = 200
    lr_decay: float = 0.95
    val_every: int = 10
    augment: bool = True


@dataclasses.dataclass(frozen=True)
class DeviceSlices:
    """Slices and their objects on the training device."""

    images: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    n_classes: int


@dataclasses.dataclass(frozen=True)
class Selection:
    epoch: int
    val_map50: float
    history: list[tuple[int, float]]


def make_optimizer(model: torch.nn.Module, lr: float, schedule: Schedule, fused: bool
                   ) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if schedule.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=schedule.weight_decay, fused=fused)
    if schedule.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=schedule.momentum,
                               weight_decay=schedule.weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {schedule.optimizer!r}")


@torch.no_grad()
def detect(model: CenterNet, images: torch.Tensor, idx: np.ndarray, cfg: FinetuneConfig,
           net: CenterNetConfig) -> list[Detections]:
    """Decoded detections of ``images[idx]``, on the CPU."""
    model.eval()
    out: list[Detections] = []
    for part in torch.as_tensor(idx, dtype=torch.long).split(cfg.eval_batch_size):
        with autocast(cfg):
            heads = model(to_input(images[part.to(images.device)], cfg))
        for d in decode(heads.heatmap, heads.size, heads.offset, net.stride, net.top_k,
                        net.peak_kernel):
            out.append(Detections(d.boxes.cpu(), d.scores.cpu(), d.labels.cpu()))
    return out


def score(model: CenterNet, data: DeviceSlices, idx: np.ndarray, cfg: FinetuneConfig,
          net: CenterNetConfig, coco: bool = True) -> DetectionScore:
    truth = [(data.boxes[i], data.labels[i]) for i in idx]
    return mean_average_precision(detect(model, data.images, idx, cfg, net), truth,
                                  data.n_classes, max_dets=net.top_k, coco=coco)


def train_step(model: CenterNet, data: DeviceSlices, sel: list[int], cfg: FinetuneConfig,
               net: CenterNetConfig, schedule: Schedule, gen: torch.Generator) -> torch.Tensor:
    index = torch.as_tensor(sel, device=data.images.device)
    images, boxes = data.images[index], [data.boxes[i] for i in sel]
    if schedule.augment:
        images, boxes = random_box_dihedral(images, boxes, gen)
    with autocast(cfg):
        heads = model(to_input(images, cfg))
    targets = encode(boxes, [data.labels[i] for i in sel], data.n_classes,
                     (heads.heatmap.shape[-2], heads.heatmap.shape[-1]), net.stride,
                     net.min_overlap)
    return centernet_loss(heads, targets, net)


def fit_detector(model: CenterNet, data: DeviceSlices, train_idx: np.ndarray,
                 val_idx: np.ndarray, cfg: FinetuneConfig, net: CenterNetConfig,
                 schedule: Schedule, seed: int) -> Selection:
    """Train, validating at fixed intervals; ``model`` ends with the selected weights."""
    model.to(cfg.device)
    if cfg.cuda:
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg.lr, schedule, fused=cfg.cuda)
    decay = torch.optim.lr_scheduler.StepLR(opt, step_size=schedule.lr_step,
                                            gamma=schedule.lr_decay)
    gen = torch.Generator().manual_seed(seed)
    history: list[tuple[int, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    for epoch in tqdm(range(1, cfg.epochs + 1), desc="epochs", leave=False, unit="ep"):
        model.train()
        for b in batch_indices(len(train_idx), cfg.batch_size, gen):
            loss = train_step(model, data, train_idx[b.numpy()].tolist(), cfg, net, schedule,
                              gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        decay.step()
        if epoch % schedule.val_every and epoch != cfg.epochs:
            continue
        val = score(model, data, val_idx, cfg, net, coco=False).map50
        history.append((epoch, val))
        key = val if math.isfinite(val) else -math.inf
        if best is None or key > best[0] or key == -math.inf:
            best = (key, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
    assert best is not None
    model.load_state_dict(best[2])
    return Selection(best[1], best[0] if math.isfinite(best[0]) else math.nan, history)
