"""Checkpoints: written atomically, read with ``weights_only=True``, found again by step.

A checkpoint is ``checkpoint-<step>.pt`` in the run directory.  It is first
written to a hidden temporary file in the same directory, flushed to disk and
then renamed over the final name, so a crash (or a SLURM pre-emption) leaves
either the old set of checkpoints or the new one, never a torn file.
"""

from __future__ import annotations

import errno
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.clierrors import system_reason
from pipeline.errors import InputError

NAME = re.compile(r"^checkpoint-(\d{9})\.pt$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / f"checkpoint-{step:09d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_failed(path: Path, exc: OSError, last_good: Path | None) -> InputError:
    """A failed write (full disk, quota, read-only) as one line naming what is still good.

    ``save_atomic`` never leaves the partial file behind, so the newest checkpoint on
    disk is still the last good one and ``--resume`` continues from it.
    """
    what = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else system_reason(exc)
    if what is None:
        raise exc  # not a state of the machine the user can fix: the traceback helps more
    kept = (f"last good checkpoint: {last_good}; free space and continue with --resume"
            if last_good else "no checkpoint written yet")
    return InputError(path, f"{what}; nothing partial kept; {kept}")


def prune(run_dir: Path, keep: int) -> None:
    """Keep the ``keep`` newest checkpoints (at least one)."""
    for _, path in list_checkpoints(run_dir)[: -max(keep, 1)]:
        path.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(path, f"corrupt or unreadable checkpoint ({type(exc).__name__}); "
                               "delete it to resume from the one before") from None
    if not isinstance(obj, dict) or "step" not in obj or "student" not in obj:
        raise InputError(path, "not a GeoKR training checkpoint")
    return obj


def rng_state() -> dict[str, Any]:
    """RNG states as plain tensors, lists and ints (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state(legacy=False)
    assert isinstance(np_state, dict)
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]),
                  "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "python": [py_version, list(py_internal), py_gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"],
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
