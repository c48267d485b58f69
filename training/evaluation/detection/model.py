"""CenterNet on a torchvision backbone: up-sampling neck to stride 4, three heads.

The neck follows CenterNet's ResNet variant: transposed-convolution ×2 stages (4×4
kernels, batch norm, ReLU) from the backbone's last feature map down to the output
stride; each head is a 3×3 convolution, ReLU and a 1×1 convolution.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import torch
from torch import nn

from training.evaluation.backbones import Normalisation, Normalise


@dataclasses.dataclass(frozen=True)
class CenterNetConfig:
    """The detector's hyper-parameters, CenterNet's defaults."""

    stride: int = 4
    neck_channels: int = 256
    head_channels: int = 64
    heatmap_prior: float = 0.1  # initial peak probability (heatmap bias −2.19)
    min_overlap: float = 0.7  # Gaussian radius rule
    focal_alpha: float = 2.0
    focal_beta: float = 4.0
    size_weight: float = 0.1
    offset_weight: float = 1.0
    top_k: int = 100
    peak_kernel: int = 3

    def __post_init__(self) -> None:
        if self.peak_kernel % 2 == 0:
            raise ValueError(f"peak kernel {self.peak_kernel} must be odd")
        if not 0 < self.heatmap_prior < 1:
            raise ValueError(f"heatmap prior {self.heatmap_prior} must be in (0, 1)")


class Heads(NamedTuple):
    heatmap: torch.Tensor  # (B, C, H, W) logits
    size: torch.Tensor  # (B, 2, H, W) width, height in output cells
    offset: torch.Tensor  # (B, 2, H, W)


def head(c_in: int, c_mid: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_mid, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(c_mid, c_out, 1))


def up_stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


@torch.no_grad()
def encoder_geometry(encoder: nn.Module, size: int = 64) -> tuple[int, int]:
    """(channels, stride) of the encoder's output."""
    was_training = encoder.training
    encoder.eval()
    out = encoder(torch.zeros(1, 3, size, size))
    encoder.train(was_training)
    return int(out.shape[1]), size // int(out.shape[-1])


class CenterNet(nn.Module):
    def __init__(self, encoder: nn.Module, n_classes: int, norm: Normalisation,
                 cfg: CenterNetConfig = CenterNetConfig(), probe_size: int = 64) -> None:
        super().__init__()
        self.normalise = Normalise(norm)
        self.encoder = encoder
        channels, stride = encoder_geometry(encoder, probe_size)
        if stride % cfg.stride or stride < cfg.stride:
            raise ValueError(f"backbone stride {stride} is not a multiple of {cfg.stride}")
        self.input_multiple = stride
        stages = []
        for _ in range(round(math.log2(stride // cfg.stride))):
            stages.append(up_stage(channels, cfg.neck_channels))
            channels = cfg.neck_channels
        self.neck = nn.Sequential(*stages)
        self.heatmap = head(channels, cfg.head_channels, n_classes)
        self.size = head(channels, cfg.head_channels, 2)
        self.offset = head(channels, cfg.head_channels, 2)
        last = self.heatmap[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.constant_(last.bias, -math.log((1 - cfg.heatmap_prior) / cfg.heatmap_prior))

    def forward(self, x: torch.Tensor) -> Heads:
        features = self.neck(self.encoder(self.normalise(x)))
        return Heads(self.heatmap(features), self.size(features), self.offset(features))
