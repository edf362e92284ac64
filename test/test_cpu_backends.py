"""The CPU backends (issue: real time on the CPU): capability detection, the ``auto`` rule,
OpenVINO f32 / bf16 / int8 against the torch fp32 reference, the model cache and ``yolact quantize``.

Parity stays a claim about fp32 (test_openvino.py re-runs the golden parity tests on OpenVINO
f32); reduced precision is held to the rule of ``reduced_precision.py`` on every golden, and
on the trained demo model to mask AP within 0.5 (bf16) / 2.0 (int8) points of fp32.  A bf16
case that the runtime compiled as f32 is skipped, never passed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

ov = pytest.importorskip("openvino")

from golden_compare import golden_files, load  # noqa: E402
from reduced_precision import BF16_MAX_MASK_OUTLIERS, MIN_MATCHED, matched_fraction  # noqa: E402

from yolact_ros.cli import main as cli_main  # noqa: E402
from yolact_ros.data.photos import load_photo  # noqa: E402
from yolact_ros.inference.backends.choice import choose  # noqa: E402
from yolact_ros.inference.backends.model_cache import ModelCache  # noqa: E402
from yolact_ros.inference.capabilities import CpuCapabilities, _read_cpuinfo, detect_cpu  # noqa: E402
from yolact_ros.segmenter import Segmenter  # noqa: E402
from yolact_ros.testing.reference_weights import reference_model  # noqa: E402

FILES = golden_files()
DEMO = Path(__file__).resolve().parents[1] / "models" / "demo" / "yolact_synth_demo.pth"
XEON = CpuCapabilities("Intel Xeon", "x86_64", frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8"}))
ZEN3 = CpuCapabilities("AMD EPYC", "x86_64", frozenset({"avx2", "fma"}))
GRAVITON3 = CpuCapabilities("", "aarch64", frozenset({"asimd", "asimddp", "bf16", "i8mm"}))


# -- capabilities and the auto rule ---------------------------------------------------------------
def test_cpuinfo_is_read_on_x86_and_arm(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text(
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: fpu avx2 avx512_bf16 amx_bf16\n\n"
        "processor\t: 1\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: fpu\n"
    )
    model, flags = _read_cpuinfo(str(x86))
    assert model == "Intel(R) Xeon(R)" and {"avx2", "avx512_bf16", "amx_bf16"} <= flags
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp bf16 i8mm\nCPU implementer\t: 0x41\n")
    caps = CpuCapabilities("", "aarch64", _read_cpuinfo(str(arm))[1])
    assert caps.native_bf16 and caps.native_int8
    assert not ZEN3.native_bf16 and not ZEN3.native_int8
    assert _read_cpuinfo(str(tmp_path / "missing")) == ("", frozenset())
    # OpenVINO's own view counts where the kernel's flags say nothing
    assert CpuCapabilities("x", "x86_64", frozenset(), openvino=("FP32", "BF16")).native_bf16


def test_this_cpu_is_described():
    caps = detect_cpu()
    line = caps.summary()
    assert caps.arch and caps.model and caps.arch in line
    if "amx_bf16" in caps.flags or "avx512_bf16" in caps.flags:
        assert caps.native_bf16


@pytest.mark.parametrize(
    "cpu, weights, ov_installed, int8, expected",
    [
        (XEON, "w.pth", True, False, ("openvino", "bf16")),
        (GRAVITON3, "w.pth", True, False, ("openvino", "bf16")),
        (ZEN3, "w.pth", True, False, ("openvino", "fp32")),
        (XEON, "w.pth", False, False, ("torch", "bf16")),
        (ZEN3, "w.pth", False, False, ("torch", "fp32")),
        (ZEN3, "w.onnx", False, False, ("onnxruntime", "fp32")),
        (XEON, "q.xml", True, True, ("openvino", "int8")),
        (ZEN3, "q.xml", True, True, ("openvino", "int8")),
    ],
)
def test_auto_rule(cpu, weights, ov_installed, int8, expected):
    got = choose("auto", "auto", "cpu", weights, cpu, ir_is_int8=int8, openvino=ov_installed)
    assert (got.backend, got.precision) == expected
    assert got.reason  # said in the start-up log line, diagnostics and benchmark lines


def test_auto_rule_on_cuda_and_explicit_choices():
    assert (
        choose("auto", "auto", "cuda", "w.pth", XEON, openvino=True).backend,
        choose("auto", "auto", "cuda", "w.pth", XEON, openvino=True).precision,
    ) == ("torch", "fp32")
    assert choose("torch", "auto", "cpu", "w.pth", XEON).precision == "bf16"
    assert choose("torch", "fp32", "cpu", "w.pth", XEON).precision == "fp32"  # explicit: kept
    with pytest.raises(ValueError, match="yolact quantize --weights W --images DIR --out F"):
        choose("auto", "int8", "cpu", "w.pth", XEON, openvino=True)
    with pytest.raises(ValueError, match="yolact quantize"):
        choose("openvino", "int8", "cpu", "w.onnx", XEON, openvino=True)
    with pytest.raises(ValueError, match="runs on the CPU"):
        choose("openvino", "bf16", "cuda", "w.pth", XEON, openvino=True)
    with pytest.raises(ValueError, match="onnxruntime.*runs precision fp32"):
        choose("onnxruntime", "bf16", "cpu", "w.onnx", XEON)


def test_int8_with_a_checkpoint_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="yolact quantize --weights W --images DIR --out F"):
        Segmenter(weights=DEMO, device="cpu", backend="auto", precision="int8")
    rc = cli_main(
        [
            "infer",
            str(tmp_path),
            "--weights",
            str(DEMO),
            "--out",
            str(tmp_path / "o"),
            "--precision",
            "int8",
            "--device",
            "cpu",
        ]
    )
    assert rc == 2


# -- reduced precision against fp32, on every golden ----------------------------------------------
@pytest.fixture(scope="module")
def fp32_results():
    cache = {}

    def get(path):
        if path not in cache:
            _, meta = load(path)
            seg = Segmenter(
                model=reference_model(meta["config"]),
                device="cpu",
                backend="torch",
                precision="fp32",
                score_threshold=0.0,
                top_k=100,
            )
            cache[path] = (meta, seg(load_photo(meta["image"])))
        return cache[path]

    return get


@pytest.mark.parametrize("backend", ["torch", "openvino"])
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_bf16_against_fp32(path, backend, fp32_results):
    meta, ref = fp32_results(path)
    seg = Segmenter(
        model=reference_model(meta["config"]),
        device="cpu",
        backend=backend,
        precision="bf16",
        score_threshold=0.0,
        top_k=100,
    )
    if seg.precision != "bf16":
        pytest.skip(f"{backend} compiled {seg.precision} for bf16 on this CPU ({detect_cpu().summary()})")
    low = seg(load_photo(meta["image"]))
    fraction, problems = matched_fraction(ref, low)
    assert fraction >= MIN_MATCHED, f"{backend} bf16: {fraction:.1%} of fp32 detections matched"
    assert len(problems) <= BF16_MAX_MASK_OUTLIERS * fraction * len(ref), problems[:8]
    assert low.masks.dtype == bool and low.boxes.dtype == np.float32  # post-processing stayed float32


# -- the demo model: accuracy of bf16 and int8 on fresh synthetic data ----------------------------
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from yolact_ros.data.synth import make_synthetic_dataset

    root = tmp_path_factory.mktemp("synth_cpu")
    # seeds the demo model was not trained (0) or validated (1000) on; calibration != evaluation
    val = make_synthetic_dataset(root / "val", n=40, seed=7301)
    cal = make_synthetic_dataset(root / "cal", n=24, seed=7302)
    return val, cal.parent / "images", root


def test_demo_model_bf16_and_int8_keep_mask_ap(synthetic):
    from yolact_ros.evaluation.coco_eval import evaluate

    val, cal_images, root = synthetic
    q = root / "demo_int8.xml"
    assert (
        cli_main(
            [
                "quantize",
                "--weights",
                str(DEMO),
                "--images",
                str(cal_images),
                "--out",
                str(q),
                "--calibration-size",
                "24",
            ]
        )
        == 0
    )
    assert q.is_file() and q.with_suffix(".bin").is_file()
    aps = {}
    for name, kw in {
        "fp32": dict(backend="torch", precision="fp32", weights=DEMO),
        "ov_fp32": dict(backend="openvino", precision="fp32", weights=DEMO),
        "bf16": dict(backend="openvino", precision="bf16", weights=DEMO),
        "torch_bf16": dict(backend="torch", precision="bf16", weights=DEMO),
        "int8": dict(backend="auto", precision="auto", weights=q),
    }.items():
        seg = Segmenter(device="cpu", num_threads=2, **kw)
        if name == "int8":
            assert (seg.backend, seg.precision) == ("openvino", "int8")
        if "bf16" in name and seg.precision != "bf16":
            continue
        aps[name] = evaluate(seg, val, val.parent / "images", progress=False, verbose=False)["mask_AP"]
    assert aps["fp32"] > 40, aps
    assert abs(aps["ov_fp32"] - aps["fp32"]) <= 0.2, aps
    for name in ("bf16", "torch_bf16"):
        if name in aps:
            assert abs(aps[name] - aps["fp32"]) <= 0.5, aps
    assert aps["int8"] >= aps["fp32"] - 2.0, aps


def test_quantize_errors_are_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["quantize", "--weights", str(DEMO), "--images", str(empty), "--out", str(tmp_path / "q.xml")]) == 2
    assert "no images" in capsys.readouterr().err
    assert cli_main(["quantize", "--weights", str(DEMO), "--images", str(empty), "--out", str(tmp_path / "q.bin")]) == 2
    assert "give a .xml path" in capsys.readouterr().err


# -- the model cache --------------------------------------------------------------------------------
def test_cache_warm_restart_corruption_and_unwritable(tmp_path, caplog):
    photo = load_photo("coffee")
    cache = tmp_path / "cache"
    first = Segmenter(weights=DEMO, device="cpu", backend="openvino", precision="fp32", cache_dir=cache)
    assert first.runtime.converted
    ref = first(photo)
    again = Segmenter(weights=DEMO, device="cpu", backend="openvino", precision="fp32", cache_dir=cache)
    assert not again.runtime.converted  # loaded from the cache
    np.testing.assert_array_equal(again(photo).boxes, ref.boxes)
    entries = [p for p in cache.iterdir() if p.is_dir() and p.name != "compiled" and not p.name.startswith(".")]
    assert len(entries) == 1 and (entries[0] / "manifest.json").is_file()
    # a damaged entry (truncated weights) is detected, rebuilt with one warning, and the results are right
    weights_file = entries[0] / "model.bin"
    weights_file.write_bytes(weights_file.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="yolact_ros.inference"):
        rebuilt = Segmenter(weights=DEMO, device="cpu", backend="openvino", precision="fp32", cache_dir=cache)
    assert rebuilt.runtime.converted
    assert sum("damaged" in r.message for r in caplog.records) == 1
    np.testing.assert_array_equal(rebuilt(photo).boxes, ref.boxes)
    # a cache that cannot be written: one warning, no crash, same results
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="yolact_ros.inference"):
        nocache = Segmenter(weights=DEMO, device="cpu", backend="openvino", precision="fp32", cache_dir=blocker / "c")
    assert any("not writable" in r.message for r in caplog.records)
    np.testing.assert_array_equal(nocache(photo).boxes, ref.boxes)


def test_cache_store_is_atomic(tmp_path):
    cache = ModelCache(tmp_path)

    def fails(folder):
        (folder / "model.xml").write_text("half")
        raise KeyboardInterrupt  # stopped mid-write

    with pytest.raises(KeyboardInterrupt):
        cache.store("k", fails)
    assert cache.lookup("k") is None and not list(tmp_path.glob(".tmp-*"))
    assert cache.store("k", lambda folder: (folder / "model.xml").write_text("ok")) == tmp_path / "k"
    assert cache.lookup("k") == tmp_path / "k"


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    from yolact_ros.inference.backends.model_cache import default_cache_dir

    monkeypatch.setenv("YOLACT_ROS_CACHE_DIR", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("YOLACT_ROS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "yolact_ros"
    assert os.environ.get("YOLACT_ROS_CACHE_DIR") is None


def test_a_batch_of_cameras_runs_on_openvino_as_single_images():
    """The node batches several cameras into one forward: the dynamic batch axis of the converted
    model gives each image the result of a single call."""
    seg = Segmenter(weights=DEMO, device="cpu", backend="openvino", precision="fp32", num_threads=2)
    images = [load_photo(n) for n in ("astronaut", "coffee", "chelsea")]
    images[1] = images[1][:200, :300]  # sizes differ, as cameras do
    batch = seg(images)
    for img, got in zip(images, batch):
        one = seg(img)
        np.testing.assert_allclose(got.boxes, one.boxes, atol=1e-3)
        np.testing.assert_array_equal(got.class_ids, one.class_ids)
