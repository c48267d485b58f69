"""The mean teacher: a copy of the student, moved towards it every ``interval`` global steps.

BatchNorm: the teacher always runs in eval mode, so its forward pass never
changes its running statistics; at each update its floating-point buffers
(running mean and variance) follow the same EMA as the weights, and integer
buffers (``num_batches_tracked``) are copied.  The teacher is thus one
consistent averaged network, and it is what users take downstream.
"""

from __future__ import annotations

import copy
from typing import Generic, TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


class MeanTeacher(Generic[M]):
    """theta_t <- alpha theta_t + (1 - alpha) theta_s whenever ``step % interval == 0``."""

    def __init__(self, student: M, alpha: float, interval: int) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        if interval < 1:
            raise ValueError(f"teacher interval must be >= 1, got {interval}")
        self.module: M = copy.deepcopy(student)
        self.module.requires_grad_(False)
        self.module.eval()
        self.alpha = alpha
        self.interval = interval

    def due(self, step: int) -> bool:
        """``step`` counts optimiser steps done so far, across epochs and resumes."""
        return step > 0 and step % self.interval == 0

    def after_step(self, student: nn.Module, step: int) -> bool:
        if self.due(step):
            self.update(student)
            return True
        return False

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        a = self.alpha
        t_params = dict(self.module.named_parameters())
        for name, p in student.named_parameters():
            t_params[name].mul_(a).add_(p.detach(), alpha=1.0 - a)
        t_bufs = dict(self.module.named_buffers())
        for name, b in student.named_buffers():
            if b.is_floating_point():
                t_bufs[name].mul_(a).add_(b.detach(), alpha=1.0 - a)
            else:
                t_bufs[name].copy_(b)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.module(x)
        return out
