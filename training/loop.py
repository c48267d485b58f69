"""The training run, for every method: data, optimiser, checkpoints, signals, outputs.

What differs between methods (networks, loss, momentum updates, exports) lives in
:mod:`training.methods`; everything here is shared, so equal budgets mean the same.

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
from pipeline.store.labels import LabelView
from pipeline.store.reader import ChipReader, open_for_training
from training import checkpoint as ckpt
from training import distributed as dist
from training.card import CARD_NAME, model_card, write_json_atomic
from training.config import TrainConfig
from training.data import (
    ChipBatches,
    Split,
    WeightedBatchSampler,
    channel_stats,
    eval_batches,
    keep_batch,
    split_chips,
)
from training.knn import knn_accuracy
from training.methods import Context, build_method, needs_labels
from training.methods.ssl import TwoViewMethod
from training.metrics import Metrics
from training.optim import Schedule, build_optimizer, effective_lr

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
    labels: LabelView | None
    reader: ChipReader
    split: Split
    sampler: WeightedBatchSampler
    train_loader: DataLoader[Any]
    val_loader: DataLoader[Any] | None
    targets: np.ndarray
    meta: dict[str, Any]


def choose_labels(cfg: TrainConfig, names: list[str]) -> str | None:
    """The label set to use: named, the only one (label-based methods), or none."""
    if cfg.labels:
        return cfg.labels
    if not needs_labels(cfg.method):
        return None
    if not names:
        raise InputError(Path(cfg.store) / "labels", f"--method {cfg.method} needs a label set and "
                         "the store holds none (run geokr-etl label, or pre-train with "
                         "simclr, mocov2 or byol)")
    if len(names) != 1:
        raise InputError(Path(cfg.store) / "labels", f"name the label set with --labels "
                         f"(store holds {len(names)}: {', '.join(names)})")
    return names[0]


def chip_targets(method: str, labels: LabelView | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-chip targets for the method, and the chips it may use."""
    if labels is None:
        return np.full(n, -1, np.int64), np.ones(n, bool)
    if method == "geokr":
        return labels.proportions, labels.valid
    return labels.dominant, labels.valid & (labels.dominant >= 0)


def build_data(cfg: TrainConfig, env: dist.DistEnv, device: torch.device) -> Data:
    store = open_for_training(cfg.store, lambda names: choose_labels(cfg, names))
    labels, n = store.labels, store.n_chips
    if n < store.n_stored:
        log(f"warning: label set covers {n} of {store.n_stored} chips (stale); "
            "using the labelled ones", env)
    targets, valid = chip_targets(cfg.method, labels, n)
    split = split_chips(store.chip_scene, store.chip_window, valid, cfg.val_fraction, cfg.seed)
    how = "direct shard reads" if store.reader.uses_shards else "zarr reads"
    log(f"data: {len(split.train)} training and {len(split.val)} validation chips "
        f"({split.mode} split: {split.note}); {how}", env)
    if len(split.train) == 0:
        raise InputError(store.path, "no valid training chips after the validation split")
    balanced = labels is not None and needs_labels(cfg.method)
    weights = (labels.sample_weight[split.train] if labels is not None and balanced
               else np.ones(len(split.train)))
    try:
        sampler = WeightedBatchSampler(split.train, weights, cfg.batch_size, env.world_size,
                                       env.rank, cfg.seed, cfg.epoch_size)
    except ValueError as exc:
        raise InputError(store.path, str(exc)) from None
    dataset = ChipBatches(store.reader, targets)
    # A loader of its own generator: creating an iterator would otherwise draw from the
    # global torch RNG, so a resumed run would see different dropout masks.
    loader_args: dict[str, Any] = {
        "collate_fn": keep_batch, "num_workers": cfg.workers,
        "pin_memory": device.type == "cuda",
        "generator": torch.Generator().manual_seed(cfg.seed)}
    if cfg.workers > 0:
        loader_args["prefetch_factor"] = 4
    val_batches = eval_batches(split.val, cfg.batch_size, env.world_size, env.rank)
    meta = {"method": cfg.method, "labels": labels.name if labels else None,
            "classes": [list(c) for c in labels.classes] if labels else [],
            "store": str(store.path), "fingerprint": store.fingerprint,
            "n_chips": n, "chip_size": store.chip_size,
            "sampling": "class-balanced (sample_weight)" if balanced else "uniform",
            "split": {"mode": split.mode, "note": split.note, "val_scenes": split.val_scenes,
                      "n_train": len(split.train), "n_val": len(split.val)}}
    return Data(labels, store.reader, split, sampler,
                DataLoader(dataset, batch_sampler=sampler, **loader_args),
                DataLoader(dataset, batch_sampler=val_batches, **loader_args)
                if len(split.val) else None, targets, meta)


def norm_stats(cfg: TrainConfig, data: Data) -> tuple[list[float], list[float], str]:
    if cfg.norm == "imagenet":
        return IMAGENET_MEAN, IMAGENET_STD, "imagenet"
    mean, std = channel_stats(data.reader, data.split.train, NORM_SAMPLE, cfg.seed)
    return mean, std, f"{min(NORM_SAMPLE, len(data.split.train))} training chips"


class Trainer:
    """One training run (one process of it under DDP), for any method."""

    def __init__(self, cfg: TrainConfig, env: dist.DistEnv, device: torch.device) -> None:
        self.cfg, self.env, self.device = cfg, env, device
        self.data = build_data(cfg, env, device)
        mean, std, source = norm_stats(cfg, self.data)
        self.meta = {**self.data.meta, "arch": cfg.arch, "norm_mean": mean, "norm_std": std,
                     "norm_source": source}
        self.global_batch = cfg.batch_size * env.world_size
        torch.manual_seed(cfg.seed)
        self.method = build_method(cfg, len(self.data.meta["classes"]))
        if (reason := self.method.check(self.global_batch)) is not None:
            raise InputError("--method", f"{cfg.method}: {reason}")
        if cfg.init is not None:
            log(f"initialised backbone from {cfg.init}", env)
        self.model = self.method.student
        self.meta["head_name"] = self.method.classifier_name()
        cuda = device.type == "cuda"
        self.method.to(device)
        if cuda:
            self.method.to(memory_format=torch.channels_last)
        self.channels_last = cuda
        self.method.set_views(mean, std, self.meta["chip_size"], cuda)
        self.opt = build_optimizer(cfg, self.model, self.global_batch)
        self.meta["lr_effective"] = effective_lr(cfg, self.global_batch)
        self.schedule = Schedule(cfg, self.opt, self.data.sampler.n_batches)
        self.sched = self.schedule.sched
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
        self.step = self.epoch = self.batch_in_epoch = self.images_seen = 0
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
        # kNN on the dominant class checks the label-free methods when a label set is named
        self.knn = (self.method if isinstance(self.method, TwoViewMethod)
                    and self.data.labels is not None else None)
        self.metrics = Metrics(cfg.out, self.step if self.resumed_from else None, env.is_main,
                               self.method.terms, self.val_names())

    def val_names(self) -> tuple[str, ...]:
        if self.data.val_loader is None:
            return ()
        return self.method.val_names + (("val_knn_acc",) if self.knn is not None else ())

    def context(self, step: int) -> Context:
        return Context(self.autocast, self.cfg.seed, step, self.env.rank, self.env.world_size,
                       self.cfg.epochs * self.data.sampler.n_batches)

    # -- checkpoints ---------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "format": 2, "method": self.cfg.method, "step": self.step, "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch, "images_seen": self.images_seen,
            **self.method.checkpoint_state(),
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": ckpt.rng_state(),
            "meta": self.meta, "args": self.cfg.to_dict(),
            "world_size": self.env.world_size,
        }

    def save(self) -> None:
        self.check_finite()
        path = ckpt.checkpoint_path(self.cfg.out, self.step)
        if self.env.is_main:
            try:
                ckpt.save_atomic(self.state(), path)
            except OSError as exc:
                raise ckpt.write_failed(path, exc, self.last_ckpt) from None
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
        try:
            self.method.load_checkpoint_state(state)
        except (KeyError, RuntimeError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(path, f"checkpoint does not fit this run's networks ({reason})"
                             ) from None
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if state["scaler"] and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.images_seen = int(state.get("images_seen", self.step * self.global_batch))
        ckpt.set_rng_state(state["rng"])
        for key in ("norm_mean", "norm_std", "norm_source"):  # the weights expect these
            self.meta[key] = state["meta"][key]
        self.method.set_views(self.meta["norm_mean"], self.meta["norm_std"],
                              self.meta["chip_size"], self.channels_last)
        self.last_ckpt = path
        log(f"resumed from {path} (step {self.step}, epoch {self.epoch + 1})", self.env)
        return path

    def check_compatible(self, path: Path, state: dict[str, Any]) -> None:
        old = state["meta"]
        method = state.get("method", "geokr")  # format 1 checkpoints were all GeoKR
        if method != self.cfg.method:
            raise InputError(path, f"checkpoint was trained with --method {method}, "
                                   f"this run asks for {self.cfg.method}")
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

    def train_step(self, chips: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        chips = chips.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        terms = self.method.loss(self.forward, chips, targets, self.context(self.step))
        total = terms[0]
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        finite = torch.isfinite(total)
        first = (self.bad_step < 0) & ~finite
        self.bad_step = torch.where(first, self.bad_step.new_full((), self.step + 1),
                                    self.bad_step)
        return terms.detach()

    def check_finite(self) -> None:
        bad = int(self.bad_step.item())
        if bad >= 0:
            raise NonFiniteLoss(bad, self.last_ckpt)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if self.data.val_loader is None:
            return {}
        nets = self.method.eval_networks()
        modes = [net.training for net in nets]
        for net in nets:
            net.eval()
        names = self.method.val_names
        sums = torch.zeros(1 + len(names), dtype=torch.float64, device=self.device)
        for i, (chips, targets) in enumerate(self.data.val_loader):
            chips = chips.to(self.device, non_blocking=True)
            targets = targets.to(self.device, non_blocking=True)
            means = self.method.validate_batch(chips, targets, self.context(-1 - i))
            n = float(len(targets))
            sums += torch.cat([means.new_full((1,), n), means * n]).double()
        n_val, *totals = dist.all_reduce_sum(sums).tolist()
        row = {k: v / max(n_val, 1.0) for k, v in zip(names, totals, strict=True)}
        if self.knn is not None:
            row["val_knn_acc"] = self.knn_accuracy(self.knn)
        for net, mode in zip(nets, modes, strict=True):
            net.train(mode)
        return row

    def knn_accuracy(self, method: TwoViewMethod) -> float:
        """Computed on rank 0 alone (identical weights under DDP), shared with the others."""
        acc = torch.zeros((), dtype=torch.float64, device=self.device)
        if self.env.is_main:
            cfg = self.cfg
            reader = self.data.reader
            rng = np.random.default_rng(cfg.seed)
            train, val = self.data.split.train, self.data.split.val
            bank = np.sort(rng.choice(train, min(cfg.knn_bank, len(train)), replace=False))
            val = np.sort(rng.choice(val, min(cfg.knn_bank, len(val)), replace=False))

            def features(idx: np.ndarray) -> torch.Tensor:
                parts = []
                for i in range(0, len(idx), cfg.batch_size):
                    chips = torch.from_numpy(reader.read(idx[i:i + cfg.batch_size]))
                    with self.autocast():
                        parts.append(method.embed(chips.to(self.device)))
                return torch.cat(parts)

            labels = torch.from_numpy(self.data.targets)
            acc += knn_accuracy(features(bank), labels[bank].to(self.device), features(val),
                                labels[val].to(self.device), cfg.knn_k, cfg.knn_t)
        return float(dist.all_reduce_sum(acc).item())

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
        acc = Accumulator(self.device, 1 + len(self.method.terms))
        t0 = time.perf_counter()
        for chips, targets in self.batches():
            acc.add(self.one_step(chips, targets), len(targets))
            self.batch_in_epoch += 1
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

    def one_step(self, chips: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """One optimiser step and what follows it (momentum updates, schedule)."""
        terms = self.train_step(chips, targets)
        self.step += 1
        self.images_seen += self.global_batch
        self.method.after_step(self.step, self.context(self.step))
        self.schedule.after_step()
        return terms

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
        values, rate = acc.window(self.env.world_size)
        row = dict(zip(("loss", *self.method.terms), values, strict=True))
        lr = self.opt.param_groups[0]["lr"]
        shown: dict[str, object] = {"img_s": f"{rate:.0f}"}
        shown.update({k: f"{v:.4f}" for k, v in row.items()})
        bar.set_postfix(shown, refresh=False)
        self.metrics.step({"step": self.step, "epoch": self.epoch + 1, "lr": lr, **row,
                           "images_per_s": rate, "seconds": round(acc.elapsed(), 3)})

    def end_epoch(self, acc: Accumulator, seconds: float) -> dict[str, Any]:
        self.check_finite()
        values = acc.totals(self.env.world_size)
        train = {f"train_{k}": v for k, v in zip(("loss", *self.method.terms), values,
                                                  strict=True)}
        row: dict[str, Any] = {"epoch": self.epoch + 1, "step": self.step,
                               "lr": self.opt.param_groups[0]["lr"], **train,
                               **self.validate(), "seconds": round(seconds, 3)}
        self.metrics.epoch(row)
        log(f"epoch {self.epoch + 1}: " + ", ".join(
            f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)), self.env)
        self.schedule.after_epoch()
        self.epoch += 1
        self.batch_in_epoch = 0
        self.save()
        return row

    # -- outputs -------------------------------------------------------------
    def export(self, final: dict[str, Any]) -> None:
        if not self.env.is_main:
            return
        out = self.cfg.out
        exported = {}
        for name, (obj, what) in self.method.exports().items():
            try:
                ckpt.save_atomic(obj, out / name)
            except OSError as exc:
                raise ckpt.write_failed(out / name, exc, self.last_ckpt) from None
            exported[name] = what
        state = {"step": self.step, "optimizer_steps": self.step,
                 "images_seen": self.images_seen, "epoch": self.epoch,
                 "batch_in_epoch": self.batch_in_epoch,
                 "resumed_from": str(self.resumed_from) if self.resumed_from else None,
                 "last_checkpoint": str(self.last_ckpt) if self.last_ckpt else None,
                 "world_size": self.env.world_size, "device": str(self.device)}
        method = {"name": self.cfg.method, "title": self.method.title,
                  "parameters": self.method.parameters_used(),
                  "optimizer": {"name": self.cfg.optimizer, "lr": self.cfg.lr,
                                "lr_scaling": self.cfg.lr_scaling,
                                "lr_effective": self.meta["lr_effective"],
                                "weight_decay": self.cfg.weight_decay,
                                "schedule": self.cfg.schedule,
                                "warmup_epochs": self.cfg.warmup_epochs}}
        card = model_card(self.meta, self.cfg.to_dict(), final, state, method, exported)
        write_json_atomic(card, out / CARD_NAME)


class Accumulator:
    """Loss sums kept on the device (no sync per step), read at log and epoch ends."""

    def __init__(self, device: torch.device, n_terms: int) -> None:
        self.sum = torch.zeros(n_terms, dtype=torch.float64, device=device)
        self.win = torch.zeros(n_terms, dtype=torch.float64, device=device)
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

    def window(self, world: int) -> tuple[list[float], float]:
        """Mean of each term since the last call, and images/s (chips, not views)."""
        vals = dist.all_reduce_sum(self.win.clone()) / (max(self.win_n, 1) * world)
        now = time.perf_counter()
        rate = self.win_n * self.batch * world / max(now - self.win_t0, 1e-9)
        self.win.zero_()
        self.win_n, self.win_t0 = 0, now
        return vals.tolist(), rate

    def totals(self, world: int) -> list[float]:
        vals = dist.all_reduce_sum(self.sum.clone()) / (max(self.n, 1) * world)
        return list(vals.tolist())


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
    if cfg.out.exists() and not cfg.out.is_dir():
        raise InputError(cfg.out, "--out is an existing file; give a run directory")
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(cfg.out, f"cannot create the run directory ({exc.strerror})") from None
    set_seed_everywhere(cfg.seed)
    dist.init(env, device)
    try:
        trainer = Trainer(cfg, env, device)
        n_classes = len(trainer.meta["classes"])
        labels = f"{n_classes} classes" if trainer.meta["labels"] else "no labels"
        log(f"training {cfg.method} {cfg.arch} on {device} x{env.world_size} "
            f"({env.launcher}), {labels}, {cfg.precision}", env)
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
