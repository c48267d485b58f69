"""Segmentation: data readers, the paper's decoder, and a tiny run on real cloud masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform

from pipeline.report import RunReport
from training.evaluation.backbones import InitSpec, Normalisation, build_backbone
from training.evaluation.cli import main
from training.evaluation.segdata import IGNORE, NpzSpec, cut_tiles, load_segmentation, read_npz
from training.evaluation.segmodel import SegNet, spatial_encoder
from training.evaluation.zion import prepare_zion


def test_cloud_npz_is_reordered_to_rgb_and_binarised(shared_data: Path) -> None:
    path = shared_data / "cloudmasks" / "sentinel2.npz"
    rgb, mask = read_npz(path, NpzSpec())
    with np.load(path) as z:
        img, msk = z["img"], z["msk"][..., 0]
    # bands are blue, green, red: red comes first; reflectance 1.0 → 255 for every file
    expected_red = np.clip(np.round(img[..., 2] * 255), 0, 255)
    assert np.abs(rgb[0].astype(int) - expected_red).max() <= 1
    assert rgb.dtype == np.uint8 and rgb.shape == (3, 512, 512)
    assert mask.sum() == (msk == 4).sum() and set(np.unique(mask)) == {0, 1}


def test_cut_tiles_drops_remainder_and_unlabelled_tiles() -> None:
    image = np.zeros((3, 10, 7), np.uint8)
    mask = np.zeros((10, 7), np.uint8)
    mask[:4, :] = IGNORE  # the top row of tiles has no labelled pixel
    tiles = list(cut_tiles(image, mask, 3))
    assert [(r, c) for r, c, _, _ in tiles] == [(3, 0), (3, 3), (6, 0), (6, 3)]
    assert all(t.shape == (3, 3, 3) and m.shape == (3, 3) for _, _, t, m in tiles)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_folder_pairs_map_codes_and_ignore_nodata(tmp_path: Path) -> None:
    # a PNG image and a GeoTIFF mask with nodata 0, written here in both formats
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rgb = np.random.default_rng(0).integers(0, 255, (3, 8, 8), dtype=np.uint8)
    with rasterio.open(tmp_path / "images" / "a.png", "w", driver="PNG", width=8, height=8,
                       count=3, dtype="uint8") as dst:
        dst.write(rgb)
    codes = np.full((8, 8), 20, np.uint8)
    codes[:, :4] = 10
    codes[0, 0] = 0
    with rasterio.open(tmp_path / "masks" / "a.tif", "w", driver="GTiff", width=8, height=8,
                       count=1, dtype="uint8", nodata=0, crs="EPSG:32612",
                       transform=from_origin(0, 80, 10, 10)) as dst:
        dst.write(codes[None])
    (tmp_path / "classes.json").write_text(json.dumps({"10": "forest"}))
    report = RunReport(stage="t", parameters={})
    tiles = load_segmentation(tmp_path, 4, report)
    assert tiles.classes == ["forest", "20"]
    assert tiles.images.shape == (4, 3, 4, 4) and torch.equal(tiles.images[0], torch.from_numpy(
        rgb[:, :4, :4]))
    assert tiles.masks[0, 0, 0] == IGNORE and tiles.masks[0, 1, 1] == 0
    assert (tiles.masks[1] == 1).all()
    assert tiles.dominant().tolist() == [0, 1, 0, 1]


def test_zion_mask_is_nlcd_reprojected_onto_the_scene_grid(shared_data: Path,
                                                           tmp_path: Path) -> None:
    image_path, mask_path = prepare_zion(shared_data / "zion", tmp_path)
    with rasterio.open(shared_data / "zion" / "landsat8_zion_bgrn.tif") as scene, \
            rasterio.open(image_path) as img, rasterio.open(mask_path) as msk:
        assert (img.crs, img.transform, img.shape) == (scene.crs, scene.transform, scene.shape)
        assert img.dtypes == ("uint8",) * 3 and msk.nodata == IGNORE
        mask = msk.read(1)
        transform, crs = msk.transform, msk.crs
    assert set(np.unique(mask)) <= set(range(1, 9)) | {IGNORE}
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, mask.shape[0], 300), rng.integers(0, mask.shape[1], 300)
    xs, ys = rasterio.transform.xy(transform, rows, cols)
    with rasterio.open(shared_data / "zion" / "nlcd.tif") as nlcd:
        nx, ny = warp_transform(crs, nlcd.crs, xs, ys)
        sampled = np.array([v[0] for v in nlcd.sample(zip(nx, ny, strict=True))])
    # nearest neighbour: each scene pixel takes the NLCD pixel under its centre
    assert (sampled == mask[rows, cols]).mean() > 0.98


def test_decoder_doubles_back_to_input_size() -> None:
    encoder = spatial_encoder(build_backbone("resnet18", InitSpec("random"), seed=0))
    net = SegNet(encoder, n_classes=3, norm=Normalisation())
    assert len(net.decoder) == 5  # stride 32 = five ×2 stages
    assert [m.out_channels for m in net.decoder.modules() if isinstance(m, torch.nn.Conv2d)] \
        == [256, 128, 64, 32, 32]
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 3, 64, 64)
    assert net(torch.rand(1, 3, 48, 48)).shape == (1, 3, 48, 48)  # not a multiple of 32


@pytest.mark.parametrize("mode", ["finetune", "frozen"])
def test_tiny_cloud_segmentation_run(shared_data: Path, tmp_path: Path, mode: str) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "segment", "--data", str(shared_data / "cloudmasks"), "--out", str(out),
        "--arch", "resnet18", "--tile-size", "64", "--max-tiles-per-file", "4",
        "--fractions", "0.5,1.0", "--repeats", "1", "--epochs", "1", "--batch-size", "4",
        "--device", "cpu", "--mode", mode])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:3] == ["mIoU", "50%", "100%"]
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["fraction"] for r in records] == [0.5, 1.0]
    assert all(0.0 <= r["score"] <= 1.0 and len(r["per_class"]) == 2 for r in records)
    assert (out / "table.md").read_text().startswith("| mIoU | 50% | 100% |")
    run = json.loads((out / "run.json").read_text())["runs"][0]
    assert run["parameters"]["classes"] == ["clear", "cloud"]
    assert run["counts"]["tiles"] == 12
