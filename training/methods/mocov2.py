"""MoCo v2 (Chen, Fan, Girshick & He 2020, arXiv 2003.04297; MoCo: He et al. 2020).

Query encoder + 2-layer MLP head (lightly's ``MoCoProjectionHead``, 2048 hidden, 128
out, no batch norm); the key encoder is a momentum copy, updated before each key
forward as in the reference code (m = 0.999); its keys come from the other view.
The queue is lightly's memory bank inside ``NTXentLoss`` (InfoNCE, T = 0.2), filled
with the keys of every rank (``gather_distributed``); its contents and pointer are
part of the checkpoint.  Under DDP the key batch is shuffled across ranks before the
key forward and unshuffled after ("shuffling BN", the reference's guard against BN
leaking which keys belong to which queries).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import MoCoProjectionHead
from lightly.models.utils import (
    batch_shuffle_distributed,
    batch_unshuffle_distributed,
    update_momentum,
)

from training.config import TrainConfig
from training.methods.base import Context, momentum_copy, stack_terms
from training.methods.ssl import Projected, TwoViewMethod


class MoCoV2(TwoViewMethod):
    name = "mocov2"
    title = "MoCo v2 (Chen et al. 2020, arXiv 2003.04297)"

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        hidden, out = self.head_dims()
        self.student = Projected(self.encoder, MoCoProjectionHead(self.encoder.dim, hidden, out))
        self.key = momentum_copy(self.student)
        assert cfg.temperature is not None
        self.criterion = NTXentLoss(cfg.temperature, memory_bank_size=(cfg.queue_size, out),
                                    gather_distributed=True)

    def parameters_used(self) -> dict[str, Any]:
        hidden, out = self.head_dims()
        return {"temperature": self.cfg.temperature, "queue_size": self.cfg.queue_size,
                "momentum": self.cfg.ema, "head": [self.encoder.dim, hidden, out],
                "shuffle_bn": "across ranks under DDP", **self.view_parameters()}

    def check(self, global_batch: int) -> str | None:
        if self.cfg.batch_size < 2:
            return "MoCo needs a batch of at least 2 per process"
        if self.cfg.queue_size % global_batch:
            return (f"queue size {self.cfg.queue_size} is not a multiple of the global batch "
                    f"{global_batch} (batch size x processes)")
        return None

    @torch.no_grad()
    def keys(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        with ctx.autocast():
            if ctx.world_size > 1:
                x, order = batch_shuffle_distributed(x)
                return batch_unshuffle_distributed(self.key(x).float(), order)
            k: torch.Tensor = self.key(x)
            return k.float()

    def loss(self, forward: Callable[[torch.Tensor], Any], chips: torch.Tensor,
             targets: torch.Tensor, ctx: Context) -> torch.Tensor:
        x0, x1 = self.two_views(chips, ctx)
        assert self.cfg.ema is not None
        update_momentum(self.student, self.key, self.cfg.ema)
        with ctx.autocast():
            q = forward(x0)
        loss: torch.Tensor = self.criterion(q.float(), self.keys(x1, ctx))
        return stack_terms(loss)

    def validate_batch(self, chips: torch.Tensor, targets: torch.Tensor, ctx: Context
                       ) -> torch.Tensor:
        x0, x1 = self.two_views(chips, ctx)
        with ctx.autocast():
            q, k = self.student(x0), self.key(x1)  # no gradient: the queue stays as it is
        loss: torch.Tensor = self.criterion(q.float(), k.float())
        return loss.view(1)

    def eval_networks(self) -> list[torch.nn.Module]:
        return [self.student, self.key]

    def checkpoint_state(self) -> dict[str, Any]:
        bank = self.criterion.memory_bank
        return {"student": self.student.state_dict(), "key": self.key.state_dict(),
                "queue": {"bank": bank.bank.detach().cpu().clone(),
                          "ptr": bank.bank_ptr.detach().cpu().clone()}}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        super().load_checkpoint_state(state)
        self.key.load_state_dict(state["key"])
        bank = self.criterion.memory_bank
        if tuple(state["queue"]["bank"].shape) != tuple(bank.bank.shape):
            raise ValueError(f"checkpoint queue has shape {tuple(state['queue']['bank'].shape)}, "
                             f"this run asks for {tuple(bank.bank.shape)}")
        bank.bank.copy_(state["queue"]["bank"])
        bank.bank_ptr.copy_(state["queue"]["ptr"])

    def exports(self) -> dict[str, tuple[Any, str]]:
        return self.encoder_export("query encoder")
