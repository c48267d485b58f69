"""The paper's segmentation network: pre-trained encoder, then ×2 bilinear stages."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from training.evaluation.backbones import Normalisation, Normalise


def spatial_encoder(model: nn.Module) -> nn.Module:
    """The backbone up to its last feature map (no pooling, no classifier)."""
    if hasattr(model, "layer4"):  # ResNet family
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        return nn.Sequential(*(getattr(model, n) for n in names))
    features = getattr(model, "features", None)
    if isinstance(features, nn.Module):
        return features
    raise ValueError(f"{type(model).__name__}: no spatial encoder (layer4 or features)")


def up_stage(c_in: int, c_out: int, relu: bool = True) -> nn.Sequential:
    """Bilinear ×2, then convolution and batch normalisation."""
    layers: list[nn.Module] = [
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SegNet(nn.Module):
    """Encoder → log2(stride) up-sampling stages halving the channels → 1×1 to classes."""

    def __init__(self, encoder: nn.Module, n_classes: int, norm: Normalisation,
                 probe_size: int = 64) -> None:
        super().__init__()
        self.normalise = Normalise(norm)
        self.encoder = encoder
        channels, stride = self._probe(probe_size)
        stages = []
        for _ in range(round(math.log2(stride))):
            c_out = max(channels // 2, 32)
            stages.append(up_stage(channels, c_out))
            channels = c_out
        self.decoder = nn.Sequential(*stages)
        self.head = nn.Conv2d(channels, n_classes, 1)

    @torch.no_grad()
    def _probe(self, size: int) -> tuple[int, int]:
        was_training = self.encoder.training
        self.encoder.eval()
        out = self.encoder(torch.zeros(1, 3, size, size))
        self.encoder.train(was_training)
        return int(out.shape[1]), size // int(out.shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.decoder(self.encoder(self.normalise(x))))
        if y.shape[-2:] != x.shape[-2:]:  # input not a multiple of the stride
            y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return y
