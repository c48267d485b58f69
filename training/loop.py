"""The GeoKR training run: data, student, mean teacher, optimiser, checkpoints, outputs.

Determinism: data order comes from (seed, epoch), augmentations from (seed,
global step, rank), and everything else that changes is in the checkpoint, so
on the CPU a run interrupted and resumed ends with the same weights as one
that never stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline.errors import InputError, NonFiniteError
from training import checkpoint as ckpt
from training import distributed as dist
from training.augment import GpuAugment, step_generator
from training.card import CARD_NAME, model_card, write_json_atomic
from training.config import TrainConfig
from training.data import (
    ChipBatches,
    ChipReader,
    LabelSet,
    Split,
    WeightedBatchSampler,
    available_label_sets,
    channel_stats,
    eval_batches,
    keep_batch,
    open_label_set,
    open_store,
    split_chips,
    store_fingerprint,
)
from training.losses import geokr_loss, proportion_loss, teacher_loss
from training.metrics import Metrics
from training.model import GeoKRNet
from training.teacher import MeanTeacher

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
NORM_SAMPLE = 2048


class NonFiniteLoss(NonFiniteError):
    def __init__(self, step: int, kept: Path | None) -> None:
        where = f"last good checkpoint kept: {kept}" if kept else "no checkpoint written yet"
        super().__init__(f"loss became non-finite at step {step}; training stopped ({where})")
        self.step = step


def log(message: str, env: dist.DistEnv) -> None:
    if env.is_main:
        tqdm.write(message, file=sys.stderr)


@dataclasses.dataclass
class Data:
    labels: LabelSet
    split: Split
    sampler: WeightedBatchSampler
    train_loader: DataLoader[Any]
    val_loader: DataLoader[Any] | None
    meta: dict[str, Any]


def choose_labels(cfg: TrainConfig, store_path: Path) -> str:
    if cfg.labels:
        return cfg.labels
    names = available_label_sets(open_store(store_path))
    if len(names) != 1:
        raise InputError(store_path / "labels", f"name the label set with --labels "
                         f"(store holds {len(names)}: {', '.join(names) or 'none'})")
    return names[0]


def build_data(cfg: TrainConfig, env: dist.DistEnv, device: torch.device) -> Data:
    store = open_store(cfg.store)
    labels = open_label_set(store, choose_labels(cfg, store.path))
    n = labels.n_chips
    if n < store.n_chips:
        log(f"warning: label set covers {n} of {store.n_chips} chips (stale); "
            "using the labelled ones", env)
    split = split_chips(store.read("chip_scene", slice(0, n)),
                        store.read("chip_window", slice(0, n)),
                        labels.valid, cfg.val_fraction, cfg.seed)
    how = "direct shard reads" if ChipReader(store.path).uses_shards else "zarr reads"
    log(f"data: {len(split.train)} training and {len(split.val)} validation chips "
        f"({split.mode} split: {split.note}); {how}", env)
    if len(split.train) == 0:
        raise InputError(store.path, "no valid training chips after the validation split")
    try:
        sampler = WeightedBatchSampler(split.train, labels.sample_weight[split.train],
                                       cfg.batch_size, env.world_size, env.rank, cfg.seed,
                                       cfg.epoch_size)
    except ValueError as exc:
        raise InputError(store.path, str(exc)) from None
    dataset = ChipBatches(store.path, labels.proportions)
    # A loader of its own generator: creating an iterator would otherwise draw from the
    # global torch RNG, so a resumed run would see different dropout masks.
    loader_args: dict[str, Any] = {
        "collate_fn": keep_batch, "num_workers": cfg.workers,
        "pin_memory": device.type == "cuda",
        "generator": torch.Generator().manual_seed(cfg.seed)}
    if cfg.workers > 0:
        loader_args["prefetch_factor"] = 4
    val_batches = eval_batches(split.val, cfg.batch_size, env.world_size, env.rank)
    meta = {"labels": labels.name, "classes": [list(c) for c in labels.classes],
            "store": str(store.path), "fingerprint": store_fingerprint(store, labels),
            "n_chips": n, "chip_size": store.chip_size,
            "split": {"mode": split.mode, "note": split.note, "val_scenes": split.val_scenes,
                      "n_train": len(split.train), "n_val": len(split.val)}}
    return Data(labels, split, sampler,
                DataLoader(dataset, batch_sampler=sampler, **loader_args),
                DataLoader(dataset, batch_sampler=val_batches, **loader_args)
                if len(split.val) else None, meta)


def norm_stats(cfg: TrainConfig, data: Data) -> tuple[list[float], list[float], str]:
    if cfg.norm == "imagenet":
        return IMAGENET_MEAN, IMAGENET_STD, "imagenet"
    mean, std = channel_stats(ChipReader(cfg.store), data.split.train, NORM_SAMPLE, cfg.seed)
    return mean, std, f"{min(NORM_SAMPLE, len(data.split.train))} training chips"


class Trainer:
    """One training run (one process of it under DDP)."""

    def __init__(self, cfg: TrainConfig, env: dist.DistEnv, device: torch.device) -> None:
        self.cfg, self.env, self.device = cfg, env, device
        self.data = build_data(cfg, env, device)
        mean, std, source = norm_stats(cfg, self.data)
        self.meta = {**self.data.meta, "arch": cfg.arch, "norm_mean": mean, "norm_std": std,
                     "norm_source": source}
        torch.manual_seed(cfg.seed)
        self.model = GeoKRNet(cfg.arch, len(self.data.labels.classes))
        self.meta["head_name"] = self.model.head_name
        if cfg.init is not None:
            self.model.load_init(cfg.init)
            log(f"initialised backbone from {cfg.init}", env)
        cuda = device.type == "cuda"
        self.model.to(device)
        if cuda:
            self.model.to(memory_format=torch.channels_last)
        self.teacher = MeanTeacher(self.model, cfg.alpha, cfg.teacher_interval)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.sched = torch.optim.lr_scheduler.ExponentialLR(self.opt, gamma=cfg.lr_decay)
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
        self.aug = GpuAugment(mean, std, channels_last=cuda)
        self.step = self.epoch = self.batch_in_epoch = 0
        self.last_ckpt: Path | None = None
        self.signalled = False  # set by the signal handler, on this rank only
        self.stopping = False  # agreed by all ranks
        self.bad_step = torch.full((), -1, dtype=torch.long, device=device)
        self.resumed_from = self.maybe_resume()
        wrapped: nn.Module = self.model
        if env.distributed:
            wrapped = DistributedDataParallel(self.model,
                                              device_ids=[device.index] if cuda else None)
        self.forward: Any = torch.compile(wrapped) if cfg.compile else wrapped
        self.teacher_forward: Any = (torch.compile(self.teacher.module) if cfg.compile
                                     else self.teacher.module)
        self.metrics = Metrics(cfg.out, self.step if self.resumed_from else None, env.is_main)

    # -- checkpoints ---------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "format": 1, "step": self.step, "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "student": self.model.state_dict(), "teacher": self.teacher.module.state_dict(),
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": ckpt.rng_state(),
            "meta": self.meta, "args": self.cfg.to_dict(),
            "world_size": self.env.world_size,
        }

    def save(self) -> None:
        self.check_finite()
        path = ckpt.checkpoint_path(self.cfg.out, self.step)
        if self.env.is_main:
            ckpt.save_atomic(self.state(), path)
            ckpt.prune(self.cfg.out, self.cfg.keep_checkpoints)
        self.last_ckpt = path  # on every rank: they must agree on when to save
        dist.barrier()

    def maybe_resume(self) -> Path | None:
        path = ckpt.latest_checkpoint(self.cfg.out)
        if not self.cfg.resume:
            if path is not None:
                raise InputError(self.cfg.out, "holds checkpoints of an earlier run; "
                                 "continue it with --resume or choose another --out")
            return None
        if path is None:
            log(f"resume: no checkpoint in {self.cfg.out}, starting fresh", self.env)
            return None
        state = ckpt.load_checkpoint(path)
        self.check_compatible(path, state)
        self.model.load_state_dict(state["student"])
        self.teacher.module.load_state_dict(state["teacher"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if state["scaler"] and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        ckpt.set_rng_state(state["rng"])
        for key in ("norm_mean", "norm_std", "norm_source"):  # the weights expect these
            self.meta[key] = state["meta"][key]
        self.aug = GpuAugment(self.meta["norm_mean"], self.meta["norm_std"],
                              channels_last=self.aug.channels_last)
        self.last_ckpt = path
        log(f"resumed from {path} (step {self.step}, epoch {self.epoch + 1})", self.env)
        return path

    def check_compatible(self, path: Path, state: dict[str, Any]) -> None:
        old = state["meta"]
        for key in ("arch", "classes"):
            if old[key] != self.meta[key]:
                raise InputError(path, f"checkpoint has {key} {old[key]}, "
                                       f"this run asks for {self.meta[key]}")
        if old["fingerprint"] != self.meta["fingerprint"]:
            log(f"warning: {path} was trained on store fingerprint {old['fingerprint']}, "
                f"the store now has {self.meta['fingerprint']}", self.env)
        args = state["args"]
        if (args["batch_size"], state["world_size"]) != (self.cfg.batch_size,
                                                         self.env.world_size):
            log("warning: batch size or process count differs from the checkpoint; "
                "the continuation will not repeat the original data order", self.env)

    # -- steps ---------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        dtype = DTYPES[self.cfg.precision]
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32)

    def train_step(self, chips: torch.Tensor, props: torch.Tensor) -> torch.Tensor:
        chips = chips.to(self.device, non_blocking=True)
        props = props.to(self.device, non_blocking=True)
        g = step_generator(self.device, self.cfg.seed, self.step, self.env.rank)
        x = self.aug.train(chips, g)
        with self.autocast():
            s_logits = self.forward(x)
            with torch.no_grad():
                t_logits = self.teacher_forward(x)
        terms = geokr_loss(s_logits, t_logits, props, self.cfg.gamma1, self.cfg.gamma2)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(terms.total).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        finite = torch.isfinite(terms.total)
        first = (self.bad_step < 0) & ~finite
        self.bad_step = torch.where(first, self.bad_step.new_full((), self.step + 1),
                                    self.bad_step)
        return torch.stack([terms.total.detach(), terms.ls, terms.lt])

    def check_finite(self) -> None:
        bad = int(self.bad_step.item())
        if bad >= 0:
            raise NonFiniteLoss(bad, self.last_ckpt)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if self.data.val_loader is None:
            return {}
        self.model.eval()
        sums = torch.zeros(4, dtype=torch.float64, device=self.device)
        for chips, props in self.data.val_loader:
            x = self.aug.eval(chips.to(self.device, non_blocking=True))
            props = props.to(self.device, non_blocking=True)
            with self.autocast():
                s, t = self.model(x), self.teacher(x)
            n = float(len(props))
            sums += torch.stack([torch.tensor(n, device=self.device),
                                 proportion_loss(s, props) * n, teacher_loss(s, t) * n,
                                 proportion_loss(t, props) * n]).double()
        self.model.train()
        n_val, ls, lt, tls = dist.all_reduce_sum(sums).tolist()
        n_val = max(n_val, 1.0)
        ls, lt, tls = ls / n_val, lt / n_val, tls / n_val
        return {"val_loss": self.cfg.gamma1 * ls + self.cfg.gamma2 * lt, "val_ls": ls,
                "val_lt": lt, "val_teacher_ls": tls}

    # -- the run -------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        total = cfg.epochs * self.data.sampler.n_batches
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)
        bar = tqdm(total=total, initial=min(self.step, total), disable=not self.env.is_main,
                   unit="step", dynamic_ncols=True, file=sys.stderr)
        final: dict[str, Any] = {}
        with bar, stop_on_signals(self):
            while self.epoch < cfg.epochs and not self.done():
                final = self.run_epoch(bar) or final
        self.check_finite()
        if self.step > 0 and (self.last_ckpt is None or
                              ckpt.checkpoint_path(cfg.out, self.step) != self.last_ckpt):
            self.save()
        if final.get("step") != self.step:  # stopped mid-epoch: validate what we have
            final = {**final, **self.validate(), "step": self.step}
        self.export(final)
        self.metrics.close()
        return final

    def done(self) -> bool:
        hit_max = self.cfg.max_steps is not None and self.step >= self.cfg.max_steps
        return hit_max or self.stopping

    def run_epoch(self, bar: tqdm[Any]) -> dict[str, Any] | None:
        sampler = self.data.sampler
        sampler.set_position(self.epoch, self.batch_in_epoch)
        acc = Accumulator(self.device)
        t0 = time.perf_counter()
        for chips, props in self.batches():
            acc.add(self.train_step(chips, props), len(props))
            self.step += 1
            self.batch_in_epoch += 1
            self.teacher.after_step(self.model, self.step)
            bar.update(1)
            if self.step % self.cfg.log_every == 0:
                self.log_step(bar, acc)
            if self.step % self.cfg.checkpoint_every == 0:
                self.save()
            if self.done() or self.stop_agreed():
                break
        if self.batch_in_epoch < sampler.n_batches:
            return None
        return self.end_epoch(acc, time.perf_counter() - t0)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's remaining batches; a loader killed by the same signal ends it quietly."""
        it = iter(self.data.train_loader)
        while True:
            try:
                yield next(it)
            except StopIteration:
                return
            except RuntimeError:
                if not self.signalled:
                    raise
                self.stopping = True
                return

    def stop_agreed(self) -> bool:
        """All ranks stop together once any of them got SIGTERM/SIGINT (checked at log steps)."""
        if not self.env.distributed:
            self.stopping = self.signalled
        elif self.step % self.cfg.log_every == 0:
            flag = torch.tensor(float(self.signalled), device=self.device)
            self.stopping = bool(dist.all_reduce_sum(flag).item() > 0)
        return self.stopping

    def log_step(self, bar: tqdm[Any], acc: Accumulator) -> None:
        self.check_finite()
        loss, ls, lt, rate = acc.window(self.env.world_size)
        lr = self.opt.param_groups[0]["lr"]
        bar.set_postfix(img_s=f"{rate:.0f}", ls=f"{ls:.4f}", lt=f"{lt:.4f}", refresh=False)
        self.metrics.step({"step": self.step, "epoch": self.epoch + 1, "lr": lr, "loss": loss,
                           "ls": ls, "lt": lt, "images_per_s": rate,
                           "seconds": round(acc.elapsed(), 3)})

    def end_epoch(self, acc: Accumulator, seconds: float) -> dict[str, Any]:
        self.check_finite()
        train = acc.totals(self.env.world_size)
        row: dict[str, Any] = {"epoch": self.epoch + 1, "step": self.step,
                               "lr": self.opt.param_groups[0]["lr"], **train,
                               **self.validate(), "seconds": round(seconds, 3)}
        self.metrics.epoch(row)
        log(f"epoch {self.epoch + 1}: " + ", ".join(
            f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)), self.env)
        self.sched.step()
        self.epoch += 1
        self.batch_in_epoch = 0
        self.save()
        return row

    # -- outputs -------------------------------------------------------------
    def export(self, final: dict[str, Any]) -> None:
        if not self.env.is_main:
            return
        out = self.cfg.out
        ckpt.save_atomic(self.teacher.module.backbone_state_dict(), out / "teacher_backbone.pth")
        ckpt.save_atomic(self.model.backbone_state_dict(), out / "student_backbone.pth")
        ckpt.save_atomic({"teacher": self.teacher.module.head.state_dict(),
                          "student": self.model.head.state_dict()}, out / "heads.pth")
        state = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                 "resumed_from": str(self.resumed_from) if self.resumed_from else None,
                 "last_checkpoint": str(self.last_ckpt) if self.last_ckpt else None,
                 "world_size": self.env.world_size, "device": str(self.device)}
        card = model_card(self.meta, self.cfg.to_dict(), final, state)
        write_json_atomic(card, out / CARD_NAME)


class Accumulator:
    """Loss sums kept on the device (no sync per step), read at log and epoch ends."""

    def __init__(self, device: torch.device) -> None:
        self.sum = torch.zeros(3, dtype=torch.float64, device=device)
        self.win = torch.zeros(3, dtype=torch.float64, device=device)
        self.n = self.win_n = self.batch = 0
        self.t0 = self.win_t0 = time.perf_counter()

    def add(self, terms: torch.Tensor, batch: int) -> None:
        self.sum += terms.double()
        self.win += terms.double()
        self.n += 1
        self.win_n += 1
        self.batch = batch

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def window(self, world: int) -> tuple[float, float, float, float]:
        vals = dist.all_reduce_sum(self.win.clone()) / (max(self.win_n, 1) * world)
        now = time.perf_counter()
        rate = self.win_n * self.batch * world / max(now - self.win_t0, 1e-9)
        self.win.zero_()
        self.win_n, self.win_t0 = 0, now
        loss, ls, lt = vals.tolist()
        return loss, ls, lt, rate

    def totals(self, world: int) -> dict[str, float]:
        vals = dist.all_reduce_sum(self.sum.clone()) / (max(self.n, 1) * world)
        loss, ls, lt = vals.tolist()
        return {"train_loss": loss, "train_ls": ls, "train_lt": lt}


@contextlib.contextmanager
def stop_on_signals(trainer: Trainer) -> Iterator[None]:
    """SIGTERM (SLURM pre-emption) or Ctrl-C: finish the step, checkpoint, leave cleanly."""
    def handler(signum: int, frame: FrameType | None) -> None:
        trainer.signalled = True

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or continue, with ``cfg.resume``) one training run; returns the final metrics."""
    env = dist.detect()
    device = dist.pick_device(cfg.device, env)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cfg.out.mkdir(parents=True, exist_ok=True)
    set_seed_everywhere(cfg.seed)
    dist.init(env, device)
    try:
        trainer = Trainer(cfg, env, device)
        log(f"training {cfg.arch} on {device} x{env.world_size} ({env.launcher}), "
            f"{len(trainer.meta['classes'])} classes, {cfg.precision}", env)
        result = trainer.fit()
        if trainer.stopping:
            log(f"stopped by signal at step {trainer.step}; continue with --resume", env)
        return result
    finally:
        dist.shutdown()


def set_seed_everywhere(seed: int) -> None:
    """Python's and NumPy's global RNGs (torch is seeded where the model is built)."""
    random.seed(seed)
    np.random.seed(seed)
