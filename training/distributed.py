"""Process-group setup from the launcher's environment: torchrun, or srun without torchrun.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT.  Under
``srun`` alone the same facts come from SLURM_PROCID, SLURM_NTASKS and
SLURM_LOCALID; MASTER_ADDR and MASTER_PORT must then be exported by the batch
script (the first host of the allocation).  Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import torch
import torch.distributed as dist

from pipeline.errors import InputError


@dataclasses.dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "single"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def detect(environ: Mapping[str, str] | None = None) -> DistEnv:
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" in env and "RANK" in env:
        return DistEnv(int(env["RANK"]), int(env["WORLD_SIZE"]),
                       int(env.get("LOCAL_RANK", "0")), "torchrun")
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        return DistEnv(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]),
                       int(env.get("SLURM_LOCALID", "0")), "slurm")
    return DistEnv()


def pick_device(name: str, env: DistEnv) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device", "CUDA asked for but no GPU is visible")
        device = torch.device("cuda", env.local_rank if device.index is None else device.index)
        torch.cuda.set_device(device)
    return device


def init(env: DistEnv, device: torch.device) -> None:
    if not env.distributed or dist.is_initialized():
        return
    if env.launcher == "slurm":
        for key in ("MASTER_ADDR", "MASTER_PORT"):
            if key not in os.environ:
                raise InputError("environment", f"{key} must be set when launched by srun")
        os.environ.update(RANK=str(env.rank), WORLD_SIZE=str(env.world_size),
                          LOCAL_RANK=str(env.local_rank))
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size,
                            device_id=device if device.type == "cuda" else None)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(t)
    return t


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
