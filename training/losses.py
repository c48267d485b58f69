"""GeoKR losses (paper eq. 1-3): proportions supervise the student, the teacher regularises it.

With A the proportion vector, S = softmax(student), T = softmax(teacher):
Ls = -sum A log S, Lt = -sum S log T (no gradient into the teacher), each averaged
over the batch, and L = gamma1 Ls + gamma2 Lt.  Computed in float32 from logits
through ``log_softmax`` so mixed precision cannot turn them into inf.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class LossTerms(NamedTuple):
    total: torch.Tensor
    ls: torch.Tensor
    lt: torch.Tensor


def proportion_loss(student_logits: torch.Tensor, proportions: torch.Tensor) -> torch.Tensor:
    log_s = F.log_softmax(student_logits.float(), dim=1)
    return -(proportions.float() * log_s).sum(1).mean()


def teacher_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    s = F.softmax(student_logits.float(), dim=1)
    log_t = F.log_softmax(teacher_logits.detach().float(), dim=1)
    return -(s * log_t).sum(1).mean()


def geokr_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    proportions: torch.Tensor,
    gamma1: float = 1.0,
    gamma2: float = 1.0,
) -> LossTerms:
    ls = proportion_loss(student_logits, proportions)
    lt = teacher_loss(student_logits, teacher_logits)
    return LossTerms(gamma1 * ls + gamma2 * lt, ls.detach(), lt.detach())
