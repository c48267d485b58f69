"""Backbone weights: strict key checking, classifier dropped, model-card normalisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision

from pipeline.errors import InputError
from training.evaluation.backbones import (
    IMAGENET_MEAN,
    InitSpec,
    build_backbone,
    read_normalisation,
)


def _export(path: Path, arch: str = "resnet18", keep_fc: bool = False) -> dict[str, torch.Tensor]:
    """A state dict as the trainer exports it (teacher_backbone.pth: no classifier keys)."""
    torch.manual_seed(7)
    state = torchvision.models.get_model(arch, weights=None).state_dict()
    if not keep_fc:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    torch.save(state, path)
    return state


def test_init_spec_parsing() -> None:
    assert InitSpec.parse("random") == InitSpec("random")
    assert InitSpec.parse("scratch=random") == InitSpec("scratch")
    assert InitSpec.parse("geokr=runs/demo/teacher_backbone.pth") == InitSpec(
        "geokr", Path("runs/demo/teacher_backbone.pth"))
    for bad in ("geokr", "=x.pth"):
        with pytest.raises(ValueError, match="--init"):
            InitSpec.parse(bad)


@pytest.mark.parametrize("keep_fc", [False, True])
def test_exported_weights_load_exactly(tmp_path: Path, keep_fc: bool) -> None:
    state = _export(tmp_path / "w.pth", keep_fc=keep_fc)
    model = build_backbone("resnet18", InitSpec("g", tmp_path / "w.pth"), seed=0)
    assert isinstance(model.fc, torch.nn.Identity)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("fc."))


def test_random_init_is_seeded() -> None:
    def conv1(seed: int) -> torch.Tensor:
        return build_backbone("resnet18", InitSpec("random"), seed).state_dict()["conv1.weight"]

    a, b, c = conv1(1), conv1(1), conv1(2)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_missing_key_is_named(tmp_path: Path) -> None:
    state = _export(tmp_path / "w.pth")
    del state["layer4.1.bn2.running_var"]
    torch.save(state, tmp_path / "w.pth")
    missing = r"w\.pth: .*1 missing keys \(layer4\.1\.bn2\.running_var\)"
    with pytest.raises(InputError, match=missing):
        build_backbone("resnet18", InitSpec("g", tmp_path / "w.pth"), seed=0)


def test_other_architecture_is_refused(tmp_path: Path) -> None:
    _export(tmp_path / "r34.pth", arch="resnet34")
    with pytest.raises(InputError, match=r"does not match torchvision resnet18: .*unexpected keys"):
        build_backbone("resnet18", InitSpec("g", tmp_path / "r34.pth"), seed=0)
    _export(tmp_path / "r50.pth", arch="resnet50")
    with pytest.raises(InputError, match="shape mismatches"):
        build_backbone("resnet18", InitSpec("g", tmp_path / "r50.pth"), seed=0)


def test_not_a_state_dict_is_refused(tmp_path: Path) -> None:
    torch.save({"epoch": 3}, tmp_path / "ckpt.pth")
    with pytest.raises(InputError, match="plain state dict"):
        build_backbone("resnet18", InitSpec("g", tmp_path / "ckpt.pth"), seed=0)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a loadable state dict"):
        build_backbone("resnet18", InitSpec("g", tmp_path / "junk.pth"), seed=0)
    with pytest.raises(InputError, match="not found"):
        build_backbone("resnet18", InitSpec("g", tmp_path / "none.pth"), seed=0)


def test_model_card_normalisation(tmp_path: Path) -> None:
    weights = tmp_path / "teacher_backbone.pth"
    assert read_normalisation(weights).mean == IMAGENET_MEAN  # no card: ImageNet statistics
    card = {"arch": "resnet18", "normalisation": {"mean": [0.3, 0.4, 0.5], "std": [0.1, 0.2, 0.3]}}
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    norm = read_normalisation(weights)
    assert norm.mean == (0.3, 0.4, 0.5) and norm.std == (0.1, 0.2, 0.3)
    card["normalisation"] = {"mean": [76.5, 102.0, 127.5], "std": [25.5, 51.0, 76.5]}
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    assert read_normalisation(weights).mean == pytest.approx((0.3, 0.4, 0.5))


def test_only_the_last_linear_layer_is_the_classifier(tmp_path: Path) -> None:
    # as in the trainer's export: MobileNet/VGG keep their hidden linear layers
    torch.manual_seed(0)
    state = torchvision.models.mobilenet_v3_small().state_dict()
    torch.save({k: v for k, v in state.items() if not k.startswith("classifier.3.")},
               tmp_path / "m.pth")
    model = build_backbone("mobilenet_v3_small", InitSpec("g", tmp_path / "m.pth"), seed=1)
    assert isinstance(model.get_submodule("classifier.3"), torch.nn.Identity)
    assert torch.equal(model.state_dict()["classifier.0.weight"], state["classifier.0.weight"])
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 1024)
