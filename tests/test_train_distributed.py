"""Launcher environment detection (torchrun, srun alone, none) and option validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pipeline.errors import InputError
from training import distributed as dist
from training.cli import main
from training.config import TrainConfig


def test_single_process_without_launcher() -> None:
    env = dist.detect({})
    assert env == dist.DistEnv() and env.is_main and not env.distributed


def test_torchrun_environment() -> None:
    env = dist.detect({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1",
                       "SLURM_PROCID": "0", "SLURM_NTASKS": "2"})
    assert (env.rank, env.world_size, env.local_rank, env.launcher) == (3, 8, 1, "torchrun")
    assert not env.is_main and env.distributed


def test_srun_without_torchrun() -> None:
    env = dist.detect({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"})
    assert (env.rank, env.world_size, env.local_rank, env.launcher) == (5, 8, 1, "slurm")
    assert dist.detect({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}).launcher == "single"


def test_srun_needs_master_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    env = dist.DistEnv(rank=1, world_size=2, launcher="slurm")
    with pytest.raises(InputError, match="MASTER_ADDR must be set when launched by srun"):
        dist.init(env, torch.device("cpu"))


def test_cuda_without_gpu_is_one_line() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")  # the CPU-only machines always run it
    with pytest.raises(InputError, match="CUDA asked for but no GPU is visible"):
        dist.pick_device("cuda", dist.DistEnv())


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--alpha", "1.5", "alpha must lie in [0, 1]"),
    ("--teacher-interval", "0", "teacher interval must be >= 1"),
    ("--val-fraction", "1", "val fraction must lie in [0, 1)"),
])
def test_bad_options(tmp_path: Path, option: str, value: str, message: str) -> None:
    res = CliRunner().invoke(main, ["--store", str(tmp_path), "--out", str(tmp_path / "o"),
                                    option, value])
    assert res.exit_code == 2 and message in res.output


def test_defaults_are_the_papers() -> None:
    cfg = TrainConfig(store=Path("s"), out=Path("o"))
    assert (cfg.arch, cfg.batch_size, cfg.lr, cfg.lr_decay) == ("resnet50", 128, 1e-3, 0.9)
    assert (cfg.teacher_interval, cfg.alpha, cfg.gamma1, cfg.gamma2) == (3000, 0.95, 1.0, 1.0)
