"""Mean teacher: copy at start, EMA exactly every ``interval`` global steps, BatchNorm buffers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from training.teacher import MeanTeacher


def make() -> tuple[nn.Sequential, MeanTeacher[nn.Sequential]]:
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    return net, MeanTeacher(net, alpha=0.95, interval=3)


def test_starts_as_exact_copy_without_grad() -> None:
    student, teacher = make()
    for (name, p), q in zip(student.state_dict().items(), teacher.module.state_dict().values(),
                            strict=True):
        assert torch.equal(p, q), name
    assert not any(p.requires_grad for p in teacher.module.parameters())
    assert not teacher.module.training


def test_schedule_counts_global_steps() -> None:
    _, teacher = make()
    updated = [s for s in range(0, 20) if teacher.due(s)]
    assert updated == [3, 6, 9, 12, 15, 18]


def test_ema_of_weights_and_batchnorm_buffers() -> None:
    student, teacher = make()
    before = {k: v.clone() for k, v in teacher.module.state_dict().items()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    student.train()
    student(torch.randn(8, 3))  # moves BN running stats and num_batches_tracked
    assert not teacher.after_step(student, 2)
    assert all(torch.equal(v, before[k]) for k, v in teacher.module.state_dict().items())
    assert teacher.after_step(student, 3)
    new = teacher.module.state_dict()
    for key, s_val in student.state_dict().items():
        if s_val.is_floating_point():
            torch.testing.assert_close(new[key], 0.95 * before[key] + 0.05 * s_val)
        else:
            assert torch.equal(new[key], s_val), key  # num_batches_tracked is copied


def test_teacher_forward_leaves_running_stats_alone() -> None:
    _, teacher = make()
    before = teacher.module.state_dict()["1.running_mean"].clone()
    teacher(torch.randn(16, 3) * 5 + 3)
    assert torch.equal(teacher.module.state_dict()["1.running_mean"], before)


def test_alpha_one_freezes_and_zero_copies() -> None:
    student, frozen = make()
    copier = MeanTeacher(student, alpha=0.0, interval=1)
    start = [p.clone() for p in frozen.module.parameters()]
    frozen.alpha = 1.0
    with torch.no_grad():
        for p in student.parameters():
            p.mul_(-2.0)
    frozen.update(student)
    copier.update(student)
    for a, b in zip(frozen.module.parameters(), start, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(copier.module.parameters(), student.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("alpha", "interval"), [(1.5, 3), (0.9, 0)])
def test_rejects_bad_parameters(alpha: float, interval: int) -> None:
    with pytest.raises(ValueError):
        MeanTeacher(nn.Linear(2, 2), alpha, interval)
