"""The helpers of bench/bench_original.py that need no checkout of the original YOLACT:
the ``dcn_v2`` stand-in, the CPU shims, the detection comparison, variant and cpuinfo parsing."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from yolact_ros.model.dcn import DCN as ProjectDCN

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_original", REPO / "bench" / "bench_original.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dcn_stand_in_has_the_checkpoint_layout_and_matches_the_project(bench, one_thread):
    torch.manual_seed(0)
    stand_in, ours = bench.DCN(8, 6, kernel_size=3, stride=2, padding=1), ProjectDCN(8, 6, 3, stride=2, padding=1)
    assert {k: v.shape for k, v in stand_in.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}
    state = {k: torch.randn(v.shape) * 0.3 for k, v in ours.state_dict().items()}  # offsets of ~1 px
    stand_in.load_state_dict(state)
    ours.load_state_dict(state)
    x = torch.randn(2, 8, 13, 11)
    with torch.no_grad():
        assert torch.allclose(stand_in(x), ours._torchvision(x, *ours.offsets_and_mask(x)), atol=1e-5)
        assert torch.allclose(stand_in(x), ours(x), atol=1e-4)


def test_cpu_shims_are_undone(bench):
    before = (torch.Tensor.cuda, nn.Module.cuda, torch.cuda.current_device, torch.jit.ScriptModule)
    with bench.cpu_shims(no_jit=True):
        t = torch.ones(2)
        assert t.cuda() is t and torch.cuda.current_device() == 0 and torch.jit.ScriptModule is nn.Module
    assert (torch.Tensor.cuda, nn.Module.cuda, torch.cuda.current_device, torch.jit.ScriptModule) == before


def _dets(n, h=40, w=50, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 30, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 15, (n, 2))], 1).astype(np.float32)
    return dict(
        classes=rng.integers(0, 3, n),
        scores=np.sort(rng.uniform(0.2, 0.9, n))[::-1].astype(np.float32),
        boxes=boxes,
        masks=rng.random((n, h, w)) > 0.5,
    )


def test_compare_detections(bench):
    ref = _dets(6)
    same = bench.compare_detections(ref, {k: v.copy() for k, v in ref.items()})
    assert same == dict(matched=6, total=6, match_fraction=1.0, mask_px_diff=0, n_original=6, n_ours=6)

    # sub-pixel boxes of ours against the original's truncated ones still match
    mine = {k: v.copy() for k, v in ref.items()}
    ref_int = dict(ref, boxes=np.floor(ref["boxes"]).astype(np.int64))
    assert bench.compare_detections(ref_int, mine)["matched"] == 6

    mine = {k: v[::-1].copy() for k, v in ref.items()}  # order does not matter
    mine["scores"][0] += 2e-3  # score off -> miss
    mine["classes"][1] = (mine["classes"][1] + 1) % 3  # class off -> miss
    mine["masks"][2, :3, :4] = ~mine["masks"][2, :3, :4]  # 12 mask pixels differ on a match
    r = bench.compare_detections(ref, mine)
    assert (r["matched"], r["total"], r["mask_px_diff"]) == (4, 6, 12)

    extra = {k: np.concatenate([v, v[:2]]) for k, v in ref.items()}  # duplicates count against
    r = bench.compare_detections(ref, extra)
    assert (r["matched"], r["total"]) == (6, 8)

    empty = {k: v[:0] for k, v in ref.items()}
    assert bench.compare_detections(empty, empty)["match_fraction"] == 1.0
    assert bench.compare_detections(ref, empty)["match_fraction"] == 0.0
    assert bench.compare_detections(empty, ref)["match_fraction"] == 0.0


def test_parse_variants(bench):
    assert bench.parse_variants(["torch:fp32", "openvino:bf16", "onnxruntime"]) == [
        ("torch", "fp32"),
        ("openvino", "bf16"),
        ("onnxruntime", "fp32"),
    ]
    with pytest.raises(ValueError):
        bench.parse_variants([":bf16"])
