"""GeoKR losses against hand computations with round numbers."""

from __future__ import annotations

import math

import pytest
import torch

from training.losses import geokr_loss, proportion_loss, teacher_loss

# softmax([0, ln 2, ln 3]) = [1/6, 2/6, 3/6]
LOGITS = torch.tensor([[0.0, math.log(2.0), math.log(3.0)]])


def test_proportion_loss_by_hand() -> None:
    a = torch.tensor([[0.5, 0.5, 0.0]])
    expected = -(0.5 * math.log(1 / 6) + 0.5 * math.log(2 / 6))
    assert proportion_loss(LOGITS, a).item() == pytest.approx(expected, rel=1e-6)


def test_teacher_loss_by_hand() -> None:
    teacher = torch.tensor([[0.0, 0.0, math.log(2.0)]])  # T = [1/4, 1/4, 1/2]
    s = [1 / 6, 2 / 6, 3 / 6]
    expected = -(s[0] * math.log(0.25) + s[1] * math.log(0.25) + s[2] * math.log(0.5))
    assert teacher_loss(LOGITS, teacher).item() == pytest.approx(expected, rel=1e-6)


def test_batch_mean_and_weights() -> None:
    student = torch.cat([LOGITS, torch.zeros(1, 3)])  # second sample: S = 1/3 each
    teacher = torch.zeros(2, 3)  # T = 1/3 each: Lt = ln 3 for any S
    a = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    ls = (-math.log(1 / 6) - math.log(1 / 3)) / 2
    lt = math.log(3.0)
    terms = geokr_loss(student, teacher, a, gamma1=2.0, gamma2=0.5)
    assert terms.ls.item() == pytest.approx(ls, rel=1e-6)
    assert terms.lt.item() == pytest.approx(lt, rel=1e-6)
    assert terms.total.item() == pytest.approx(2.0 * ls + 0.5 * lt, rel=1e-6)


def test_gradient_reaches_student_only() -> None:
    student = LOGITS.clone().requires_grad_(True)
    teacher = torch.tensor([[1.0, -1.0, 0.5]], requires_grad=True)
    a = torch.tensor([[0.2, 0.3, 0.5]])
    geokr_loss(student, teacher, a).total.backward()
    assert teacher.grad is None
    assert student.grad is not None
    # d Ls / dz = S - A (proportions sum to 1); d Lt / dz = S * (-log T + sum S log T)
    s = torch.softmax(LOGITS, 1)
    log_t = torch.log_softmax(teacher.detach(), 1)
    grad_lt = s * (-log_t + (s * log_t).sum(1, keepdim=True))
    torch.testing.assert_close(student.grad, (s - a) + grad_lt)


def test_half_precision_logits_stay_finite() -> None:
    big = torch.tensor([[60000.0, -60000.0, 0.0]], dtype=torch.float16)
    a = torch.tensor([[0.0, 1.0, 0.0]])
    assert torch.isfinite(geokr_loss(big, big, a).total)
