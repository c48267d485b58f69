"""Optimiser and learning-rate schedule, shared by every method.

``exp`` is GeoKR's schedule (x ``lr_decay`` after every epoch); ``cosine`` is the
self-supervised papers' (linear warm-up, then cosine decay to 0, stepped every
optimiser step).  Both span ``--epochs``: ``--max-steps`` only stops a run early,
so a run resumed with a larger ``--max-steps`` follows the same schedule.
With ``lr_scaling = linear`` the learning rate is given per 256 images of global
batch, as SimCLR, MoCo v2 and BYOL publish it.  LARS (lightly's) leaves biases and
normalisation parameters out of weight decay and of its layer-wise scaling, as
SimCLR and BYOL do.
"""

from __future__ import annotations

import math

import torch
from lightly.models.utils import get_weight_decay_parameters
from lightly.utils.lars import LARS
from torch import nn

from training.config import TrainConfig


def effective_lr(cfg: TrainConfig, global_batch: int) -> float:
    assert cfg.lr is not None
    return cfg.lr * global_batch / 256 if cfg.lr_scaling == "linear" else cfg.lr


def build_optimizer(cfg: TrainConfig, model: nn.Module, global_batch: int
                    ) -> torch.optim.Optimizer:
    lr = effective_lr(cfg, global_batch)
    wd = float(cfg.weight_decay or 0.0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum,
                               weight_decay=wd)
    decay, no_decay = get_weight_decay_parameters([model])
    return LARS([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr,
                momentum=cfg.momentum, weight_decay=wd)


def cosine_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    span = max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, span) / span))


class Schedule:
    """The scheduler and when it steps (``per_step`` or after each epoch)."""

    def __init__(self, cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int
                 ) -> None:
        self.per_step = cfg.schedule == "cosine"
        self.sched: torch.optim.lr_scheduler.LRScheduler
        if self.per_step:
            total = cfg.epochs * steps_per_epoch
            warmup = round((cfg.warmup_epochs or 0.0) * steps_per_epoch)
            self.sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: cosine_factor(s, total, warmup))
        else:
            self.sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)

    def after_step(self) -> None:
        if self.per_step:
            self.sched.step()

    def after_epoch(self) -> None:
        if not self.per_step:
            self.sched.step()
