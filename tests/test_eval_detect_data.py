"""Detection inputs: COCO and Levir readers, slicing with clipped boxes, the 3:1:1 split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import InputError
from pipeline.report import RunReport
from training.evaluation.detection.data import read_annotations
from training.evaluation.detection.run import split_images
from training.evaluation.detection.slicing import (
    SliceSpec,
    clip_to_window,
    cut_slices,
    load_slices,
    slice_origins,
)
from training.evaluation.detection.synthetic import CLASSES, paste_objects


def write_png(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)


def coco(root: Path, anns: list[dict], size: tuple[int, int] = (40, 30)) -> Path:
    write_png(root / "images" / "a.png", *size)
    write_png(root / "images" / "b.png", *size)
    (root / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": size[0], "height": size[1]},
                   {"id": 2, "file_name": "b.png", "width": size[0], "height": size[1]}],
        "annotations": anns,
        "categories": [{"id": 3, "name": "ship"}, {"id": 1, "name": "plane"}]}))
    return root


def test_coco_boxes_become_xyxy_with_classes_in_id_order(tmp_path: Path) -> None:
    root = coco(tmp_path, [
        {"id": 7, "image_id": 2, "category_id": 3, "bbox": [1, 2, 10, 5]},
        {"id": 8, "image_id": 2, "category_id": 1, "bbox": [0, 0, 40, 30]},
        {"id": 9, "image_id": 1, "category_id": 1, "bbox": [5, 5, 5, 5], "iscrowd": 1}])
    ann = read_annotations(root)
    assert ann.classes == ["plane", "ship"]
    a, b = ann.images
    assert a.path.name == "a.png" and len(a.boxes) == 0  # crowd regions left out
    assert b.boxes.tolist() == [[1, 2, 11, 7], [0, 0, 40, 30]] and b.labels.tolist() == [1, 0]
    report = RunReport(stage="t", parameters={})
    slices = load_slices(ann, SliceSpec(size=32), report)
    # 40 × 30 → two slices per image (x at 0 and 8), the second row padded
    assert slices.images.shape == (4, 3, 32, 32) and slices.image_index.tolist() == [0, 0, 1, 1]
    assert slices.names[2:] == ["b.png@0,0", "b.png@8,0"]
    assert (slices.images[0, :, 30:] == 0).all()
    assert slices.boxes[2].tolist() == [[1, 2, 11, 7], [0, 0, 32, 30]]
    assert slices.boxes[3].tolist() == [[0, 0, 32, 30]]  # 30 % of the small box: dropped
    assert report.counts["images"] == 2 and report.counts["objects"] == 2
    assert report.counts["crowd_regions_skipped"] == 1


def test_levir_text_files_with_codes_or_names(tmp_path: Path) -> None:
    write_png(tmp_path / "x.jpg", 50, 40)
    (tmp_path / "x.txt").write_text("1 0 0 10 12\n\nship,20,5,30,39\n3 40 30 50 40\n")
    write_png(tmp_path / "y.jpg", 50, 40)  # no text file: a background image
    ann = read_annotations(tmp_path)
    assert ann.classes == ["airplane", "ship", "oiltank"]
    x, y = ann.images
    assert x.labels.tolist() == [0, 1, 2] and x.boxes[1].tolist() == [20, 5, 30, 39]
    assert x.refs == ("line 1", "line 3", "line 4") and len(y.boxes) == 0


@pytest.mark.parametrize(("anns", "message"), [
    ([{"id": 5, "image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5]}],
     "annotation 5: unknown class (category_id 2)"),
    ([{"id": 6, "image_id": 1, "category_id": 1, "bbox": [30, 20, 11, 5]}],
     "annotation 6: box [30.0, 20.0, 41.0, 25.0] outside the 40×30 image a.png"),
    ([{"id": 4, "image_id": 9, "category_id": 1, "bbox": [0, 0, 5, 5]}],
     "annotation 4: unknown image_id 9"),
])
def test_bad_coco_annotations_name_the_record(tmp_path: Path, anns: list[dict],
                                              message: str) -> None:
    root = coco(tmp_path, anns)
    with pytest.raises(InputError) as err:
        load_slices(read_annotations(root), SliceSpec(size=32), RunReport("t", {}))
    assert str(err.value) == f"{root / 'annotations.json'}: {message}"


def test_bad_levir_lines_and_images(tmp_path: Path) -> None:
    write_png(tmp_path / "x.jpg", 50, 40)
    (tmp_path / "x.txt").write_text("4 0 0 10 10\n")
    with pytest.raises(InputError, match=r"x.txt: line 1: unknown class '4'"):
        read_annotations(tmp_path)
    (tmp_path / "x.txt").write_text("ship 0 0 10\n")
    with pytest.raises(InputError, match=r"line 1: expected CLASS XMIN YMIN XMAX YMAX"):
        read_annotations(tmp_path)
    (tmp_path / "x.txt").write_text("ship 0 0 10 10\n")
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(InputError, match=r"x.jpg: cannot decode image"):
        load_slices(read_annotations(tmp_path), SliceSpec(size=32), RunReport("t", {}))


def test_slice_origins_cover_the_image_flush_with_the_far_edge() -> None:
    assert slice_origins(800, 256, 256) == [0, 256, 512, 544]
    assert slice_origins(600, 256, 256) == [0, 256, 344]
    assert slice_origins(512, 256, 256) == [0, 256]
    assert slice_origins(200, 256, 256) == [0]
    assert slice_origins(512, 256, 192) == [0, 192, 256]


@pytest.mark.parametrize(("keep", "kept"), [(0.5, [0, 1]), (0.6, [0]), (0.3, [0, 1, 2])])
def test_clipping_keeps_boxes_with_enough_area_inside(keep: float, kept: list[int]) -> None:
    boxes = np.array([[2, 2, 10, 10],  # wholly inside
                      [12, 0, 20, 8],  # half inside a 16-wide window
                      [0, 13, 10, 23],  # 30 % inside
                      [30, 30, 40, 40]], np.float32)  # outside
    got, labels = clip_to_window(boxes, np.arange(4), 0, 0, 16, keep)
    assert labels.tolist() == kept
    want = {0: [2, 2, 10, 10], 1: [12, 0, 16, 8], 2: [0, 13, 10, 16]}
    assert got.tolist() == [want[i] for i in kept]


def test_cut_slices_shift_boxes_into_each_slice() -> None:
    image = np.zeros((3, 20, 24), np.uint8)
    boxes = np.array([[14.0, 2.0, 22.0, 6.0]], np.float32)
    out = cut_slices(image, boxes, np.array([1]), SliceSpec(size=16, keep=0.5))
    assert [(x0, y0) for x0, y0, *_ in out] == [(0, 0), (8, 0), (0, 4), (8, 4)]
    assert out[0][3].tolist() == []  # 2 of 8 columns inside: dropped
    assert out[1][3].tolist() == [[6, 2, 14, 6]] and out[1][4].tolist() == [1]
    assert out[3][3].tolist() == [[6, 0, 14, 2]]  # half the rows inside: kept


def test_three_way_split_is_seeded_disjoint_and_stratified() -> None:
    strata = np.repeat([0, 1, 2], [50, 20, 5])
    train, val, test = split_images(strata, seed=0, repeat=0)
    assert len(np.unique(np.concatenate([train, val, test]))) == 75
    assert [len(train), len(val), len(test)] == [45, 15, 15]
    for part in (val, test):
        assert set(strata[part]) == {0, 1, 2}
    again = split_images(strata, seed=0, repeat=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, val, test), strict=True))
    assert not np.array_equal(split_images(strata, seed=0, repeat=1)[2], test)


def test_generated_objects_fill_exactly_their_boxes() -> None:
    grey = np.full((64, 64, 3), 128, np.uint8)  # no pasted colour is 128
    out, objects = paste_objects(grey, np.random.default_rng(3), 4, CLASSES, (10, 20))
    assert len(objects) == 4 and {label for _, label in objects} <= {0, 1, 2}
    changed = (out != grey).any(axis=2)
    for (x1, y1, x2, y2), _ in objects:
        inside = changed[y1:y2, x1:x2]
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
        changed[y1:y2, x1:x2] = False
    assert not changed.any()  # nothing pasted outside the boxes


def test_levir_and_coco_layouts_read_into_the_same_structure(tmp_path: Path) -> None:
    coco_root = tmp_path / "coco"
    write_png(coco_root / "images" / "s.png", 64, 48)
    (coco_root / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "s.png", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [3, 4, 20, 10]},
                        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [30, 8, 34, 40]}],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]}))
    levir_root = tmp_path / "levir"
    write_png(levir_root / "s.png", 64, 48)
    (levir_root / "s.txt").write_text("2 3 4 23 14\n3 30 8 64 48\n")
    a, b = read_annotations(coco_root), read_annotations(levir_root)
    assert a.classes == b.classes == list(CLASSES)
    assert np.array_equal(a.images[0].boxes, b.images[0].boxes)
    assert np.array_equal(a.images[0].labels, b.images[0].labels)
