"""Synthetic dataset generator: deterministic, valid COCO, pixels and annotations agree."""

import hashlib
import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from yolact_ros.cli.synth import main
from yolact_ros.data.coco import annotation_rle, load_coco
from yolact_ros.data.synth import DEFAULT_CLASSES, make_synthetic_dataset


def _digest(folder):
    h = hashlib.sha256()
    h.update((folder / "annotations.json").read_bytes())
    for p in sorted((folder / "images").iterdir()):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    path = make_synthetic_dataset(out, n=12, seed=5, size=(160, 120))
    return out, path


def test_same_seed_same_files_other_seed_differs(tmp_path, synth):
    out, _ = synth
    again = tmp_path / "again"
    make_synthetic_dataset(again, n=12, seed=5, size=(160, 120))
    assert _digest(again) == _digest(out)
    other = tmp_path / "other"
    make_synthetic_dataset(other, n=12, seed=6, size=(160, 120))
    a = json.loads((out / "annotations.json").read_text())["annotations"]
    b = json.loads((other / "annotations.json").read_text())["annotations"]
    assert [x["bbox"] for x in a] != [x["bbox"] for x in b]
    for name in ("000000.jpg", "000005.jpg"):
        assert (out / "images" / name).read_bytes() != (other / "images" / name).read_bytes()


def test_valid_coco_with_consistent_masks_and_boxes(synth):
    out, path = synth
    coco = load_coco(path)
    assert [c["name"] for c in sorted(coco.dataset["categories"], key=lambda c: c["id"])] == list(DEFAULT_CLASSES)
    assert len(coco.imgs) == 12
    formats = set()
    used_classes = set()
    for image_id, info in coco.imgs.items():
        img = cv2.imread(str(out / "images" / info["file_name"]))
        assert img is not None and img.shape == (info["height"], info["width"], 3) == (120, 160, 3)
        anns = coco.imgToAnns[image_id]
        assert anns, "every image has at least one object"
        union = np.zeros((120, 160), bool)
        for ann in anns:
            formats.add("rle" if isinstance(ann["segmentation"], dict) else "polygon")
            used_classes.add(ann["category_id"])
            assert ann["iscrowd"] == 0
            m = mask_utils.decode(annotation_rle(ann, 120, 160)).astype(bool)
            assert m.sum() >= 30
            assert ann["area"] == pytest.approx(m.sum())
            x, y, w, h = ann["bbox"]
            assert 0 <= x and 0 <= y and x + w <= 160 and y + h <= 120 and w > 0 and h > 0
            ys, xs = np.nonzero(m)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == pytest.approx((x, y, x + w, y + h), abs=1)
            assert not (union & m).any(), "visible masks of one image never overlap"
            union |= m
    assert formats == {"rle", "polygon"}  # occluded / truncated objects are RLE, whole ones polygons
    assert len(used_classes) == len(DEFAULT_CLASSES)


def test_objects_differ_from_the_background(synth):
    """The painted objects are visible: pixels just inside a mask differ from those just outside."""
    out, path = synth
    coco = load_coco(path)
    contrasts = []
    for image_id, info in coco.imgs.items():
        img = cv2.imread(str(out / "images" / info["file_name"])).astype(np.float32)
        for ann in coco.imgToAnns[image_id]:
            m = mask_utils.decode(annotation_rle(ann, 120, 160)).astype(np.uint8)
            inner = cv2.erode(m, np.ones((3, 3), np.uint8)).astype(bool)
            ring = cv2.dilate(m, np.ones((7, 7), np.uint8)).astype(bool) & ~cv2.dilate(
                m, np.ones((3, 3), np.uint8)
            ).astype(bool)
            if inner.sum() > 20 and ring.sum() > 20:
                contrasts.append(np.abs(img[inner].mean(0) - img[ring].mean(0)).max())
    assert np.median(contrasts) > 15


def test_ring_masks_have_holes(tmp_path):
    path = make_synthetic_dataset(tmp_path, n=4, seed=1, size=(160, 120), classes=["ring", "disc"])
    coco = load_coco(path)
    names = {c["id"]: c["name"] for c in coco.dataset["categories"]}
    assert sorted(names.values()) == ["disc", "ring"]
    holes = 0
    for ann in coco.dataset["annotations"]:
        if names[ann["category_id"]] == "ring":
            assert isinstance(ann["segmentation"], dict)  # a hole cannot be one polygon
            m = mask_utils.decode(annotation_rle(ann, 120, 160))
            x, y, w, h = ann["bbox"]
            holes += int(m[int(y + h / 2), int(x + w / 2)] == 0)
    assert holes >= 1


def test_cli(tmp_path, capsys):
    assert (
        main(["--out", str(tmp_path / "d"), "--n", "2", "--seed", "3", "--size", "96x64", "--classes", "disc", "star"])
        == 0
    )
    data = json.loads((tmp_path / "d" / "annotations.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["disc", "star"]
    assert {(i["width"], i["height"]) for i in data["images"]} == {(96, 64)}
    assert "wrote 2 images" in capsys.readouterr().out
    assert main(["--out", str(tmp_path / "e"), "--n", "2", "--classes", "hexagon"]) == 2
    assert "hexagon" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "f"), "--size", "big"])
