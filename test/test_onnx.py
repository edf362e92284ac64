"""ONNX export (``yolact export``) and the onnxruntime backend of the Segmenter.

Parity: the golden-fixture checks of test_golden_parity.py (golden_checks.py) run here with a
``case`` whose Segmenter is ``backend="onnxruntime"`` on an export of the same reference
weights -- every fixture with the default DCN formulation (GridSample + Conv) and, for the
YOLACT++ fixtures, also with ``--dcn native`` (ONNX DeformConv).  The tolerances are the
goldens' own (test/fixtures/golden/README.md, "How to compare"), the same the torch backend
meets.  Each export is made once per module.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from golden_checks import (  # noqa: E402,F401 - the parity tests, collected here with this module's case
    load_case,
    test_detect_output_and_maskiou,
    test_final_detections_and_masks,
    test_raw_outputs,
)
from golden_compare import golden_files, load  # noqa: E402

from yolact_ros.cli import main as cli_main  # noqa: E402
from yolact_ros.data.photos import load_photo  # noqa: E402
from yolact_ros.inference import defaults  # noqa: E402
from yolact_ros.inference.backends import onnxruntime_backend as onnx_runtime  # noqa: E402
from yolact_ros.inference.onnx_export import ExportError, export_onnx  # noqa: E402
from yolact_ros.inference.onnx_format import OUTPUT_NAMES, OnnxBackendError, OnnxModelError  # noqa: E402
from yolact_ros.model import OFFICIAL_CONFIGS  # noqa: E402
from yolact_ros.model.checkpoint import CheckpointError  # noqa: E402
from yolact_ros.segmenter import Segmenter  # noqa: E402
from yolact_ros.testing.reference_weights import reference_model  # noqa: E402

DEMO = os.path.join(os.path.dirname(__file__), "..", "models", "demo", "yolact_synth_demo.pth")
THREADS = 2


def _golden_cases():
    cases = []
    for path in golden_files():
        config = load(path)[1]["config"]
        cases.append(pytest.param((path, "grid_sample"), id=f"{path.stem}-grid_sample"))
        if OFFICIAL_CONFIGS[config].backbone.dcn_layers:
            cases.append(pytest.param((path, "native"), id=f"{path.stem}-native"))
    return cases


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """exported(config, **export_options) -> path of an export of the reference weights (made once)."""
    cache = {}

    def get(config: str, **options):
        key = (config, tuple(sorted(options.items())))
        if key not in cache:
            path = tmp_path_factory.mktemp("onnx") / f"{config}.onnx"
            export_onnx(reference_model(config), path, **options)
            cache[key] = path
        return cache[key]

    return get


def _ort_segmenter(path, **settings):
    return Segmenter(backend="onnxruntime", weights=path, device="cpu", num_threads=THREADS, **settings)


@pytest.fixture(scope="module", params=_golden_cases())
def case(request, exported):
    path, dcn = request.param
    return load_case(path, lambda config: _ort_segmenter(exported(config, dcn=dcn), score_threshold=0.0, top_k=100))


@pytest.fixture(scope="module")
def astronaut():
    return load_photo("astronaut")


# -- the file ---------------------------------------------------------------------------------------
def test_export_is_checked_and_self_describing(exported):
    path = exported("yolact_plus_resnet50")
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    cfg = OFFICIAL_CONFIGS["yolact_plus_resnet50"]
    assert meta["exporter"] == "yolact_ros" and meta["config_name"] == cfg.name
    assert json.loads(meta["class_names"]) == list(cfg.class_names)
    assert meta["input_size"] == "550" and json.loads(meta["input_shape"]) == [1, 3, 550, 550]
    norm = json.loads(meta["normalization"])
    assert norm["channel_order"] == "RGB" and norm["transform"] == "mean_std" and len(norm["mean_rgb"]) == 3
    assert meta["dcn"] == "grid_sample" and meta["precision"] == "fp32" and meta["maskiou"] == "embedded"
    assert [o.name for o in model.graph.output] == list(OUTPUT_NAMES) == json.loads(meta["output_names"])
    assert [i.name for i in model.graph.input] == ["input"]
    ops = {n.op_type for n in model.graph.node}
    assert "GridSample" in ops and "DeformConv" not in ops
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)  # standard operators only
    # the embedded mask-IoU graph is a valid model too
    import base64

    onnx.checker.check_model(onnx.load_from_string(base64.b64decode(meta["maskiou_onnx_base64"])))


def test_native_dcn_export_uses_deformconv(exported):
    model = onnx.load(str(exported("yolact_plus_resnet50", dcn="native")))
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("DeformConv") == sum(
        OFFICIAL_CONFIGS["yolact_plus_resnet50"].backbone.layers[1:]
    )  # one per DCN block
    assert "GridSample" not in ops
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {19}


def test_fp16_export_agrees_with_fp32(exported, astronaut):
    """Rule: every fp32 detection but the lowest-ranked 5 % (where the top-100 cut and Fast NMS
    may swap near-ties) has an fp16 detection of the same class with box IoU >= 0.9 and
    |score diff| <= 0.01; matched masks of >= 500 px agree to mask IoU >= 0.9."""
    fp32 = _ort_segmenter(exported("yolact_resnet50"), score_threshold=0.0, top_k=100)(astronaut)
    fp16_path = exported("yolact_resnet50", precision="fp16")
    assert fp16_path.stat().st_size < 0.6 * exported("yolact_resnet50").stat().st_size
    fp16 = _ort_segmenter(fp16_path, score_threshold=0.0, top_k=100)(astronaut)
    assert abs(len(fp16) - len(fp32)) <= 2
    head = int(np.ceil(0.95 * len(fp32)))
    for i in range(head):
        same = np.flatnonzero(fp16.class_ids == fp32.class_ids[i])
        assert len(same), f"fp32 detection {i}: no fp16 detection of class {fp32.class_ids[i]}"
        ious = _box_iou(fp32.boxes[i], fp16.boxes[same])
        j = same[int(np.argmax(ious))]
        assert ious.max() >= 0.9, f"fp32 detection {i}: best fp16 box IoU {ious.max():.3f}"
        assert abs(fp32.scores[i] - fp16.scores[j]) <= 0.01
        union = np.logical_or(fp32.masks[i], fp16.masks[j]).sum()
        if union >= 500:
            assert np.logical_and(fp32.masks[i], fp16.masks[j]).sum() / union >= 0.9


def _box_iou(box, boxes):
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(boxes) - inter + 1e-9)


# -- a checkpoint written by `yolact train`, through the CLI ------------------------------------------
def test_cli_export_of_a_trained_checkpoint_and_infer(tmp_path, capsys):
    out = tmp_path / "demo.onnx"
    assert cli_main(["export", "--weights", DEMO, "--out", str(out), "--dynamic-batch"]) == 0
    printed = capsys.readouterr().out
    assert (
        "exporting synth_mobilenet (256x256, batch dynamic" in printed
        and "MiB" in printed
        and "onnx.checker passed" in printed
    )
    ref = Segmenter(weights=DEMO, device="cpu", score_threshold=0.05)
    seg = _ort_segmenter(out, score_threshold=0.05)
    assert seg.class_names == ref.class_names == ("disc", "rectangle", "triangle", "star")
    images = _synthetic_images(3)
    for mine, theirs in zip(seg(images), ref(images)):  # a batch of 3 through the dynamic batch axis
        assert len(mine) == len(theirs)
        assert np.array_equal(mine.class_ids, theirs.class_ids)
        assert np.abs(mine.scores - theirs.scores).max(initial=0) < 1e-4
        assert np.abs(mine.boxes - theirs.boxes).max(initial=0) < 0.5
    # yolact infer --backend onnxruntime
    img_path = tmp_path / "img.png"
    import cv2

    cv2.imwrite(str(img_path), images[0])
    assert (
        cli_main(
            [
                "infer",
                str(img_path),
                "--weights",
                str(out),
                "--backend",
                "onnxruntime",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "res"),
                "--no-overlay",
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "res" / "results.json").read_text())
    cli_settings = seg.with_settings(score_threshold=defaults.SCORE_THRESHOLD, top_k=defaults.TOP_K)
    assert len(results) == len(cli_settings(images[0])) > 0


def _synthetic_images(n):
    from yolact_ros.data.synth import SynthOptions, load_background_photos, render_image

    rng = np.random.default_rng(7)
    photos = load_background_photos()
    return [render_image(rng, photos, SynthOptions(size=(320, 240)))[0] for _ in range(n)]


def test_static_batch_and_other_export_size(tmp_path):
    """A static batch of 2 runs any number of images (chunks, the last padded); an export at
    another size makes the Segmenter resize to that size."""
    path = tmp_path / "demo_b2_320.onnx"
    model = Segmenter(weights=DEMO, device="cpu").model
    export_onnx(model, path, batch=2, size=320)
    seg = _ort_segmenter(path, score_threshold=0.05)
    assert seg.input_size == 320 and seg.cfg.max_size == 256
    images = _synthetic_images(3)
    assert seg.preprocess(images).shape == (3, 3, 320, 320)
    batched = seg(images)
    for img, inst in zip(images, batched):
        alone = seg(img)
        assert np.array_equal(alone.class_ids, inst.class_ids) and np.allclose(alone.scores, inst.scores, atol=1e-5)
    photo = load_photo("coffee")  # 400x600, not square
    assert seg(photo).masks.shape[1:] == (400, 600)


# -- clear errors ---------------------------------------------------------------------------------------
def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_text("not a model")
    with pytest.raises(OnnxModelError, match="not a readable ONNX model"):
        _ort_segmenter(bad)
    with pytest.raises(OnnxModelError, match="no such ONNX file"):
        _ort_segmenter(tmp_path / "missing.onnx")


def test_onnx_file_without_yolact_metadata(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["loc"])],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("loc", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(OnnxModelError, match="not a yolact_ros export"):
        _ort_segmenter(path)


def test_wrong_input_size_and_config_mismatch(exported):
    path = exported("yolact_resnet50")
    seg = _ort_segmenter(path)
    with pytest.raises(OnnxModelError, match=r"exported at 550x550.*got \[1, 3, 300, 300\]"):
        seg.inference_model(torch.zeros(1, 3, 300, 300))
    with pytest.raises(ValueError, match="does not match the export's config 'yolact_resnet50'"):
        Segmenter(backend="onnxruntime", weights=path, config="yolact_base", device="cpu")
    with pytest.raises(CheckpointError, match=r"run it with backend 'auto' or 'openvino' \(or 'onnxruntime'\)"):
        Segmenter(weights=path, device="cpu")  # the torch backend given an export
    with pytest.raises(ValueError, match="pass weights=, not model="):
        Segmenter(backend="onnxruntime", model=reference_model("yolact_resnet50"))
    with pytest.raises(ValueError, match="unknown backend"):
        Segmenter(backend="tensorrt", weights=path)


def test_onnxruntime_missing(monkeypatch, exported):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(OnnxBackendError, match="pip install onnxruntime"):
        _ort_segmenter(exported("yolact_resnet50"))


def test_execution_providers():
    cpu = torch.device("cpu")
    assert onnx_runtime.providers_for(cpu, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    cuda = torch.device("cuda", 1)
    got = onnx_runtime.providers_for(cuda, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert got == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    with pytest.raises(OnnxBackendError, match="no CUDAExecutionProvider.*onnxruntime-gpu"):
        onnx_runtime.providers_for(cuda, ["CPUExecutionProvider"])


def test_runtime_without_deformconv_says_so(monkeypatch, exported):
    """onnxruntime 1.32 runs DeformConv (the native cases above); an older one fails at session
    creation with NOT_IMPLEMENTED: that error must point to --dcn grid_sample."""
    path = exported("yolact_plus_resnet50", dcn="native")

    def no_deformconv(*args, **kwargs):
        raise RuntimeError(
            "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for "
            "DeformConv(19) node with name '/net/backbone/layers.1.0/conv2/DeformConv'"
        )

    monkeypatch.setattr(ort, "InferenceSession", no_deformconv)
    with pytest.raises(OnnxBackendError, match="cannot run DeformConv.*--dcn grid_sample"):
        _ort_segmenter(path)


def test_export_option_errors(tmp_path):
    model = reference_model(OFFICIAL_CONFIGS["yolact_plus_resnet50"].replace(name="small_plus", max_size=256))
    with pytest.raises(ExportError, match="opset 17 is too old for dcn mode 'native'"):
        export_onnx(model, tmp_path / "x.onnx", dcn="native", opset=17)
    with pytest.raises(ExportError, match="input size 200 too small"):
        export_onnx(model, tmp_path / "x.onnx", size=200)
    with pytest.raises(ExportError, match="precision"):
        export_onnx(model, tmp_path / "x.onnx", precision="int8")
    assert not (tmp_path / "x.onnx").exists()
    assert cli_main(["export", "--weights", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "x.onnx")]) == 2


@pytest.mark.skipif(not os.environ.get("YOLACT_ONNX_ALL_CONFIGS"), reason="slow: set YOLACT_ONNX_ALL_CONFIGS=1")
@pytest.mark.parametrize("config", list(OFFICIAL_CONFIGS))
def test_every_official_config_exports_and_runs(config, tmp_path, astronaut):
    path = tmp_path / f"{config}.onnx"
    export_onnx(reference_model(config), path)
    seg = _ort_segmenter(path, score_threshold=0.0, top_k=100)
    ref = Segmenter(model=reference_model(config), device="cpu", score_threshold=0.0, top_k=100)
    with torch.inference_mode():
        x = ref.preprocess([astronaut])
        mine, theirs = seg.inference_model(x), ref.inference_model(x)
    for name in OUTPUT_NAMES:
        assert torch.allclose(mine[name], theirs[name], atol=1e-4, rtol=1e-4), name
    assert len(seg(astronaut)) == len(ref(astronaut))
