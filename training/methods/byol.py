"""BYOL (Grill et al. 2020, arXiv 2006.07733).

Online network: encoder, projector and predictor (lightly's ``BYOLProjectionHead`` and
``BYOLPredictionHead``, 4096 hidden, 256 out); target network: a momentum copy of
encoder and projector, updated after every optimiser step with
tau = 1 - (1 - tau_base)(cos(pi k / K) + 1) / 2 (lightly's ``cosine_schedule``, from
0.996 to 1 over the run's --epochs).  The loss is the paper's symmetric normalised MSE,
2 - 2 cos(p, z) for each view against the target's projection of the other view,
summed over both orders (lightly's ``NegativeCosineSimilarity`` is -cos).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import nn

from training.config import TrainConfig
from training.methods.base import Context, momentum_copy, stack_terms
from training.methods.ssl import Projected, TwoViewMethod


class Online(nn.Module):
    def __init__(self, projected: Projected, predictor: nn.Module) -> None:
        super().__init__()
        self.projected = projected
        self.predictor = predictor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.predictor(self.projected(x))
        return out


def byol_loss(p0: torch.Tensor, p1: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor,
              neg_cos: nn.Module) -> torch.Tensor:
    """Grill et al. eq. 2 for both orders: (2 - 2cos(p0, z1)) + (2 - 2cos(p1, z0))."""
    loss: torch.Tensor = 4.0 + 2.0 * (neg_cos(p0, z1.detach()) + neg_cos(p1, z0.detach()))
    return loss


class BYOL(TwoViewMethod):
    name = "byol"
    title = "BYOL (Grill et al. 2020, arXiv 2006.07733)"

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        hidden, out = self.head_dims()
        assert cfg.pred_hidden is not None
        projected = Projected(self.encoder, BYOLProjectionHead(self.encoder.dim, hidden, out))
        self.student = Online(projected, BYOLPredictionHead(out, cfg.pred_hidden, out))
        self.target = momentum_copy(projected)
        self.neg_cos = NegativeCosineSimilarity()

    def parameters_used(self) -> dict[str, Any]:
        hidden, out = self.head_dims()
        return {"tau_base": self.cfg.ema, "tau_end": self.cfg.ema_end,
                "tau_schedule": "cosine over --epochs", "projector": [self.encoder.dim, hidden,
                                                                      out],
                "predictor": [out, self.cfg.pred_hidden, out], **self.view_parameters()}

    def pair_loss(self, forward: Callable[[torch.Tensor], Any], x0: torch.Tensor,
                  x1: torch.Tensor, ctx: Context) -> torch.Tensor:
        x = torch.cat([x0, x1])
        with ctx.autocast():
            p = forward(x)
            with torch.no_grad():
                z = self.target(x)
        p0, p1 = p.float().chunk(2)
        z0, z1 = z.float().chunk(2)
        return byol_loss(p0, p1, z0, z1, self.neg_cos)

    def loss(self, forward: Callable[[torch.Tensor], Any], chips: torch.Tensor,
             targets: torch.Tensor, ctx: Context) -> torch.Tensor:
        return stack_terms(self.pair_loss(forward, *self.two_views(chips, ctx), ctx))

    def tau(self, step: int, total: int) -> float:
        assert self.cfg.ema is not None and self.cfg.ema_end is not None
        return cosine_schedule(min(step, total), total, self.cfg.ema, self.cfg.ema_end)

    def after_step(self, step: int, ctx: Context) -> None:
        update_momentum(self.student.projected, self.target, self.tau(step - 1, ctx.total_steps))

    def validate_batch(self, chips: torch.Tensor, targets: torch.Tensor, ctx: Context
                       ) -> torch.Tensor:
        return self.pair_loss(self.student, *self.two_views(chips, ctx), ctx).view(1)

    def eval_networks(self) -> list[nn.Module]:
        return [self.student, self.target]

    def checkpoint_state(self) -> dict[str, Any]:
        return {"student": self.student.state_dict(), "target": self.target.state_dict()}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        super().load_checkpoint_state(state)
        self.target.load_state_dict(state["target"])

    def exports(self) -> dict[str, tuple[Any, str]]:
        return self.encoder_export("online encoder")
