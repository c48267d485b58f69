"""What a pre-training method supplies to the generic trainer.

A method owns its networks (``student`` is the one the optimiser trains and DDP
wraps; momentum encoders, teachers and queues are its own), its loss on one batch,
what happens after each optimiser step, its validation terms, the part of the
checkpoint that is its own, and the backbone files it exports.  The trainer owns
everything else: data, optimiser and schedule, precision, DDP, checkpoints, signals,
metrics and progress.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from lightly.models.utils import deactivate_requires_grad
from torch import nn

from training.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class Context:
    """What one loss call needs from the trainer."""

    autocast: Callable[[], contextlib.AbstractContextManager[Any]]
    seed: int
    step: int  # global optimiser steps done before this one (negative: validation)
    rank: int
    world_size: int
    total_steps: int  # the schedule's length: --epochs x batches per epoch


class Method(nn.Module, abc.ABC):
    """Base class; see the module docstring for the contract."""

    name: ClassVar[str]
    title: ClassVar[str]
    student: nn.Module

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        self.cfg = cfg

    @property
    def terms(self) -> tuple[str, ...]:
        """Names of the loss terms reported after the total (may be empty)."""
        return ()

    @property
    def val_names(self) -> tuple[str, ...]:
        return ("val_loss",)

    def parameters_used(self) -> dict[str, Any]:
        """The method's own numbers, for the model card."""
        return {}

    @abc.abstractmethod
    def set_views(self, mean: list[float], std: list[float], size: int,
                  channels_last: bool) -> None:
        """Build the device-side views once the normalisation is known."""

    @abc.abstractmethod
    def loss(self, forward: Callable[[torch.Tensor], Any], chips: torch.Tensor,
             targets: torch.Tensor, ctx: Context) -> torch.Tensor:
        """(1 + len(terms),) float32: the total (with its graph) then detached terms."""

    def after_step(self, step: int, ctx: Context) -> None:
        """After optimiser step number ``step`` (1-based, across epochs and resumes)."""

    @abc.abstractmethod
    def validate_batch(self, chips: torch.Tensor, targets: torch.Tensor, ctx: Context
                       ) -> torch.Tensor:
        """(len(val_names),) batch means, on held-out chips, in eval mode, no gradient."""

    @abc.abstractmethod
    def classifier_name(self) -> str:
        """The torchvision classifier module left out of the backbone files."""

    def eval_networks(self) -> list[nn.Module]:
        """Networks switched to eval mode for validation (a teacher always is)."""
        return [self.student]

    def checkpoint_state(self) -> dict[str, Any]:
        """Top-level checkpoint entries; ``student`` is always one of them."""
        return {"student": self.student.state_dict()}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        self.student.load_state_dict(state["student"])

    @abc.abstractmethod
    def exports(self) -> dict[str, tuple[dict[str, torch.Tensor], str]]:
        """File name -> (torchvision state dict, which network); ``backbone.pth`` first."""

    def check(self, global_batch: int) -> str | None:
        """A reason this run cannot work (e.g. no negatives), or None."""
        return None


def stack_terms(total: torch.Tensor, *terms: torch.Tensor) -> torch.Tensor:
    return torch.stack([total.float(), *(t.detach().float() for t in terms)])


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen copy (lightly's ``deactivate_requires_grad``) for an EMA network."""
    twin = copy.deepcopy(module)
    deactivate_requires_grad(twin)
    return twin
