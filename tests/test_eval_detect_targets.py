"""CenterNet targets, decoding, loss and box transforms: exact, hand-checked cases."""

from __future__ import annotations

import math

import pytest
import torch

from training.evaluation.backbones import InitSpec, Normalisation, build_backbone
from training.evaluation.detection.box_dihedral import dihedral_boxes
from training.evaluation.detection.loss import focal_loss
from training.evaluation.detection.model import CenterNet, CenterNetConfig
from training.evaluation.detection.targets import Targets, decode, encode, gaussian_radius
from training.evaluation.dihedral import dihedral
from training.evaluation.segmodel import spatial_encoder

STRIDE, SIZE = 4, 64
OUT = SIZE // STRIDE


def perfect_heads(t: Targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The maps a perfect network would output for these targets."""
    n, _, h, w = t.heatmap.shape
    logits = torch.logit(t.heatmap.clamp(1e-6, 1 - 1e-6))
    size, offset = torch.zeros(n, 2, h * w), torch.zeros(n, 2, h * w)
    size[t.batch, :, t.cell] = t.size
    offset[t.batch, :, t.cell] = t.offset
    return logits, size.view(n, 2, h, w), offset.view(n, 2, h, w)


def roundtrip(boxes: list[torch.Tensor], labels: list[torch.Tensor], n_classes: int = 3
              ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    t = encode(boxes, labels, n_classes, (OUT, OUT), STRIDE)
    dets = decode(*perfect_heads(t), stride=STRIDE, top_k=20)
    # detections above the background are the objects (a perfect heatmap peaks at 1)
    return [(d.boxes[d.scores > 0.999], d.labels[d.scores > 0.999]) for d in dets]


def same_boxes(got: torch.Tensor, got_labels: torch.Tensor, want: torch.Tensor,
               want_labels: torch.Tensor) -> None:
    assert len(got) == len(want)
    order_got = sorted(range(len(got)), key=lambda i: [*got[i].tolist(), int(got_labels[i])])
    order_want = sorted(range(len(want)),
                        key=lambda i: [*want[i].tolist(), int(want_labels[i])])
    g, w = got[order_got], want[order_want]
    centre = lambda b: (b[:, :2] + b[:, 2:]) / 2  # noqa: E731
    assert torch.allclose(centre(g), centre(w), atol=1e-4)  # exact centres
    assert ((g[:, 2:] - g[:, :2] - (w[:, 2:] - w[:, :2])).abs() < 1.0).all()  # sizes
    assert got_labels[order_got].tolist() == want_labels[order_want].tolist()


def test_encode_decode_returns_the_boxes_including_borders_and_close_centres() -> None:
    boxes = [
        torch.tensor([[0.0, 0.0, 9.0, 13.0],  # top-left corner
                      [SIZE - 7.5, SIZE - 11.0, SIZE, SIZE],  # bottom-right corner
                      [20.3, 30.1, 41.7, 45.9]]),
        # heavily overlapping boxes whose centres are one output cell apart, same class,
        # and the same box again with another class (one centre, two heatmaps)
        torch.tensor([[10.0, 10.0, 40.0, 40.0], [14.0, 10.0, 44.0, 40.0],
                      [10.0, 10.0, 40.0, 40.0]]),
        torch.zeros(0, 4),  # a slice without objects
    ]
    labels = [torch.tensor([0, 1, 2]), torch.tensor([1, 1, 2]), torch.zeros(0, dtype=torch.long)]
    for (got, got_labels), want, want_labels in zip(roundtrip(boxes, labels), boxes, labels,
                                                    strict=True):
        same_boxes(got, got_labels, want, want_labels)


def test_heatmap_peaks_are_one_at_centre_cells_and_gaussian_around() -> None:
    box = torch.tensor([[16.0, 16.0, 48.0, 40.0]])  # 8 × 6 cells, centre (8, 7)
    t = encode([box], [torch.tensor([1])], 2, (OUT, OUT), STRIDE)
    heat = t.heatmap[0, 1]
    assert heat[7, 8] == 1 and (heat == 1).sum() == 1 and t.heatmap[0, 0].sum() == 0
    r = int(gaussian_radius(torch.tensor(6.0), torch.tensor(8.0)))
    sigma = (2 * r + 1) / 6
    assert heat[7, 8 + r].item() == pytest.approx(math.exp(-(r**2) / (2 * sigma**2)))
    assert heat[7, 8 + r + 1] == 0  # truncated outside the radius
    assert t.size.tolist() == [[8.0, 6.0]] and t.offset.tolist() == [[0.0, 0.0]]
    assert t.cell.tolist() == [7 * OUT + 8]


def test_gaussian_radius_matches_the_reference_formula() -> None:
    # CornerNet/CenterNet reference code, evaluated by hand for a 10 × 20 box at 0.7
    h, w, o = 10.0, 20.0, 0.7
    r1 = (h + w + math.sqrt((h + w) ** 2 - 4 * w * h * (1 - o) / (1 + o))) / 2
    r2 = (2 * (h + w) + math.sqrt(4 * (h + w) ** 2 - 16 * (1 - o) * w * h)) / 2
    r3 = (-2 * o * (h + w) + math.sqrt(4 * o**2 * (h + w) ** 2 + 16 * o * (1 - o) * w * h)) / 2
    got = gaussian_radius(torch.tensor(h), torch.tensor(w), o).item()
    assert got == pytest.approx(min(r1, r2, r3))


def test_focal_loss_is_zero_for_a_perfect_heatmap_and_counts_objects() -> None:
    t = encode([torch.tensor([[8.0, 8.0, 24.0, 24.0], [30.0, 30.0, 50.0, 60.0]])],
               [torch.tensor([0, 0])], 1, (OUT, OUT), STRIDE)
    perfect = torch.where(t.heatmap == 1, 30.0, -30.0)
    assert focal_loss(perfect, t.heatmap).item() < 1e-8
    # everything at p = 0.5: positives cost log 2 · 0.25 each, divided by the 2 objects
    flat = torch.zeros_like(t.heatmap)
    neg = (torch.log(torch.tensor(2.0)) * 0.25 * (1 - t.heatmap) ** 4)[t.heatmap < 1].sum()
    want = (2 * math.log(2) * 0.25 + neg.item()) / 2
    assert focal_loss(flat, t.heatmap).item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("code", range(8))
def test_box_transform_follows_the_image_transform(code: int) -> None:
    image = torch.zeros(1, 12, 12)
    box = torch.tensor([2.0, 3.0, 7.0, 5.0])  # pixels x 2..6, y 3..4
    image[0, 3:5, 2:7] = 1
    moved = dihedral(image, code)[0]
    ys, xs = torch.nonzero(moved, as_tuple=True)
    want = [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    assert dihedral_boxes(box[None], code, 12)[0].tolist() == want


def test_centernet_outputs_stride_four_maps_with_the_prior_bias() -> None:
    encoder = spatial_encoder(build_backbone("resnet18", InitSpec("random"), seed=0))
    net = CenterNet(encoder, 3, Normalisation(), CenterNetConfig(neck_channels=32))
    heads = net(torch.rand(2, 3, 64, 64))
    assert heads.heatmap.shape == (2, 3, 16, 16)
    assert heads.size.shape == heads.offset.shape == (2, 2, 16, 16)
    assert len(net.neck) == 3  # stride 32 → 4
    assert net.heatmap[-1].bias.tolist() == pytest.approx([-math.log(9)] * 3)
