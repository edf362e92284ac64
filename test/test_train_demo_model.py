"""The committed demo model (models/demo/) loads from the file alone and keeps its measured accuracy."""

from pathlib import Path

from yolact_ros.data.synth import make_synthetic_dataset
from yolact_ros.evaluation.coco_eval import evaluate
from yolact_ros.model.checkpoint import read_checkpoint
from yolact_ros.segmenter import Segmenter

DEMO = Path(__file__).resolve().parents[1] / "models" / "demo" / "yolact_synth_demo.pth"


def test_demo_model_is_small_and_self_describing():
    assert DEMO.stat().st_size <= 20 * 1024 * 1024
    _, meta = read_checkpoint(DEMO)
    assert "config_json" in meta
    seg = Segmenter(weights=DEMO, device="cpu")
    assert seg.class_names == ("disc", "rectangle", "triangle", "star")
    assert seg.cfg.backbone.kind == "mobilenetv2" and seg.cfg.max_size == 256


def test_demo_model_mask_ap_on_held_out_synthetic_images(tmp_path):
    # the first 40 images of the held-out set of models/demo/README.md (seed 1000)
    ann = make_synthetic_dataset(tmp_path / "val", n=40, seed=1000)
    seg = Segmenter(weights=DEMO, device="cpu")
    stats = evaluate(seg, ann, ann.parent / "images", progress=False, verbose=False)
    # measured on all 200 held-out images: mask AP 59.4, box AP 63.7
    assert stats["mask_AP"] > 45, stats
    assert stats["box_AP"] > 45, stats
