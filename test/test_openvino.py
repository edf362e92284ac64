"""OpenVINO f32 at parity: the golden-fixture checks of test_golden_parity.py (golden_checks.py)
run here with the same tolerances, on the OpenVINO backend (the ``.pth``-equivalent
reference weights converted at load), for every golden config (YOLACT and YOLACT++)."""

from __future__ import annotations

import pytest

ov = pytest.importorskip("openvino")

from golden_checks import (  # noqa: E402,F401 - the parity tests, collected here with this module's case
    load_case,
    test_detect_output_and_maskiou,
    test_final_detections_and_masks,
    test_raw_outputs,
)
from golden_compare import golden_files  # noqa: E402

from yolact_ros.segmenter import Segmenter  # noqa: E402
from yolact_ros.testing.reference_weights import reference_model  # noqa: E402

FILES = golden_files()


@pytest.fixture(scope="module", params=FILES, ids=[p.stem for p in FILES])
def case(request):
    def make(config):
        seg = Segmenter(
            model=reference_model(config),
            device="cpu",
            backend="openvino",
            precision="fp32",
            score_threshold=0.0,
            top_k=100,
            num_threads=2,
        )
        assert (seg.backend, seg.precision) == ("openvino", "fp32")
        return seg

    return load_case(request.param, make)


def test_yolact_plus_keeps_its_deformable_convolutions_native(tmp_path):
    """YOLACT++ converts with OpenVINO's own DeformableConvolution (faster than the GridSample
    formulation: BENCHMARKS.md), its inputs and outputs named as an export's; a ``yolact export
    --dcn native`` file (ONNX DeformConv) loads too and gives torch's raw outputs."""
    import numpy as np
    import torch

    from yolact_ros.inference.backends.openvino_backend import OpenVinoBackend, pytorch_to_openvino, read_metadata
    from yolact_ros.inference.onnx_export import export_onnx
    from yolact_ros.inference.onnx_format import INPUT_NAME, OUTPUT_NAMES

    model = reference_model("yolact_plus_resnet50").eval()
    ov_model = pytorch_to_openvino(model, tmp_path)
    ops = {op.get_type_name() for op in ov_model.get_ops()}
    assert "DeformableConvolution" in ops and "GridSample" not in ops
    assert ov_model.inputs[0].get_any_name() == INPUT_NAME
    assert [o.get_any_name() for o in ov_model.outputs] == list(OUTPUT_NAMES)
    assert ov_model.inputs[0].get_partial_shape()[0].is_dynamic  # several cameras batch
    assert read_metadata(ov_model, "test")["dcn"] == "native"

    path = export_onnx(model, tmp_path / "native.onnx", dcn="native").path
    backend = OpenVinoBackend(weights=path, precision="fp32", num_threads=2, cache_dir=tmp_path / "cache")
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 550, 550)).astype(np.float32))
    got = backend(x)
    with torch.no_grad():
        want = model(x)
    for name in ("loc", "conf", "mask", "proto"):
        scale = float(want[name].abs().max())
        assert float((got[name] - want[name]).abs().max()) <= 1e-4 * max(scale, 1.0), name
