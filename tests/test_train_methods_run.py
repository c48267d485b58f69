"""``geokr-train --method`` end to end: learning, exact resume, exports, DDP, bad input.

The self-supervised methods train on windows of the real Zion Landsat scene
(../shared/data) in a store with no label set; the label-based ones on the synthetic
labelled store of geokr_testkit/stores.py.  The learning runs use milder views than the
papers' (tiny chips, a few dozen steps), Adam and a constant learning rate: every one
of those numbers is an option, and the defaults are tested in test_train_methods.py.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from click.testing import CliRunner, Result

from geokr_testkit.stores import build_scene_store, build_store
from training import checkpoint as ckpt
from training.cli import main
from training.evaluation.backbones import InitSpec, build_backbone

BASE = ["--arch", "resnet18", "--batch-size", "8", "--precision", "fp32", "--workers", "0",
        "--device", "cpu", "--log-every", "1", "--val-fraction", "0"]
LEARN = ["--optimizer", "adam", "--lr", "1e-3", "--lr-scaling", "none", "--schedule", "exp",
         "--lr-decay", "1", "--warmup-epochs", "0", "--proj-hidden", "64", "--proj-dim", "32",
         "--pred-hidden", "64", "--queue-size", "16", "--crop-scale", "0.6",
         "--jitter", "0.2,0.2,0.2,0", "--grayscale-p", "0", "--blur-p", "0,0",
         "--temperature", "0.5", "--ema", "0.9"]
STEPS = 24
SCRIPT = Path(sys.executable).with_name("geokr-train")


@pytest.fixture(scope="module")
def scene_store(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    path = tmp_path_factory.mktemp("scene") / "zion.zarr"
    build_scene_store(path, shared_data / "zion" / "landsat8_zion_bgrn.tif", 64, 32)
    return path


@pytest.fixture(scope="module")
def labelled_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("labelled") / "s.zarr"
    build_store(path, n_scenes=2, chips_per_scene=24, chip_size=32)
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train(store: Path, out: Path, method: str, *extra: str) -> Result:
    return CliRunner().invoke(main, ["--store", str(store), "--out", str(out), "--method",
                                     method, *BASE, *extra])


def store_for(method: str, scene_store: Path, labelled_store: Path) -> Path:
    return labelled_store if method == "classification" else scene_store


def checkpoint_tensors(run: Path, step: int) -> dict[str, torch.Tensor]:
    state = ckpt.load_checkpoint(ckpt.checkpoint_path(run, step))
    flat: dict[str, torch.Tensor] = {}

    def walk(prefix: str, obj: object) -> None:
        if isinstance(obj, torch.Tensor):
            flat[prefix] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}.{k}", v)

    for key in ("student", "teacher", "key", "target", "queue", "optimizer"):
        walk(key, state.get(key))
    return flat


@pytest.mark.parametrize("method", ["classification", "simclr", "mocov2", "byol"])
def test_method_learns_resumes_exactly_and_exports(method: str, scene_store: Path,
                                                   labelled_store: Path, tmp_path: Path
                                                   ) -> None:
    store = store_for(method, scene_store, labelled_store)
    args = [*LEARN, "--epochs", "20", "--checkpoint-every", "5", "--keep-checkpoints", "9",
            "--max-steps"]
    straight = train(store, tmp_path / "a", method, *args, str(STEPS))
    assert straight.exit_code == 0, straight.output
    with open(tmp_path / "a" / "metrics_step.csv") as fh:
        losses = [float(r["loss"]) for r in csv.DictReader(fh)]
    q = len(losses) // 4
    assert len(losses) == STEPS and sum(losses[-q:]) < sum(losses[:q]), losses
    # stopped after step 7 (checkpointed there), resumed to step 10: the same as straight
    first = train(store, tmp_path / "b", method, *args, "7")
    assert first.exit_code == 0, first.output
    second = train(store, tmp_path / "b", method, *args, "10", "--resume")
    assert second.exit_code == 0 and "resumed from" in second.output, second.output
    a, b = checkpoint_tensors(tmp_path / "a", 10), checkpoint_tensors(tmp_path / "b", 10)
    assert a.keys() == b.keys() and len(a) > 0
    for key in a:
        assert torch.equal(a[key], b[key]), key
    if method == "mocov2":
        assert "queue.bank" in a and int(a["queue.ptr"]) == 10 * 8 % 16
    card = json.loads((tmp_path / "a" / "model_card.json").read_text())
    assert card["method"]["name"] == method and card["recommended"] == "backbone.pth"
    assert card["training_state"]["optimizer_steps"] == STEPS
    assert card["training_state"]["images_seen"] == STEPS * 8
    assert "backbone.pth" in card["exported"]["files"]
    plain = torchvision.models.resnet18()
    plain.fc = torch.nn.Identity()
    plain.load_state_dict(torch.load(tmp_path / "a" / "backbone.pth", weights_only=True))
    net = build_backbone("resnet18", InitSpec.parse(f"{method}={tmp_path / 'a' / 'backbone.pth'}"),
                         0)  # what geokr-eval does with --init NAME=backbone.pth
    torch.testing.assert_close(net.state_dict()["conv1.weight"], plain.conv1.weight)


def test_ssl_runs_on_a_store_without_labels_and_label_methods_refuse(scene_store: Path,
                                                                     tmp_path: Path) -> None:
    res = train(scene_store, tmp_path / "s", "simclr", "--max-steps", "2", "--val-fraction",
                "0.5", "--warmup-epochs", "0")
    assert res.exit_code == 0, res.output
    card = json.loads((tmp_path / "s" / "model_card.json").read_text())
    assert card["label_set"] is None and card["sampling"] == "uniform"
    assert card["method"]["parameters"]["temperature"] == 0.1
    assert card["method"]["optimizer"]["lr_effective"] == pytest.approx(0.3 * 8 / 256)
    assert "val_loss" in card["metrics"] and "val_knn_acc" not in card["metrics"]
    for method in ("geokr", "classification"):
        res = train(scene_store, tmp_path / method, method, "--max-steps", "1")
        assert res.exit_code == 2
        assert f"--method {method} needs a label set and the store holds none" in res.output


def test_ssl_with_labels_reports_knn(labelled_store: Path, tmp_path: Path) -> None:
    res = train(labelled_store, tmp_path / "k", "byol", "--labels", "test", "--max-steps", "2",
                "--val-fraction", "0.5", "--warmup-epochs", "0", "--proj-hidden", "32",
                "--pred-hidden", "32")
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "k" / "model_card.json").read_text())["metrics"]
    assert 0.0 <= metrics["val_knn_acc"] <= 1.0


def test_geokr_representation_row_builds_no_teacher(labelled_store: Path, tmp_path: Path
                                                    ) -> None:
    res = train(labelled_store, tmp_path / "r", "geokr", "--gamma2", "0", "--max-steps", "3",
                "--val-fraction", "0.5")
    assert res.exit_code == 0, res.output
    run = tmp_path / "r"
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(run))  # type: ignore[arg-type]
    assert "teacher" not in state and not (run / "teacher_backbone.pth").exists()
    a = torch.load(run / "backbone.pth", weights_only=True)
    b = torch.load(run / "student_backbone.pth", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    card = json.loads((run / "model_card.json").read_text())
    assert card["method"]["parameters"]["teacher"] is False and "val_lt" not in card["metrics"]


def test_geokr_exports_teacher_as_backbone_and_old_checkpoints_resume(
        labelled_store: Path, tmp_path: Path) -> None:
    run = tmp_path / "g"
    assert train(labelled_store, run, "geokr", "--max-steps", "2").exit_code == 0
    a = torch.load(run / "backbone.pth", weights_only=True)
    b = torch.load(run / "teacher_backbone.pth", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    path = ckpt.latest_checkpoint(run)
    assert path is not None
    old = ckpt.load_checkpoint(path)
    for key in ("method", "images_seen"):
        del old[key]
    old["format"] = 1
    torch.save(old, path)
    res = train(labelled_store, run, "geokr", "--max-steps", "3", "--resume")
    assert res.exit_code == 0 and "resumed from" in res.output, res.output


def test_resume_with_another_method_is_refused(scene_store: Path, tmp_path: Path) -> None:
    assert train(scene_store, tmp_path / "m", "simclr", "--max-steps", "1").exit_code == 0
    res = train(scene_store, tmp_path / "m", "byol", "--max-steps", "2", "--resume")
    assert res.exit_code == 2
    assert "checkpoint was trained with --method simclr, this run asks for byol" in res.output


def one_error_line(res: Result) -> str:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


@pytest.mark.parametrize(("method", "args", "message"), [
    ("simclr", ["--batch-size", "1"], "simclr: SimCLR needs a batch of at least 2"),
    ("mocov2", ["--queue-size", "20"], "queue size 20 is not a multiple of the global batch 8"),
    ("geokr", ["--lr", "nan"], "lr must be a finite number, got nan"),
    ("byol", ["--lr", "inf"], "lr must be a finite number, got inf"),
    ("geokr", ["--lr", "-1"], "lr must be > 0"),
    ("simclr", ["--temperature", "0"], "temperature must be > 0"),
    ("mocov2", ["--ema", "1.5"], "ema must lie in [0, 1]"),
    ("simclr", ["--jitter", "0.4,0.4"], "jitter must be 4 comma-separated"),
    ("geokr", ["--arch", "fasterrcnn_resnet50_fpn"], "not a classification model"),
])
def test_bad_input_is_one_line(method: str, args: list[str], message: str, scene_store: Path,
                               labelled_store: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(*a: object, **k: object) -> None:
        raise AssertionError("a weights download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    store = labelled_store if method == "geokr" else scene_store
    line = one_error_line(train(store, tmp_path / "o", method, "--max-steps", "1", *args))
    assert message in line
    assert not list((tmp_path / "o").glob("checkpoint-*"))


def test_out_that_is_a_file_and_init_of_other_shapes(labelled_store: Path, tmp_path: Path
                                                     ) -> None:
    out = tmp_path / "file"
    out.write_text("keep me")
    line = one_error_line(train(labelled_store, out, "geokr", "--max-steps", "1"))
    assert line == f"error: {out}: --out is an existing file; give a run directory"
    assert out.read_text() == "keep me"
    weights = torchvision.models.resnet18().state_dict()
    weights["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    path = tmp_path / "w.pth"
    torch.save(weights, path)
    line = one_error_line(train(labelled_store, tmp_path / "i", "byol", "--init", str(path),
                                "--max-steps", "1"))
    assert line.startswith(f"error: {path}: weights do not fit resnet18: layer1.0.conv1.weight"
                           " has shape (64, 64, 1, 1)")


def test_disk_full_keeps_the_last_good_checkpoint(labelled_store: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "full"
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync(fd: int) -> None:
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".checkpoint-"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(ckpt.os, "fsync", fsync)
    res = train(labelled_store, run, "geokr", "--checkpoint-every", "1", "--max-steps", "3")
    good = run / "checkpoint-000000001.pt"
    line = one_error_line(res)
    assert line == (f"error: {run / 'checkpoint-000000002.pt'}: disk full; nothing partial "
                    f"kept; last good checkpoint: {good}; free space and continue with --resume")
    assert sorted(p.name for p in run.glob("*checkpoint*")) == [good.name]
    monkeypatch.setattr(ckpt.os, "fsync", real_fsync)
    res = train(labelled_store, run, "geokr", "--max-steps", "3", "--resume")
    assert res.exit_code == 0 and "step 1" in res.output, res.output


@pytest.mark.parametrize("method", ["classification", "simclr", "mocov2", "byol"])
def test_two_processes_with_gloo(method: str, scene_store: Path, labelled_store: Path,
                                 tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    store = store_for(method, scene_store, labelled_store)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", str(SCRIPT), "--store", str(store), "--out", str(out), "--method", method,
           *BASE, "--batch-size", "4", "--max-steps", "3", "--warmup-epochs", "0",
           "--proj-hidden", "32", "--pred-hidden", "32", "--queue-size", "16",
           "--val-fraction", "0.3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # geokr's own: tests/test_train_run.py
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads((out / "model_card.json").read_text())
    assert card["training_state"]["world_size"] == 2
    assert card["training_state"]["images_seen"] == 3 * 8
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(out))  # type: ignore[arg-type]
    if method == "mocov2":  # keys of both ranks went into the queue: 3 steps x 8
        assert int(state["queue"]["ptr"]) == 24 % 16
    assert all(torch.isfinite(v).all() for v in state["student"].values()
               if v.is_floating_point())
