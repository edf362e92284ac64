"""Segmenter contract: shapes, batches, filters, edge cases, devices, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from yolact_ros.data.photos import load_photo
from yolact_ros.inference.instances import Instances
from yolact_ros.inference.postprocess import fast_nms, paste_masks
from yolact_ros.inference.visualize import draw_instances
from yolact_ros.model import OFFICIAL_CONFIGS, build_yolact
from yolact_ros.model.boxes import crop_masks, decode
from yolact_ros.model.checkpoint import save_checkpoint
from yolact_ros.segmenter import Segmenter, resolve_device
from yolact_ros.testing.reference_weights import apply_golden_weights, reference_model

SMALL = OFFICIAL_CONFIGS["yolact_plus_resnet50"].replace(name="small_plus", max_size=256)


@pytest.fixture(scope="module")
def seg():
    return Segmenter(model=reference_model(SMALL), device="cpu", score_threshold=0.0, top_k=100)


@pytest.fixture(scope="module")
def photo():
    return load_photo("coffee")  # 400x600, not square


def test_output_contract(seg, photo):
    inst = seg(photo)
    assert isinstance(inst, Instances)
    n = len(inst)
    assert n > 0
    assert inst.boxes.shape == (n, 4) and inst.boxes.dtype == np.float32
    assert inst.scores.shape == (n,) and inst.scores.dtype == np.float32
    assert inst.class_ids.dtype == np.int64 and inst.class_ids.max() < len(seg.class_names)
    assert inst.masks.shape == (n, 400, 600) and inst.masks.dtype == bool
    assert np.all(np.diff(inst.scores) <= 0)
    assert np.all(inst.boxes[:, [0, 2]] <= 600) and np.all(inst.boxes[:, [1, 3]] <= 400) and np.all(inst.boxes >= 0)
    assert np.all(inst.boxes[:, 2] >= inst.boxes[:, 0])
    # masks are cropped to their (slightly padded) boxes
    for i in range(n):
        ys, xs = np.nonzero(inst.masks[i])
        if len(xs):
            x1, y1, x2, y2 = inst.boxes[i]
            pad = 2 * 600 / 64 + 2  # crop padding is one prototype pixel, plus bilinear spread
            assert xs.min() >= x1 - pad and xs.max() <= x2 + pad and ys.min() >= y1 - pad and ys.max() <= y2 + pad
    assert set(seg.timings) >= {"preprocess", "backbone_fpn", "heads", "detect", "masks", "total"}


def test_batch_equals_single(seg, photo):
    other = load_photo("astronaut")
    batch = seg([photo, other])
    assert isinstance(batch, list) and len(batch) == 2
    for img, b in zip([photo, other], batch):
        s = seg(img)
        assert len(s) == len(b)
        np.testing.assert_allclose(s.scores, b.scores, atol=1e-4)
        np.testing.assert_array_equal(s.class_ids, b.class_ids)
        assert np.logical_xor(s.masks, b.masks).sum() <= 0.001 * s.masks.size
    assert seg([]) == []


def test_thresholds_top_k_and_class_filter(seg, photo):
    all_inst = seg(photo)
    seg.score_threshold, seg.top_k = 0.3, 5
    try:
        inst = seg(photo)
        assert len(inst) <= 5 and np.all(inst.scores > 0.3)
        target = int(all_inst.class_ids[-1])  # a class that is not the top one
        seg.classes = [seg.class_names[target]]
        inst = seg(photo)
        assert set(inst.class_ids.tolist()) <= {target}
        seg.score_threshold = 0.0
        inst = seg(photo)
        # filtered before top_k: we still get up to 5 of that class
        assert len(inst) == min(5, int((all_inst.class_ids == target).sum())) or len(inst) == 5
        seg.classes = [target]  # ids work too
        assert set(seg(photo).class_ids.tolist()) <= {target}
    finally:
        seg.score_threshold, seg.top_k, seg.classes = 0.0, 100, None


def test_invalid_settings_rejected(seg):
    with pytest.raises(ValueError):
        seg.score_threshold = 1.5
    with pytest.raises(ValueError):
        seg.top_k = 0
    with pytest.raises(ValueError, match="unknown class name"):
        seg.classes = ["unicorn"]
    with pytest.raises(ValueError):
        seg.nms_threshold = 0
    assert seg.score_threshold == 0.0 and seg.top_k == 100 and seg.classes is None


def test_zero_detections_and_odd_images(seg):
    seg.score_threshold = 0.999
    try:
        inst = seg(np.zeros((37, 91, 3), np.uint8))
        assert len(inst) == 0 and inst.masks.shape == (0, 37, 91) and inst.boxes.shape == (0, 4)
    finally:
        seg.score_threshold = 0.0
    for shape in [(1, 1, 3), (3, 500, 3), (700, 2, 3), (20, 30), (20, 30, 1), (20, 30, 4)]:
        img = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
        inst = seg(img)
        assert inst.masks.shape[1:] == shape[:2]


def test_bad_images_raise_clear_errors(seg):
    with pytest.raises(ValueError, match="uint8"):
        seg(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        seg(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        seg(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(TypeError):
        seg("image.jpg")


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda:1")
    with pytest.raises(ValueError):
        resolve_device("tpu")


def test_half_on_cpu_falls_back_to_float(photo):
    seg = Segmenter(model=reference_model(SMALL), device="cpu", half=True, score_threshold=0.0, top_k=10)
    assert not seg.half and len(seg(photo)) == 10
    for precision in ("tf32", "fp16"):  # CUDA-only policies: the CPU runs fp32 (with a warning)
        seg = Segmenter(model=reference_model(SMALL), device="cpu", precision=precision, top_k=10)
        assert seg.precision == "fp32"
    seg = Segmenter(model=reference_model(SMALL), device="cpu", cuda_graph=True, top_k=10)
    assert seg.cuda_graph is False and len(seg(photo)) == 10  # CUDA only: eager on the CPU
    with pytest.raises(ValueError, match="unknown precision 'bf8'"):
        Segmenter(model=reference_model(SMALL), device="cpu", precision="bf8")


def test_a_failed_graph_capture_falls_back_to_eager_once(photo, caplog):
    """Forced on where no graph can be captured (the CPU: the capture's CUDA stream fails for
    real), the Segmenter warns once, turns cuda_graph off and gives the eager results."""
    model = reference_model(SMALL)
    eager = Segmenter(model=model, device="cpu", score_threshold=0.1, top_k=10)(photo)
    seg = Segmenter(model=model, device="cpu", score_threshold=0.1, top_k=10)
    seg.cuda_graph = True
    with caplog.at_level("WARNING", logger="yolact_ros.inference"):
        first, second = seg(photo), seg(photo)
    assert seg.cuda_graph is False and not seg.runtime._graphs
    assert len(caplog.records) == 1 and "CUDA graph capture failed" in caplog.records[0].message
    for got in (first, second):
        np.testing.assert_array_equal(got.boxes, eager.boxes)
        np.testing.assert_array_equal(got.scores, eager.scores)


def test_device_options_are_one_definition_for_infer_and_eval():
    import argparse

    from yolact_ros.cli.infer import build_parser
    from yolact_ros.cli.options import add_device_options, device_settings

    args = build_parser().parse_args(
        [
            "x.jpg",
            "--weights",
            "w.pth",
            "--out",
            "o",
            "--device",
            "cuda:1",
            "--precision",
            "tf32",
            "--cuda-graph",
            "--threads",
            "3",
        ]
    )
    assert device_settings(args) == dict(
        device="cuda:1", backend="torch", precision="tf32", cuda_graph=True, num_threads=3, cache_dir=None
    )
    p = argparse.ArgumentParser()
    add_device_options(p)
    assert device_settings(p.parse_args([])) == dict(
        device="auto", backend="torch", precision="fp32", cuda_graph=False, num_threads=None, cache_dir=None
    )
    got = device_settings(p.parse_args(["--backend", "openvino", "--precision", "int8", "--cache-dir", "/c"]))
    assert (got["backend"], got["precision"], got["cache_dir"]) == ("openvino", "int8", "/c")
    for bad in (["--precision", "bf8"], ["--backend", "tensorrt"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)


TF32_PROBE = r"""
import json, torch
from yolact_ros.inference.segmenter import tf32
cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
out = {"before": [cudnn.allow_tf32, matmul.allow_tf32]}
with tf32(False):
    out["off"] = [cudnn.allow_tf32, matmul.allow_tf32]
with tf32(True):
    out["on"] = [cudnn.allow_tf32, matmul.allow_tf32]
out["after"] = [cudnn.allow_tf32, matmul.allow_tf32]
cudnn.conv.fp32_precision = "tf32"  # the newer per-operator setting: allow_tf32 can no longer be read
try:
    cudnn.allow_tf32
    out["mixed_readable"] = True
except RuntimeError:
    out["mixed_readable"] = False
with tf32(False):
    out["mixed_off"] = [cudnn.conv.fp32_precision, matmul.fp32_precision]
out["mixed_after"] = [cudnn.conv.fp32_precision, matmul.fp32_precision]
print(json.dumps(out))
"""


@pytest.mark.skipif(
    not hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision"),
    reason="this torch has no per-operator fp32_precision settings",
)
def test_tf32_switch_is_restored_and_survives_the_newer_settings():
    """The flags are process-wide, so the check runs in a fresh interpreter."""
    import json
    import subprocess
    import sys

    out = json.loads(
        subprocess.run([sys.executable, "-c", TF32_PROBE], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    assert out["off"] == [False, False] and out["on"] == [True, True]
    assert out["after"] == out["before"]
    if not out["mixed_readable"]:  # torch >= 2.9: the newer settings are used instead
        assert out["mixed_off"] == ["ieee", "ieee"]
        assert out["mixed_after"][0] == "tf32"


def test_postprocess_units():
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    assert torch.allclose(decode(torch.zeros(1, 4), priors), torch.tensor([[0.4, 0.3, 0.6, 0.7]]))
    m = torch.ones(1, 10, 10)
    c = crop_masks(m, torch.tensor([[0.25, 0.25, 0.55, 0.55]]), padding=0)
    assert c.sum() == 9 and c[0, 3:6, 3:6].sum() == 9  # keeps cols/rows >= 2.5 and < 5.5: 3, 4, 5
    assert paste_masks(torch.zeros(0, 4, 4), 8, 8).shape == (0, 8, 8)
    # Fast NMS: two overlapping boxes of one class -> only the better survives; a distant one stays
    loc = torch.zeros(3, 4)
    pri = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.31, 0.3, 0.2, 0.2], [0.8, 0.8, 0.1, 0.1]])
    conf = torch.tensor([[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.3, 0.7, 0.0]])
    d = fast_nms(loc, conf, torch.zeros(3, 2), pri)
    assert d.scores.tolist()[:2] == pytest.approx([0.9, 0.7]) and d.classes.tolist()[:2] == [0, 0]
    # as in the original, other classes' rows of candidate priors take part too (no second threshold)
    assert d.scores.tolist()[2:] == [0.0, 0.0] and d.classes.tolist()[2:] == [1, 1]
    d = fast_nms(loc, conf * torch.tensor([1.0, 0.0, 0.0]), torch.zeros(3, 2), pri)  # nothing above threshold
    assert len(d) == 0
    d = fast_nms(loc, conf, torch.zeros(3, 2), pri, cross_class_nms=True)
    assert d.scores.tolist() == pytest.approx([0.9, 0.7])


def test_draw_instances(seg, photo):
    inst = seg(photo)[:3]
    over = draw_instances(photo, inst)
    assert over.shape == photo.shape and over.dtype == np.uint8
    assert (over != photo).any() and (over[inst.masks[0]] != photo[inst.masks[0]]).any()
    assert np.array_equal(draw_instances(photo, inst[:0]), photo)


def test_cli_infer_images_folder_and_video(tmp_path, photo):
    model = apply_golden_weights(build_yolact(SMALL.replace(name="cli_small")))
    weights = save_checkpoint(model, tmp_path / "cli_small.pth")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    cv2.imwrite(str(imgs / "coffee.jpg"), photo)
    (imgs / "broken.jpg").write_bytes(b"not a jpeg")
    vid = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(3):
        w.write(cv2.resize(photo, (160, 120)))
    w.release()
    out = tmp_path / "out"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "yolact_ros.cli",
            "infer",
            str(imgs),
            str(vid),
            "--weights",
            str(weights),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--score-threshold",
            "0.1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert "cannot read image" in r.stderr
    assert (out / "coffee_overlay.jpg").is_file() and (out / "clip_overlay.mp4").stat().st_size > 0
    res = json.loads((out / "results.json").read_text())
    assert res and {"image_id", "category_id", "bbox", "score", "segmentation"} <= set(res[0])
    assert {e["image_id"] for e in res} <= {0, 1, 2, 3}
    from pycocotools import mask as mask_util

    rle = dict(res[0]["segmentation"])
    assert mask_util.decode(rle).shape == tuple(rle["size"])
    # a missing weights file: one clear error line, exit code 2, no traceback
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "yolact_ros.cli",
            "infer",
            str(imgs),
            "--weights",
            str(tmp_path / "nope.pth"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "nope.pth" in r.stderr and "Traceback" not in r.stderr


def test_weights_are_required_and_reference_weights_only_explicit():
    with pytest.raises(ValueError, match="needs weights="):
        Segmenter(config=SMALL, device="cpu")
    with pytest.raises(ValueError, match="not both"):
        Segmenter(weights="x.pth", model=reference_model(SMALL), device="cpu")
    with pytest.raises(ValueError, match="does not match"):
        Segmenter(config="yolact_base", model=reference_model(SMALL), device="cpu")


def test_with_settings_shares_the_network_and_leaves_the_original(seg, photo):
    strict = seg.with_settings(score_threshold=0.5, top_k=3, classes=["person"])
    assert strict.inference_model is seg.inference_model
    assert (seg.score_threshold, seg.top_k, seg.classes) == (0.0, 100, None)
    inst = strict(photo)
    assert len(inst) <= 3 and set(inst.class_ids.tolist()) <= {0} and (inst.scores > 0.5).all()
    assert len(seg(photo)) > 3
    with pytest.raises(TypeError, match="unknown setting"):
        seg.with_settings(weights="other.pth")


def test_box_sized_masks_equal_the_full_frame_paste(seg, photo):
    """Instances keep box-sized windows; the full-frame masks built from them equal a full-image
    bilinear paste bit for bit, and the windows are much smaller than N x H x W."""
    import torch.nn.functional as F

    from yolact_ros.inference.postprocess import paste_mask_windows

    inst = seg(photo)
    h, w = photo.shape[:2]
    assert len(inst) == 100 and inst.image_size == (h, w)
    assert sum(m.size for m in inst.mask_windows) < 0.5 * len(inst) * h * w
    # the windows against a whole-image resize of random cropped low-res masks
    g = torch.Generator().manual_seed(0)
    low = torch.rand(7, 34, 34, generator=g) * 2 - 0.5
    boxes = torch.sort(torch.rand(7, 2, 2, generator=g), dim=1).values.transpose(1, 2).reshape(7, 4)[:, [0, 2, 1, 3]]
    low = crop_masks(low, boxes)
    full = F.interpolate(low[None], (123, 201), mode="bilinear", align_corners=False)[0] > 0.5
    windows, origins = [None] * 7, np.zeros((7, 2), np.int64)
    groups = paste_mask_windows(low, 123, 201, boxes, group=3)  # 3 groups of similar size
    assert len(groups) == 3
    for idx, group_windows, group_origins in groups:
        for k, i in enumerate(idx):
            windows[i], origins[i] = group_windows[k].numpy(), group_origins[k].numpy()
    made = Instances(
        np.zeros((7, 4), np.float32),
        np.ones(7, np.float32),
        np.zeros(7, np.int64),
        mask_windows=windows,
        mask_origins=origins,
        image_size=(123, 201),
    )
    assert np.array_equal(made.masks, full.numpy())
    assert torch.equal(paste_masks(low, 123, 201, boxes), full)
    # regions read from the windows, inside and across their borders; selection keeps windows
    for i in range(7):
        for x, y, cw, ch in ((0, 0, 201, 123), (50, 20, 30, 40), (190, 110, 40, 40), (-5, -5, 10, 10)):
            ref = np.zeros((ch, cw), bool)
            xa, ya = max(x, 0), max(y, 0)
            ref[ya - y :, xa - x :][: 123 - ya, : 201 - xa] = made.masks[i, ya : y + ch, xa : x + cw]
            assert np.array_equal(made.mask_crop(i, x, y, cw, ch), ref), (i, x, y)
    sub = made[np.array([3, 1])]
    assert np.array_equal(sub.masks, made.masks[[3, 1]]) and sub.image_size == (123, 201)
    assert Instances.empty(5, 6).masks.shape == (0, 5, 6)
