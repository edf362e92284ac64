"""CocoInstances: synthetic data and hand-made edge cases (missing files, degenerate and crowd annotations)."""

import json
import logging

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from yolact_ros.data.coco import CocoInstances, DatasetError
from yolact_ros.data.synth import DEFAULT_CLASSES, make_synthetic_dataset


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return make_synthetic_dataset(out, n=6, seed=11, size=(128, 96)), out / "images"


def test_reads_synthetic_dataset(synth):
    ann, images = synth
    ds = CocoInstances(ann, images)
    assert len(ds) == 6 and not ds.skipped
    assert ds.class_names == DEFAULT_CLASSES
    n_anns = 0
    for i in range(len(ds)):
        img, t = ds[i]
        assert img.dtype == np.uint8 and img.shape == (96, 128, 3)
        k = len(t["labels"])
        n_anns += k
        assert t["boxes"].dtype == np.float32 and t["boxes"].shape == (k, 4)
        assert t["labels"].dtype == np.int64 and t["masks"].dtype == np.uint8 and t["masks"].shape == (k, 96, 128)
        assert t["iscrowd"].dtype == bool and not t["iscrowd"].any()
        assert ((t["labels"] >= 0) & (t["labels"] < 4)).all()
        for box, m in zip(t["boxes"], t["masks"]):
            ys, xs = np.nonzero(m)
            assert np.allclose(box, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), atol=1)
    assert n_anns == len(json.loads(ann.read_text())["annotations"])
    assert ds[-1][1]["image_id"] == ds[5][1]["image_id"]
    with pytest.raises(IndexError):
        ds[6]


def _poly(x, y, w, h):
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


@pytest.fixture
def edge_case_dataset(tmp_path):
    """Six images exercising every skip reason, with non-contiguous category ids (7 'cup', 3 'bolt')."""
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("ok.png", "crowd.png", "degenerate.png", "unknown_cat.png", "wrong_size.png"):
        cv2.imwrite(str(images / name), rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    cv2.imwrite(str(images / "grey.png"), rng.integers(0, 255, (40, 50), dtype=np.uint8))
    (images / "corrupt.jpg").write_bytes(b"this is not a jpeg")
    crowd = np.zeros((40, 50), np.uint8)
    crowd[5:30, 10:45] = 1
    counts = mask_utils.encode(np.asfortranarray(crowd))
    uncompressed = []  # column-major run lengths, starting with zeros: COCO's uncompressed RLE
    flat = crowd.flatten(order="F")
    value, run = 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            uncompressed.append(run)
            value, run = v, 1
    uncompressed.append(run)
    data = {
        "images": [
            {"id": 1, "file_name": "ok.png", "width": 50, "height": 40},
            {"id": 2, "file_name": "missing.png", "width": 50, "height": 40},
            {"id": 3, "file_name": "crowd.png", "width": 50, "height": 40},
            {"id": 4, "file_name": "degenerate.png", "width": 50, "height": 40},
            {"id": 5, "file_name": "corrupt.jpg", "width": 50, "height": 40},
            {"id": 6, "file_name": "wrong_size.png", "width": 64, "height": 40},
            {"id": 7, "file_name": "grey.png", "width": 50, "height": 40},
            {"id": 8, "file_name": "unknown_cat.png", "width": 50, "height": 40},
        ],
        # an unused "_background_" category, as labelme2coco writes, is ignored
        "categories": [{"id": 7, "name": "cup"}, {"id": 0, "name": "_background_"}, {"id": 3, "name": "bolt"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 7,
                "bbox": [2, 3, 20, 10],
                "segmentation": _poly(2, 3, 20, 10),
                "iscrowd": 0,
                "area": 200,
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 3,
                "bbox": [30, 20, 10, 15],
                "segmentation": {"size": [40, 50], "counts": counts["counts"].decode()},
                "iscrowd": 0,
                "area": 150,
            },
            {
                "id": 3,
                "image_id": 2,
                "category_id": 7,
                "bbox": [2, 3, 20, 10],
                "segmentation": _poly(2, 3, 20, 10),
                "iscrowd": 0,
                "area": 200,
            },
            {
                "id": 4,
                "image_id": 3,
                "category_id": 3,
                "bbox": [10, 5, 35, 25],
                "segmentation": {"size": [40, 50], "counts": uncompressed},
                "iscrowd": 1,
                "area": int(crowd.sum()),
            },
            {
                "id": 5,
                "image_id": 3,
                "category_id": 7,
                "bbox": [0, 0, 8, 8],
                "segmentation": _poly(0, 0, 8, 8),
                "iscrowd": 0,
                "area": 64,
            },
            # degenerate: a polygon with two points, a zero-width box, a collinear (zero-area) polygon
            {
                "id": 6,
                "image_id": 4,
                "category_id": 7,
                "bbox": [1, 1, 5, 5],
                "segmentation": [[1, 1, 6, 6]],
                "iscrowd": 0,
                "area": 0,
            },
            {
                "id": 7,
                "image_id": 4,
                "category_id": 7,
                "bbox": [1, 1, 0, 5],
                "segmentation": _poly(1, 1, 0, 5),
                "iscrowd": 0,
                "area": 0,
            },
            {
                "id": 8,
                "image_id": 4,
                "category_id": 3,
                "bbox": [1, 1, 5, 5],
                "segmentation": [[1.2, 1.2, 3.2, 3.2, 5.2, 5.2]],
                "iscrowd": 0,
                "area": 0,
            },
            {
                "id": 9,
                "image_id": 5,
                "category_id": 7,
                "bbox": [2, 3, 20, 10],
                "segmentation": _poly(2, 3, 20, 10),
                "iscrowd": 0,
                "area": 200,
            },
            {
                "id": 10,
                "image_id": 6,
                "category_id": 7,
                "bbox": [2, 3, 20, 10],
                "segmentation": _poly(2, 3, 20, 10),
                "iscrowd": 0,
                "area": 200,
            },
            {
                "id": 11,
                "image_id": 7,
                "category_id": 3,
                "bbox": [5, 5, 10, 10],
                "segmentation": _poly(5, 5, 10, 10),
                "iscrowd": 0,
                "area": 100,
            },
            {
                "id": 12,
                "image_id": 8,
                "category_id": 99,
                "bbox": [5, 5, 10, 10],
                "segmentation": _poly(5, 5, 10, 10),
                "iscrowd": 0,
                "area": 100,
            },
        ],
    }
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(data))
    return ann, images, crowd


def test_edge_cases_are_skipped_and_counted(edge_case_dataset, caplog):
    ann, images, crowd = edge_case_dataset
    with caplog.at_level(logging.WARNING):
        ds = CocoInstances(ann, images)
    # kept: ok (1), crowd (3), grey (7)
    assert ds.image_ids == [1, 3, 7]
    assert ds.class_names == ("bolt", "cup")  # sorted by category id: 3, 7
    assert ds.skipped["missing image file"] == 1
    assert ds.skipped["unreadable image file"] == 1
    assert ds.skipped["image size differs from the JSON"] == 1
    assert ds.skipped["annotation with an unknown category_id"] == 1
    assert sum(n for reason, n in ds.skipped.items() if reason.startswith("degenerate")) == 3
    assert ds.skipped["image without usable annotations"] == 2  # degenerate.png, unknown_cat.png
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        len(warnings) == 1 and "missing.png" in warnings[0].getMessage() and "corrupt.jpg" in warnings[0].getMessage()
    )

    img, t = ds[0]
    assert t["image_id"] == 1
    assert t["labels"].tolist() == [1, 0]  # cup -> 1, bolt -> 0
    assert np.allclose(t["boxes"], [[2, 3, 22, 13], [30, 20, 40, 35]])
    assert t["masks"][0].sum() > 150 and (t["masks"][1] == crowd).all()  # the compressed RLE decodes as written

    img, t = ds[1]
    assert t["iscrowd"].tolist() == [True, False]
    assert (t["masks"][0] == crowd).all()  # uncompressed RLE
    assert t["labels"].tolist() == [0, 1]

    img, t = ds[2]  # a grey PNG comes out as 3-channel BGR
    assert img.shape == (40, 50, 3)


def test_keep_empty_and_strict(edge_case_dataset):
    ann, images, _ = edge_case_dataset
    ds = CocoInstances(ann, images, keep_empty=True)
    assert ds.image_ids == [1, 3, 4, 7, 8]
    img, t = ds[ds.image_ids.index(4)]
    assert t["boxes"].shape == (0, 4) and t["masks"].shape == (0, 40, 50) and t["labels"].shape == (0,)
    with pytest.raises(DatasetError, match="missing.png"):
        CocoInstances(ann, images, strict=True)


def test_image_broken_after_indexing_gives_clear_error(edge_case_dataset):
    ann, images, _ = edge_case_dataset
    ds = CocoInstances(ann, images)
    (images / "ok.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="ok.png"):
        ds[0]


def test_bad_files(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="not found"):
        CocoInstances(tmp_path / "nope.json", tmp_path / "images")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="bad.json"):
        CocoInstances(bad, tmp_path / "images")
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(DatasetError, match="COCO"):
        CocoInstances(bad, tmp_path / "images")
    bad.write_text(json.dumps({"images": [], "categories": [{"id": 1, "name": "a"}], "annotations": []}))
    with pytest.raises(DatasetError, match="no usable images"):
        CocoInstances(bad, tmp_path / "images")
    with pytest.raises(DatasetError, match="images folder"):
        CocoInstances(bad, tmp_path / "nowhere")
