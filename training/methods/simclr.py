"""SimCLR (Chen, Kornblith, Norouzi & Hinton 2020, arXiv 2002.05709).

Both views go through the encoder and a 2-layer MLP projector (lightly's
``SimCLRProjectionHead``, hidden width = the encoder's feature width, 128 out, with
batch norm as in the reference code) in one forward pass of 2N images; lightly's
``NTXentLoss`` with ``gather_distributed`` takes the negatives from every rank's
batch, as the reference does on TPU pods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead

from training.config import TrainConfig
from training.methods.base import Context, stack_terms
from training.methods.ssl import Projected, TwoViewMethod


class SimCLR(TwoViewMethod):
    name = "simclr"
    title = "SimCLR (Chen et al. 2020, arXiv 2002.05709)"

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        hidden, out = self.head_dims()
        self.student = Projected(self.encoder, SimCLRProjectionHead(self.encoder.dim, hidden,
                                                                    out))
        assert cfg.temperature is not None
        self.criterion = NTXentLoss(cfg.temperature, gather_distributed=True)
        # Validation batches differ in number and size across ranks: no gathering there.
        self.val_criterion = NTXentLoss(cfg.temperature)

    def parameters_used(self) -> dict[str, Any]:
        hidden, out = self.head_dims()
        return {"temperature": self.cfg.temperature, "projector": [self.encoder.dim, hidden, out],
                **self.view_parameters()}

    def check(self, global_batch: int) -> str | None:
        if self.cfg.batch_size < 2:
            return "SimCLR needs a batch of at least 2 per process to form negatives"
        return None

    def pair_loss(self, forward: Callable[[torch.Tensor], Any], x0: torch.Tensor,
                  x1: torch.Tensor, ctx: Context, criterion: NTXentLoss) -> torch.Tensor:
        with ctx.autocast():
            z = forward(torch.cat([x0, x1]))
        z0, z1 = z.float().chunk(2)
        loss: torch.Tensor = criterion(z0, z1)
        return loss

    def loss(self, forward: Callable[[torch.Tensor], Any], chips: torch.Tensor,
             targets: torch.Tensor, ctx: Context) -> torch.Tensor:
        x0, x1 = self.two_views(chips, ctx)
        return stack_terms(self.pair_loss(forward, x0, x1, ctx, self.criterion))

    def validate_batch(self, chips: torch.Tensor, targets: torch.Tensor, ctx: Context
                       ) -> torch.Tensor:
        x0, x1 = self.two_views(chips, ctx)
        return self.pair_loss(self.student, x0, x1, ctx, self.val_criterion).view(1)

    def exports(self) -> dict[str, tuple[Any, str]]:
        return self.encoder_export("encoder")
