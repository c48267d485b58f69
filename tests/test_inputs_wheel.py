"""A wheel that works: built from the sources, installed into a fresh virtual environment
(no access to the repository), it tiles and labels a real scene with the sensor profiles
and legends it ships. Offline: dependencies come from this environment's site-packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "pipeline", "training", "catalogs")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the sources, so the checkout gets no build/ or egg-info."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "-w", str(dist), str(src)],
                   check=True, capture_output=True, text=True)
    (built,) = dist.glob("geokr-*.whl")
    return built


def test_wheel_ships_the_catalogs(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("sensors", "legends", "clusters"):
        shipped = {n for n in names if n.startswith(f"catalogs/{kind}/")}
        expected = {f"catalogs/{kind}/{p.name}" for p in (REPO / "catalogs" / kind).glob("*.yaml")}
        assert shipped == expected, kind


def test_installed_wheel_tiles_and_labels_outside_the_repository(
    wheel: Path, tmp_path: Path, shared_data: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-index", "--target", str(site), str(wheel)], check=True)
    # Dependencies from this environment, appended after the wheel's own packages; its
    # .pth files (an editable geokr among them) are not processed.
    (site / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GEOKR_CATALOGS")}

    def geokr_etl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(python), "-m", "pipeline.cli", *args], cwd=work, env=env,
                              capture_output=True, text=True, check=False)

    where = subprocess.run(
        [str(python), "-c", "import pipeline, catalogs; print(pipeline.__file__, catalogs.__file__)"
         ], cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    assert str(REPO) not in where and str(site) in where
    tile = geokr_etl("tile", "--scenes", str(shared_data / "zion" / "landsat8_zion_bgrn.tif"),
                     "--store", "zion.zarr", "--chip-size", "128", "--workers", "1",
                     "--no-progress")
    assert tile.returncode == 0, tile.stderr
    label = geokr_etl("label", "--store", "zion.zarr", "--landcover",
                      str(shared_data / "zion" / "nlcd2011.tif"), "--legend", "nlcd",
                      "--workers", "0", "--quiet")
    assert label.returncode == 0, label.stderr
    assert "chips_labelled" in label.stdout
    assert (work / "zion.zarr" / "labels" / "nlcd" / "zarr.json").is_file()
    unknown = geokr_etl("tile", "--scenes", "x.tif", "--store", "s.zarr", "--sensor", "nope",
                        "--workers", "1")
    assert unknown.returncode == 2
    assert "known: bgrn-float, bgrn, gf1-pms" in unknown.stderr  # the shipped profiles
