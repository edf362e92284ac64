"""Official configs: state_dict layout, the deterministic weight rule, checkpoint loading."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from yolact_ros.model import OFFICIAL_CONFIGS, CheckpointError, build_yolact, config_name_from_filename
from yolact_ros.model.checkpoint import official_signature, read_checkpoint, save_checkpoint
from yolact_ros.model.dcn import DCN, deform_conv2d_cpu
from yolact_ros.model.yolact import Yolact
from yolact_ros.testing.reference_weights import apply_golden_weights, golden_state_dict

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden"
DESIGN_CONFIGS = [
    "yolact_base",
    "yolact_im400",
    "yolact_im700",
    "yolact_resnet50",
    "yolact_darknet53",
    "yolact_plus_base",
    "yolact_plus_resnet50",
]


def test_official_config_names():
    assert set(DESIGN_CONFIGS) <= set(OFFICIAL_CONFIGS)
    for cfg in OFFICIAL_CONFIGS.values():
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.max_size = 1  # frozen dataclass


@pytest.mark.parametrize("name", DESIGN_CONFIGS)
def test_state_dict_layout_matches_official(name):
    ref = json.loads((GOLDEN / "keys" / f"{name}.json").read_text())
    with torch.device("meta"):
        model = build_yolact(name)
    got = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()]
    assert got == [list(x) for x in ref["keys"]]


@pytest.mark.parametrize("name", DESIGN_CONFIGS)
def test_config_facts(name):
    facts = json.loads((GOLDEN / "configs.json").read_text())[name]
    cfg = OFFICIAL_CONFIGS[name]
    assert cfg.max_size == facts["max_size"]
    assert cfg.num_classes == facts["num_classes (incl. background)"]
    assert cfg.backbone.num_priors == facts["num_priors_per_location"]
    assert cfg.use_maskiou == facts["use_maskiou"]
    assert cfg.backbone.use_square_anchors == facts["backbone"]["use_square_anchors"]
    for mine, ref in zip(cfg.backbone.pred_scales, facts["backbone"]["pred_scales"]):
        assert mine == pytest.approx(ref, abs=1e-9)
    if facts["official_checkpoint"]:
        assert config_name_from_filename(facts["official_checkpoint"]) == name
    # priors count at the config's own input size
    with torch.device("meta"):
        model = build_yolact(name)
    sizes = [tuple(hw[::-1]) for hw in facts["conv_sizes_wh_per_level"]]
    assert model.priors(sizes, "cpu").shape[0] == facts["total_priors"]


@pytest.mark.parametrize("name", DESIGN_CONFIGS)
def test_weight_rule_digests(name):
    """Our generator of the reference weights is bit-identical (proved per key and whole)."""
    digests = json.loads((GOLDEN / "weight_digests" / f"{name}.json").read_text())
    sd = golden_state_dict(dict(official_signature(name, Yolact)))
    whole = hashlib.sha256()
    for key, tensor in sd.items():
        raw = tensor.numpy().tobytes()
        assert hashlib.sha256(raw).hexdigest()[:16] == digests["per_key"][key], key
        whole.update(key.encode("utf-8"))
        whole.update(raw)
    assert whole.hexdigest() == digests["whole_sha256"]


def test_config_name_from_filename():
    assert config_name_from_filename("weights/yolact_plus_base_54_800000.pth") == "yolact_plus_base"
    assert config_name_from_filename("yolact_base_54_800000.pth") == "yolact_base"
    assert config_name_from_filename("yolact_resnet50_54_800000.pth") == "yolact_resnet50"
    assert config_name_from_filename("yolact_darknet53_54_800000.pth") == "yolact_darknet53"
    assert config_name_from_filename("yolact_im700_54_800000.pth") == "yolact_im700"
    assert config_name_from_filename("yolact_base_10_5000_interrupt.pth") == "yolact_base"
    assert config_name_from_filename("my_model.pth") is None


@pytest.fixture(scope="module")
def small_official(tmp_path_factory):
    """An official-layout yolact_resnet50 file with the reference weights, plus the v1.0 extra keys."""
    model = apply_golden_weights(build_yolact("yolact_resnet50"))
    sd = OrderedDict(model.state_dict())
    sd["fpn.downsample_layers.2.weight"] = torch.zeros(256, 256, 3, 3)
    sd["fpn.downsample_layers.2.bias"] = torch.zeros(256)
    path = tmp_path_factory.mktemp("ckpt") / "yolact_resnet50_54_800000.pth"
    torch.save(sd, path)
    return path, model


def test_load_official_file_with_v10_extra_keys(small_official):
    path, ref = small_official
    model = build_yolact("yolact_resnet50").load_checkpoint(path)
    for (k, a), b in zip(model.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), k


def test_mismatched_checkpoint_names_the_config_it_fits(small_official):
    path, _ = small_official
    with pytest.raises(CheckpointError) as err:
        build_yolact("yolact_plus_resnet50").load_checkpoint(path)
    msg = str(err.value)
    assert str(path) in msg and "yolact_resnet50" in msg and "missing" in msg


def test_missing_truncated_and_foreign_files(tmp_path, small_official):
    model = build_yolact("yolact_resnet50")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        model.load_checkpoint(tmp_path / "nope.pth")
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(small_official[0].read_bytes()[:100000])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        model.load_checkpoint(trunc)
    text = tmp_path / "text.pth"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=str(text.name)):
        model.load_checkpoint(text)
    other = tmp_path / "other.pth"
    torch.save({"a": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="fits no official config"):
        model.load_checkpoint(other)
    notsd = tmp_path / "list.pth"
    torch.save([1, 2, 3], notsd)
    with pytest.raises(CheckpointError, match="not a YOLACT checkpoint"):
        model.load_checkpoint(notsd)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_checkpoint_cannot_run_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": _Evil()}, path)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(path)


def test_self_describing_checkpoint_round_trip(tmp_path):
    cfg = OFFICIAL_CONFIGS["yolact_resnet50"].replace(name="tiny", max_size=128, class_names=("a", "b"))
    model = apply_golden_weights(build_yolact(cfg))
    path = save_checkpoint(model, tmp_path / "whatever.pth")
    state, meta = read_checkpoint(path)
    assert list(state) == list(model.state_dict())  # tensor keys only: official flat layout
    from yolact_ros.segmenter import Segmenter

    seg = Segmenter(weights=path, device="cpu")
    assert seg.class_names == ("a", "b") and seg.cfg.max_size == 128
    assert zipfile.is_zipfile(path)


def test_dcn_fast_cpu_matches_torchvision():
    torch.manual_seed(0)
    dcn = DCN(16, 24, 3, stride=2, padding=1).eval()
    torch.nn.init.normal_(dcn.conv_offset_mask.weight, std=0.3)
    torch.nn.init.normal_(dcn.conv_offset_mask.bias, std=1.0)
    torch.nn.init.normal_(dcn.bias)
    x = torch.randn(2, 16, 23, 17)
    offset, mask = dcn.offsets_and_mask(x)
    from torchvision.ops import deform_conv2d

    ref = deform_conv2d(x, offset, dcn.weight, dcn.bias, stride=2, padding=1, mask=mask)
    fast = deform_conv2d_cpu(x, offset, dcn.weight, dcn.bias, 2, 1, 1, mask)
    assert fast.shape == ref.shape
    assert (fast - ref).abs().max() < 1e-4
    # large offsets push samples outside the image: both treat them as zero
    big = offset * 20
    ref = deform_conv2d(x, big, dcn.weight, dcn.bias, stride=2, padding=1, mask=mask)
    fast = deform_conv2d_cpu(x, big, dcn.weight, dcn.bias, 2, 1, 1, mask)
    assert (fast - ref).abs().max() < 1e-4


@pytest.mark.parametrize("fast_cpu", [False, True], ids=["torchvision", "fast_cpu"])
def test_dcn_under_float16_autocast(fast_cpu):
    """Under autocast the deformable convolution itself runs in float32 and returns the input's
    dtype (torchvision's own autocast rule on CUDA; torchvision has none on the CPU, where
    half input and float weights would fail): same values as float32 up to the fp16 input."""
    torch.manual_seed(0)
    dcn = DCN(16, 24, 3, stride=2, padding=1).eval()
    dcn.fast_cpu = fast_cpu
    torch.nn.init.normal_(dcn.conv_offset_mask.weight, std=0.3)
    x = torch.randn(1, 16, 23, 17)
    with torch.no_grad():
        ref = dcn(x)
        with torch.autocast("cpu", dtype=torch.float16):
            low = dcn(x.half())
    assert low.dtype == torch.float16 and low.shape == ref.shape
    assert (low.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_dcn_trains_through_torchvision_kernel():
    dcn = DCN(4, 4, 3).train()
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    dcn(x).sum().backward()
    assert dcn.conv_offset_mask.weight.grad is not None and x.grad is not None
