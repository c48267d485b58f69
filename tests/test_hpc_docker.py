"""The container images: hadolint-clean, and installed by the README's own install script.

No Docker engine runs here, so the images are linted, not built.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILES = {name: REPO / "docker" / f"Dockerfile.{name}" for name in ("etl", "train")}


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HADOLINT), str(path)], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_passes_hadolint(name: str) -> None:
    done = hadolint(DOCKERFILES[name])
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN cd /tmp && pip install numpy\n")
    done = hadolint(bad)
    assert done.returncode != 0
    assert "DL3006" in done.stdout  # untagged base image


@pytest.mark.parametrize(("name", "extras"), [("etl", "stats"), ("train", "train")])
def test_images_install_with_the_project_install_script(name: str, extras: str) -> None:
    text = DOCKERFILES[name].read_text()
    runs = re.findall(r"^RUN (.*)$", text, flags=re.M)
    assert f"scripts/install.sh --no-editable {extras}" in runs
    assert "pip install" not in text  # one recipe: scripts/install.sh, as in the README


def test_train_image_documents_the_torch_pins_of_setup_cfg() -> None:
    pins = re.findall(r"^\s+(torch(?:vision)?==\S+)$", (REPO / "setup.cfg").read_text(), re.M)
    assert len(pins) == 2
    assert " and ".join(sorted(pins)) in DOCKERFILES["train"].read_text()
