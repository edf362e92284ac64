"""bench/bench_roofline.py's arithmetic: the work it counts for a network and a conv chain is
the convolutions' multiply-adds, part by part (no timing: that is the benchmark's job)."""

import importlib.util
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def roofline():
    spec = importlib.util.spec_from_file_location("bench_roofline", REPO / "bench" / "bench_roofline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # it finds bench_original beside it by itself
    return module


def conv_gflop(cin, cout, k, h, w=None):
    return 2 * h * (w or h) * k * k * cin * cout / 1e9


def test_yolact_resnet50_work_by_part(roofline, one_thread):
    from yolact_ros.testing.reference_weights import reference_model

    work = roofline.network_work(reference_model("yolact_resnet50").eval(), 550)
    # the protonet: three 3x3 256->256 at 69x69, upsampling, one more at 138x138, then 1x1 256->32
    proto = 3 * conv_gflop(256, 256, 3, 69) + conv_gflop(256, 256, 3, 138) + conv_gflop(256, 32, 1, 138)
    assert work["proto_net"] == pytest.approx(proto, rel=1e-9)
    # the shared head on the 5 FPN levels: upfeature 3x3 256->256, then box (3 anchors x 4), class
    # (3 x 81) and coefficient (3 x 32) 3x3 convolutions
    sizes = (69, 35, 18, 9, 5)
    heads = sum(conv_gflop(256, 256 + 3 * (4 + 81 + 32), 3, s) for s in sizes)
    assert work["prediction_layers"] == pytest.approx(heads, rel=1e-9)
    assert work["total"] == pytest.approx(sum(work[p] for p in roofline.PARTS), rel=1e-9)
    assert 40 < work["backbone"] < 60  # ResNet-50 at 550 px: ~4.1 GFLOP at 224 px x (550/224)^2


def test_conv_chain_work_matches_the_flop_counter(roofline):
    from torch.utils.flop_counter import FlopCounterMode

    chain, x, gflop = roofline._chain("32,16,3,20", depth=3)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        chain(x)
    assert counter.get_total_flops() / 1e9 == pytest.approx(gflop, rel=1e-9)
    assert gflop == pytest.approx(conv_gflop(32, 16, 3, 20) + 2 * conv_gflop(16, 16, 3, 20))
