"""Build torchvision backbones from an initialisation spec, with strict key checking.

Weights are plain torchvision state dicts (``torchvision.models.<arch>()``), with or
without the classifier keys; the classifier is always replaced by a fresh layer for
the downstream classes, so its keys are dropped before the strict check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from pipeline.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CARD = "model_card.json"


@dataclasses.dataclass(frozen=True)
class InitSpec:
    """One initialisation of a comparison: a row of the result table."""

    name: str
    weights: Path | None = None

    @classmethod
    def parse(cls, text: str) -> InitSpec:
        """``random`` or ``NAME=WEIGHTS`` (``NAME=random`` names a random row)."""
        name, sep, path = text.partition("=")
        name = name.strip()
        if not name:
            raise ValueError(f"--init {text!r}: empty name")
        if not sep:
            if name != "random":
                raise ValueError(f"--init {text!r}: use 'random' or NAME=WEIGHTS")
            return cls("random")
        if path.strip() in ("", "random"):
            return cls(name)
        return cls(name, Path(path.strip()))

    def fingerprint(self) -> str:
        """Identifies the weights' content, so a changed file is not mistaken for done work."""
        if self.weights is None:
            return "random"
        digest = hashlib.sha256()
        with open(self.weights, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Normalisation:
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


def classifier_name(model: nn.Module) -> str:
    """The last ``nn.Linear``: torchvision's classifier (``fc``; ``classifier.6`` for VGG).

    The same rule as the trainer's export, so VGG keeps fc6/fc7 in the backbone.
    """
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__}: no linear classifier to replace")
    return linears[-1]


def drop_classifier(model: nn.Module) -> None:
    parent, _, leaf = classifier_name(model).rpartition(".")
    setattr(model.get_submodule(parent), leaf, nn.Identity())


def new_model(arch: str, seed: int) -> nn.Module:
    """A torchvision model with a seeded random initialisation."""
    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(f"unknown torchvision classification architecture {arch!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torchvision.models.get_model(arch, weights=None)


def load_weights(model: nn.Module, path: Path, arch: str) -> None:
    """Load a state dict strictly, except for the classifier that is replaced anyway."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "weights file not found") from None
    except Exception as exc:  # unpickling refused or corrupt file
        raise InputError(path, f"not a loadable state dict ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(path, "expected a plain state dict of tensors")
    prefix = classifier_name(model) + "."
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(prefix)}
    given = {k: v for k, v in state.items() if not k.startswith(prefix)}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = sorted(k for k in set(expected) & set(given) if expected[k].shape != given[k].shape)
    problems = [
        f"{len(keys)} {what} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
        for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                           ("shape mismatches", shapes))
        if keys
    ]
    if problems:
        raise InputError(path, f"does not match torchvision {arch}: " + "; ".join(problems))
    model.load_state_dict(given, strict=False)


def read_card(weights: Path | None) -> dict[str, Any]:
    """The trainer's model_card.json beside the weights, or {} where there is none."""
    card = weights.parent / CARD if weights is not None else None
    if card is None or not card.is_file():
        return {}
    try:
        data = json.loads(card.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(card, f"unreadable model card ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(card, "model card is not a JSON object")
    return data


def read_normalisation(weights: Path | None) -> Normalisation:
    """Mean/std from a run's model card, else ImageNet's (torchvision's convention)."""
    data = read_card(weights)
    card = weights.parent / CARD if weights is not None else Path(CARD)
    block = data.get("normalization") or data.get("normalisation") or data
    if not isinstance(block, dict) or "mean" not in block or "std" not in block:
        return Normalisation()
    mean, std = [float(v) for v in block["mean"]], [float(v) for v in block["std"]]
    if len(mean) != 3 or len(std) != 3:
        raise InputError(card, "normalisation mean/std must have 3 values")
    if max(mean) > 1.5:  # given on the 0-255 scale
        mean, std = [m / 255 for m in mean], [s / 255 for s in std]
    return Normalisation((mean[0], mean[1], mean[2]), (std[0], std[1], std[2]))


def build_backbone(arch: str, spec: InitSpec, seed: int) -> nn.Module:
    """The torchvision model for ``spec`` with its classifier replaced by an identity."""
    model = new_model(arch, seed)
    card_arch = read_card(spec.weights).get("arch")
    if spec.weights is not None and card_arch not in (None, arch):
        raise InputError(spec.weights.parent / CARD,
                         f"weights are {card_arch}, --arch is {arch}")
    if spec.weights is not None:
        load_weights(model, spec.weights, arch)
    drop_classifier(model)
    return model


class Normalise(nn.Module):
    """Maps [0, 1] RGB to the backbone's input statistics, on whatever device runs."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, norm: Normalisation) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(norm.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(norm.std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@torch.no_grad()
def feature_dim(backbone: nn.Module, size: int = 64) -> int:
    was_training = backbone.training
    backbone.eval()
    dim = int(backbone(torch.zeros(1, 3, size, size)).shape[1])
    backbone.train(was_training)
    return dim


class Classifier(nn.Module):
    """Normalisation, backbone and a new linear layer for the downstream classes."""

    def __init__(self, backbone: nn.Module, n_classes: int, norm: Normalisation) -> None:
        super().__init__()
        self.normalise = Normalise(norm)
        self.backbone = backbone
        self.head = nn.Linear(feature_dim(backbone), n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.backbone(self.normalise(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
