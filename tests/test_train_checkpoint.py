"""Checkpoint files: atomic writes, newest-first lookup, pruning, corrupt files, RNG states."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import InputError
from training import checkpoint as ckpt


def test_save_load_latest_and_prune(tmp_path: Path) -> None:
    for step in (5, 40, 12):
        ckpt.save_atomic({"step": step, "student": {"w": torch.full((2,), float(step))}},
                         ckpt.checkpoint_path(tmp_path, step))
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "checkpoint-000000040.pt"
    assert ckpt.load_checkpoint(tmp_path / "checkpoint-000000012.pt")["step"] == 12
    ckpt.prune(tmp_path, keep=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [12, 40]
    assert not list(tmp_path.glob(".*tmp*"))


def test_empty_or_missing_dir_has_no_latest(tmp_path: Path) -> None:
    assert ckpt.latest_checkpoint(tmp_path) is None
    assert ckpt.latest_checkpoint(tmp_path / "nope") is None


def test_failed_write_keeps_old_file(tmp_path: Path) -> None:
    path = ckpt.checkpoint_path(tmp_path, 1)
    ckpt.save_atomic({"step": 1, "student": {}}, path)

    class Unpicklable:
        def __reduce__(self) -> tuple[object, ...]:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        ckpt.save_atomic({"step": 2, "student": Unpicklable()}, path)
    assert ckpt.load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_corrupt_checkpoint_is_one_line(tmp_path: Path) -> None:
    path = ckpt.checkpoint_path(tmp_path, 3)
    ckpt.save_atomic({"step": 3, "student": {"w": torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[:500])  # truncated, as after a full disk
    with pytest.raises(InputError) as err:
        ckpt.load_checkpoint(path)
    assert str(err.value).startswith(f"{path}: corrupt or unreadable checkpoint")
    assert "\n" not in str(err.value)


def test_unsafe_pickles_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint-000000001.pt"
    torch.save({"step": 1, "student": {}, "evil": Path("/etc")}, path)  # not weights-only
    with pytest.raises(InputError, match="corrupt or unreadable"):
        ckpt.load_checkpoint(path)


def test_rng_state_round_trip_through_weights_only_file(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    path = tmp_path / "checkpoint-000000001.pt"
    ckpt.save_atomic({"step": 1, "student": {}, "rng": ckpt.rng_state()}, path)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    state = ckpt.load_checkpoint(path)
    ckpt.set_rng_state(state["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
