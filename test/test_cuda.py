"""The CUDA path (marker ``cuda``): skipped, and reported as skipped, without a CUDA device.

``YOLACT_TEST_DEVICE=cpu`` runs the same steps on the CPU (the dry run of
``scripts/gpu_check.sh --dry-run``), so a mistake here cannot waste a lent GPU's minutes; fp16
then runs under the CPU's float16 autocast (same dtype handling as on CUDA) and tf32 is plain
fp32. Needs only torch, torchvision, numpy,
scikit-image and pytest (what the lent machine has): no pycocotools, no ROS.

The rule for tf32 and fp16 against fp32 (on every golden): at least 90 % of the fp32
detections have a partner of the same class with box IoU >= 0.9 and |score difference| <=
0.02, and matched masks overlap by IoU >= 0.85 or, for masks under 107 pixels, differ in at
most 16 pixels. Reduced precision reorders near-tied scores (then Fast NMS may keep a
neighbouring prior of almost the same score instead) and moves boxes and mask edges by a
fraction of a pixel; this rule tolerates that. The CPU's fp16 dry run, on 6 configs x 3
photos with the reference weights, gave 95-100 % matched and matched-mask IoU >= 0.900
(masks of 160 pixels or more), and 2- and 1-pixel masks off by one pixel (IoU 0.5 and 0):
the thresholds leave a margin of 5 points below that. A precision bug (an overflow, a lost
cast) moves far more than that.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from golden_checks import RAW_OUTPUTS, check_detections_and_masks, check_raw_output, load_case
from golden_compare import golden_files, load
from reduced_precision import MIN_MATCHED, matched_fraction
from torch.utils._python_dispatch import TorchDispatchMode

import yolact_ros
from yolact_ros.data.photos import load_photo
from yolact_ros.inference.instances import Instances
from yolact_ros.inference.postprocess import paste_mask_windows, paste_masks
from yolact_ros.inference.segmenter import tf32
from yolact_ros.model.boxes import crop_masks
from yolact_ros.model.dcn import DCN
from yolact_ros.segmenter import Segmenter
from yolact_ros.testing.reference_weights import reference_model

pytestmark = pytest.mark.cuda
DEVICE = os.environ.get("YOLACT_TEST_DEVICE", "cuda")
FILES = golden_files()


@pytest.fixture(scope="module")
def device():
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("no CUDA device (YOLACT_TEST_DEVICE=cpu runs these steps on the CPU)")
    return torch.device(DEVICE)


def _segmenter(config, device, precision="fp32", **settings):
    settings = {"score_threshold": 0.0, "top_k": 100, **settings}
    seg = Segmenter(model=reference_model(config), device=str(device), precision=precision, **settings)
    if device.type == "cpu":  # the dry run: as close to the CUDA path as the CPU allows
        for module in seg.inference_model.modules():
            if isinstance(module, DCN):
                module.fast_cpu = False  # torchvision's deform_conv2d, the kernel CUDA runs
        if precision == "fp16":
            # the Segmenter allows fp16 only on CUDA; set here, the network runs under the CPU's
            # float16 autocast, so the same dtype handling is exercised before device time is spent
            seg.precision = "fp16"
    return seg


@pytest.fixture(scope="module", params=FILES, ids=[p.stem for p in FILES])
def case(request, device):
    data, meta, seg, raw, inst, bgr = load_case(request.param, lambda c: _segmenter(c, device))
    return data, meta, seg, {k: v.float().cpu() for k, v in raw.items()}, inst, bgr


@pytest.mark.parametrize("name", RAW_OUTPUTS)
def test_golden_raw_outputs_fp32(case, name):
    """fp32 on the device (TF32 off) within the CPU tolerances."""
    check_raw_output(case, name)


def test_golden_detections_fp32(case):
    check_detections_and_masks(case)


@pytest.mark.parametrize("precision", ["tf32", "fp16"])
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_reduced_precision_against_fp32(device, path, precision):
    _, meta = load(path)
    bgr = load_photo(meta["image"])
    ref = _segmenter(meta["config"], device)(bgr)
    low = _segmenter(meta["config"], device, precision)(bgr)
    fraction, problems = matched_fraction(ref, low)
    assert fraction >= MIN_MATCHED, f"{precision}: {fraction:.1%} of fp32 detections matched"
    assert not problems, problems[:5]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_graph_equals_eager(device, precision):
    img = load_photo("astronaut")
    eager = _segmenter("yolact_plus_resnet50", device, precision, top_k=15, score_threshold=0.1)
    graphed = _segmenter("yolact_plus_resnet50", device, precision, top_k=15, score_threshold=0.1, cuda_graph=True)
    ref = eager(img)
    for _ in range(3):  # capture, then replays
        got = graphed(img)
    assert graphed.cuda_graph == (device.type == "cuda"), "the capture fell back to eager"
    assert len(got) == len(ref)
    np.testing.assert_allclose(got.boxes, ref.boxes, atol=0.5)
    np.testing.assert_allclose(got.scores, ref.scores, atol=1e-3 if precision == "fp32" else 2e-2)


def test_deform_conv_on_the_device_vs_the_cpu_formulation(device):
    from torchvision.ops import deform_conv2d

    from yolact_ros.model.dcn import deform_conv2d_cpu

    torch.manual_seed(0)
    dcn = DCN(16, 24, 3, stride=2, padding=1).eval()
    torch.nn.init.normal_(dcn.conv_offset_mask.weight, std=0.3)
    torch.nn.init.normal_(dcn.conv_offset_mask.bias, std=1.0)
    x = torch.randn(2, 16, 23, 17)
    with torch.no_grad():
        offset, mask = dcn.offsets_and_mask(x)
    with tf32(False):
        for scale in (1.0, 20.0):  # 20x: samples outside the image
            with torch.no_grad():
                fast = deform_conv2d_cpu(x, offset * scale, dcn.weight, dcn.bias, 2, 1, 1, mask)
                on_device = deform_conv2d(
                    x.to(device),
                    (offset * scale).to(device),
                    dcn.weight.to(device),
                    dcn.bias.to(device),
                    stride=2,
                    padding=1,
                    mask=mask.to(device),
                )
            assert (on_device.cpu() - fast).abs().max() < 2e-5 * max(1.0, float(fast.abs().max()))


def test_batch_of_four_equals_four_single_calls(device):
    seg = _segmenter("yolact_plus_resnet50", device, top_k=15, score_threshold=0.1)
    images = [np.ascontiguousarray(load_photo(n)[::2, ::2]) for n in ("astronaut", "coffee", "chelsea", "rocket")]
    batched = seg(images)
    for img, b in zip(images, batched):
        single = seg(img)
        assert len(single) == len(b)
        np.testing.assert_allclose(single.boxes, b.boxes, atol=0.5)
        np.testing.assert_allclose(single.scores, b.scores, atol=1e-3)
        assert (single.masks != b.masks).mean() < 0.005


def test_box_sized_masks_equal_full_frame_on_the_device(device):
    g = torch.Generator().manual_seed(1)
    low = torch.rand(40, 138, 138, generator=g) * 2 - 0.5
    corners = torch.sort(torch.rand(40, 2, 2, generator=g), dim=1).values
    boxes = corners.transpose(1, 2).reshape(40, 4)[:, [0, 2, 1, 3]]
    low = crop_masks(low, boxes).to(device)
    boxes = boxes.to(device)
    full = paste_masks(low, 1080, 1920, boxes).cpu().numpy()
    windows, origins = [None] * 40, np.zeros((40, 2), np.int64)
    for idx, group, group_origins in paste_mask_windows(low, 1080, 1920, boxes):
        for k, i in enumerate(idx):
            windows[i], origins[i] = group[k].cpu().numpy(), group_origins[k].cpu().numpy()
    inst = Instances(
        np.zeros((40, 4), np.float32),
        np.ones(40, np.float32),
        np.zeros(40, np.int64),
        mask_windows=windows,
        mask_origins=origins,
        image_size=(1080, 1920),
    )
    assert np.array_equal(inst.masks, full)


def test_no_device_memory_growth(device):
    seg = _segmenter("yolact_resnet50", device, top_k=15, score_threshold=0.15)
    img = load_photo("astronaut")
    frames = 200 if device.type == "cuda" else 10
    for _ in range(10):
        seg(img)
    before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    for _ in range(frames):
        seg(img)
    after = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    assert after - before <= 1 << 20, f"{(after - before) / 2**20:.1f} MiB more after {frames} frames"


class _WouldSyncOnCuda(TorchDispatchMode):
    """The CPU's stand-in for CUDA's sync debug mode: records where an operation runs that on
    CUDA makes the host wait (a count that sets a shape, a scalar read, a boolean index, a copy
    with a device argument), as the innermost yolact_ros line that called it. ``.tolist()`` of
    a CUDA tensor also waits, but on the CPU it dispatches nothing this can tell apart."""

    aten = torch.ops.aten
    WAITS = {
        aten.nonzero.default,
        aten.nonzero_numpy.default,
        aten.where.default,  # counts
        aten.masked_select.default,
        aten._unique2.default,
        aten.unique_dim.default,
        aten.unique_consecutive.default,
        aten.repeat_interleave.Tensor,
        aten.bincount.default,
        aten.item.default,
        aten._local_scalar_dense.default,
        aten.is_nonzero.default,  # scalar reads
        aten.equal.default,
    }
    INDEX = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default}
    PACKAGE = str(Path(yolact_ros.__file__).resolve().parent)

    def __init__(self):
        super().__init__()
        self.sites: list[tuple[str, int, str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        bool_index = func in self.INDEX and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] if i is not None
        )
        copy = (
            func.overloadpacket in (self.aten.to, self.aten._to_copy)
            and "device" in kwargs
            or func is self.aten.to.device
        )
        if func in self.WAITS or bool_index or copy:
            frame = sys._getframe(1)
            while frame is not None and not frame.f_code.co_filename.startswith(self.PACKAGE):
                frame = frame.f_back
            where = (frame.f_code.co_filename, frame.f_lineno) if frame is not None else ("(outside yolact_ros)", 0)
            self.sites.append((*where, str(func)))
        return func(*args, **kwargs)


@contextlib.contextmanager
def _host_waits(device):
    """Where the host waits for the device inside the block, as [(file, line, what)], filled
    when the block ends: CUDA's sync debug mode on a GPU, :class:`_WouldSyncOnCuda` on the CPU."""
    sites: list[tuple[str, int, str]] = []
    if device.type == "cuda":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                yield sites
            finally:
                torch.cuda.set_sync_debug_mode("default")
        sites += [(w.filename, w.lineno, str(w.message)) for w in caught if "synchroniz" in str(w.message).lower()]
    else:
        with _WouldSyncOnCuda() as probe:
            yield sites
        sites += probe.sites


def test_host_waits_only_where_a_line_says_sync(device):
    """Between the input copy and the results on the host, the host waits for the device only
    where a count sets a shape or the results are copied back, and each such line says so
    ("sync" in it or in the comment line above it). On CUDA, PyTorch's sync debug mode warns
    on every synchronising operation (a blocking copy either way, nonzero, item, tolist),
    attributed to the calling line; on the CPU :class:`_WouldSyncOnCuda` finds the operations
    that would synchronise there, so CI checks the same rule."""

    def marked(filename, lineno):
        return "sync" in linecache.getline(filename, lineno) or "sync" in linecache.getline(filename, lineno - 1)

    img = load_photo("astronaut")
    for config in ("yolact_resnet50", "yolact_plus_resnet50"):
        seg = _segmenter(config, device, top_k=15, score_threshold=0.1)
        seg(img)  # warm-up: priors, pinned buffers, normalisation constants
        with _host_waits(device) as sites:
            inst = seg(img)
        assert len(inst) > 0
        unmarked = sorted(
            {f"{f}:{n}: {linecache.getline(f, n).strip()} ({what})" for f, n, what in sites if not marked(f, n)}
        )
        assert not unmarked, f"{config}: host synchronisations without a 'sync' note:\n" + "\n".join(unmarked)
        assert sites, "no synchronising operation seen: the check did not see the counts or the copies back"


def test_the_network_body_never_waits_so_a_graph_can_capture_it(device):
    """The network body (what ``cuda_graph`` captures) runs no operation that makes the host
    wait; one that did would fail the capture, and in eager mode cost a wait per frame."""
    img = load_photo("astronaut")
    for config in ("yolact_resnet50", "yolact_plus_resnet50"):
        seg = _segmenter(config, device)
        with torch.inference_mode(), seg._precision():
            x = seg.preprocess([img])
            seg.inference_model(x)  # the priors are made and cached on the first call
            with _host_waits(device) as sites:
                out = seg.inference_model(x)
        assert out["proto"].shape[0] == 1
        assert not sites, f"{config}: the network body waits for the device:\n" + "\n".join(map(str, sites))
