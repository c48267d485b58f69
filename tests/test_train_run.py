"""End-to-end ``geokr-train`` on tiny stores: outputs, exact resume, bad input, DDP, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from click.testing import CliRunner, Result

from geokr_testkit.stores import build_store, write_label_set
from training import checkpoint as ckpt
from training.cli import main

BASE = ["--arch", "mobilenet_v3_small", "--batch-size", "4", "--precision", "fp32",
        "--workers", "0", "--teacher-interval", "2", "--log-every", "1", "--device", "cpu"]
SCRIPT = Path(sys.executable).with_name("geokr-train")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("run") / "s.zarr"
    build_store(path, n_scenes=2, chips_per_scene=20, chip_size=16)
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train(store: Path, out: Path, *extra: str) -> Result:
    return CliRunner().invoke(main, ["--store", str(store), "--out", str(out), *BASE, *extra])


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(run))  # type: ignore[arg-type]
    out = {f"student.{k}": v for k, v in state["student"].items()}
    out.update({f"teacher.{k}": v for k, v in state["teacher"].items()})
    return out


def test_outputs_and_model_card(store: Path, tmp_path: Path) -> None:
    res = train(store, tmp_path / "run", "--epochs", "2", "--checkpoint-every", "3")
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    card = json.loads((run / "model_card.json").read_text())
    assert card["arch"] == "mobilenet_v3_small" and card["head"]["module"] == "classifier.3"
    assert [c[1] for c in card["classes"]] == ["class0", "class1", "class2", "class3"]
    assert card["label_set"] == "test" and len(card["store_fingerprint"]) == 16
    assert card["split"]["mode"] == "scene" and card["split"]["n_val"] > 0
    assert card["arguments"]["teacher_interval"] == 2 and card["arguments"]["alpha"] == 0.95
    assert len(card["normalisation"]["mean"]) == 3 and "torch" in card["versions"]
    assert np.isfinite(card["metrics"]["val_teacher_ls"])
    steps = (run / "metrics_step.csv").read_text().splitlines()
    epochs = (run / "metrics_epoch.csv").read_text().splitlines()
    n = card["training_state"]["step"]
    assert n == 2 * (card["split"]["n_train"] // 4) and len(steps) == n + 1 and len(epochs) == 3
    assert list((run / "tensorboard").iterdir())
    for name in ("teacher_backbone.pth", "student_backbone.pth"):
        plain = torchvision.models.mobilenet_v3_small()
        plain.classifier[3] = torch.nn.Identity()
        plain.load_state_dict(torch.load(run / name, weights_only=True), strict=True)


def test_interrupted_and_resumed_equals_straight(store: Path, tmp_path: Path) -> None:
    args = ["--epochs", "3", "--checkpoint-every", "3"]
    straight = train(store, tmp_path / "a", *args, "--max-steps", "12")
    assert straight.exit_code == 0, straight.output
    first = train(store, tmp_path / "b", *args, "--max-steps", "7")
    assert first.exit_code == 0, first.output
    second = train(store, tmp_path / "b", *args, "--max-steps", "12", "--resume")
    assert second.exit_code == 0, second.output
    assert "resumed from" in second.output and "step 7" in second.output
    a, b = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for name in ("teacher_backbone.pth", "student_backbone.pth"):
        wa = torch.load(tmp_path / "a" / name, weights_only=True)
        wb = torch.load(tmp_path / "b" / name, weights_only=True)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    rows_a = (tmp_path / "a" / "metrics_step.csv").read_text().splitlines()
    rows_b = (tmp_path / "b" / "metrics_step.csv").read_text().splitlines()
    assert [r.split(",")[:6] for r in rows_a] == [r.split(",")[:6] for r in rows_b]


def test_resume_without_checkpoint_starts_fresh(store: Path, tmp_path: Path) -> None:
    res = train(store, tmp_path / "r", "--max-steps", "1", "--resume")
    assert res.exit_code == 0, res.output
    assert "no checkpoint in" in res.output and "starting fresh" in res.output
    again = train(store, tmp_path / "r", "--max-steps", "2")
    assert again.exit_code == 2
    assert "holds checkpoints of an earlier run; continue it with --resume" in again.output


def test_resume_with_other_arch_or_classes_is_refused(store: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.zarr"
    s = build_store(other, n_scenes=2, chips_per_scene=20, chip_size=16)
    write_label_set(s, "three", np.full((40, 3), 1 / 3, np.float32), np.ones(40, bool))
    assert train(other, tmp_path / "r", "--labels", "test", "--max-steps", "1").exit_code == 0
    res = train(other, tmp_path / "r", "--labels", "test", "--max-steps", "2", "--resume",
                "--arch", "resnet18")
    assert res.exit_code == 2
    assert "checkpoint has arch mobilenet_v3_small, this run asks for resnet18" in res.output
    res = train(other, tmp_path / "r", "--labels", "three", "--max-steps", "2", "--resume")
    assert res.exit_code == 2 and "checkpoint has classes" in res.output
    res = train(other, tmp_path / "x", "--max-steps", "1")
    assert res.exit_code == 2 and "name the label set with --labels" in res.output


def test_corrupt_checkpoint_is_one_line(store: Path, tmp_path: Path) -> None:
    assert train(store, tmp_path / "r", "--max-steps", "1").exit_code == 0
    latest = ckpt.latest_checkpoint(tmp_path / "r")
    assert latest is not None
    latest.write_bytes(b"\0" * 64)
    res = train(store, tmp_path / "r", "--max-steps", "2", "--resume")
    assert res.exit_code == 2
    line = f"error: {latest}: corrupt or unreadable checkpoint"
    assert any(row.startswith(line) for row in res.output.splitlines())


def test_non_finite_loss_stops_and_keeps_last_good(store: Path, tmp_path: Path) -> None:
    res = train(store, tmp_path / "r", "--lr", "1e30", "--checkpoint-every", "1",
                "--max-steps", "6")
    assert res.exit_code == 3, res.output
    steps = [s for s, _ in ckpt.list_checkpoints(tmp_path / "r")]
    assert len(steps) >= 1
    bad = steps[-1] + 1
    expected = (f"loss became non-finite at step {bad}; training stopped (last good "
                f"checkpoint kept: {tmp_path / 'r' / f'checkpoint-{steps[-1]:09d}.pt'})")
    assert expected in res.output
    state = ckpt.load_checkpoint(tmp_path / "r" / f"checkpoint-{steps[-1]:09d}.pt")
    assert all(torch.isfinite(v).all() for v in state["student"].values())


def test_bad_store_and_label_set(store: Path, tmp_path: Path) -> None:
    res = train(tmp_path / "nope.zarr", tmp_path / "r")
    assert res.exit_code == 2 and "nope.zarr: store does not exist" in res.output
    res = train(store, tmp_path / "r", "--labels", "nlcd")
    assert res.exit_code == 2 and "no label set 'nlcd' in store (available: test)" in res.output


def test_two_processes_with_gloo(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", str(SCRIPT), "--store", str(store), "--out", str(out), *BASE,
           "--epochs", "2", "--workers", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads((out / "model_card.json").read_text())
    assert card["training_state"]["world_size"] == 2
    # each step consumes 2 x 4 chips: half as many steps as one process
    assert card["training_state"]["step"] == 2 * (card["split"]["n_train"] // 8)
    assert proc.stderr.count("epoch 1:") == 1  # rank 0 alone reports


def test_sigterm_checkpoints_and_resumes(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "sig"
    cmd = [str(SCRIPT), "--store", str(store), "--out", str(out), *BASE, "--epochs", "500"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    rows = out / "metrics_step.csv"
    while proc.poll() is None and not (rows.is_file() and
                                       len(rows.read_text().splitlines()) > 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert "stopped by signal at step" in err
    step = int(err.split("stopped by signal at step ")[1].split(";")[0])
    assert ckpt.latest_checkpoint(out) == ckpt.checkpoint_path(out, step)
    res = train(store, out, "--epochs", "500", "--max-steps", str(step + 1), "--resume")
    assert res.exit_code == 0 and f"step {step}" in res.output
