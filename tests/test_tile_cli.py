"""The command line: summary, exit status, one-line errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from geokr_testkit.rasters import textured, write_raster
from pipeline.cli import main


def test_cli_summary_and_exit_status(tmp_path: Path, shared_data: Path) -> None:
    good = str(shared_data / "rgb_byte" / "RGB.byte.tif")
    bad = write_raster(tmp_path / "nocrs.tif", textured(3, 300, 300, "uint8"), crs=None)
    store = str(tmp_path / "s.zarr")
    args = ["tile", "--store", store, "--workers", "1", "--no-progress", "--scenes", good]
    result = CliRunner().invoke(main, [*args, "--scenes", str(bad)])
    assert result.exit_code == 1, result.output
    assert f"error: {bad}: no CRS" in result.output
    assert "chips_written" in result.output and "dropped (nodata)" in result.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "scenes_already_in_store" in again.output


def test_cli_refuses_a_path_that_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.txt").write_text("a")
    result = CliRunner().invoke(
        main, ["tile", "--store", str(tmp_path / "x"), "--workers", "1", "--scenes", "nothing.tif"]
    )
    assert result.exit_code == 2
    assert "x: path exists and is not a GeoKR chip store" in result.output
