"""COCO evaluation: ground truth scores AP 100, garbage scores ~0, the CLI runs a real Segmenter end to end."""

import json
import re

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from yolact_ros.cli.eval import main
from yolact_ros.data.coco import DatasetError, annotation_rle, load_coco
from yolact_ros.data.synth import DEFAULT_CLASSES, make_synthetic_dataset
from yolact_ros.evaluation.coco_eval import coco_evaluate, evaluate
from yolact_ros.evaluation.coco_results import category_mapping, instances_to_coco_results
from yolact_ros.inference.instances import Instances

W, H = 128, 96


pytestmark = pytest.mark.usefixtures("one_thread")  # test/conftest.py


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    ann = make_synthetic_dataset(out, n=5, seed=21, size=(W, H))
    return ann, out / "images", load_coco(ann)


def _gt_instances(coco, image_id, class_of_cat, jitter=0.0, rng=None):
    anns = coco.imgToAnns[image_id]
    masks = np.stack([mask_utils.decode(annotation_rle(a, H, W)).astype(bool) for a in anns])
    boxes = np.array(
        [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns],
        np.float32,
    )
    scores = np.linspace(0.9, 0.5, len(anns)).astype(np.float32)
    return Instances(
        boxes=boxes,
        scores=scores,
        class_ids=np.array([class_of_cat[a["category_id"]] for a in anns], np.int64),
        masks=masks,
        class_names=DEFAULT_CLASSES,
    )


def _results_from(coco, make):
    mapping = category_mapping(DEFAULT_CLASSES, coco)
    class_of_cat = {int(c): i for i, c in enumerate(mapping)}
    box, segm = [], []
    for image_id in coco.getImgIds():
        b, m = instances_to_coco_results(make(image_id, class_of_cat), image_id, mapping)
        box += b
        segm += m
    return box, segm


def test_ground_truth_scores_100(data, capsys):
    _, _, coco = data
    box, segm = _results_from(coco, lambda i, cc: _gt_instances(coco, i, cc))
    assert len(box) == len(segm) == len(coco.dataset["annotations"])
    stats = coco_evaluate(coco, box, segm)
    for key in ("box_AP", "box_AP50", "box_AP75", "mask_AP", "mask_AP50", "mask_AP75"):
        assert stats[key] == pytest.approx(100.0, abs=0.01), key
    out = capsys.readouterr().out
    assert "bbox:" in out and "segm:" in out and "Average Precision" in out


def test_garbage_scores_near_zero(data):
    _, _, coco = data
    rng = np.random.default_rng(0)

    def garbage(image_id, class_of_cat):
        n = 10
        xy = rng.uniform(0, [W - 10, H - 10], size=(n, 2))
        wh = rng.uniform(3, 10, size=(n, 2))
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        masks = np.zeros((n, H, W), bool)
        for j, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
            masks[j, y1:y2, x1:x2] = True
        return Instances(
            boxes=boxes,
            scores=rng.random(n).astype(np.float32),
            class_ids=rng.integers(0, 4, n),
            masks=masks,
            class_names=DEFAULT_CLASSES,
        )

    stats = coco_evaluate(coco, *_results_from(coco, garbage), verbose=False)
    assert stats["box_AP"] < 2 and stats["mask_AP"] < 2


def test_no_detections_is_zero_not_an_error(data):
    _, _, coco = data
    stats = coco_evaluate(coco, [], [], verbose=False)
    assert stats["box_AP"] == 0.0 and stats["mask_AP50"] == 0.0
    empty = Instances.empty(H, W, DEFAULT_CLASSES)
    assert instances_to_coco_results(empty, 1, np.arange(1, 5)) == ([], [])


def test_wrong_class_costs_ap_and_box_scores_rank_boxes(data):
    _, _, coco = data

    def shifted(image_id, class_of_cat):
        inst = _gt_instances(coco, image_id, class_of_cat)
        inst.class_ids = (inst.class_ids + 1) % 4
        return inst

    stats = coco_evaluate(coco, *_results_from(coco, shifted), verbose=False)
    assert stats["box_AP"] < 1 and stats["mask_AP"] < 1
    # masks score with inst.scores, boxes with inst.box_scores
    inst = _gt_instances(coco, 1, {c: c - 1 for c in range(1, 5)})
    inst.box_scores = np.full(len(inst), 0.25, np.float32)
    b, m = instances_to_coco_results(inst, 1, np.arange(1, 5))
    assert all(r["score"] == 0.25 for r in b) and [r["score"] for r in m] == pytest.approx(
        inst.scores.tolist(), abs=1e-5
    )


def test_category_mapping(data):
    _, _, coco = data
    assert category_mapping(DEFAULT_CLASSES, coco).tolist() == [1, 2, 3, 4]
    assert category_mapping(("star", "cat", "disc"), coco).tolist() == [4, -1, 1]  # unknown classes dropped
    assert category_mapping(("a", "b", "c", "d"), coco).tolist() == [1, 2, 3, 4]  # by position, with a warning
    with pytest.raises(DatasetError, match="do not match"):
        category_mapping(("a", "b"), coco)


def test_category_mapping_ignores_background_placeholder(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(
        json.dumps(
            {
                "images": [],
                "annotations": [],
                "categories": [{"id": 0, "name": "_background_"}, {"id": 1, "name": "cup"}, {"id": 2, "name": "bolt"}],
            }
        )
    )
    coco = load_coco(path)
    assert category_mapping(("x", "y"), coco).tolist() == [1, 2]
    assert category_mapping(("bolt", "cup"), coco).tolist() == [2, 1]


def _small_config():
    from yolact_ros.model.config import OFFICIAL_CONFIGS

    return OFFICIAL_CONFIGS["yolact_resnet50"].replace(name="test_shapes", max_size=96, class_names=DEFAULT_CLASSES)


def _small_model():
    from yolact_ros.testing.reference_weights import reference_model

    return reference_model(_small_config())


def test_evaluate_runs_a_real_segmenter(data, tmp_path):
    from yolact_ros.segmenter import Segmenter

    ann, images, _ = data
    seg = Segmenter(model=_small_model(), device="cpu", score_threshold=0.3, top_k=5)
    stats = evaluate(seg, ann, images, results_json=tmp_path / "res.json", progress=False, max_images=2, verbose=False)
    assert (seg.score_threshold, seg.top_k) == (0.3, 5)  # never changed
    assert stats["num_images"] == 2 and stats["num_detections"] > 0
    assert 0 <= stats["mask_AP"] < 50 and 0 <= stats["box_AP"] < 50  # reference weights know no shapes
    segm = json.loads((tmp_path / "res.json").read_text())
    box = json.loads((tmp_path / "res_bbox.json").read_text())
    assert len(segm) == len(box) == stats["num_detections"]
    assert {r["category_id"] for r in segm} <= {1, 2, 3, 4} and {r["image_id"] for r in segm} <= {1, 2}
    assert isinstance(segm[0]["segmentation"]["counts"], str) and len(box[0]["bbox"]) == 4


def test_cli_prints_ap_lines_last(data, tmp_path, capsys):
    from yolact_ros.model.checkpoint import save_checkpoint
    from yolact_ros.model.yolact import Yolact
    from yolact_ros.testing.reference_weights import apply_golden_weights

    ann, images, _ = data
    model = Yolact(_small_config()).eval()
    apply_golden_weights(model)
    weights = save_checkpoint(model, tmp_path / "shapes.pth")
    rc = main(
        [
            "--weights",
            str(weights),
            "--json",
            str(ann),
            "--images",
            str(images),
            "--device",
            "cpu",
            "--max-images",
            "1",
            "--no-progress",
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = out.strip().splitlines()
    assert re.fullmatch(r"box AP \d+\.\d\d", lines[-2]) and re.fullmatch(r"mask AP \d+\.\d\d", lines[-1]), lines[-3:]
    assert (tmp_path / "r.json").is_file()
    # an explicit YAML config gives the same model
    (tmp_path / "shapes.yaml").write_text(
        "base: yolact_resnet50\nname: test_shapes\nmax_size: 96\nclass_names: [disc, rectangle, triangle, star]\n"
    )
    rc = main(
        [
            "--weights",
            str(weights),
            "--json",
            str(ann),
            "--images",
            str(images),
            "--device",
            "cpu",
            "--max-images",
            "1",
            "--no-progress",
            "--config",
            str(tmp_path / "shapes.yaml"),
        ]
    )
    assert rc == 0 and capsys.readouterr().out.strip().splitlines()[-2:] == lines[-2:]
    # the GPU options are accepted everywhere; the CPU runs fp32 and eagerly, so the AP is the same
    rc = main(
        [
            "--weights",
            str(weights),
            "--json",
            str(ann),
            "--images",
            str(images),
            "--device",
            "cpu",
            "--max-images",
            "1",
            "--no-progress",
            "--precision",
            "fp16",
            "--cuda-graph",
        ]
    )
    assert rc == 0 and capsys.readouterr().out.strip().splitlines()[-2:] == lines[-2:]
    rc = main(
        [
            "--weights",
            str(weights),
            "--json",
            str(tmp_path / "missing.json"),
            "--images",
            str(images),
            "--device",
            "cpu",
        ]
    )
    assert rc == 2 and "missing.json" in capsys.readouterr().err


def test_evaluate_skips_missing_and_missized_images(data, tmp_path):
    import shutil

    import cv2

    from yolact_ros.segmenter import Segmenter

    ann, images, _ = data
    copy = tmp_path / "images"
    shutil.copytree(images, copy)
    (copy / "000000.jpg").unlink()
    cv2.imwrite(str(copy / "000001.jpg"), np.zeros((H + 8, W, 3), np.uint8))
    seg = Segmenter(model=_small_model(), device="cpu")
    stats = evaluate(seg, ann, copy, progress=False, max_images=3, verbose=False)
    assert stats["skipped_images"] == 2 and stats["num_images"] == 1
    for name in ("000000.jpg", "000001.jpg", "000002.jpg"):
        (copy / name).unlink(missing_ok=True)
    with pytest.raises(DatasetError, match="none of the 3 images"):
        evaluate(seg, ann, copy, progress=False, max_images=3, verbose=False)
