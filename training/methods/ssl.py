"""Shared by the self-supervised baselines: an encoder, two views, a kNN-ready embedding."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from training.config import TrainConfig
from training.methods.base import Context, Method
from training.model import Encoder
from training.views import TwoViews, ViewParams


class Projected(nn.Module):
    """Encoder followed by a projection head: what a momentum copy duplicates."""

    def __init__(self, encoder: Encoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.encoder(x))
        return out


class TwoViewMethod(Method):
    """Labels are never used for the loss; with ``--labels`` they feed the kNN check."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        self.encoder = Encoder(cfg.arch)
        if cfg.init is not None:
            self.encoder.load_init(cfg.init)
        self.views: TwoViews | None = None

    def classifier_name(self) -> str:
        return self.encoder.head_name

    def set_views(self, mean: list[float], std: list[float], size: int,
                  channels_last: bool) -> None:
        self.views = TwoViews(ViewParams.from_config(self.cfg), size, mean, std, channels_last)

    def two_views(self, chips: torch.Tensor, ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.views is not None
        return self.views.train(chips, ctx.seed, ctx.step, ctx.rank)

    def view_parameters(self) -> dict[str, Any]:
        c = self.cfg
        return {"crop_scale": c.crop_scale, "jitter": c.jitter, "jitter_p": c.jitter_p,
                "grayscale_p": c.grayscale_p, "blur_p": c.blur_p, "blur_sigma": c.blur_sigma,
                "solarize_p": c.solarize_p, "rot90_and_flips": True}

    def head_dims(self) -> tuple[int, int]:
        assert self.cfg.proj_hidden is not None and self.cfg.proj_dim is not None
        return self.cfg.proj_hidden or self.encoder.dim, self.cfg.proj_dim

    @torch.no_grad()
    def embed(self, chips: torch.Tensor) -> torch.Tensor:
        assert self.views is not None
        return self.encoder(self.views.eval(chips)).float()

    def encoder_export(self, which: str) -> dict[str, tuple[Any, str]]:
        return {"backbone.pth": (self.encoder.backbone_state_dict(), which)}
