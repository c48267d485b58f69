"""Model split into torchvision backbone + K-way head; exports load into plain torchvision."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from pipeline.errors import InputError
from training.model import GeoKRNet


@pytest.mark.parametrize(("arch", "head"), [("resnet18", "fc"), ("vgg11", "classifier.6"),
                                            ("mobilenet_v3_small", "classifier.3")])
def test_backbone_loads_strictly_into_torchvision(arch: str, head: str) -> None:
    net = GeoKRNet(arch, 7)
    assert net.head_name == head
    assert net.head.out_features == 7
    state = net.backbone_state_dict()
    assert not any(k.startswith(head + ".") for k in state)
    plain = torchvision.models.get_model(arch, weights=None)
    parent, _, leaf = head.rpartition(".")
    setattr(plain.get_submodule(parent), leaf, torch.nn.Identity())  # classifier set aside
    plain.load_state_dict(state, strict=True)
    # and the plain way: only the head's keys are missing
    missing, unexpected = torchvision.models.get_model(arch, weights=None).load_state_dict(
        state, strict=False)
    assert sorted(missing) == [f"{head}.bias", f"{head}.weight"]
    assert unexpected == []


def test_forward_gives_k_logits() -> None:
    net = GeoKRNet("resnet18", 5).eval()
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 5)


def test_init_from_torchvision_file_ignores_its_classifier(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = torchvision.models.resnet18()  # stands in for ImageNet weights (1000 classes)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(source.state_dict(), path)
    net = GeoKRNet("resnet18", 4)
    net.load_init(path)
    torch.testing.assert_close(net.net.conv1.weight, source.conv1.weight)
    torch.testing.assert_close(net.net.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    assert net.head.out_features == 4


def test_init_accepts_exported_backbone_with_prefixes(tmp_path: Path) -> None:
    first = GeoKRNet("resnet18", 3)
    path = tmp_path / "teacher_backbone.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in
                               first.backbone_state_dict().items()}}, path)
    second = GeoKRNet("resnet18", 6)
    second.load_init(path)
    torch.testing.assert_close(second.net.layer1[0].conv1.weight, first.net.layer1[0].conv1.weight)


def test_init_of_other_arch_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(GeoKRNet("mobilenet_v3_small", 3).backbone_state_dict(), path)
    with pytest.raises(InputError, match=r"w\.pth: weights do not fit resnet18"):
        GeoKRNet("resnet18", 3).load_init(path)


@pytest.mark.parametrize(("content", "reason"), [(b"not a torch file", "not a readable"),
                                                 (None, "does not exist")])
def test_bad_init_file(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "bad.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=reason):
        GeoKRNet("resnet18", 3).load_init(path)


def test_unknown_or_headless_arch() -> None:
    with pytest.raises(InputError, match="unknown torchvision architecture"):
        GeoKRNet("resnet9000", 3)
    with pytest.raises(InputError, match="no fully connected classifier"):
        GeoKRNet("squeezenet1_0", 3)
