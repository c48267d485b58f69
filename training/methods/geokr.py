"""GeoKR (Li et al. 2021) and Table X's ablations of it.

Student and mean teacher of one structure, the proportion loss Ls and the teacher
loss Lt (:mod:`training.losses`).  ``--gamma2 0`` is Table X's "representation" row:
the proportions alone, and then no teacher is built, updated or exported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from training.augment import GpuAugment, step_generator
from training.config import TrainConfig
from training.losses import geokr_loss, proportion_loss, teacher_loss
from training.methods.base import Context, Method, stack_terms
from training.model import GeoKRNet
from training.teacher import MeanTeacher


class SingleViewMethod(Method):
    """Shared by the supervised methods: one augmented view, a K-way ``GeoKRNet``."""

    student: GeoKRNet

    def __init__(self, cfg: TrainConfig, n_classes: int) -> None:
        super().__init__(cfg)
        self.student = GeoKRNet(cfg.arch, n_classes)
        if cfg.init is not None:
            self.student.load_init(cfg.init)
        self.aug: GpuAugment | None = None

    def classifier_name(self) -> str:
        return self.student.head_name

    def set_views(self, mean: list[float], std: list[float], size: int,
                  channels_last: bool) -> None:
        self.aug = GpuAugment(mean, std, channels_last=channels_last)

    def augment(self, chips: torch.Tensor, ctx: Context) -> torch.Tensor:
        assert self.aug is not None
        return self.aug.train(chips, step_generator(chips.device, ctx.seed, ctx.step, ctx.rank))

    def eval_view(self, chips: torch.Tensor) -> torch.Tensor:
        assert self.aug is not None
        return self.aug.eval(chips)


class GeoKR(SingleViewMethod):
    name = "geokr"
    title = "GeoKR mean-teacher pre-training (Li et al. 2021, arXiv 2107.05276)"

    def __init__(self, cfg: TrainConfig, n_classes: int) -> None:
        super().__init__(cfg, n_classes)
        self.teacher: MeanTeacher[GeoKRNet] | None = None
        if cfg.gamma2 > 0:
            self.teacher = MeanTeacher(self.student, cfg.alpha, cfg.teacher_interval)
            self.teacher_net = self.teacher.module  # registered, so .to() moves it
            self.__dict__["teacher_forward"] = (torch.compile(self.teacher.module)
                                                if cfg.compile else self.teacher.module)

    @property
    def terms(self) -> tuple[str, ...]:
        return ("ls", "lt") if self.teacher else ("ls",)

    @property
    def val_names(self) -> tuple[str, ...]:
        if self.teacher is None:
            return ("val_loss", "val_ls")
        return ("val_loss", "val_ls", "val_lt", "val_teacher_ls")

    def parameters_used(self) -> dict[str, Any]:
        c = self.cfg
        return {"gamma1": c.gamma1, "gamma2": c.gamma2, "teacher": self.teacher is not None,
                "alpha": c.alpha, "teacher_interval": c.teacher_interval}

    def loss(self, forward: Callable[[torch.Tensor], Any], chips: torch.Tensor,
             props: torch.Tensor, ctx: Context) -> torch.Tensor:
        x = self.augment(chips, ctx)
        with ctx.autocast():
            s_logits = forward(x)
            if self.teacher is None:
                t_logits = None
            else:
                with torch.no_grad():
                    t_logits = self.__dict__["teacher_forward"](x)
        if t_logits is None:
            ls = proportion_loss(s_logits, props)
            return stack_terms(self.cfg.gamma1 * ls, ls)
        terms = geokr_loss(s_logits, t_logits, props, self.cfg.gamma1, self.cfg.gamma2)
        return stack_terms(terms.total, terms.ls, terms.lt)

    def after_step(self, step: int, ctx: Context) -> None:
        if self.teacher is not None:
            self.teacher.after_step(self.student, step)

    def validate_batch(self, chips: torch.Tensor, props: torch.Tensor, ctx: Context
                       ) -> torch.Tensor:
        x = self.eval_view(chips)
        with ctx.autocast():
            s = self.student(x)
            t = self.teacher(x) if self.teacher else None
        ls = proportion_loss(s, props)
        if t is None:
            return torch.stack([self.cfg.gamma1 * ls, ls])
        lt = teacher_loss(s, t)
        return torch.stack([self.cfg.gamma1 * ls + self.cfg.gamma2 * lt, ls, lt,
                            proportion_loss(t, props)])

    def checkpoint_state(self) -> dict[str, Any]:
        state = super().checkpoint_state()
        if self.teacher is not None:
            state["teacher"] = self.teacher.module.state_dict()
        return state

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        super().load_checkpoint_state(state)
        if self.teacher is not None:
            self.teacher.module.load_state_dict(state["teacher"])

    def exports(self) -> dict[str, tuple[Any, str]]:
        student = self.student.backbone_state_dict()
        heads = {"student": self.student.head.state_dict()}
        if self.teacher is None:
            return {"backbone.pth": (student, "student (no teacher: --gamma2 0)"),
                    "student_backbone.pth": (student, "student"),
                    "heads.pth": (heads, "K-way proportion head")}
        teacher = self.teacher.module.backbone_state_dict()
        heads["teacher"] = self.teacher.module.head.state_dict()
        return {"backbone.pth": (teacher, "teacher (mean teacher of the student)"),
                "teacher_backbone.pth": (teacher, "teacher"),
                "student_backbone.pth": (student, "student"),
                "heads.pth": (heads, "K-way proportion heads of teacher and student")}


class Classification(SingleViewMethod):
    """Table X's first ablation: cross-entropy to each chip's stored dominant class."""

    name = "classification"
    title = "Dominant-class classification pre-training (Li et al. 2021, Table X)"

    @property
    def terms(self) -> tuple[str, ...]:
        return ("acc",)

    @property
    def val_names(self) -> tuple[str, ...]:
        return ("val_loss", "val_acc")

    def loss(self, forward: Callable[[torch.Tensor], Any], chips: torch.Tensor,
             target: torch.Tensor, ctx: Context) -> torch.Tensor:
        x = self.augment(chips, ctx)
        with ctx.autocast():
            logits = forward(x)
        ce = torch.nn.functional.cross_entropy(logits.float(), target)
        return stack_terms(ce, (logits.argmax(1) == target).float().mean())

    def validate_batch(self, chips: torch.Tensor, target: torch.Tensor, ctx: Context
                       ) -> torch.Tensor:
        with ctx.autocast():
            logits = self.student(self.eval_view(chips))
        ce = torch.nn.functional.cross_entropy(logits.float(), target)
        return torch.stack([ce, (logits.argmax(1) == target).float().mean()])

    def exports(self) -> dict[str, tuple[Any, str]]:
        return {"backbone.pth": (self.student.backbone_state_dict(), "classifier"),
                "heads.pth": ({"student": self.student.head.state_dict()},
                              "K-way dominant-class head")}
